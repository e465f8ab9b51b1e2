/**
 * The floor of small-message CPU (issue 17): what a forwarder process spends per 64-byte request
 * and reply when it does nothing but move bytes between two TCP sockets, beside the SSH forwarders,
 * under the load of the small-messages table (scripts/bench/small.ts): --clients connections each
 * doing sequential round trips through the echo target, --warm per connection unmeasured (V8
 * optimizes for thousands), then --requests measured; the forwarder's utime and stime
 * (/proc/PID/stat) over them, per request. Unlike the small-messages table, each load opens its
 * own connections and their set-up is counted (socat runs a process per connection, whose CPU is
 * read once they have ended). Each row a fresh process, one at a time; the rows'
 * order rotates from round to round.
 *
 * Rows: `ssh -N -L` with its default cipher and with aes128-gcm@openssh.com (an sshd that allows
 * both), sshkeep and the bare ssh2 forwarder (their default, aes128-gcm), a plain Node proxy without
 * SSH (scripts/lib/plain-proxy.mjs: 'data' → write each way), the same reading the target's side
 * through `onread` into a reused buffer, and socat (one process per connection: its CPU is its
 * own plus that of its connection processes once they have ended) when installed.
 */
import { CLI_MAIN, shebangNodeArgs } from '../../test/fixtures/bin.js';
import { spawnLogged } from '../../test/fixtures/child.js';
import { HOST, freePorts, until } from '../../test/fixtures/net.js';
import { cpuTimes, cpuTimesWithChildren, ioCalls, killGroup, waitingChildren } from '../../test/fixtures/proc.js';
import type { Sshd } from '../../test/fixtures/sshd.js';
import { childEnv, untilEchoes } from '../lib/forwarder.js';
import { median } from '../lib/stats.js';
import { countSyscalls, perUnit } from '../lib/strace.js';
import { launch, startBare, startScript } from './launch.js';
import { found } from './services.js';
import { measured, requestReply, type CpuReader, type Load } from './small.js';
import type { Targets } from './targets.js';

const GCM = 'aes128-gcm@openssh.com';
const SSH = 'ssh -L';
const SSH_GCM = 'ssh -L -c aes128-gcm';
export const FLOOR_ROWS = [SSH, SSH_GCM, 'sshkeep', 'bare ssh2', 'node proxy', 'node proxy, onread', 'socat'] as const;
export type FloorRow = (typeof FLOOR_ROWS)[number];
/** Rows no floor table runs by default: the Node forwarders without net.Socket (scripts/lib/handles.mjs), for bench-connections. */
export type HandlesRow = 'bare ssh2, handles' | 'node proxy, handles';

export interface FloorOptions {
  clients: number;
  /** Measured round trips per connection. */
  requests: number;
  /** Unmeasured round trips per connection before them. */
  warm: number;
  size: number;
  /** Count each row's system calls per round trip over one more load, in round 1 (strace -c -f). */
  strace: boolean;
}

export interface FloorSample {
  round: number;
  row: FloorRow;
  load: Load;
  /** read- and write-class system calls per round trip over the measured load (/proc/PID/io). */
  reads: number;
  writes: number;
  /** The cipher sshd logged for an SSH row that launch() started. */
  cipher?: string;
  /** System calls per round trip ("2.00 write, …"), with FloorOptions.strace. */
  syscalls?: string;
}

export interface Started {
  pid: number;
  port: number;
  cpu: CpuReader;
  cipher?: string;
  stop(): Promise<void>;
}

/** The rows this machine can run: socat's only when it is installed. */
export const floorRows = (): FloorRow[] => FLOOR_ROWS.filter((r) => r !== 'socat' || found('socat'));

/** The process groups of the socats running, for a script's SIGINT/SIGTERM cleanup. */
const liveSocats = new Set<number>();

/** SIGKILLs every socat still running, with its connection processes. */
export function killSocats(): void {
  for (const pid of liveSocats) killGroup(pid, 'SIGKILL');
}

/** socat forwarding a free loopback port to `target`, one process per connection (`fork`), Nagle off both ways. */
async function startSocat(target: number): Promise<Started> {
  const [port] = (await freePorts(1)) as [number];
  const f = spawnLogged('socat', [`TCP-LISTEN:${port},bind=${HOST},fork,reuseaddr,nodelay`, `TCP:${HOST}:${target},nodelay`], { name: 'socat', env: childEnv(), detached: true, tail: 4096 });
  const pid = f.child.pid!;
  liveSocats.add(pid);
  const stop = async () => {
    killGroup(pid, 'SIGKILL'); // its connection processes too
    await f.exited(5_000).catch(() => {});
    liveSocats.delete(pid);
  };
  try {
    await untilEchoes(f, port);
  } catch (err) {
    await stop();
    throw new Error(`socat ${(err as Error).message}: ${f.stderr().trim()}`);
  }
  // A connection process's CPU reaches socat's cutime/cstime once socat has waited for it.
  const cpu = async () => {
    await until(() => waitingChildren(pid) === 0, 10_000, "socat's connection processes to end");
    return cpuTimesWithChildren(pid);
  };
  return { pid, port, cpu, stop };
}

/**
 * Starts `row` forwarding a free loopback port to the echo target. `nodeArgs`: more node flags
 * for the Node rows (after the CLI's shebang's), e.g. --perf-basic-prof for a profile.
 */
export async function startRow(row: FloorRow | HandlesRow, sshd: Sshd, targets: Targets, nodeArgs: string[] = []): Promise<Started> {
  const script = async (started: ReturnType<typeof startScript>): Promise<Started> => {
    const s = await started;
    return { pid: s.pid, port: s.ports[0]!, cpu: () => cpuTimes(s.pid), stop: s.stop };
  };
  switch (row) {
    case 'bare ssh2':
    case 'bare ssh2, handles':
      return script(startBare(sshd, [targets.echo], nodeArgs, row === 'bare ssh2, handles'));
    case 'node proxy':
      return script(startScript('plain-proxy.mjs', [String(targets.echo), 'stream'], nodeArgs));
    case 'node proxy, onread':
      return script(startScript('plain-proxy.mjs', [String(targets.echo), 'onread'], nodeArgs));
    case 'node proxy, handles':
      return script(startScript('plain-proxy.mjs', [String(targets.echo), 'handles'], nodeArgs));
    case 'socat':
      return startSocat(targets.echo);
    default: {
      const spec = row === 'sshkeep' ? { tool: 'sshkeep' as const, ...(nodeArgs.length ? { nodeArgs: [...shebangNodeArgs(CLI_MAIN), ...nodeArgs] } : {}) } : { tool: 'ssh' as const, cipher: row === SSH_GCM ? GCM : undefined };
      const run = await launch(sshd, targets, spec);
      return { pid: run.pid, port: run.ports.echo, cpu: () => cpuTimes(run.pid), cipher: run.cipher, stop: run.stop };
    }
  }
}

/** One round: every row in `rows` (rotated by the round number), each a fresh process, warmed up, measured, stopped. */
export async function floorSmallRound(round: number, rows: FloorRow[], sshd: Sshd, targets: Targets, o: FloorOptions, log: (l: string) => void): Promise<FloorSample[]> {
  const out: FloorSample[] = [];
  const shift = round % rows.length;
  for (const row of [...rows.slice(shift), ...rows.slice(0, shift)]) {
    const f = await startRow(row, sshd, targets);
    try {
      await requestReply(f.port, o.clients, o.warm, o.size);
      await f.cpu(); // socat: once the warm-up's connection processes have ended, so their calls are counted before
      const io0 = ioCalls(f.pid);
      const load = await measured(f.cpu, () => requestReply(f.port, o.clients, o.requests, o.size));
      const io1 = ioCalls(f.pid);
      const reads = (io1.reads - io0.reads) / load.requests;
      const writes = (io1.writes - io0.writes) / load.requests;
      const sample: FloorSample = { round, row, load, reads, writes, ...(f.cipher ? { cipher: f.cipher } : {}) };
      if (o.strace && round === 1) {
        // Not measured for CPU: strace slows the process it traces.
        const n = Math.ceil(o.requests / 5);
        sample.syscalls = perUnit(await countSyscalls(f.pid, () => requestReply(f.port, o.clients, n, o.size)), o.clients * n);
      }
      out.push(sample);
      log(
        `round ${round} small messages, ${row}: user ${load.userUs.toFixed(1)} + system ${load.sysUs.toFixed(1)} µs per request, ${load.perSecond.toFixed(0)}/s, ` +
          `${reads.toFixed(2)} reads + ${writes.toFixed(2)} writes`,
      );
    } finally {
      await f.stop();
    }
  }
  return out;
}

/** The table's columns; `ratio`: also as a ratio to ssh -L. */
const METRICS = [
  { name: 'user CPU µs per request', digits: 1, ratio: true, of: (s: FloorSample) => s.load.userUs },
  { name: 'system', digits: 1, ratio: false, of: (s: FloorSample) => s.load.sysUs },
  { name: 'user + system', digits: 1, ratio: true, of: (s: FloorSample) => s.load.userUs + s.load.sysUs },
  { name: 'requests/s', digits: 0, ratio: true, of: (s: FloorSample) => s.load.perSecond },
  { name: 'reads + writes per round trip', digits: 2, ratio: false, of: (s: FloorSample) => s.reads + s.writes },
] as const;
type Metric = (typeof METRICS)[number];

const fmt = (x: number, digits: number) => (Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : '—');

/** Median over rounds, with the lowest and highest. */
function spread(xs: number[], digits: number): string {
  return xs.length > 1 ? `${fmt(median(xs), digits)} (${fmt(Math.min(...xs), digits)}–${fmt(Math.max(...xs), digits)})` : fmt(median(xs), digits);
}

/** Each round's `row` metric over `base`'s in the same round, in round order. */
function roundRatios(samples: FloorSample[], row: FloorRow, base: FloorRow, m: Metric): number[] {
  const rounds = [...new Set(samples.map((s) => s.round))].sort((a, b) => a - b);
  return rounds.flatMap((r) => {
    const x = samples.find((s) => s.round === r && s.row === row);
    const y = samples.find((s) => s.round === r && s.row === base);
    return x && y ? [m.of(x) / m.of(y)] : [];
  });
}

const ratio = (samples: FloorSample[], row: FloorRow, base: FloorRow, m: Metric): number => median(roundRatios(samples, row, base, m));

const valuesOf = (samples: FloorSample[], row: FloorRow, m: Metric) => samples.filter((s) => s.row === row).map((s) => m.of(s));

export function floorSmallSection(samples: FloorSample[], rows: FloorRow[], o: FloorOptions, notes: string[]): string {
  const ratioMetrics = METRICS.filter((m) => m.ratio);
  const ciphers = rows.flatMap((row) => {
    const seen = [...new Set(samples.filter((s) => s.row === row && s.cipher).map((s) => s.cipher))];
    return seen.length ? [`${row} ${seen.join(', ')}`] : [];
  });
  const user = METRICS[0];
  const syscalls = samples.filter((s) => s.syscalls).map((s) => `- ${s.row}: ${s.syscalls}`);
  const budget = (base: FloorRow) => fmt(1.5 * median(valuesOf(samples, base, user)), 1);
  return [
    `### Small messages: the floor of a Node forwarder, ${new Set(samples.map((s) => s.round)).size} round(s)`,
    '',
    ...notes.map((n) => `- ${n}`),
    `- ciphers sshd logged: ${ciphers.join('; ')} (the bare ssh2 forwarder: the same ssh2 and defaults as sshkeep)`,
    '',
    `| forwarder | ${METRICS.map((m) => m.name).join(' | ')} | ${ratioMetrics.map((m) => `${m.name.replace(' CPU µs per request', '')} ÷ ssh -L (default / aes128-gcm)`).join(' | ')} |`,
    `|---|${'---:|'.repeat(METRICS.length + ratioMetrics.length)}`,
    ...rows.map(
      (row) =>
        `| ${row} | ${METRICS.map((m) => spread(valuesOf(samples, row, m), m.digits)).join(' | ')} | ` +
        `${ratioMetrics.map((m) => `${fmt(ratio(samples, row, SSH, m), 2)} / ${fmt(ratio(samples, row, SSH_GCM, m), 2)}`).join(' | ')} |`,
    ),
    '',
    `User CPU ÷ ssh -L's, round by round (the question: is a forwarder without SSH already above 1.5?):`,
    '',
    '| forwarder | ÷ ssh -L (default cipher) | ÷ ssh -L -c aes128-gcm |',
    '|---|---|---|',
    ...rows
      .filter((row) => row !== SSH && row !== SSH_GCM)
      .map((row) => `| ${row} | ${([SSH, SSH_GCM] as const).map((base) => roundRatios(samples, row, base, user).map((x) => fmt(x, 2)).join(', ')).join(' | ')} |`),
    '',
    ...(syscalls.length ? [`System calls per round trip (round 1, strace -c -f over another ${o.clients} × ${Math.ceil(o.requests / 5).toLocaleString('en-US')}):`, '', ...syscalls, ''] : []),
    `Issue 17's goal, 1.5 × ssh -L's user CPU per request: ${budget(SSH)} µs (its default cipher) / ${budget(SSH_GCM)} µs (aes128-gcm), medians of this run.`,
    '',
    `Values: median over rounds (lowest–highest). Ratios: the median of per-round ratios. CPU: utime and stime of the forwarder (/proc/PID/stat, clock ticks; ` +
      `socat: with its ended connection processes) and its read- and write-class system calls (/proc/PID/io syscr, syscw: not recvfrom or sendmsg) over ${o.clients} connections × ${o.requests.toLocaleString('en-US')} sequential round trips of ${o.size} bytes ` +
      `through the echo target, after ${o.warm.toLocaleString('en-US')} per connection unmeasured, divided by the requests.`,
    '',
  ].join('\n');
}
