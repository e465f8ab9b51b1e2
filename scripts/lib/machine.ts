/** The environment lines of a report header: machine, versions, the code measured. */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLI_MAIN, REPO_ROOT } from '../../test/fixtures/bin.js';

/** stdout of a command, or its stderr / a short reason when it fails. */
export function sh(cmd: string, args: string[]): string {
  try {
    const r = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return r.trim();
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    return (e.stderr ?? '').trim() || `unavailable (${e.message.split('\n')[0]})`;
  }
}

/** `ssh -V` prints to stderr. */
export function sshVersion(): string {
  const r = spawnSync('ssh', ['-V'], { encoding: 'utf8' });
  return (r.stderr || r.stdout || 'unknown').trim();
}

export function cpuModel(): string {
  return os.cpus()[0]?.model.trim() ?? 'unknown';
}

/** Newest modification time (ms) of the .ts files under `dir`, to tell whether dist/ is stale. */
export function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

/** `autossh -V`, or undefined when autossh is not installed. */
export function autosshVersion(): string | undefined {
  const r = spawnSync('autossh', ['-V'], { encoding: 'utf8' });
  if (r.error) return undefined;
  const v = (r.stdout || r.stderr || '').trim();
  return /autossh/i.test(v) ? v : undefined;
}

/** The short commit, and whether src/ has uncommitted changes. */
export function gitDescribe(): string {
  const head = sh('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD']);
  const dirty = sh('git', ['-C', REPO_ROOT, 'status', '--porcelain', '--', 'src']);
  return dirty && !dirty.startsWith('unavailable') ? `${head} + uncommitted changes in src/` : head;
}

/** Whether dist/bin/sshkeep.js is older than a source file: the run would measure old code. */
export function distIsStale(cli = CLI_MAIN): boolean {
  return cli === CLI_MAIN && newestMtime(path.join(REPO_ROOT, 'src')) > fs.statSync(cli).mtimeMs;
}

/** How this script was started, for the report header. */
export function commandLine(): string {
  return ['node', ...process.execArgv, path.relative(process.cwd(), process.argv[1]!), ...process.argv.slice(2)].join(' ');
}

/** The machine's state when a run starts, for machine(): load averages and CPU time so far. */
export interface MachineSnapshot {
  load: number[];
  /** The aggregate `cpu` line of /proc/stat (clock ticks: user nice system idle iowait irq softirq steal …); empty where there is none. */
  ticks: number[];
}

function cpuTicks(): number[] {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
    return line.split(/\s+/).slice(1).map(Number);
  } catch {
    return [];
  }
}

export function machineSnapshot(): MachineSnapshot {
  return { load: os.loadavg(), ticks: cpuTicks() };
}

/**
 * Steal (time a virtual CPU was ready but the hypervisor ran something else) over the run, as a
 * share of all CPU time: on a shared host it inflates every CPU-time figure of the run, and by
 * more for some processes than others, so a run with much of it is to be read with care.
 */
function steal(before: number[], after: number[]): string {
  const STEAL = 7;
  if (before.length <= STEAL || after.length <= STEAL) return 'steal unknown';
  const total = after.slice(0, STEAL + 1).reduce((a, b) => a + b, 0) - before.slice(0, STEAL + 1).reduce((a, b) => a + b, 0);
  return `hypervisor steal ${total > 0 ? ((100 * (after[STEAL]! - before[STEAL]!)) / total).toFixed(1) : '0.0'} % of CPU time over the run`;
}

/** `nproc`, the CPU model, the load averages at the start and now, and the steal since the start. */
export function machine(before: MachineSnapshot): string {
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
  return `nproc ${sh('nproc', [])}, ${cpuModel()}, load avg before ${load(before.load)}, after ${load(os.loadavg())}, ${steal(before.ticks, cpuTicks())}`;
}
