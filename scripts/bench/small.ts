/**
 * The small-messages table (issue 17): what each request and reply costs the forwarder, for
 * sshkeep, a bare ssh2 forwarder (scripts/lib/bare-forwarder.mjs) and `ssh -N -L`, each a fresh
 * process per round, measured interleaved (tool by tool, stage by stage):
 *   - new connections (connect + first echo): the first --cold-conns after start (cold: JIT,
 *     allocator), then as many again (warm);
 *   - request/reply: --small-clients concurrent connections each doing --small-requests
 *     sequential round trips of --small-size bytes through the echo target, after --small-warm
 *     unmeasured ones each (V8 goes on optimizing for thousands: with 200, sshkeep's larger code was
 *     still being compiled, and it measured 1.0–1.2× the bare forwarder's user CPU against 1.0 after
 *     5,000; a long-running forwarder is measured warm);
 *   - pgbench -S -c 8 (--pg-seconds) and redis-benchmark -c 50 -t set,get (--redis-requests
 *     each), when installed (scripts/bench/services.ts).
 * CPU is the forwarder process's utime and stime (/proc/PID/stat) over each load, per request.
 * With --cpu-limit each forwarder runs in a cgroup of its own with that CPU quota (scripts/lib/
 * cpu-limit.ts), as a sidecar with a CPU limit does: the rates then say what the limit serves.
 */
import { deadline, echoProbe } from '../../test/fixtures/net.js';
import { cpuTimes, type CpuTimes } from '../../test/fixtures/proc.js';
import type { Sshd } from '../../test/fixtures/sshd.js';
import { CpuLimit, PERIOD_US } from '../lib/cpu-limit.js';
import { mean, median, quantile } from '../lib/stats.js';
import { PingPong, newConnections } from './clients.js';
import { launch, startBare } from './launch.js';
import { pgbenchSelect, redisBenchmark, type Service } from './services.js';
import type { Targets } from './targets.js';

export type SmallTool = 'sshkeep' | 'sshkeep (baseline)' | 'bare ssh2' | 'ssh -L';

/** The tools of a round, in the order they run; the baseline only when --baseline-cli names one. */
const toolsOf = (o: SmallOptions): SmallTool[] => ['sshkeep', ...(o.baselineCli ? ['sshkeep (baseline)' as const] : []), 'bare ssh2', 'ssh -L'];

export interface SmallOptions {
  /** Concurrent request/reply connections. */
  clients: number;
  /** Round trips per connection. */
  requests: number;
  /** Unmeasured round trips per connection before them (and before pgbench and redis-benchmark). */
  warm: number;
  /** Bytes per request (and reply). */
  size: number;
  /** New connections measured cold (the first after start), then warm. */
  coldConns: number;
  pgSeconds: number;
  redisRequests: number;
  sshkeepArgs: string[];
  /** Another sshkeep build's dist/bin/sshkeep.js (e.g. the main branch), measured beside this one. */
  baselineCli?: string | undefined;
  /** Each forwarder in a cgroup of its own limited to this many cores (a sidecar's CPU limit). */
  cpuLimit?: number | undefined;
}

/** One load through one forwarder: its CPU per request, in µs, and the rate. */
export interface Load {
  requests: number;
  seconds: number;
  userUs: number;
  sysUs: number;
  perSecond: number;
  /** Under --cpu-limit: the share of the CFS periods it ran in whose quota ran out (the limit bound). */
  throttled?: number;
}

export type LoadName = 'echo' | 'pgbench' | 'redis';

export interface SmallSample {
  round: number;
  tool: SmallTool;
  /** From spawn to the first byte echoed through it. */
  readyMs: number;
  /** The CPU it spent to get there, user and system (under a quota, readyMs is about ten times this at 100m). */
  readyCpuMs: number;
  coldUs: number[];
  warmUs: number[];
  loads: Partial<Record<LoadName, Load>>;
}

/** The servers the loads talk to; a service that is not installed is absent. */
export interface SmallTargets {
  targets: Targets;
  postgres?: Service | undefined;
  redis?: Service | undefined;
}

interface Forwarder {
  pid: number;
  limit?: CpuLimit | undefined;
  echo: number;
  postgres?: number;
  redis?: number;
  stop(): Promise<void>;
}

let limitsMade = 0;

/**
 * A forwarder started by `launchTool`, ready once a byte has echoed through it, and how long that
 * took. When the options limit its CPU, it runs in a cgroup of its own from its first instruction,
 * as a sidecar's container does.
 */
async function start(tool: SmallTool, sshd: Sshd, cipher: string | undefined, t: SmallTargets, o: SmallOptions): Promise<[Forwarder, number]> {
  const limit = o.cpuLimit === undefined ? undefined : CpuLimit.create(`sshkeep-bench-${process.pid}-${++limitsMade}`, o.cpuLimit);
  const t0 = process.hrtime.bigint();
  let f: Forwarder;
  try {
    f = await launchTool(tool, sshd, cipher, t, o, limit);
  } catch (err) {
    limit?.remove();
    throw err;
  }
  if (limit) {
    const stop = f.stop;
    f.stop = () => stop().finally(() => limit.remove());
    f.limit = limit;
  }
  return [f, Number(process.hrtime.bigint() - t0) / 1e6];
}

async function launchTool(tool: SmallTool, sshd: Sshd, cipher: string | undefined, t: SmallTargets, o: SmallOptions, limit: CpuLimit | undefined): Promise<Forwarder> {
  const wrap = limit ? (cmd: string, args: string[]) => limit.wrap(cmd, args) : undefined;
  const services = [t.postgres, t.redis].filter((s): s is Service => s !== undefined);
  const portOf = (ports: number[], s: Service | undefined) => (s ? ports[services.indexOf(s)] : undefined);
  const with_ = (pid: number, echo: number, ports: number[], stop: () => Promise<void>): Forwarder => {
    const f: Forwarder = { pid, echo, stop };
    const pg = portOf(ports, t.postgres);
    const redis = portOf(ports, t.redis);
    if (pg) f.postgres = pg;
    if (redis) f.redis = redis;
    return f;
  };
  if (tool === 'bare ssh2') {
    const b = await startBare(sshd, [t.targets.echo, ...services.map((s) => s.port)], [], false, wrap);
    try {
      await deadline(echoProbe(b.ports[0]!), 20_000, 'the bare forwarder\'s first echo'); // launch() waits for the others' own
    } catch (err) {
      await b.stop().catch(() => {}); // the probe's error is the one to tell
      throw err;
    }
    return with_(b.pid, b.ports[0]!, b.ports.slice(1), b.stop);
  }
  const extraTargets = services.map((s) => s.port);
  const run = await launch(
    sshd,
    t.targets,
    tool === 'ssh -L'
      ? { tool: 'ssh', cipher, extraTargets, wrap }
      : { tool: 'sshkeep', sshkeepArgs: o.sshkeepArgs, extraTargets, wrap, ...(tool === 'sshkeep (baseline)' ? { cli: o.baselineCli } : {}) },
  );
  return with_(run.pid, run.ports.echo, run.extra, run.stop);
}

/** A forwarder's CPU so far, user and system, in seconds: cpuTimes(pid) for one process. */
export type CpuReader = () => CpuTimes | Promise<CpuTimes>;

/** Runs `fn` (which returns how many requests it made) and charges the forwarder's CPU to them. */
export async function measured(cpu: CpuReader, fn: () => Promise<number>): Promise<Load> {
  const c0 = await cpu();
  const t0 = process.hrtime.bigint();
  const requests = await fn();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const c1 = await cpu();
  return { requests, seconds, userUs: ((c1.user - c0.user) * 1e6) / requests, sysUs: ((c1.system - c0.system) * 1e6) / requests, perSecond: requests / seconds };
}

/**
 * `clients` connections to the echo target kept open for request/reply load, so that what is
 * measured per request leaves out their set-up and close (a new connection has its own measure).
 */
export class RequestReply {
  private constructor(private readonly conns: PingPong[]) {}

  static async open(port: number, clients: number, size: number): Promise<RequestReply> {
    const opened = await Promise.allSettled(Array.from({ length: clients }, () => PingPong.open(port, size)));
    const conns = opened.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
    const failed = opened.find((o) => o.status === 'rejected');
    if (failed) {
      for (const c of conns) c.close();
      throw failed.reason;
    }
    return new RequestReply(conns);
  }

  /** `requests` sequential round trips on each connection, all connections at once; the total. */
  async run(requests: number): Promise<number> {
    const ms = 60_000 + this.conns.length * requests * 2; // generous: 2 ms a round trip would still finish
    await deadline(Promise.all(this.conns.map((c) => c.run(requests))), ms, 'request/reply load');
    return this.conns.length * requests;
  }

  close(): void {
    for (const c of this.conns) c.close();
  }
}

/** `clients` new connections each doing `requests` round trips, then closed; the total (the floor's socat runs a process per connection). */
export async function requestReply(port: number, clients: number, requests: number, size: number): Promise<number> {
  const load = await RequestReply.open(port, clients, size);
  try {
    return await load.run(requests);
  } finally {
    load.close();
  }
}

/** A load to measure per unit: round trips on `clients` connections kept open, or (perConnection) new connections one after another. */
export interface UnitLoad {
  /** `n` units (per connection, for round trips); how many were made in all. */
  run(n: number): Promise<number>;
  close(): void;
}

export async function openLoad(port: number, perConnection: boolean, clients: number, size: number): Promise<UnitLoad> {
  if (perConnection) return { run: (n) => newConnections(port, n).then((us) => us.length), close: () => {} };
  return RequestReply.open(port, clients, size);
}

/** `measured`, and under --cpu-limit the share of the CFS periods the forwarder ran in whose quota ran out. */
async function measuredUnderLimit(f: Forwarder, fn: () => Promise<number>): Promise<Load> {
  const before = f.limit?.throttling();
  const load = await measured(() => cpuTimes(f.pid), fn);
  const after = f.limit?.throttling();
  if (before && after) load.throttled = (after.throttledPeriods - before.throttledPeriods) / Math.max(1, after.periods - before.periods);
  return load;
}

/** One round: each tool a fresh process; every stage runs tool after tool before the next stage. */
export async function smallRound(round: number, sshd: Sshd, cipher: string | undefined, t: SmallTargets, o: SmallOptions, log: (l: string) => void): Promise<SmallSample[]> {
  const running: Array<[SmallSample, Forwarder]> = [];
  try {
    for (const tool of toolsOf(o)) {
      const [f, readyMs] = await start(tool, sshd, cipher, t, o);
      const cpu = cpuTimes(f.pid);
      const s: SmallSample = { round, tool, readyMs, readyCpuMs: (cpu.user + cpu.system) * 1000, coldUs: [], warmUs: [], loads: {} };
      running.push([s, f]);
      s.coldUs = await newConnections(f.echo, o.coldConns);
    }
    for (const [s, f] of running) s.warmUs = await newConnections(f.echo, o.coldConns);
    for (const [s, f] of running) {
      const load = await RequestReply.open(f.echo, o.clients, o.size);
      try {
        await load.run(o.warm);
        s.loads.echo = await measuredUnderLimit(f, () => load.run(o.requests));
      } finally {
        load.close();
      }
    }
    for (const [s, f] of running) if (f.postgres) s.loads.pgbench = await measuredUnderLimit(f, () => pgbenchSelect(f.postgres!, o.pgSeconds, 8));
    for (const [s, f] of running) if (f.redis) s.loads.redis = await measuredUnderLimit(f, () => redisBenchmark(f.redis!, o.redisRequests, 50));
    for (const [s] of running) log(`  round ${round} ${describeSample(s)}`);
    return running.map(([s]) => s);
  } finally {
    await Promise.allSettled(running.map(([, f]) => f.stop()));
  }
}

function describeSample(s: SmallSample): string {
  const load = (name: string, l: Load | undefined) =>
    l ? `, ${name} ${l.userUs.toFixed(1)}+${l.sysUs.toFixed(1)} µs/req ${l.perSecond.toFixed(0)}/s${l.throttled === undefined ? '' : ` throttled ${(l.throttled * 100).toFixed(0)}%`}` : '';
  return (
    `${s.tool.padEnd(9)} ready in ${s.readyMs.toFixed(0)} ms (${s.readyCpuMs.toFixed(0)} ms CPU), connect cold ${median(s.coldUs).toFixed(0)} warm ${median(s.warmUs).toFixed(0)} µs` +
    load('echo', s.loads.echo) + load('pgbench', s.loads.pgbench) + load('redis', s.loads.redis)
  );
}

interface SmallRow {
  metric: string;
  lowerIsBetter: boolean;
  digits: number;
  of: (s: SmallSample) => number | undefined;
  /** The goal on the median per-round ratio sshkeep/ssh. */
  goal?: { op: '<=' | '>='; limit: number };
  /** The goal also asks sshkeep to beat the bare ssh2 forwarder on this metric. */
  beatBare?: boolean;
}

const percent = (share: number | undefined) => (share === undefined ? undefined : share * 100);

function rows(o: SmallOptions): SmallRow[] {
  const loadRows = (name: LoadName, label: string, rateGoal?: number): SmallRow[] => [
    { metric: `${label}: user CPU µs per request`, lowerIsBetter: true, digits: 1, of: (s) => s.loads[name]?.userUs, ...(name === 'echo' ? { goal: { op: '<=', limit: 1.5 }, beatBare: true } : {}) },
    { metric: `${label}: system CPU µs per request`, lowerIsBetter: true, digits: 1, of: (s) => s.loads[name]?.sysUs },
    { metric: `${label}: user + system CPU µs per request`, lowerIsBetter: true, digits: 1, of: (s) => (s.loads[name] ? s.loads[name].userUs + s.loads[name].sysUs : undefined) },
    { metric: `${label}: requests per second`, lowerIsBetter: false, digits: 0, of: (s) => s.loads[name]?.perSecond, ...(rateGoal ? { goal: { op: '>=', limit: rateGoal } } : {}) },
    { metric: `${label}: CFS periods throttled, %`, lowerIsBetter: true, digits: 0, of: (s) => percent(s.loads[name]?.throttled) },
  ];
  return [
    ...loadRows('echo', `request/reply, ${o.clients} connections × ${o.size} B`),
    ...loadRows('pgbench', 'pgbench -S -c 8', 0.95),
    ...loadRows('redis', 'redis-benchmark -c 50 -t set,get', 0.95),
    { metric: 'start-up: from spawn to the first echo, ms', lowerIsBetter: true, digits: 0, of: (s) => s.readyMs },
    { metric: 'start-up: CPU to the first echo (user + system), ms', lowerIsBetter: true, digits: 0, of: (s) => s.readyCpuMs },
    { metric: `new connection, first ${o.coldConns} after start (cold): mean µs`, lowerIsBetter: true, digits: 0, of: (s) => mean(s.coldUs), goal: { op: '<=', limit: 1.5 } },
    { metric: `new connection, cold: p99 µs`, lowerIsBetter: true, digits: 0, of: (s) => quantile(s.coldUs, 0.99) },
    { metric: `new connection, the next ${o.coldConns} (warm): median µs`, lowerIsBetter: true, digits: 0, of: (s) => median(s.warmUs), goal: { op: '<=', limit: 1.2 } },
    { metric: `new connection, warm: p99 µs`, lowerIsBetter: true, digits: 0, of: (s) => quantile(s.warmUs, 0.99) },
  ];
}

/** The median over rounds of each round's a/b (the two ran back to back). */
function roundRatio(samples: SmallSample[], a: SmallTool, b: SmallTool, of: SmallRow['of']): number {
  const rounds = [...new Set(samples.map((s) => s.round))];
  const ratios = rounds.flatMap((r) => {
    const x = of(samples.find((s) => s.round === r && s.tool === a)!);
    const y = of(samples.find((s) => s.round === r && s.tool === b)!);
    return x !== undefined && y !== undefined ? [x / y] : [];
  });
  return ratios.length ? median(ratios) : NaN;
}

export interface SmallSummaryRow {
  metric: string;
  digits: number;
  values: Partial<Record<SmallTool, number>>;
  sshkeepVsSsh: number;
  bareVsSsh: number;
  sshkeepVsBare: number;
  /** sshkeep / the baseline build, when there is one. */
  sshkeepVsBaseline: number;
  goal?: string;
  met?: 'PASS' | 'MISS';
}

export function summarizeSmall(samples: SmallSample[], o: SmallOptions): SmallSummaryRow[] {
  const out: SmallSummaryRow[] = [];
  for (const r of rows(o)) {
    const values = Object.fromEntries(
      toolsOf(o).map((tool) => {
        const xs = samples.filter((s) => s.tool === tool).flatMap((s) => (r.of(s) === undefined ? [] : [r.of(s)!]));
        return [tool, xs.length ? median(xs) : NaN];
      }),
    ) as Partial<Record<SmallTool, number>>;
    if (!Number.isFinite(values.sshkeep)) continue; // a load that did not run (not installed)
    const row: SmallSummaryRow = {
      metric: r.metric,
      digits: r.digits,
      values,
      sshkeepVsSsh: roundRatio(samples, 'sshkeep', 'ssh -L', r.of),
      bareVsSsh: roundRatio(samples, 'bare ssh2', 'ssh -L', r.of),
      sshkeepVsBare: roundRatio(samples, 'sshkeep', 'bare ssh2', r.of),
      sshkeepVsBaseline: o.baselineCli ? roundRatio(samples, 'sshkeep', 'sshkeep (baseline)', r.of) : NaN,
    };
    if (r.goal) {
      row.goal = `sshkeep/ssh ${r.goal.op === '<=' ? '≤' : '≥'} ${r.goal.limit}` + (r.beatBare ? ', sshkeep/bare < 1' : '');
      const ok = (r.goal.op === '<=' ? row.sshkeepVsSsh <= r.goal.limit : row.sshkeepVsSsh >= r.goal.limit) && (!r.beatBare || row.sshkeepVsBare < 1);
      row.met = ok ? 'PASS' : 'MISS';
    }
    out.push(row);
  }
  return out;
}

export function smallSection(samples: SmallSample[], o: SmallOptions, notes: string[]): string {
  const tools = toolsOf(o);
  const fmt = (x: number, d: number) => (Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : '—');
  const table = summarizeSmall(samples, o).map(
    (r) =>
      `| ${r.metric} | ${tools.map((t) => fmt(r.values[t] ?? NaN, r.digits)).join(' | ')} | ` +
      `${fmt(r.sshkeepVsSsh, 2)} | ${fmt(r.bareVsSsh, 2)} | ${fmt(r.sshkeepVsBare, 2)} | ${o.baselineCli ? `${fmt(r.sshkeepVsBaseline, 2)} | ` : ''}${r.goal ?? ''} | ${r.met ?? ''} |`,
  );
  const rounds = new Set(samples.map((s) => s.round)).size;
  return [
    '',
    `### Small messages (issue 17), ${rounds} round(s)`,
    '',
    ...notes.map((n) => `- ${n}`),
    ...(o.baselineCli ? [`- baseline: \`${o.baselineCli}\` (another build, with its own node_modules), run beside this one`] : []),
    ...(o.cpuLimit !== undefined ? [`- every forwarder limited to ${o.cpuLimit} cores (${Math.round(o.cpuLimit * 1000)}m) from its first instruction: a cgroup of its own, CFS quota ${Math.round(o.cpuLimit * PERIOD_US)} µs per ${PERIOD_US} µs period`] : []),
    '',
    `| metric | ${tools.join(' | ')} | sshkeep/ssh | bare/ssh | sshkeep/bare | ${o.baselineCli ? 'sshkeep/baseline | ' : ''}goal | met |`,
    `|---|${'---:|'.repeat(tools.length + 3 + (o.baselineCli ? 1 : 0))}---|---|`,
    ...table,
    '',
    'Values: median over rounds. Ratios: the median of per-round ratios (the tools of a round run back to back, one stage at a time). ' +
      'CPU: utime and stime of the forwarder process (/proc/PID/stat, clock ticks) over the whole load, divided by the requests it carried; ' +
      `request/reply: ${o.clients} connections, each ${o.requests.toLocaleString('en-US')} sequential round trips of ${o.size} bytes through the echo target after ${o.warm.toLocaleString('en-US')} unmeasured; ` +
      `pgbench -S -n -c 8 -j 2 for ${o.pgSeconds} s (scale 1); redis-benchmark -c 50 -t set,get -n ${o.redisRequests.toLocaleString('en-US')} (no pipelining). ` +
      `Start-up: from spawning the forwarder to a byte echoed through it (sshkeep and ssh -L log in first; the bare forwarder prints its ports once logged in), and the CPU the forwarder had spent by then. New connection: connect, write a byte, first echoed byte, sequential; cold = the first ${o.coldConns} after the process started (after one readiness probe), warm = the next ${o.coldConns}.`,
    '',
  ].join('\n');
}
