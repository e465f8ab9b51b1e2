/**
 * The resume agent (agent/sshkeep-agent.pl, or .py with --interpreter python3) alone, without
 * SSH, beside a direct loopback TCP connection in the same run: what the agent adds to a
 * resumable stream's path.
 *
 *   node --import @tapjs/typescript/import scripts/bench-resume-agent.ts [--interpreter perl|python3] [--size-mib 512] [--pings 3000] [--streams 200] [--full 20]
 *     [--agent FILE] [--syscalls] [--instructions] [--statements]
 *
 * - Throughput each way (MB/s, agent CPU seconds per GiB, agent page faults per 64 KiB): target → agent →
 *   client, the client acknowledging every MiB as sshkeep would; and client → agent → target with at most
 *   the 4 MiB replay window unacknowledged. Direct: the same bytes over one TCP connection.
 * - 1-byte round trips to an echo target, median and p99 (µs), and the agent's CPU µs per round trip;
 *   again with --streams other streams held open (idle), as a busy agent holds them: a turn's work
 *   must not grow with their number.
 * - The agent's RSS: idle, per idle stream (--streams), per stream with a full replay buffer (--full).
 * - --syscalls: the agent's system calls (`strace -c -f -p`) per 64 KiB moved each way and per round
 *   trip, in extra passes after the timed ones (strace slows what it traces; counts do not depend on load).
 * - --instructions: the agent's instructions (valgrind's callgrind) per round trip and per 64 KiB
 *   moved each way, in passes of their own through a second agent run under callgrind, collection on
 *   only during each pass. Like system calls, instructions do not depend on the load: the measure to
 *   compare two versions of the agent with (the kernel's share of its CPU is not in them).
 * - --statements: the Perl statements the agent runs per round trip, as Devel::NYTProf counts them
 *   (`apt-get install libdevel-nytprof-perl` where the bench runs; the agent itself uses none of it):
 *   which of the agent's code a round trip runs, line by line, the third measure that no load changes.
 * - --agent FILE: another version of the agent's program instead of the shipped one, for --interpreter (a before/after).
 * Prints a table of figures and the ratios agent / direct. The client side runs in this process,
 * so its framing cost is counted in the agent's figures, as sshkeep would pay it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Frame } from '../src/resume/frames.js';
import { INTERPRETERS, agentScript, newSession, parameterLine, parseAgentLine, startCommand, type Interpreter } from '../src/resume/bootstrap.js';
import { deadline, listen, until } from '../test/fixtures/net.js';
import { alive, cpuTimes, minorFaults, rssKiB, runSeconds, signalAll } from '../test/fixtures/proc.js';
import { AgentChannel, launchAgent, pathForAgents, type LocalAgent } from '../test/fixtures/resume-agent.js';
import { instructionsDuring } from './lib/callgrind.js';
import { runMain } from './lib/main.js';
import { countSyscalls, perUnit } from './lib/strace.js';
import { intOption, parseCommandLine } from './lib/options.js';
import { median, quantile } from './lib/stats.js';
import { sleep } from './lib/sleep.js';
import { MIB } from './bench/targets.js';
import { DEFAULTS } from '../src/config/defaults.js';

const WINDOW = DEFAULTS.resumeBufferBytes; // the replay buffer: at most this much unacknowledged, each way
const CHUNK = 64 * 1024;

const USAGE =
  'usage: node --import @tapjs/typescript/import scripts/bench-resume-agent.ts [--interpreter perl|python3] [--size-mib 512] [--pings 3000]\n' +
  '         [--streams 200] [--full 20] [--agent FILE] [--syscalls] [--instructions] [--statements]\n';

const { values, interpreter, script, sizeMiB, pings, idleStreams, fullStreams } = parseCommandLine('bench-resume-agent', USAGE, (args) => {
  const { values } = parseArgs({
    args,
    options: {
      'size-mib': { type: 'string', default: '512' },
      pings: { type: 'string', default: '3000' },
      streams: { type: 'string', default: '200' },
      full: { type: 'string', default: '20' },
      interpreter: { type: 'string', default: 'perl' },
      agent: { type: 'string' },
      syscalls: { type: 'boolean', default: false },
      instructions: { type: 'boolean', default: false },
      statements: { type: 'boolean', default: false },
    },
  });
  if (!Object.hasOwn(INTERPRETERS, values.interpreter)) throw new Error(`--interpreter must be one of ${Object.keys(INTERPRETERS).join(', ')}, got ${values.interpreter}`);
  const interpreter = values.interpreter as Interpreter;
  if (values.statements && interpreter !== 'perl') throw new Error('--statements counts Perl statements: use it with --interpreter perl');
  return {
    values,
    interpreter,
    script: values.agent === undefined ? undefined : fs.readFileSync(values.agent, 'utf8'),
    sizeMiB: intOption('size-mib', values['size-mib'], 1),
    pings: intOption('pings', values.pings, 1),
    idleStreams: intOption('streams', values.streams, 1),
    fullStreams: intOption('full', values.full, 1),
  };
});

const runtimeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sshkeep-bench-agent-'));
let agent: LocalAgent | undefined;
const servers: net.Server[] = [];
let callgrindPid: number | undefined;

/** A target on 127.0.0.1: `onConnection` decides what it does. */
async function target(onConnection: (sock: net.Socket) => void): Promise<number> {
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    sock.setNoDelay(true);
    sock.on('error', () => {});
    onConnection(sock);
  });
  servers.push(server);
  return listen(server);
}

/** Writes `bytes` of a 1 MiB pattern with backpressure, then ends. */
async function pour(sock: net.Socket, bytes: number): Promise<void> {
  const block = randomBytes(MIB);
  for (let sent = 0; sent < bytes; sent += MIB) if (!sock.write(block)) await once(sock, 'drain');
  sock.end();
}

/** A connection at the sink: its byte count at its end (in an object: a promise resolved with a promise would wait for it). */
interface Sink {
  received: Promise<number>;
}

/** Resolves with the number of bytes the socket received, at its end. */
function drain(sock: net.Socket): Promise<number> {
  let n = 0;
  sock.on('data', (c: Buffer) => (n += c.length));
  return once(sock, 'end').then(() => n);
}

async function open(port: number): Promise<AgentChannel> {
  const c = await agent!.channel();
  c.send({ type: 'open', id: randomBytes(16), graceMs: 600_000, port, host: '127.0.0.1' });
  await c.expect('accept');
  return c;
}

/**
 * Ends the stream as sshkeep does: sends its EOF at `offset` and acknowledges the agent's (at
 * `peerEof` if it came already); the agent then forgets the stream and closes the channel. A stream
 * left held would keep a grace timer running in the agent through the measures that follow.
 */
async function finish(c: AgentChannel, offset: number, peerEof?: number): Promise<void> {
  c.send({ type: 'eof', offset });
  if (peerEof !== undefined) c.send({ type: 'ack', ack: peerEof + 1 });
  for (let f; (f = await c.next(60_000, 'the agent to end the stream')); ) if (f.type === 'eof') c.send({ type: 'ack', ack: f.offset + 1 });
}

async function downThroughAgent(port: number, bytes: number): Promise<number> {
  const c = await open(port);
  let received = 0;
  let acked = 0;
  for (;;) {
    const f = await c.next(60_000, 'data from the agent');
    if (!f || f.type === 'eof') break;
    if (f.type !== 'data') continue;
    received += f.data.length;
    if (received - acked >= MIB) {
      c.send({ type: 'ack', ack: received });
      acked = received;
    }
  }
  await finish(c, 0, received);
  if (received !== bytes) throw new Error(`received ${received} of ${bytes} bytes through the agent`);
  return received;
}

async function upThroughAgent(port: number, arrival: Promise<Sink>, bytes: number): Promise<number> {
  const c = await open(port);
  const { received: arrived } = await arrival;
  const block = randomBytes(CHUNK);
  let acked = 0;
  let wake: (() => void) | undefined;
  let ended: (() => void) | undefined;
  const targetEof = new Promise<void>((resolve) => (ended = resolve));
  // Acks arrive while we send, and the target's EOF at the end: read them on the side.
  void (async () => {
    for (let f: Frame | undefined; (f = await c.next(60_000, 'acks').catch(() => undefined)); ) {
      if (f.type === 'ack' || f.type === 'data') acked = f.ack;
      if (f.type === 'eof') c.send({ type: 'ack', ack: 1 }), ended!();
      wake?.();
    }
  })();
  for (let sent = 0; sent < bytes; sent += CHUNK) {
    while (sent - acked >= WINDOW) await new Promise<void>((r) => (wake = r));
    c.send({ type: 'data', offset: sent, ack: 0, data: block });
    if (c.socket.writableLength > WINDOW) await once(c.socket, 'drain');
  }
  c.send({ type: 'eof', offset: bytes });
  const n = await arrived;
  await deadline(targetEof, 60_000, "the target's EOF through the agent");
  await deadline(c.closed, 60_000, 'the agent to end the stream');
  if (n !== bytes) throw new Error(`the target got ${n} of ${bytes} bytes through the agent`);
  return n;
}

/**
 * The agent's CPU seconds while `run` runs (exact, from the scheduler), the share of it in user
 * space (from utime and stime, sampled at clock ticks: a rough split), its minor page faults
 * meanwhile (fresh memory it touched: a count no load changes), and `run`'s result.
 */
async function agentCpu<T>(run: () => Promise<T>): Promise<{ result: T; seconds: number; userShare: number; faults: number }> {
  const pid = agent!.pids()[0]!;
  const ran = runSeconds(pid);
  const faulted = minorFaults(pid);
  const before = cpuTimes(pid);
  const result = await run();
  const after = cpuTimes(pid);
  const user = after.user - before.user;
  const sampled = user + after.system - before.system;
  return { result, seconds: runSeconds(pid) - ran, userShare: sampled > 0 ? user / sampled : 0, faults: minorFaults(pid) - faulted };
}

function split(cpu: { userShare: number }): string {
  return `~${(cpu.userShare * 100).toFixed(0)} % user (sampled)`;
}

/** MB/s of `run`, and the agent's CPU seconds per GiB and page faults per 64 KiB meanwhile. */
async function measure(bytes: number, run: () => Promise<unknown>): Promise<{ mbps: number; cpuPerGiB: number; split: string; faultsPerChunk: number }> {
  const start = process.hrtime.bigint();
  const cpu = await agentCpu(run);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { mbps: bytes / 1e6 / seconds, cpuPerGiB: (cpu.seconds * 1024 ** 3) / bytes, split: split(cpu), faultsPerChunk: cpu.faults / (bytes / CHUNK) };
}

async function agentRoundTrips(echoPort: number, count = pings): Promise<number[]> {
  const c = await open(echoPort);
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const start = process.hrtime.bigint();
    c.send({ type: 'data', offset: i, ack: i, data: Buffer.from('x') });
    while ((await c.next())?.type !== 'data');
    times.push(Number(process.hrtime.bigint() - start) / 1000);
  }
  await finish(c, count);
  return times;
}

/** Round trips through the agent, and its CPU µs per round trip meanwhile. */
async function agentRoundTripsCpu(echoPort: number): Promise<{ times: number[]; cpuUs: number; split: string }> {
  const cpu = await agentCpu(() => agentRoundTrips(echoPort));
  return { times: cpu.result, cpuUs: (cpu.seconds * 1e6) / pings, split: split(cpu) };
}

async function roundTrips(echoPort: number): Promise<{ agent: { times: number[]; cpuUs: number; split: string }; direct: number[] }> {
  const direct = net.connect(echoPort, '127.0.0.1');
  direct.setNoDelay(true);
  await once(direct, 'connect');
  const directTimes: number[] = [];
  for (let i = 0; i < pings; i++) {
    const start = process.hrtime.bigint();
    direct.write('x');
    await once(direct, 'data');
    directTimes.push(Number(process.hrtime.bigint() - start) / 1000);
  }
  direct.destroy();
  return { agent: await agentRoundTripsCpu(echoPort), direct: directTimes };
}

/**
 * An agent started as the bootstrap starts it (its start command; the script and its parameter line
 * on stdin) but under callgrind with collection off, and followed into the interpreter and the child
 * it detaches as (--trace-children: callgrind_control reaches a forked child only so). Its dumps go to `dir`.
 */
async function callgrindAgent(dir: string): Promise<{ agent: LocalAgent; pid: number }> {
  const text = script ?? agentScript(INTERPRETERS[interpreter].language).text;
  const session = newSession();
  const env = { ...process.env, PATH: pathForAgents(), XDG_RUNTIME_DIR: runtimeDir };
  const child = spawn(
    'valgrind',
    ['--tool=callgrind', '--trace-children=yes', '--instr-atstart=no', `--callgrind-out-file=${dir}/callgrind.out.%p`, `--log-file=${dir}/valgrind.%p.log`, 'sh', '-c', startCommand(interpreter, session)],
    { env, stdio: ['pipe', 'pipe', 'inherit'] },
  );
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stdin.end(text + parameterLine({ session, graceMs: 600_000 }, createHash('sha256').update(text).digest('hex').slice(0, 12)));
  await deadline(once(child, 'close'), 60_000, 'the agent under callgrind to say ready');
  const line = parseAgentLine(stdout.split('\n')[0] ?? '');
  if (line.type !== 'ready') throw new Error(`the agent under callgrind did not start: ${JSON.stringify(stdout)}`);
  // The detached child is the one process left whose command line names this dump directory.
  let pid: number | undefined;
  await until(() => (pid = pidsOf(`callgrind-out-file=${dir}/`)[0]) !== undefined, 10_000, 'the detached agent under callgrind');
  const { socketPath } = line;
  return { agent: { session, interpreter, runtimeDir, socketPath, env, pids: () => [pid!], channel: (options) => AgentChannel.connect(socketPath, options) }, pid: pid! };
}

/**
 * The statements a Perl agent runs from its start to its exit (at SIGTERM) with `roundTrips` round
 * trips between, as Devel::NYTProf counts them: two such counts, less one another, leave the start out.
 */
async function agentStatements(echoPort: number, roundTrips: number): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sshkeep-nytprof-agent-'));
  const timed = agent;
  const saved = { PERL5OPT: process.env.PERL5OPT, NYTPROF: process.env.NYTPROF };
  const restoreEnv = () => {
    for (const [name, value] of Object.entries(saved)) if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  };
  let profiled: LocalAgent | undefined;
  try {
    // launchAgent hands this process's environment to the agent's perl, which loads NYTProf.
    Object.assign(process.env, { PERL5OPT: '-d:NYTProf', NYTPROF: `file=${dir}/nytprof.out` });
    profiled = await launchAgent(runtimeDir, 'perl', 600_000, undefined, script);
    restoreEnv();
    agent = profiled;
    const pid = profiled.pids()[0]!;
    if (roundTrips > 0) await agentRoundTrips(echoPort, roundTrips);
    await goodbye(profiled, pid, 'the agent under NYTProf');
    // The detached child's profile is the parent's file name with the child's pid appended.
    const sum = 'my $p = Devel::NYTProf::Data->new({ filename => $ARGV[0], quiet => 1 }); my $n = 0; $n += $_->sum_of_stmts_count for $p->all_fileinfos; print $n';
    const r = spawnSync('perl', ['-MDevel::NYTProf::Data', '-e', sum, `${dir}/nytprof.out.${pid}`], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`reading the agent's NYTProf profile failed (apt-get install libdevel-nytprof-perl): ${r.stderr}`);
    return Number(r.stdout);
  } finally {
    restoreEnv();
    if (profiled) signalAll(profiled.pids(), 'SIGKILL');
    agent = timed;
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Ends an agent as sshkeep does, with GOODBYE, and waits for it to exit (SIGKILL if no channel can
 * be had). Not SIGTERM: an older agent (--agent) could miss one that came while it was busy, and
 * wait on in its select.
 */
async function goodbye(a: LocalAgent, pid: number, what: string): Promise<void> {
  await a.channel().then(
    (c) => c.send({ type: 'goodbye' }),
    () => signalAll([pid], 'SIGKILL'),
  );
  await until(() => !alive(pid), 30_000, `${what} to exit`);
}

function pidsOf(pattern: string): number[] {
  const r = spawnSync('pgrep', ['-f', pattern], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean).map(Number);
}

/** The agent's RSS once it stops growing (reading targets into replay buffers takes a moment). */
async function settledRss(): Promise<number> {
  const pid = agent!.pids()[0]!;
  let last = -1;
  for (;;) {
    const now = rssKiB(pid);
    if (now === last) return now;
    last = now;
    await sleep(300);
  }
}

async function main(): Promise<void> {
  agent = await launchAgent(runtimeDir, interpreter, 600_000, undefined, script);
  const bytes = sizeMiB * MIB;
  const pourPort = await target((sock) => void pour(sock, bytes));
  // Each connection to the sink hands its byte count to whoever waits for the next one.
  let onSink: ((sink: Sink) => void) | undefined;
  const sinkPort = await target((sock) => {
    onSink?.({ received: drain(sock) });
    sock.on('end', () => sock.end());
  });
  const nextSink = () => new Promise<Sink>((resolve) => (onSink = resolve));
  const echoPort = await target((sock) => sock.pipe(sock));
  const holdPort = await target((sock) => sock.on('end', () => sock.end()));
  const fullPort = await target((sock) => void pour(sock, WINDOW + 2 * MIB));

  const rows: [string, string, string, string][] = [];
  const warm = 32 * MIB;
  await downThroughAgent(await target((sock) => void pour(sock, warm)), warm);
  const down = await measure(bytes, () => downThroughAgent(pourPort, bytes));
  const downDirect = await measure(bytes, async () => {
    const s = net.connect(pourPort, '127.0.0.1');
    if ((await drain(s)) !== bytes) throw new Error('direct download short');
    s.destroy();
  });
  rows.push(['target → client, MB/s', down.mbps.toFixed(0), downDirect.mbps.toFixed(0), (down.mbps / downDirect.mbps).toFixed(2)]);
  rows.push(['  agent CPU s per GiB', down.cpuPerGiB.toFixed(2), '', down.split]);
  rows.push(['  agent page faults per 64 KiB', down.faultsPerChunk.toFixed(2), '', '']);
  const up = await measure(bytes, () => upThroughAgent(sinkPort, nextSink(), bytes));
  const upDirect = await measure(bytes, async () => {
    const arrival = nextSink();
    const s = net.connect(sinkPort, '127.0.0.1');
    await pour(s, bytes);
    if ((await (await arrival).received) !== bytes) throw new Error('direct upload short');
    s.destroy();
  });
  rows.push(['client → target, MB/s', up.mbps.toFixed(0), upDirect.mbps.toFixed(0), (up.mbps / upDirect.mbps).toFixed(2)]);
  rows.push(['  agent CPU s per GiB', up.cpuPerGiB.toFixed(2), '', up.split]);
  rows.push(['  agent page faults per 64 KiB', up.faultsPerChunk.toFixed(2), '', '']);

  const rt = await roundTrips(echoPort);
  const agentRt = rt.agent.times;
  rows.push(['1-byte round trip, median µs', median(agentRt).toFixed(0), median(rt.direct).toFixed(0), (median(agentRt) / median(rt.direct)).toFixed(2)]);
  rows.push(['1-byte round trip, p99 µs', quantile(agentRt, 0.99).toFixed(0), quantile(rt.direct, 0.99).toFixed(0), (quantile(agentRt, 0.99) / quantile(rt.direct, 0.99)).toFixed(2)]);
  rows.push(['  agent CPU µs per round trip', rt.agent.cpuUs.toFixed(1), '', rt.agent.split]);
  const others: AgentChannel[] = [];
  for (let i = 0; i < idleStreams; i++) others.push(await open(holdPort));
  const busy = await agentRoundTripsCpu(echoPort);
  await Promise.all(others.map((c) => finish(c, 0)));
  rows.push([`  with ${idleStreams} other streams held, median µs`, median(busy.times).toFixed(0), median(rt.direct).toFixed(0), (median(busy.times) / median(rt.direct)).toFixed(2)]);
  rows.push(['    agent CPU µs per round trip', busy.cpuUs.toFixed(1), '', busy.split]);

  if (values.syscalls) {
    // Smaller passes: strace stops the agent at every call, so the figures above are taken without it.
    const traced = Math.min(sizeMiB, 64) * MIB;
    const tracedPings = Math.min(pings, 1000);
    const pid = agent.pids()[0]!;
    const tracedPour = await target((sock) => void pour(sock, traced));
    const downCalls = await countSyscalls(pid, () => downThroughAgent(tracedPour, traced));
    const upCalls = await countSyscalls(pid, () => upThroughAgent(sinkPort, nextSink(), traced));
    const rtCalls = await countSyscalls(pid, () => agentRoundTrips(echoPort, tracedPings));
    const chunks = traced / CHUNK;
    rows.push(['agent system calls per 64 KiB, target → client', (downCalls.total / chunks).toFixed(2), '', perUnit(downCalls, chunks)]);
    rows.push(['agent system calls per 64 KiB, client → target', (upCalls.total / chunks).toFixed(2), '', perUnit(upCalls, chunks)]);
    rows.push(['agent system calls per round trip', (rtCalls.total / tracedPings).toFixed(2), '', perUnit(rtCalls, tracedPings)]);
  }

  if (values.instructions) {
    // Small passes: the agent runs ~50 times slower under callgrind.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sshkeep-callgrind-agent-'));
    const timed = agent;
    try {
      const cg = await callgrindAgent(dir);
      callgrindPid = cg.pid;
      agent = cg.agent;
      const counted = Math.min(sizeMiB, 16) * MIB;
      const countedPings = Math.min(pings, 2000);
      await agentRoundTrips(echoPort, 200); // the first turns of each path compile and allocate
      const countedPour = await target((sock) => void pour(sock, counted));
      const rtIr = await instructionsDuring(cg.pid, dir, () => agentRoundTrips(echoPort, countedPings));
      const downIr = await instructionsDuring(cg.pid, dir, () => downThroughAgent(countedPour, counted));
      const upIr = await instructionsDuring(cg.pid, dir, () => upThroughAgent(sinkPort, nextSink(), counted));
      const chunks = counted / CHUNK;
      rows.push(['agent instructions per round trip (callgrind)', (rtIr / countedPings).toFixed(0), '', `${countedPings} round trips`]);
      rows.push(['agent instructions per 64 KiB, target → client', (downIr / chunks).toFixed(0), '', `${counted / MIB} MiB`]);
      rows.push(['agent instructions per 64 KiB, client → target', (upIr / chunks).toFixed(0), '', `${counted / MIB} MiB`]);
    } finally {
      // The agent exits, and valgrind removes its vgdb pipes in /tmp as it goes.
      if (callgrindPid) await goodbye(agent!, callgrindPid, 'the agent under callgrind');
      callgrindPid = undefined;
      agent = timed;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  if (values.statements) {
    const counted = Math.min(pings, 2000);
    const perRoundTrip = ((await agentStatements(echoPort, counted)) - (await agentStatements(echoPort, 0))) / counted;
    rows.push(['agent statements per round trip (NYTProf)', perRoundTrip.toFixed(0), '', `${counted} round trips, less the start`]);
  }

  // Memory: a fresh agent, so the buffers of the transfers above do not count.
  signalAll(agent.pids(), 'SIGKILL');
  agent = await launchAgent(runtimeDir, interpreter, 600_000, undefined, script);
  const idle = await settledRss();
  const held: AgentChannel[] = [];
  for (let i = 0; i < idleStreams; i++) held.push(await open(holdPort));
  const withIdle = await settledRss();
  for (let i = 0; i < fullStreams; i++) (await open(fullPort)).close(); // detached: the agent fills the replay buffer
  const withFull = await settledRss();
  rows.push(['agent RSS idle, KiB', String(idle), '', '']);
  rows.push([`  per idle stream (${idleStreams}), KiB`, ((withIdle - idle) / idleStreams).toFixed(1), '', '']);
  rows.push([`  per stream with a full 4 MiB replay buffer (${fullStreams}), KiB`, ((withFull - withIdle) / fullStreams).toFixed(0), '', '']);
  held.forEach((c) => c.close());

  const width = Math.max(...rows.map((r) => r[0].length));
  process.stdout.write(`resume agent (${interpreter}${values.agent ? `, ${values.agent}` : ''}), ${sizeMiB} MiB each way, ${pings} round trips, ${os.cpus().length} cores\n`);
  process.stdout.write(`${'measure'.padEnd(width)}  ${'agent'.padStart(8)}  ${'direct'.padStart(8)}  ratio\n`);
  for (const [name, a, d, r] of rows) process.stdout.write(`${name.padEnd(width)}  ${a.padStart(8)}  ${d.padStart(8)}  ${r}\n`);
}

runMain('bench-resume-agent', main, async () => {
  if (agent) signalAll(agent.pids(), 'SIGKILL');
  if (callgrindPid) signalAll([callgrindPid], 'SIGKILL');
  servers.forEach((s) => s.close());
  fs.rmSync(runtimeDir, { recursive: true, force: true });
});
