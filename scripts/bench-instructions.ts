/**
 * Instructions per small request/reply (issue 17), counted by valgrind (callgrind), which the
 * machine's load does not change: sshkeep, a bare ssh2 forwarder and `ssh -N -L` (with --tools
 * also proxy, proxy-onread and proxy-handles: scripts/lib/plain-proxy.mjs, no SSH at all; and
 * bare-handles: the bare forwarder's clients without net.Socket, scripts/lib/handles.mjs), each under callgrind with instrumentation off, a warm-up, then instrumentation on for --requests round trips of
 * --size bytes on each of --clients connections through the echo target (the warm-up's, kept open, so their set-up and close are not counted), then off, and dumped. The figure is
 * instructions in user space (valgrind sees no kernel) per round trip; the ratios are the point.
 * Instructions are not cycles: ChaCha20 (OpenSSH's default) costs far more instructions than
 * AES-GCM on a CPU with AES instructions for the same time, so compare tools at one --cipher
 * (aes128-gcm@openssh.com); and under valgrind a forwarder runs slower than its clients, so each
 * turn of its event loop finds more work than it would natively (more packets per write).
 * A second row, with --compare-env NAME=VALUE, runs sshkeep again with that variable set (an
 * A/B of a change behind a switch); --baseline-cli OTHER/dist/bin/sshkeep.js adds another build of
 * sshkeep, with its own node_modules (a before/after in one run). --functions N adds a table of
 * the N functions with the most self instructions per round trip in each forwarder, compiled
 * JavaScript named through node's --perf-basic-prof map: where one forwarder spends what another
 * does not. --callers NAME[,NAME] lists, for each function whose name holds one of them (a builtin
 * such as Builtins_LoadIC_Megamorphic), its callers, compiled JavaScript named through the same map:
 * which code reaches an inline cache's slow path or a runtime call. --new-connections counts
 * instead per new connection (connect, one byte, its echo, close; sequential): --warm of them
 * unmeasured, then --requests measured. --node-args='FLAGS' gives sshkeep more node flags, after
 * its shebang's (a flag's A/B). --remote forwards with -R instead (sshkeep and ssh only): the
 * clients connect to sshd's listener, and the forwarder takes each connection's channel from the
 * server and connects the echo target.
 * The warm-up is long because V8 keeps optimizing for thousands of round trips: with 300 per
 * connection its compiler was still a large part of the count (the bare forwarder 67,102 after
 * 300, 47,304 after 2,000, 36,961 after 5,000).
 *
 *   apt-get install -y valgrind
 *   npm run build && node --import @tapjs/typescript/import scripts/bench-instructions.ts \
 *     [--clients 8] [--requests 1000] [--size 64] [--warm 5000] [--tools sshkeep,bare,ssh(,bare-handles,proxy,proxy-onread,proxy-handles)]
 *     [--cipher NAME] [--compare-env NAME=VALUE] [--baseline-cli FILE] [--functions N] [--callers NAME,…] [--keep DIR (callgrind's dumps, for callgrind_annotate, and with --functions or --callers the JIT's perf map)]
 *     [--new-connections] [--node-args='FLAGS'] [--remote]
 *
 * Slow: everything runs 50-100× slower under valgrind; the defaults take about three minutes.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CLI_MAIN, REPO_ROOT, shebangNodeArgs } from '../test/fixtures/bin.js';
import { loginArgs, sshArgs } from '../test/fixtures/login.js';
import { HOST, deadline, echoProbe, freePorts } from '../test/fixtures/net.js';
import { sshdLogin, type Sshd } from '../test/fixtures/sshd.js';
import { startBenchSshd } from './bench/sshd.js';
import { openLoad } from './bench/small.js';
import { startTargets, type Targets } from './bench/targets.js';
import { callerCosts, functionCosts, functionTable } from './lib/callgrind-functions.js';
import { callgrindControl as control, dumpTotal } from './lib/callgrind.js';
import { perfMapOf } from './lib/perf-report.js';
import { childEnv } from './lib/forwarder.js';
import { commandLine, sshVersion } from './lib/machine.js';
import { runMain } from './lib/main.js';
import { intOption, parseCommandLine, splitArgs } from './lib/options.js';
import { sleep } from './lib/sleep.js';

const TOOLS = ['sshkeep', 'bare', 'bare-handles', 'ssh', 'proxy', 'proxy-onread', 'proxy-handles'] as const;
type Tool = (typeof TOOLS)[number];
/** The tools run when --tools does not say: the plain proxies are an extra reference. */
const DEFAULT_TOOLS: Tool[] = ['sshkeep', 'bare', 'ssh'];
/** The scripts of scripts/lib pick their own port and print it. */
const printsPort = (tool: Tool) => tool.startsWith('bare') || tool.startsWith('proxy');

const live = new Set<ChildProcess>();
let sshdRef: Sshd | undefined;
let targetsRef: Targets | undefined;

async function cleanup(): Promise<void> {
  for (const c of live) c.kill('SIGKILL');
  await Promise.allSettled([sshdRef?.stop(), targetsRef?.close()]);
}

/** Tools that forward with -R as well (--remote). */
const REMOTE_TOOLS: readonly Tool[] = ['sshkeep', 'ssh'];

/**
 * The tool's command line, forwarding `port` (local, or with `remote` sshd's) to the echo target;
 * node writes its perf map with `perfMap`.
 */
function command(tool: Tool, sshd: Sshd, port: number, echo: number, perfMap: boolean, nodeArgs: string[], remote: boolean, cli = CLI_MAIN): string[] {
  const forward = `${port}:${HOST}:${echo}`;
  const flag = remote ? '-R' : '-L';
  const node = [process.execPath, ...shebangNodeArgs(cli), ...(perfMap ? ['--perf-basic-prof'] : [])];
  switch (tool) {
    case 'sshkeep':
      return [...node, ...nodeArgs, cli, ...loginArgs(sshdLogin(sshd), ['-q', flag, forward])];
    case 'ssh':
      return ['ssh', ...sshArgs(sshdLogin(sshd), [flag, forward])];
    // The scripts pick their own port and print it; `port` is unused.
    case 'bare':
    case 'bare-handles':
      return [...node, path.join(REPO_ROOT, 'scripts', 'lib', 'bare-forwarder.mjs'), ...(tool === 'bare' ? [] : ['--handles']), String(sshd.port), sshd.user, sshd.userKeyPath, String(echo)];
    case 'proxy':
    case 'proxy-onread':
    case 'proxy-handles':
      return [...node, path.join(REPO_ROOT, 'scripts', 'lib', 'plain-proxy.mjs'), String(echo), { proxy: 'stream', 'proxy-onread': 'onread', 'proxy-handles': 'handles' }[tool]];
  }
}

interface Run {
  clients: number;
  requests: number;
  size: number;
  warm: number;
  cipher: string | undefined;
  keep: string | undefined;
  /** How many functions to list per forwarder; 0 for none. */
  functions: number;
  /** Functions (names or parts of names) whose callers to list, as --callers gave them. */
  callers: string[];
  /** Count per new connection rather than per round trip. */
  newConnections: boolean;
  /** More node flags for sshkeep, after its shebang's. */
  nodeArgs: string[];
  /** Forward with -R: the load goes through sshd's listener. */
  remote: boolean;
}

/** What one measured unit is: a round trip, or a new connection. */
const unitOf = (o: Run) => (o.newConnections ? 'new connection' : 'round trip');

/** Which build of sshkeep a row runs: this one, or --baseline-cli's. */
interface Variant {
  env: NodeJS.ProcessEnv;
  cli?: string;
}

interface Measured {
  /** Per round trip, or per new connection (--new-connections). */
  perUnit: number;
  /**
   * Of which the process's first thread: for node the event loop (the data path, and the GC, which
   * the CLI's --single-threaded-gc keeps there), without V8's concurrent compiler, whose late jobs
   * move the total by several percent from run to run.
   */
  mainThread: number;
  /** Self instructions per round trip by function, when --functions asked for them. */
  functions?: Map<string, number>;
  /** Per function --callers named, the instructions of the calls from each caller. */
  callers?: Map<string, Map<string, number>>;
}

async function measure(tool: Tool, label: string, variant: Variant, sshd: Sshd, targets: Targets, o: Run): Promise<Measured> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sshkeep-callgrind-'));
  const out = path.join(dir, 'callgrind.out');
  const [want] = (await freePorts(1)) as [number];
  const [cmd, ...args] = command(tool, sshd, want, targets.echo, o.functions > 0 || o.callers.length > 0, o.nodeArgs, o.remote, variant.cli);
  const child = spawn('valgrind', ['--tool=callgrind', '--separate-threads=yes', '--instr-atstart=no', `--callgrind-out-file=${out}`, cmd!, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: childEnv(variant.env),
    cwd: dir, // --perf-basic-prof also has V8 write an isolate-*-v8.log into the working directory
  });
  live.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c));
  child.stderr!.on('data', (c: Buffer) => (stderr += c));
  try {
    const until = Date.now() + 300_000;
    let port = printsPort(tool) ? 0 : want;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${tool} under valgrind exited with ${child.exitCode}: ${stderr.slice(-2000)}`);
      if (Date.now() > until) throw new Error(`${tool} under valgrind not ready within 300 s`);
      if (printsPort(tool) && !port) port = Number(stdout.trim().split('\n')[0]) || 0;
      if (port && (await echoProbe(port).then(() => true, () => false))) break;
      await sleep(200);
    }
    // Round trips run on connections opened before the count: their set-up and close, cold in a
    // process this young, were about 6 % of a round trip's count at 8 × 2,000.
    const load = await openLoad(port, o.newConnections, o.clients, o.size);
    try {
      await load.run(o.warm);
      control(child.pid!, '--instr=on');
      await deadline(load.run(o.requests), 600_000, `${tool} load under valgrind`);
      control(child.pid!, '--instr=off');
    } finally {
      load.close();
    }
    control(child.pid!, '--dump');
    await sleep(500);
    const dumps = fs.readdirSync(dir).filter((f) => f.startsWith('callgrind.out'));
    // One dump per thread: callgrind.out.1-01 is the first thread's.
    let ir = 0;
    let main = 0;
    for (const f of dumps) {
      const n = dumpTotal(path.join(dir, f));
      ir += n;
      if (f.endsWith('-01')) main += n;
    }
    if (o.keep) {
      const keepAs = (name: string) => path.join(o.keep!, `${label.replace(/[^\w.-]+/g, '_')}.${name}`);
      for (const f of dumps) fs.copyFileSync(path.join(dir, f), keepAs(f));
      // The JIT's names for the dumps' ??? addresses (scripts/lib/callgrind-functions.ts), for callers and callees
      if (fs.existsSync(perfMapOf(child.pid!))) fs.copyFileSync(perfMapOf(child.pid!), keepAs('perf.map'));
    }
    const units = o.newConnections ? o.requests : o.clients * o.requests;
    const result: Measured = { perUnit: ir / units, mainThread: main / units };
    if (o.functions > 0) result.functions = functionCosts(dumps.map((f) => path.join(dir, f)), units, perfMapOf(child.pid!));
    if (o.callers.length > 0) result.callers = callerCosts(dumps.map((f) => path.join(dir, f)), units, perfMapOf(child.pid!), o.callers);
    return result;
  } finally {
    child.kill('SIGKILL');
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
    live.delete(child);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(perfMapOf(child.pid!), { force: true });
  }
}

const USAGE =
  'usage: npm run build && node --import @tapjs/typescript/import scripts/bench-instructions.ts [--clients 8] [--requests 1000] [--size 64]\n' +
  '         [--warm 5000] [--tools sshkeep,bare,ssh(,bare-handles,proxy,proxy-onread,proxy-handles)] [--cipher NAME] [--compare-env NAME=VALUE] [--baseline-cli FILE] [--functions N] [--callers NAME,…]\n' +
  "         [--keep DIR] [--new-connections] [--node-args='FLAGS'] [--remote]\n";

/** For each function --callers named, in one forwarder: its callers, costliest first, in instructions per unit. */
function callerLines(tool: string, m: Measured, unit: string): string[] {
  if (!m.callers) return [];
  const lines: string[] = [];
  for (const [fn, callers] of m.callers) {
    lines.push(`${tool}: the callers of ${fn} (instructions of the calls from each, per ${unit}):`, '');
    for (const [caller, ir] of [...callers].sort((a, b) => b[1] - a[1]).slice(0, 15)) lines.push(`    ${Math.round(ir).toLocaleString('en-US').padStart(8)}  ${caller}`);
    lines.push('');
  }
  return lines;
}

const options = parseCommandLine('bench-instructions', USAGE, (args) => {
  const { values } = parseArgs({
    args,
    options: {
      clients: { type: 'string', default: '8' },
      requests: { type: 'string', default: '1000' },
      size: { type: 'string', default: '64' },
      warm: { type: 'string', default: '5000' },
      functions: { type: 'string', default: '0' },
      callers: { type: 'string', default: '' },
      tools: { type: 'string', default: DEFAULT_TOOLS.join(',') },
      'compare-env': { type: 'string' },
      'baseline-cli': { type: 'string' },
      cipher: { type: 'string' },
      keep: { type: 'string' },
      'new-connections': { type: 'boolean', default: false },
      'node-args': { type: 'string', default: '' },
      remote: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const o = {
    clients: intOption('clients', values.clients, 1),
    requests: intOption('requests', values.requests, 1),
    size: intOption('size', values.size, 1),
    warm: intOption('warm', values.warm, 1),
    cipher: values.cipher,
    keep: values.keep,
    functions: intOption('functions', values.functions, 0),
    callers: values.callers.split(',').filter(Boolean),
    newConnections: values['new-connections'],
    nodeArgs: splitArgs(values['node-args']),
    remote: values.remote,
  };
  const tools = values.tools.split(',').map((t) => {
    if (!(TOOLS as readonly string[]).includes(t)) throw new Error(`--tools: ${t} is not one of ${TOOLS.join(', ')}`);
    if (o.remote && !REMOTE_TOOLS.includes(t as Tool)) throw new Error(`--remote: ${t} forwards with -L only; --tools ${REMOTE_TOOLS.join(',')}`);
    return t as Tool;
  });
  const compare = values['compare-env'];
  const [envName, envValue] = compare ? [compare.slice(0, compare.indexOf('=')), compare.slice(compare.indexOf('=') + 1)] : [];
  if (compare && !envName) throw new Error('--compare-env wants NAME=VALUE');
  const baseline = values['baseline-cli'] && path.resolve(values['baseline-cli']);
  if (baseline && !fs.existsSync(baseline)) throw new Error(`--baseline-cli ${baseline}: no such file (run npm run build there)`);
  return { o, tools, compare, envName, envValue, baseline };
});

async function main(): Promise<void> {
  const { o, tools, compare, envName, envValue, baseline } = options;
  if (spawnSync('valgrind', ['--version']).status !== 0) throw new Error('valgrind not found (apt-get install -y valgrind)');
  if (o.keep) fs.mkdirSync(o.keep, { recursive: true });
  const { sshd } = await startBenchSshd(o.cipher);
  sshdRef = sshd;
  targetsRef = await startTargets();
  const rows: Array<[string, Measured]> = [];
  const run = async (label: string, tool: Tool, variant: Variant) => {
    rows.push([label, await measure(tool, label, variant, sshd, targetsRef!, o)]);
    const m = rows.at(-1)![1];
    process.stderr.write(`${label}: ${m.perUnit.toFixed(0)} instructions per ${unitOf(o)}, ${m.mainThread.toFixed(0)} in the main thread\n`);
  };
  for (const tool of tools) {
    await run(tool, tool, { env: {} });
    if (tool === 'sshkeep' && envName) await run(`sshkeep, ${compare}`, tool, { env: { [envName]: envValue } });
    if (tool === 'sshkeep' && baseline) await run('sshkeep (baseline)', tool, { env: {}, cli: baseline });
  }
  const ssh = rows.find(([t]) => t === 'ssh')?.[1].perUnit;
  process.stdout.write(
    [
      (o.newConnections
        ? `Instructions in user space per new connection (connect, 1 byte, echo, close), ${o.requests} sequential (after ${o.warm} unmeasured), valgrind --tool=callgrind; `
        : `Instructions in user space per ${o.size}-byte round trip, ${o.clients} connections × ${o.requests} (after ${o.warm} each unmeasured), valgrind --tool=callgrind; `) +
        (o.remote ? 'forwarding with -R (through sshd\'s listener); ' : '') +
        `cipher: ${o.cipher ?? "each tool's default"}; ${sshVersion()}, node ${process.version}; \`${commandLine()}\``,
      '',
      `| forwarder | instructions per ${unitOf(o)} | of which the main thread | ratio to ssh ${o.remote ? '-R' : '-L'} |`,
      '|---|---:|---:|---:|',
      ...rows.map(
        ([t, { perUnit: ir, mainThread }]) =>
          `| ${t} | ${Math.round(ir).toLocaleString('en-US')} | ${Math.round(mainThread).toLocaleString('en-US')} | ${ssh ? (ir / ssh).toFixed(2) : '—'} |`,
      ),
      '',
      ...(o.functions > 0
        ? [functionTable(rows.flatMap(([t, m]) => (m.functions ? [[t, m.functions] as [string, Map<string, number>]] : [])), o.functions), '']
        : []),
      ...rows.flatMap(([t, m]) => callerLines(t, m, unitOf(o))),
    ].join('\n'),
  );
}

runMain('bench-instructions', main, cleanup);
