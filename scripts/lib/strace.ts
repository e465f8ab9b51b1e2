/** System calls of a running process over a stretch of work: `strace -c -f -p PID`, counted by name. */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Calls by system call name, and their total. */
export interface SyscallCounts {
  byName: Map<string, number>;
  total: number;
}

/** Parses strace's `-c` summary: rows of `% time  seconds  usecs/call  calls  [errors]  syscall`. */
export function parseStraceSummary(text: string): SyscallCounts {
  const byName = new Map<string, number>();
  let total = 0;
  for (const line of text.split('\n')) {
    const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?([a-z_0-9]+)\s*$/.exec(line);
    if (!m || m[2] === 'total') continue;
    byName.set(m[2]!, Number(m[1]));
    total += Number(m[1]);
  }
  return { byName, total };
}

/** Runs `work` with strace attached to `pid`; the system calls the process made meanwhile. */
export async function countSyscalls(pid: number, work: () => Promise<unknown>): Promise<SyscallCounts> {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sshkeep-strace-')), 'summary');
  const strace = spawn('strace', ['-c', '-f', '-o', out, '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    // strace says "Process PID attached" on stderr once it traces; what runs before is not counted.
    await new Promise<void>((resolve, reject) => {
      let said = '';
      strace.stderr.on('data', (chunk: Buffer) => {
        said += chunk.toString();
        if (said.includes('attached')) resolve();
      });
      strace.once('error', reject);
      strace.once('exit', (code) => reject(new Error(`strace exited (${code}) before attaching: ${said.trim()}`)));
    });
    await work();
  } finally {
    if (strace.exitCode === null) {
      strace.kill('SIGINT');
      await once(strace, 'exit');
    }
  }
  const text = fs.readFileSync(out, 'utf8');
  fs.rmSync(path.dirname(out), { recursive: true, force: true });
  return parseStraceSummary(text);
}

/** "3.0 read, 1.0 write, …": calls per unit of work, most frequent first, those above 0.05. */
export function perUnit(counts: SyscallCounts, units: number): string {
  return [...counts.byName]
    .sort((a, b) => b[1] - a[1])
    .filter(([, n]) => n / units >= 0.05)
    .map(([name, n]) => `${(n / units).toFixed(2)} ${name}`)
    .join(', ');
}
