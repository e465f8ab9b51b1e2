/**
 * CPU per new forwarded connection (issue 17): connect, one byte, its echo, close, sequential,
 * through sshkeep, a bare ssh2 forwarder (scripts/lib/bare-forwarder.mjs), `ssh -N -L` and,
 * with --tools …,proxy, a plain Node TCP proxy without SSH (scripts/lib/plain-proxy.mjs: what
 * node's own accept, connect and stream machinery cost per connection, the floor of any Node
 * forwarder), with …,bare-handles,proxy-handles the same two without net.Socket (libuv's handles
 * driven directly, scripts/lib/handles.mjs: what net.Socket costs), and with --baseline-cli
 * another sshkeep build. Each a fresh process per round,
 * tools alternated.
 * The figure is the forwarder's utime and stime (/proc/PID/stat) over the first --cold
 * connections after start (JIT warm-up, first use), then over --conns more (warm), per
 * connection. It moves less with the machine's load than the latency the small-messages table
 * reports, yet by ±20 % on a loaded machine: to compare two builds there, count instructions
 * (scripts/bench-instructions.ts --new-connections).
 *
 *   npm run build && node --import @tapjs/typescript/import scripts/bench-connections.ts \
 *     [--conns 2000] [--cold 300] [--rounds 3] [--tools sshkeep,bare,ssh(,proxy,bare-handles,proxy-handles)] [--baseline-cli OTHER/dist/bin/sshkeep.js]
 *     [--node-args='--cpu-prof --cpu-prof-dir=DIR' (more node flags for sshkeep, after its shebang's)]
 *     [--strace (system calls per warm connection, strace -c -f attached to each forwarder)]
 *     [--curve N (also the warm-up curve: user CPU and median latency per N connections from start)]
 *     [--path N (also where a warm connection's latency goes: perf trace over N more, scripts/lib/perf-trace.ts)]
 *     [--remote (forward with -R, sshkeep and ssh only: the clients connect to sshd's listener)]
 */
import { parseArgs } from 'node:util';
import { CLI_MAIN, shebangNodeArgs } from '../test/fixtures/bin.js';
import { cpuTimes } from '../test/fixtures/proc.js';
import type { Sshd } from '../test/fixtures/sshd.js';
import { newConnections } from './bench/clients.js';
import { startRow } from './bench/floor-small.js';
import { launch } from './bench/launch.js';
import { startBenchSshd } from './bench/sshd.js';
import { startTargets, type Targets } from './bench/targets.js';
import { commandLine, machine, machineSnapshot, sshVersion } from './lib/machine.js';
import { runMain } from './lib/main.js';
import { intOption, parseCommandLine, splitArgs } from './lib/options.js';
import { mean, median } from './lib/stats.js';
import { countSyscalls, perUnit } from './lib/strace.js';
import { SEGMENTS, connectionPath } from './lib/perf-trace.js';

const TOOLS = ['sshkeep', 'baseline', 'bare', 'proxy', 'bare-handles', 'proxy-handles', 'ssh'] as const;
type Tool = (typeof TOOLS)[number];
const LABEL: Record<Tool, string> = {
  sshkeep: 'sshkeep',
  baseline: 'sshkeep (baseline)',
  bare: 'bare ssh2',
  proxy: 'node proxy (no SSH)',
  'bare-handles': 'bare ssh2, no net.Socket',
  'proxy-handles': 'node proxy, no net.Socket',
  ssh: 'ssh -L',
};
/** The Node forwarders of scripts/lib, as floor-small.ts starts them. */
const ROW = { bare: 'bare ssh2', proxy: 'node proxy', 'bare-handles': 'bare ssh2, handles', 'proxy-handles': 'node proxy, handles' } as const;

const USAGE =
  'usage: npm run build && node --import @tapjs/typescript/import scripts/bench-connections.ts [--conns 2000] [--cold 300] [--rounds 3]\n' +
  "         [--tools sshkeep,bare,ssh(,proxy,bare-handles,proxy-handles)] [--baseline-cli OTHER/dist/bin/sshkeep.js] [--node-args='FLAGS'] [--strace] [--curve N] [--path N] [--remote]\n";

const options = parseCommandLine('bench-connections', USAGE, (args) => {
  const { values } = parseArgs({
    args,
    options: {
      conns: { type: 'string', default: '2000' },
      cold: { type: 'string', default: '300' },
      rounds: { type: 'string', default: '3' },
      tools: { type: 'string', default: 'sshkeep,bare,ssh' },
      'baseline-cli': { type: 'string' },
      'node-args': { type: 'string', default: '' },
      strace: { type: 'boolean', default: false },
      curve: { type: 'string', default: '0' },
      path: { type: 'string', default: '0' },
      remote: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const baselineCli = values['baseline-cli'];
  const tools = values.tools.split(',').map((t) => {
    if (!(TOOLS as readonly string[]).includes(t)) throw new Error(`--tools: ${t} is not one of ${TOOLS.join(', ')}`);
    return t as Tool;
  });
  if (baselineCli && !tools.includes('baseline')) tools.splice(1, 0, 'baseline');
  if (tools.includes('baseline') && !baselineCli) throw new Error('--tools baseline needs --baseline-cli');
  const other = values.remote && tools.find((t) => t in ROW);
  if (other) throw new Error(`--remote: ${other} forwards with -L only; --tools sshkeep,baseline,ssh`);
  return {
    conns: intOption('conns', values.conns, 1),
    cold: intOption('cold', values.cold, 1),
    rounds: intOption('rounds', values.rounds, 1),
    baselineCli,
    tools,
    nodeArgs: splitArgs(values['node-args']),
    strace: values.strace,
    curve: intOption('curve', values.curve, 0),
    path: intOption('path', values.path, 0),
    remote: values.remote,
  };
});

if (options.remote) LABEL.ssh = 'ssh -R';

const stops = new Set<() => Promise<void>>();
let sshdRef: Sshd | undefined;
let targetsRef: Targets | undefined;

async function cleanup(): Promise<void> {
  await Promise.allSettled([...[...stops].map((s) => s()), sshdRef?.stop(), targetsRef?.close()]);
}

type Window = { user: number; medianUs: number };

/**
 * CPU µs per connection of `pid` (user, system) over `n` sequential new connections to `port`,
 * and the same in windows of `window` connections (all of them in one when 0).
 */
async function cpuPerConnection(pid: number, port: number, n: number, window: number): Promise<{ user: number; system: number; medianUs: number; meanUs: number; windows: Window[] }> {
  const first = cpuTimes(pid);
  const us: number[] = [];
  const windows: Window[] = [];
  for (let done = 0; done < n; ) {
    const size = Math.min(window || n, n - done);
    const c0 = cpuTimes(pid);
    const some = await newConnections(port, size);
    const c1 = cpuTimes(pid);
    windows.push({ user: ((c1.user - c0.user) * 1e6) / size, medianUs: median(some) });
    us.push(...some);
    done += size;
  }
  const last = cpuTimes(pid);
  return { user: ((last.user - first.user) * 1e6) / n, system: ((last.system - first.system) * 1e6) / n, medianUs: median(us), meanUs: mean(us), windows };
}

async function start(tool: Tool, sshd: Sshd, targets: Targets, baselineCli: string | undefined, nodeArgs: string[], remote: boolean): Promise<{ pid: number; port: number; stop: () => Promise<void> }> {
  if (tool in ROW) return startRow(ROW[tool as keyof typeof ROW], sshd, targets);
  const cli = tool === 'baseline' ? baselineCli! : CLI_MAIN;
  const r = await launch(sshd, targets, { ...(tool === 'ssh' ? { tool: 'ssh' } : { tool: 'sshkeep', cli, nodeArgs: [...shebangNodeArgs(cli), ...nodeArgs] }), remote });
  return { pid: r.pid, port: r.ports.echo, stop: r.stop };
}

type Row = {
  cold: { user: number; system: number; meanUs: number }[];
  warm: { user: number; system: number; medianUs: number }[];
  curve: Window[][];
  /** Per round, each segment's median µs (--path). */
  path: Record<(typeof SEGMENTS)[number], number>[];
};

async function main(): Promise<void> {
  const { conns, cold, rounds, baselineCli, tools, nodeArgs, strace, curve, path, remote } = options;
  const before = machineSnapshot();
  const { sshd } = await startBenchSshd(undefined);
  sshdRef = sshd;
  const targets = await startTargets();
  targetsRef = targets;
  const rows = new Map<Tool, Row>(tools.map((t) => [t, { cold: [], warm: [], curve: [], path: [] }]));
  for (let round = 1; round <= rounds; round++) {
    for (const tool of tools) {
      const f = await start(tool, sshd, targets, baselineCli, nodeArgs, remote);
      stops.add(f.stop);
      try {
        const c = await cpuPerConnection(f.pid, f.port, cold, curve);
        const w = await cpuPerConnection(f.pid, f.port, conns, curve);
        rows.get(tool)!.cold.push(c);
        rows.get(tool)!.warm.push(w);
        rows.get(tool)!.curve.push([...c.windows, ...w.windows]);
        if (strace) {
          const n = Math.min(conns, 500);
          const calls = await countSyscalls(f.pid, () => newConnections(f.port, n));
          process.stderr.write(`round ${round} ${LABEL[tool]}: system calls per connection (strace -c over ${n}): ${perUnit(calls, n)}\n`);
        }
        if (path) {
          const traced = await connectionPath(f.pid, () => newConnections(f.port, 1), () => newConnections(f.port, path), path);
          rows.get(tool)!.path.push(traced.medians);
          process.stderr.write(`round ${round} ${LABEL[tool]}: ${traced.n} connections traced\n`);
        }
        process.stderr.write(`round ${round} ${LABEL[tool]}: cold ${(c.user + c.system).toFixed(0)} µs CPU per connection (mean latency ${c.meanUs.toFixed(0)} µs), warm ${(w.user + w.system).toFixed(0)} (user ${w.user.toFixed(0)}, system ${w.system.toFixed(0)}), warm median latency ${w.medianUs.toFixed(0)} µs\n`);
      } finally {
        await f.stop();
        stops.delete(f.stop);
      }
    }
  }
  const med = (xs: number[]) => median(xs).toFixed(0);
  process.stdout.write(
    [
      `Forwarder CPU µs per new connection (connect, 1 byte, echo, close; sequential), median of ${rounds} rounds; ` +
        `cold = the first ${cold} after start, warm = the next ${conns}; ${remote ? 'forwarding with -R (through sshd\'s listener); ' : ''}${sshVersion()}, node ${process.version}; \`${commandLine()}\`; ${machine(before)}`,
      '',
      '| forwarder | cold: user + system | cold latency, mean µs | warm: user + system | warm: user | warm: system | warm latency, median µs |',
      '|---|---:|---:|---:|---:|---:|---:|',
      ...tools.map((t) => {
        const r = rows.get(t)!;
        return `| ${LABEL[t]} | ${med(r.cold.map((c) => c.user + c.system))} | ${med(r.cold.map((c) => c.meanUs))} | ${med(r.warm.map((w) => w.user + w.system))} | ${med(r.warm.map((w) => w.user))} | ${med(r.warm.map((w) => w.system))} | ${med(r.warm.map((w) => w.medianUs))} |`;
      }),
      '',
      ...(curve ? curveTable(rows, tools, cold, conns, curve) : []),
      ...(path ? pathTable(rows, tools, path) : []),
    ].join('\n'),
  );
}

/** The warm-up curve: per window of connections from start, each tool's user CPU µs per connection and median latency µs, medians over the rounds. */
function curveTable(rows: Map<Tool, Row>, tools: Tool[], cold: number, conns: number, window: number): string[] {
  const bounds: string[] = [];
  for (const [from, n] of [[0, cold], [cold, conns]] as const) {
    for (let done = 0; done < n; done += window) bounds.push(`${from + done + 1}–${from + Math.min(done + window, n)}`);
  }
  const cell = (t: Tool, i: number) => {
    const ws = rows.get(t)!.curve.map((c) => c[i]!);
    return `${median(ws.map((w) => w.user)).toFixed(0)} / ${median(ws.map((w) => w.medianUs)).toFixed(0)}`;
  };
  return [
    `Warm-up curve: user CPU µs per connection / median latency µs, per ${window} connections from start (CPU ticks are 10 ms: ±${(1e4 / window).toFixed(0)} µs)`,
    '',
    `| connections | ${tools.map((t) => LABEL[t]).join(' | ')} |`,
    `|---|${tools.map(() => '---:').join('|')}|`,
    ...bounds.map((b, i) => `| ${b} | ${tools.map((t) => cell(t, i)).join(' | ')} |`),
    '',
  ];
}

/** Where a warm connection's latency goes (--path): each segment's median µs, medians over the rounds; sshkeep's excess over ssh -L. */
function pathTable(rows: Map<Tool, Row>, tools: Tool[], n: number): string[] {
  const cell = (t: Tool, s: (typeof SEGMENTS)[number]) => median(rows.get(t)!.path.map((p) => p[s]));
  const vs = tools.includes('sshkeep') && tools.includes('ssh');
  return [
    `Where a warm new connection's latency goes: perf trace of each forwarder's system calls over ${n} connections after the warm ones, median µs of each stretch between them (scripts/lib/perf-trace.ts)`,
    '',
    `| stretch | ${tools.map((t) => LABEL[t]).join(' | ')} |${vs ? ' sshkeep − ssh -L |' : ''}`,
    `|---|${tools.map(() => '---:').join('|')}|${vs ? '---:|' : ''}`,
    ...SEGMENTS.map((s) => `| ${s} | ${tools.map((t) => cell(t, s).toFixed(0)).join(' | ')} |${vs ? ` ${(cell('sshkeep', s) - cell('ssh', s)).toFixed(0)} |` : ''}`),
    '',
  ];
}

runMain('bench-connections', main, cleanup);
