/** Starting sshkeep, ssh -L and autossh -M 0 against the bench sshd, each ready once a byte has echoed through it. */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { CLI_MAIN, REPO_ROOT, shebangNodeArgs, untracked } from '../../test/fixtures/bin.js';
import { HOST, deadline, freePorts } from '../../test/fixtures/net.js';
import { descendants } from '../../test/fixtures/proc.js';
import { sshdLogin, type Sshd } from '../../test/fixtures/sshd.js';
import { startForwarder, untilEchoes, type ForwarderSpec, type ToolName } from '../lib/forwarder.js';
import type { Targets } from './targets.js';

export const LABEL: Record<ToolName, string> = { sshkeep: 'sshkeep', ssh: 'ssh -L', autossh: 'autossh -M 0' };

/** The CLI rejected a flag (exit 2, "unknown option"): an sshkeep that predates it. */
export class FlagUnsupported extends Error {}

export interface LaunchSpec {
  tool: ToolName;
  /** Restrict ssh to this cipher with -c (sshkeep follows the sshd's `Ciphers`); undefined = defaults. */
  cipher?: string | undefined;
  /** Where the forwarder dials: sshd itself (default) or a relay in front of it. */
  sshPort?: number;
  /** ssh / autossh: extra arguments (e.g. -o ServerAliveInterval=15). */
  sshArgs?: string[];
  /** sshkeep: extra arguments. */
  sshkeepArgs?: string[];
  /** sshkeep: node's flags instead of those of the CLI's shebang (scripts/bench-node-flags.ts). */
  nodeArgs?: string[];
  /** sshkeep: another build's entry point (default dist/bin/sshkeep.js). */
  cli?: string | undefined;
  /** More loopback ports to forward (a database, a cache), after echo, sink and source. */
  extraTargets?: number[];
  /** Forward with -R: the ports listen on the sshd's side (its loopback, this machine's). */
  remote?: boolean;
  /** The command line as run (ForwarderSpec.wrap). */
  wrap?: ForwarderSpec['wrap'];
}

export interface Running {
  tool: ToolName;
  /** The spawned process: sshkeep's node, ssh, or autossh (whose ssh child is in pids()). */
  pid: number;
  /** The spawned process and its descendants (autossh + its ssh). */
  pids(): number[];
  ports: { echo: number; sink: number; source: number };
  /** The local ports of LaunchSpec.extraTargets, in order. */
  extra: number[];
  startupMs: number;
  cipher: string;
  /** The sshd log since this process was spawned. */
  sshdLog(): string;
  stop(): Promise<void>;
}

export async function launch(sshd: Sshd, targets: Targets, spec: LaunchSpec): Promise<Running> {
  const tool = spec.tool;
  for (let attempt = 1; ; attempt++) {
    const extraTargets = spec.extraTargets ?? [];
    const [echo, sink, source, ...extra] = (await freePorts(3 + extraTargets.length)) as [number, number, number, ...number[]];
    const logFrom = sshd.logs().length;
    const t0 = process.hrtime.bigint();
    const f = startForwarder({
      tool,
      login: sshdLogin(sshd, spec.sshPort),
      ...(spec.remote ? { remote: true } : {}),
      forwards: [[echo, targets.echo], [sink, targets.sink], [source, targets.source], ...extra.map((p, i) => [p, extraTargets[i]!])].map(([local, target]) => `${local}:${HOST}:${target}`),
      args: tool === 'sshkeep' ? ['-q', ...(spec.sshkeepArgs ?? [])] : [...(spec.cipher ? ['-c', spec.cipher] : []), ...(spec.sshArgs ?? [])],
      ...(spec.nodeArgs ? { nodeArgs: spec.nodeArgs } : {}),
      ...(spec.cli ? { cli: spec.cli } : {}),
      wrap: spec.wrap,
      tail: 8192,
    });
    try {
      await untilEchoes(f, echo);
    } catch (err) {
      await f.stop();
      const why = (err as Error).message;
      if (why === 'exited with 2' && /unknown option/i.test(f.stderr())) throw new FlagUnsupported(f.stderr().trim());
      if (/in use/i.test(f.stderr()) && attempt < 3) {
        process.stderr.write(`  ${tool}: a chosen local port was taken, retrying\n`);
        continue;
      }
      throw new Error(`${tool} ${why}\n--- ${f.command}\n--- ${tool} stderr ---\n${f.stderr()}\n--- sshd log (since start) ---\n${sshd.logs().slice(logFrom).slice(-4000)}`);
    }
    const startupMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const log = sshd.logs().slice(logFrom);
    const c2s = /kex: client->server cipher: (\S+)/.exec(log)?.[1] ?? 'unknown';
    const s2c = /kex: server->client cipher: (\S+)/.exec(log)?.[1] ?? 'unknown';
    const pid = f.child.pid!;
    return {
      tool,
      pid,
      pids: () => [pid, ...descendants(pid)],
      ports: { echo, sink, source },
      extra,
      startupMs,
      cipher: c2s === s2c ? c2s : `${c2s} / ${s2c}`,
      sshdLog: () => sshd.logs().slice(logFrom),
      stop: () => f.stop(),
    };
  }
}

/** A forwarder script of scripts/lib in its own node process (the CLI's node flags). */
export interface ScriptForwarder {
  pid: number;
  /** What it printed once ready: its listening ports, one a line. */
  ports: number[];
  stop(): Promise<void>;
}

/**
 * Starts scripts/lib/`file` (`nodeArgs`: more node flags after the CLI's; `wrap`: the command line
 * as run); ready once it prints its ports (within 10 s).
 */
export async function startScript(file: string, args: string[], nodeArgs: string[] = [], wrap?: ForwarderSpec['wrap']): Promise<ScriptForwarder> {
  const line = untracked(process.execPath, [...shebangNodeArgs(CLI_MAIN), ...nodeArgs, path.join(REPO_ROOT, 'scripts', 'lib', file), ...args]);
  const child = spawn(...(wrap ? wrap(...line) : line), { stdio: ['ignore', 'pipe', 'inherit'] });
  const stop = async () => {
    child.kill('SIGKILL');
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
  };
  try {
    const [line] = (await deadline(once(child.stdout!, 'data'), 10_000, `${file} to listen`)) as [Buffer];
    return { pid: child.pid!, ports: String(line).trim().split('\n').map(Number), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** scripts/lib/bare-forwarder.mjs logged in to `sshd`, forwarding a local port to each of `targets`; `withHandles`: its clients without net.Socket. */
export const startBare = (sshd: Sshd, targets: number[], nodeArgs: string[] = [], withHandles = false, wrap?: ForwarderSpec['wrap']): Promise<ScriptForwarder> =>
  startScript('bare-forwarder.mjs', [...(withHandles ? ['--handles'] : []), String(sshd.port), sshd.user, sshd.userKeyPath, ...targets.map(String)], nodeArgs, wrap);
