/**
 * Where a forwarder's CPU goes per small request (issue 17), natively: `perf record -e cpu-clock`
 * attached to each forwarder over a measured load, its samples sorted into kinds of code — the
 * kernel, compiled JavaScript, V8's builtins (interpreter, inline caches, stubs), V8's runtime,
 * garbage collection, the compilers, node's C++, libuv, cryptography (OpenSSL and ssh2's binding),
 * libc (malloc, system-call wrappers) — and given as µs per request. Unlike callgrind's
 * instructions it sees the kernel and time rather than instructions; unlike --cpu-prof it sees
 * native code. The load: --clients connections each doing sequential round trips of --size bytes
 * through the echo target (as in the small-messages table; opened before the warm-up and kept), or with --new-connections, new
 * connections one at a time (connect, one byte, its echo, close). Each tool a fresh process, warmed
 * up (--warm per connection, or connections) unmeasured, then --requests profiled. Node tools run
 * with --perf-basic-prof so that JavaScript is named in --top's list; a name there can be stale
 * (V8 reuses freed code memory and perf keeps the first name written for an address: an
 * anonymous module function at 1:1 on the hot path is such a one), its kind never is.
 *
 * The shares move little with the machine's load; the µs move with it (a run's hypervisor steal
 * is printed): compare tools and builds within one run.
 *
 *   apt-get install -y linux-perf
 *   npm run build && node --import @tapjs/typescript/import scripts/bench-profile.ts \
 *     [--tools 'sshkeep,bare ssh2,ssh -L'] [--new-connections] [--clients 8] [--requests 10000] [--warm 5000]
 *     [--size 64] [--frequency 2000] [--top 25] [--kernel-top N] [--node-args='FLAGS' (more node flags for the Node tools)]
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Sshd } from '../test/fixtures/sshd.js';
import { cpuTimes } from '../test/fixtures/proc.js';
import { FLOOR_ROWS, startRow, type FloorRow, type HandlesRow } from './bench/floor-small.js';
import { found } from './bench/services.js';
import { measured, openLoad, type Load } from './bench/small.js';
import { startBenchSshd } from './bench/sshd.js';
import { startTargets, type Targets } from './bench/targets.js';
import { commandLine, machine, machineSnapshot, sshVersion } from './lib/machine.js';
import { runMain } from './lib/main.js';
import { intOption, parseCommandLine, splitArgs } from './lib/options.js';
import { KINDS, kindOf, parseReport, perfMapOf, type Kind } from './lib/perf-report.js';
import { sleep } from './lib/sleep.js';

type Tool = FloorRow | HandlesRow;
/** socat forks a process per connection, which an attached perf does not follow. The rows without net.Socket too. */
const TOOLS: readonly Tool[] = [...FLOOR_ROWS.filter((r) => r !== 'socat'), 'bare ssh2, handles', 'node proxy, handles'];

const USAGE =
  "usage: npm run build && node --import @tapjs/typescript/import scripts/bench-profile.ts [--tools 'sshkeep,bare ssh2,ssh -L'] [--new-connections]\n" +
  "         [--clients 8] [--requests 10000] [--warm 5000] [--size 64] [--frequency 2000] [--top 25] [--kernel-top N] [--node-args='FLAGS']\n" +
  `       tools: ${TOOLS.join(', ')}\n`;

const options = parseCommandLine('bench-profile', USAGE, (args) => {
  const { values } = parseArgs({
    args,
    options: {
      tools: { type: 'string', default: 'sshkeep,bare ssh2,ssh -L' },
      'new-connections': { type: 'boolean', default: false },
      clients: { type: 'string', default: '8' },
      requests: { type: 'string' },
      warm: { type: 'string' },
      size: { type: 'string', default: '64' },
      frequency: { type: 'string', default: '2000' },
      top: { type: 'string', default: '25' },
      'kernel-top': { type: 'string', default: '0' },
      'node-args': { type: 'string', default: '' },
    },
    strict: true,
  });
  // A row's own name may hold ', ' (node proxy, onread): only a comma without a space after it separates.
  const tools = values.tools.split(/,(?! )/).map((t) => {
    if (!(TOOLS as readonly string[]).includes(t)) throw new Error(`--tools: ${t} is not one of ${TOOLS.join(', ')}`);
    return t as Tool;
  });
  const perConnection = values['new-connections'];
  return {
    tools,
    perConnection,
    clients: intOption('clients', values.clients, 1),
    requests: intOption('requests', values.requests ?? (perConnection ? '3000' : '10000'), 1),
    warm: intOption('warm', values.warm ?? (perConnection ? '3000' : '5000'), 0),
    size: intOption('size', values.size, 1),
    frequency: intOption('frequency', values.frequency, 1),
    top: intOption('top', values.top, 0),
    kernelTop: intOption('kernel-top', values['kernel-top'], 0),
    nodeArgs: splitArgs(values['node-args']),
  };
});

interface Profile {
  tool: Tool;
  load: Load;
  /** µs per request of each kind. */
  kinds: Map<Kind, number>;
  /** The costliest symbols, µs per request. */
  top: { us: number; kind: Kind; name: string }[];
  /** The costliest kernel symbols, µs per request (--kernel-top). */
  kernelTop: { us: number; name: string }[];
}

const live = new Set<() => Promise<void>>();
let sshdRef: Sshd | undefined;
let targetsRef: Targets | undefined;
/** perf's data files; removed at the end, on SIGINT too. */
let dirRef: string | undefined;

/** `perf record` attached to `pid` until stop(); `ready` once attached. Either throws if perf ended on its own. */
function recordPerf(pid: number, data: string): { ready: Promise<void>; stop(): Promise<void> } {
  const perf = spawn('perf', ['record', '-q', '-e', 'cpu-clock', '-F', String(options.frequency), '-o', data, '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  perf.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let stopping = false;
  let failure: string | undefined;
  const exited = new Promise<void>((resolve) => {
    const done = (why: string) => {
      if (!stopping) failure ??= why;
      resolve();
    };
    perf.once('error', (err) => done(err.message));
    perf.once('exit', (code, signal) => done(`perf record exited (${signal ?? code}): ${stderr.trim()}`));
  });
  const check = () => {
    if (failure) throw new Error(failure);
  };
  const stop = async () => {
    stopping = true;
    if (perf.exitCode === null && perf.signalCode === null) perf.kill('SIGINT');
    await exited;
  };
  live.add(stop);
  return {
    // perf attaches to every thread before the load starts; an exit before then is perf failing.
    ready: Promise.race([sleep(500), exited]).then(check),
    stop: () => stop().then(check).finally(() => live.delete(stop)),
  };
}

async function profileOne(tool: Tool, sshd: Sshd, targets: Targets, dir: string): Promise<Profile> {
  const { perConnection, clients, requests, warm, size, frequency, nodeArgs } = options;
  // Node flags (startRow gives them to the Node rows only). Without --logfile, --perf-basic-prof also
  // has V8 write an isolate log into the working directory.
  const f = await startRow(tool, sshd, targets, ['--perf-basic-prof', '--logfile=/dev/null', ...nodeArgs]);
  live.add(f.stop);
  const data = path.join(dir, `${tool.replace(/\W+/g, '-')}.data`);
  let closeLoad = () => {};
  try {
    const load = await openLoad(f.port, perConnection, clients, size);
    closeLoad = () => load.close();
    await load.run(warm);
    const perf = recordPerf(f.pid, data);
    let m: Load;
    try {
      await perf.ready;
      m = await measured(() => cpuTimes(f.pid), () => load.run(requests));
    } finally {
      await perf.stop();
    }
    const report = spawnSync('perf', ['report', '-i', data, '--no-children', '--sort', 'dso,sym', '--stdio', '-n'], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
    if (report.status !== 0) throw new Error(`perf report failed: ${report.stderr.trim()}`);
    const usPer = (count: number) => (count * 1e6) / frequency / m.requests;
    const kinds = new Map<Kind, number>();
    const samples = parseReport(report.stdout);
    for (const s of samples) {
      const k = kindOf(s);
      kinds.set(k, (kinds.get(k) ?? 0) + usPer(s.count));
    }
    const top = samples
      .filter((s) => kindOf(s) !== 'kernel')
      .sort((a, b) => b.count - a.count)
      .slice(0, options.top)
      .map((s) => ({ us: usPer(s.count), kind: kindOf(s), name: `${s.dso.startsWith('[JIT]') ? '' : `${s.dso} `}${s.symbol}` }));
    const kernelTop = samples
      .filter((s) => kindOf(s) === 'kernel')
      .sort((a, b) => b.count - a.count)
      .slice(0, options.kernelTop)
      .map((s) => ({ us: usPer(s.count), name: s.symbol }));
    process.stderr.write(`${tool}: user ${m.userUs.toFixed(1)} + system ${m.sysUs.toFixed(1)} µs per ${perConnection ? 'connection' : 'request'} (/proc), ${samples.reduce((a, s) => a + s.count, 0)} samples\n`);
    return { tool, load: m, kinds, top, kernelTop };
  } finally {
    closeLoad();
    await f.stop();
    live.delete(f.stop);
    fs.rmSync(perfMapOf(f.pid), { force: true });
    fs.rmSync(data, { force: true });
  }
}

const fmt = (x: number) => (x >= 10 ? x.toFixed(0) : x.toFixed(1));

function report(profiles: Profile[], before: ReturnType<typeof machineSnapshot>): string {
  const { perConnection, clients, requests, warm, size, frequency } = options;
  const unit = perConnection ? 'new connection' : 'request';
  const user = (p: Profile) => [...p.kinds].filter(([k]) => k !== 'kernel').reduce((a, [, v]) => a + v, 0);
  const kinds = KINDS.filter((k) => profiles.some((p) => (p.kinds.get(k) ?? 0) > 0));
  const lines = [
    `### Where the CPU goes per ${unit}: perf, cpu-clock at ${frequency} Hz`,
    '',
    perConnection
      ? `${requests} new connections one at a time (connect, 1 byte, its echo, close), after ${warm} unmeasured.`
      : `${clients} connections × ${requests} sequential ${size}-byte round trips through an echo server, after ${warm} each unmeasured.`,
    `\`${commandLine()}\`; ${machine(before)}; node ${process.version}; ${sshVersion()}`,
    '',
    `| µs per ${unit} | ${profiles.map((p) => p.tool).join(' | ')} |`,
    `|---|${'---:|'.repeat(profiles.length)}`,
    ...kinds.map((k) => `| ${k} | ${profiles.map((p) => fmt(p.kinds.get(k) ?? 0)).join(' | ')} |`),
    `| **all but the kernel** | ${profiles.map((p) => `**${fmt(user(p))}**`).join(' | ')} |`,
    `| user CPU (/proc) | ${profiles.map((p) => fmt(p.load.userUs)).join(' | ')} |`,
    `| system CPU (/proc) | ${profiles.map((p) => fmt(p.load.sysUs)).join(' | ')} |`,
    '',
  ];
  for (const p of profiles.filter((p) => p.top.length)) {
    lines.push(`${p.tool}, the costliest symbols outside the kernel (µs per ${unit}):`, '');
    for (const t of p.top) lines.push(`    ${t.us.toFixed(2).padStart(7)}  ${t.kind.padEnd(22)} ${t.name}`);
    lines.push('');
  }
  for (const p of profiles.filter((p) => p.kernelTop.length)) {
    lines.push(`${p.tool}, the costliest kernel symbols (µs per ${unit}):`, '');
    for (const t of p.kernelTop) lines.push(`    ${t.us.toFixed(2).padStart(7)}  ${t.name}`);
    lines.push('');
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  if (!found('perf')) throw new Error('perf is not installed (apt-get install -y linux-perf)');
  const before = machineSnapshot();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sshkeep-bench-profile-'));
  dirRef = dir;
  const { sshd } = await startBenchSshd(undefined);
  sshdRef = sshd;
  const targets = await startTargets();
  targetsRef = targets;
  const profiles: Profile[] = [];
  for (const tool of options.tools) profiles.push(await profileOne(tool, sshd, targets, dir));
  console.log(report(profiles, before));
}

async function cleanup(): Promise<void> {
  await Promise.allSettled([...[...live].map((s) => s()), sshdRef?.stop(), targetsRef?.close()]);
  if (dirRef) fs.rmSync(dirRef, { recursive: true, force: true });
}

runMain('bench-profile', main, cleanup);
