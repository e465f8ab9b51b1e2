/** The bench's sshd: its listener pid, DEBUG1 logging (for the negotiated cipher), its sessions' CPU. */
import fs from 'node:fs';
import path from 'node:path';
import { HOST } from '../../test/fixtures/net.js';
import { cpuSeconds, descendants } from '../../test/fixtures/proc.js';
import { startSshd, type Sshd } from '../../test/fixtures/sshd.js';
import { sleep } from '../lib/sleep.js';

/**
 * The sshd listener's pid. sshd writes its PidFile only after it logs "Server listening", which is
 * when startSshd() returns, so wait for the file. A SIGHUP re-exec keeps the pid.
 */
export async function sshdPid(sshd: Sshd): Promise<number> {
  const file = path.join(sshd.dir, 'sshd.pid');
  const until = Date.now() + 10_000;
  for (;;) {
    try {
      const pid = Number(fs.readFileSync(file, 'utf8').trim());
      if (pid > 0) return pid;
    } catch {}
    if (Date.now() > until) throw new Error(`sshd wrote no ${file}`);
    await sleep(10);
  }
}

/** CPU seconds of every live sshd session process (the listener's descendants), by pid. */
export function sshdSessionCpu(root: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of descendants(root)) {
    try {
      out.set(pid, cpuSeconds(pid));
    } catch {} // a session that ended since
  }
  return out;
}

/** CPU the sshd sessions spent between two snapshots (processes present in both). */
export function sshdCpuDelta(before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0;
  for (const [pid, t] of after) sum += t - (before.get(pid) ?? 0);
  return sum;
}

/**
 * sshd_config takes the first value of a keyword, and the fixture writes `LogLevel VERBOSE` before
 * `extraConfig`, so `extraConfig: ['LogLevel DEBUG1']` cannot raise it. VERBOSE does not log the
 * negotiated cipher; DEBUG1 does ("kex: client->server cipher: ..."). So rewrite the running sshd's
 * config file and SIGHUP it: sshd re-execs itself (same pid, same stderr) with the new config.
 */
export async function sshdDebugLogging(sshd: Sshd, pid: number): Promise<void> {
  const configPath = path.join(sshd.dir, 'sshd_config');
  const config = fs.readFileSync(configPath, 'utf8');
  fs.writeFileSync(configPath, /^LogLevel /m.test(config) ? config.replace(/^LogLevel .*$/m, 'LogLevel DEBUG1') : `LogLevel DEBUG1\n${config}`);
  const from = sshd.logs().length;
  process.kill(pid, 'SIGHUP');
  const line = `Server listening on ${HOST} port ${sshd.port}`;
  const until = Date.now() + 10_000;
  while (!sshd.logs().slice(from).includes(line)) {
    if (Date.now() > until) throw new Error(`sshd did not come back after SIGHUP:\n${sshd.logs().slice(from)}`);
    await sleep(10);
  }
}

/** An sshd for one cipher mode: restricted to `Ciphers cipher` when given, logging at DEBUG1. */
export async function startBenchSshd(cipher: string | undefined): Promise<{ sshd: Sshd; listener: number }> {
  const sshd = await startSshd(undefined, { extraConfig: cipher ? [`Ciphers ${cipher}`] : [] });
  try {
    const listener = await sshdPid(sshd);
    await sshdDebugLogging(sshd, listener);
    return { sshd, listener };
  } catch (err) {
    await sshd.stop();
    throw err;
  }
}
