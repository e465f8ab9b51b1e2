/**
 * --resume against plain forwarding (issue 14), side by side in one run through the same sshd:
 *
 *   npm run build && node --import @tapjs/typescript/import scripts/bench-resume.ts \
 *     [--size-mib 256] [--pings 2000] [--idle-streams 200] [--full-streams 16] [--resumes 5] [--rounds 3] \
 *     [--link-mbps 50] [--link-rtt-ms 20] [--link-size-mib 64] [--pg-outages 1] [--outage-ms 8000] [--cli OTHER/dist/bin/sshkeep.js]
 *
 * Per round, a fresh sshkeep of each kind (plain, then --resume, then plain forwarding to a Unix socket where
 * socat dials the target: the floor of any relay hop on the server, in --resume's place, when socat is
 * installed — scripts/bench/hop.ts), each through its own fault relay:
 *   - bulk upload and download, one stream of --size-mib (MB = 10^6 bytes, first to last byte at the receiver),
 *     and the CPU seconds per GiB they cost sshkeep (each way: only the upload goes through sshkeep's replay
 *     buffer), (with --resume) the agent, and the whole machine (every process: here the client, sshkeep, the
 *     relay, sshd, the agent and the target share its cores);
 *   - the same over a link of --link-mbps MB/s each way and --link-rtt-ms round trip (the relay paces the SSH
 *     connection: test/fixtures/pacer.ts), --link-size-mib each way, where the link and not the machine's CPU
 *     is the limit, as it is between a laptop or a pod and a server, and up to 100 ping-pongs over it;
 *   - 1-byte ping-pong round trips on one connection (median and p99, µs);
 *   - RSS with --idle-streams connections open (each echoed a byte), per stream over the tunnel's own
 *     (measured first, before bulk transfers have grown the heap);
 *   - --resume only: RSS with --full-streams streams whose replay buffer is full (the link cut, each client
 *     writing until paused), per stream;
 *   - --resume only: --resumes times, the time from the new SSH connection being ready (sshkeep's `ready`
 *     log line) to the first byte of a stream echoed after the session was killed.
 * Then, --pg-outages times when PostgreSQL and pgbench are installed (else a note says why not): pgbench
 * with 4 persistent clients, and with -C, through an --outage-ms outage that ended the SSH session, for
 * `ssh -L`, plain sshkeep and sshkeep --resume (scripts/bench/pg-outage.ts). --rounds 0 runs only this.
 * Goals (issue 14): throughput ≥ 0.9× plain, ping-pong ≤ 1.2×, SSH back → first resumed byte ≤ 1 s,
 * 0 pgbench clients aborted with --resume.
 * --cli runs another build of sshkeep (every kind): an A/B of a change, alternating runs of this script with
 * and without it. Markdown to stdout, progress to stderr. Every process, relay, agent and sshd is cleaned up on exit.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HOST, connect, deadline, freePorts, getJson } from '../test/fixtures/net.js';
import { Relay } from '../test/fixtures/relay.js';
import { startSshd, sshdLogin, trustRelay, type Sshd } from '../test/fixtures/sshd.js';
import { agentPids, agentSessions, killAgents, killSessions } from '../test/fixtures/resume.js';
import { sleep } from './lib/sleep.js';
import { DEFAULTS } from '../src/config/defaults.js';
import { CLK_TCK, cpuSeconds, descendants, runSeconds } from '../test/fixtures/proc.js';
import { download, holdConnections, pingPong, sendToSink, upload } from './bench/clients.js';
import { treeRssKiB } from './bench/measure.js';
import { startTargets, MIB, type Targets } from './bench/targets.js';
import { startPostgres } from './bench/services.js';
import { startHop, type Hop } from './bench/hop.js';
import { outageTable, pgbenchThroughOutage, type OutageKind, type OutageResult } from './bench/pg-outage.js';
import { assertBuilt, killForwarders, startForwarder, untilEchoes, type Forwarder } from './lib/forwarder.js';
import { commandLine, machine, machineSnapshot } from './lib/machine.js';
import { runMain } from './lib/main.js';
import { intOption, parseCommandLine } from './lib/options.js';
import { median, quantile } from './lib/stats.js';

interface Options {
  sizeMib: number;
  pings: number;
  idleStreams: number;
  fullStreams: number;
  resumes: number;
  rounds: number;
  linkMbps: number;
  linkRttMs: number;
  linkSizeMib: number;
  pgOutages: number;
  outageMs: number;
  /** sshkeep's entry point (default this checkout's dist/bin/sshkeep.js). */
  cli: string | undefined;
}

const USAGE =
  'usage: npm run build && node --import @tapjs/typescript/import scripts/bench-resume.ts [--size-mib 256] [--pings 2000] [--idle-streams 200]\n' +
  '         [--full-streams 16] [--resumes 5] [--rounds 3] [--link-mbps 50] [--link-rtt-ms 20] [--link-size-mib 64] [--pg-outages 1] [--outage-ms 8000] [--cli OTHER/dist/bin/sshkeep.js]\n';

function parseOptions(argv: string[]): Options {
  const o: Options = { sizeMib: 256, pings: 2000, idleStreams: 200, fullStreams: 16, resumes: 5, rounds: 3, linkMbps: 50, linkRttMs: 20, linkSizeMib: 64, pgOutages: 1, outageMs: 8000, cli: undefined };
  const mayBeZero = new Set<keyof Options>(['rounds', 'pgOutages']);
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i]!, argv[i + 1]];
    const name = flag.replace(/^--/, '');
    const key = name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()) as keyof Options;
    if (!flag.startsWith('--') || !(key in o)) throw new Error(`unknown option ${flag}`);
    if (key === 'cli') {
      if (!value) throw new Error('--cli needs the path of a built dist/bin/sshkeep.js');
      o.cli = path.resolve(value);
    } else o[key] = intOption(name, value, mayBeZero.has(key) ? 0 : 1);
  }
  return o;
}

const cleanups: (() => Promise<void> | void)[] = [];
const cleanup = async () => {
  killForwarders();
  for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => {});
};

interface Launched {
  f: Forwarder;
  relay: Relay;
  ports: { echo: number; sink: number; source: number; health: number };
  pids(): number[];
}

type Row = {
  up: number[]; down: number[]; linkUp: number[]; linkDown: number[]; linkPing: number[]; ping: number[]; idle: number[];
  /** CPU s per GiB: sshkeep uploading, downloading; the agent and every process, up + down. */
  cpuUp: number[]; cpuDown: number[]; agentCpu: number[]; machineCpu: number[];
  /** CPU µs per loopback round trip: sshkeep's main thread, the agent, every process. */
  pingCpu: number[]; pingAgentCpu: number[]; pingMachineCpu: number[];
};
/** plain; --resume; plain to a Unix socket where a C relay (socat) dials the target: the hop's floor. */
type Kind = 'plain' | 'resume' | 'hop';
type Rows = Record<Kind, Row>;

/** Round trips over the shaped link: each takes its RTT. */
const LINK_PINGS = 100;

/** Busy CPU seconds of the whole machine so far, every core (/proc/stat). */
function machineCpuSeconds(): number {
  const [, ...ticks] = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq, steal] = ticks.map(Number) as number[];
  return (user! + nice! + system! + irq! + softirq! + steal!) / CLK_TCK;
}

/** --resume's default per-stream replay buffer. */
const RESUME_BUFFER = DEFAULTS.resumeBufferBytes;

/** The replay bytes sshkeep holds now, as /readyz says. */
async function replayBytes(l: Launched): Promise<number> {
  const { body } = await getJson(l.ports.health, '/readyz');
  return (body.tunnels as { resume?: { replayBytes: number } }[])[0]?.resume?.replayBytes ?? 0;
}

/** Polls /readyz every 100 ms until the bytes sshkeep holds in replay buffers are as `wanted` says. */
async function untilReplaying(l: Launched, wanted: (held: number) => boolean, what: string, ms: number): Promise<number> {
  const giveUp = performance.now() + ms;
  for (;;) {
    const held = await replayBytes(l);
    if (wanted(held)) return held;
    if (performance.now() > giveUp) throw new Error(`${held} bytes in replay buffers after ${ms} ms, wanted ${what}`);
    await sleep(100);
  }
}

async function launch(sshd: Sshd, targets: Targets, kind: Kind, hop: Hop | undefined, cli: string | undefined): Promise<Launched> {
  const relay = await new Relay(sshd.port).listen();
  trustRelay(sshd, relay.port);
  const [echo, sink, source, health] = (await freePorts(4)) as [number, number, number, number];
  const f = startForwarder({
    tool: 'sshkeep',
    cli,
    login: sshdLogin(sshd, relay.port),
    forwards: [[echo, targets.echo], [sink, targets.sink], [source, targets.source]].map(([l, t]) => (kind === 'hop' ? `${l}:${hop!.paths.get(t!)}` : `${l}:${HOST}:${t}`)),
    args: ['--log-format', 'json', '--keepalive-interval', '1s', '--health', `127.0.0.1:${health}`, ...(kind === 'resume' ? ['--resume'] : [])],
    tail: 8192,
  });
  await untilEchoes(f, echo);
  const pid = f.child.pid!;
  return { f, relay, ports: { echo, sink, source, health }, pids: () => [pid, ...descendants(pid)] };
}

/**
 * With --resume the first stream to each target on each SSH connection follows the policy check (a
 * direct-tcpip open that the sink sees as an empty connection): made here, outside the measurements.
 */
async function warm(l: Launched): Promise<void> {
  await sendToSink(l.ports.sink, 1);
  await download(l.ports.source, 1);
}

async function stop(l: Launched): Promise<void> {
  await l.f.stop();
  await l.relay.close();
}

/** RSS per stream with `n` streams open (each echoed a byte), over the tunnel's RSS before; KiB. */
async function rssPerIdleStream(l: Launched, n: number): Promise<number> {
  const before = treeRssKiB(l.pids());
  const held = await holdConnections(l.ports.echo, n);
  await sleep(2000); // let allocation settle, as the main bench does
  const after = treeRssKiB(l.pids());
  await held.close();
  return (after - before) / n;
}

/**
 * RSS per stream whose replay buffer is full: the link is cut (relay refuses: the server ends the
 * session), then each of `n` clients writes until sshkeep pauses it; the bytes held are what
 * /readyz reports (the kernel's socket buffers take more from the client). KiB, and MiB held per stream.
 */
async function rssPerFullStream(l: Launched, n: number): Promise<{ kib: number; heldMib: number }> {
  const socks = await Promise.all(Array.from({ length: n }, () => connect(l.ports.sink)));
  for (const s of socks) s.on('error', () => {}).write('x');
  await holdConnections(l.ports.echo, 1).then((h) => h.close()); // every stream is open by now
  const before = treeRssKiB(l.pids());
  l.relay.set('refuse');
  const block = Buffer.alloc(64 * 1024, 1);
  for (const s of socks) {
    const write = () => {
      while (s.write(block));
    };
    s.on('drain', write);
    write();
  }
  const held = await untilReplaying(l, (b) => b >= n * RESUME_BUFFER, `at least ${n * RESUME_BUFFER}`, 30_000);
  const after = treeRssKiB(l.pids());
  l.relay.set('pass');
  for (const s of socks) s.destroy();
  // The streams' replay buffers go out before their resets: the stages after this one must not share the link with them.
  await untilReplaying(l, (b) => b === 0, 'none', 60_000);
  return { kib: (after - before) / n, heldMib: held / n / MIB };
}

/** Time from the new SSH connection's `ready` line to the first byte echoed on a stream cut by the session's death; ms each. */
async function resumeLatency(l: Launched, sshd: Sshd, times: number): Promise<number[]> {
  const out: number[] = [];
  const sock = await connect(l.ports.echo);
  sock.on('error', () => {});
  for (let i = 0; i < times; i++) {
    let readyAt: number | undefined;
    const ready = l.f.waitForLog((line) => line.event === 'state' && line.to === 'ready', 20_000, 'ready again').then(() => (readyAt = performance.now()));
    const back = new Promise<number>((resolve) => sock.once('data', () => resolve(performance.now())));
    killSessions(sshd); // the sshd session ends; the listener stays
    sock.write('x'); // into the replay buffer while the connection is down
    const echoedAt = await deadline(back, 20_000, 'the resumed byte');
    await ready;
    out.push(echoedAt - readyAt!);
  }
  sock.destroy();
  return out;
}

/**
 * The rounds' table: medians side by side, with the goals; with the hop's floor (plain to socat
 * in front of the target) when socat was found.
 */
function roundsTable(o: Options, rows: Rows, hopped: boolean, full: { kib: number; heldMib: number }[], latency: number[]): string[] {
  const med = (xs: number[]) => (xs.length ? median(xs) : NaN);
  const p99 = (xs: number[]) => (xs.length ? quantile(xs, 0.99) : NaN);
  const cell = (x: number, digits: number) => (Number.isNaN(x) ? '' : x.toFixed(digits));
  const ratio = (a: number, b: number) => cell(a / b, 2);
  /** One figure: its value per kind (by `of`), ratios to plain, and the goal. */
  const line = (figure: string, of: (r: Row) => number, digits: number, goal = '') => {
    const [p, r, h] = [of(rows.plain), of(rows.resume), of(rows.hop)];
    const hop = hopped ? ` ${cell(h, digits)} | ${ratio(h, p)} |` : '';
    return `| ${figure} | ${cell(p, digits)} | ${cell(r, digits)} | ${ratio(r, p)} |${hop} ${goal} |`;
  };
  return [
    hopped ? '| figure | plain | --resume | ratio | plain through a C relay hop (socat) | ratio | goal (--resume) |' : '| figure | plain | --resume | ratio | goal |',
    hopped ? '|---|---|---|---|---|---|---|' : '|---|---|---|---|---|',
    line(`upload, 1 stream of ${o.sizeMib} MiB (MB/s)`, (r) => med(r.up), 0, '≥ 0.9'),
    line(`download, 1 stream of ${o.sizeMib} MiB (MB/s)`, (r) => med(r.down), 0, '≥ 0.9'),
    line('CPU s per GiB uploaded: sshkeep', (r) => med(r.cpuUp), 2),
    line('CPU s per GiB downloaded: sshkeep', (r) => med(r.cpuDown), 2),
    line('CPU s per GiB moved (up + down): the agent (or the relay) on the server', (r) => med(r.agentCpu), 2),
    line('CPU s per GiB moved (up + down): the whole machine, every process', (r) => med(r.machineCpu), 2),
    line(`upload over a ${o.linkMbps} MB/s, ${o.linkRttMs} ms link, ${o.linkSizeMib} MiB (MB/s)`, (r) => med(r.linkUp), 1, '≥ 0.9'),
    line('download over that link (MB/s)', (r) => med(r.linkDown), 1, '≥ 0.9'),
    line('1-byte ping-pong over that link, median (µs)', (r) => med(r.linkPing), 0),
    line('1-byte ping-pong, median (µs)', (r) => med(r.ping), 0, '≤ 1.2'),
    line('1-byte ping-pong, p99 (µs)', (r) => p99(r.ping), 0),
    line('CPU µs per 1-byte round trip: sshkeep (main thread)', (r) => med(r.pingCpu), 1),
    line('CPU µs per 1-byte round trip: the agent on the server', (r) => med(r.pingAgentCpu), 1),
    line('CPU µs per 1-byte round trip: the whole machine, every process', (r) => med(r.pingMachineCpu), 1),
    line(`RSS per idle stream, ${o.idleStreams} open (KiB)`, (r) => med(r.idle), 1),
    `| RSS per stream with a full replay buffer, ${o.fullStreams} streams (KiB; client bytes taken per stream: ${med(full.map((f) => f.heldMib)).toFixed(1)} MiB) | | ${med(full.map((f) => f.kib)).toFixed(0)} | |${hopped ? ' | |' : ''} |`,
    `| SSH connection back → first resumed byte, ${latency.length} resumes (ms, median / max) | | ${med(latency).toFixed(0)} / ${Math.max(...latency).toFixed(0)} | |${hopped ? ' | |' : ''} ≤ 1000 |`,
    '',
  ];
}

/**
 * pgbench (persistent, and -C) through an outage, for ssh -L, sshkeep and sshkeep --resume: the
 * issue's "0 aborted clients" with --resume. Skipped, with why, without PostgreSQL.
 */
async function pgOutageStage(o: Options, sshd: Sshd, targets: Targets): Promise<string[]> {
  const pg = await startPostgres();
  if (!pg.service) return [`pgbench through an outage: skipped, ${pg.why}`, ''];
  cleanups.push(() => pg.service.stop());
  const outage = { outageMs: o.outageMs, marginMs: 4000, clients: 4 };
  const results: OutageResult[] = [];
  for (let i = 1; i <= o.pgOutages; i++) {
    for (const kind of ['ssh -L', 'sshkeep', 'sshkeep --resume'] as OutageKind[]) {
      for (const mode of ['persistent', '-C'] as const) {
        process.stderr.write(`pgbench outage ${i}: ${kind}, ${mode}\n`);
        results.push(await pgbenchThroughOutage(sshd, targets.echo, pg.service.port, kind, mode, outage));
      }
    }
  }
  return outageTable(results, outage);
}

const options = parseCommandLine('bench-resume', USAGE, parseOptions);

async function main(): Promise<void> {
  const o = options;
  assertBuilt(o.cli);
  const load = machineSnapshot();
  const runtimeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sshkeep-bench-xdg-'));
  fs.chmodSync(runtimeDir, 0o700);
  cleanups.push(() => fs.rmSync(runtimeDir, { recursive: true, force: true }));
  const sshd = await startSshd(undefined, { extraConfig: [`SetEnv XDG_RUNTIME_DIR=${runtimeDir}`] });
  cleanups.push(() => sshd.stop());
  cleanups.push(() => killAgents(runtimeDir));
  const targets = await startTargets();
  cleanups.push(() => targets.close());
  const bytes = o.sizeMib * MIB;
  const row = (): Row => ({ up: [], down: [], linkUp: [], linkDown: [], linkPing: [], ping: [], idle: [], cpuUp: [], cpuDown: [], agentCpu: [], machineCpu: [], pingCpu: [], pingAgentCpu: [], pingMachineCpu: [] });
  const rows: Rows = { plain: row(), resume: row(), hop: row() };
  const hopStarted = await startHop(runtimeDir, [targets.echo, targets.sink, targets.source], HOST);
  const hop = hopStarted.hop;
  if (hop) cleanups.push(() => hop.close());
  const kinds: Kind[] = hop ? ['plain', 'resume', 'hop'] : ['plain', 'resume'];
  const link = { bytesPerSecond: o.linkMbps * 1e6, rttMs: o.linkRttMs };
  const full: { kib: number; heldMib: number }[] = [];
  const latency: number[] = [];
  for (let round = 1; round <= o.rounds; round++) {
    for (const kind of kinds) {
      process.stderr.write(`round ${round}: ${kind}\n`);
      const l = await launch(sshd, targets, kind, hop, o.cli);
      try {
        // Memory first, while the process has not yet grown its heap for bulk transfers.
        const r = rows[kind];
        if (kind !== 'hop') r.idle.push(await rssPerIdleStream(l, o.idleStreams));
        if (kind === 'resume') {
          full.push(await rssPerFullStream(l, o.fullStreams));
          latency.push(...(await resumeLatency(l, sshd, o.resumes)));
        }
        await warm(l);
        const agents = kind === 'resume' ? agentSessions(runtimeDir).flatMap(agentPids) : [];
        // The server-side process of the kind: the agent, or the hop's relay.
        const serverCpu = async () => (kind === 'hop' ? hop!.cpuSeconds() : agents.reduce((n, pid) => n + cpuSeconds(pid), 0));
        const cpu0 = [cpuSeconds(l.f.child.pid!), await serverCpu(), machineCpuSeconds()];
        r.up.push((await upload(l.ports.sink, bytes, targets)).mbps);
        const cpuUp = cpuSeconds(l.f.child.pid!) - cpu0[0]!;
        r.down.push((await download(l.ports.source, bytes)).mbps);
        const gib = (2 * bytes) / (1024 * MIB);
        r.cpuUp.push(cpuUp / (gib / 2));
        r.cpuDown.push((cpuSeconds(l.f.child.pid!) - cpu0[0]! - cpuUp) / (gib / 2));
        r.machineCpu.push((machineCpuSeconds() - cpu0[2]!) / gib);
        if (kind !== 'plain') r.agentCpu.push(((await serverCpu()) - cpu0[1]!) / gib);
        l.relay.shape(link);
        r.linkUp.push((await upload(l.ports.sink, o.linkSizeMib * MIB, targets)).mbps);
        r.linkDown.push((await download(l.ports.source, o.linkSizeMib * MIB)).mbps);
        r.linkPing.push(...(await pingPong(l.ports.echo, Math.min(o.pings, LINK_PINGS))));
        l.relay.shape(undefined);
        // Run time from schedstat (exact; utime and stime are sampled at ticks, too coarse for ~50 µs bursts).
        const agentRun = () => agents.reduce((n, pid) => n + runSeconds(pid), 0);
        const run0 = [runSeconds(l.f.child.pid!), agentRun(), machineCpuSeconds()];
        r.ping.push(...(await pingPong(l.ports.echo, o.pings)));
        const perPing = (seconds: number) => (seconds * 1e6) / o.pings;
        r.pingCpu.push(perPing(runSeconds(l.f.child.pid!) - run0[0]!));
        if (kind === 'resume') r.pingAgentCpu.push(perPing(agentRun() - run0[1]!)); // a hop's relay is a child per connection
        r.pingMachineCpu.push(perPing(machineCpuSeconds() - run0[2]!));
      } finally {
        await stop(l);
      }
    }
  }
  const lines = [`## --resume against plain forwarding (${o.rounds} rounds, medians${o.pgOutages > 0 ? `; pgbench through an outage, ${o.pgOutages} run each` : ''})`, '', machine(load), '', `\`${commandLine()}\``, ...(o.cli ? ['', `sshkeep: ${o.cli}`] : []), ''];
  if (o.rounds > 0) lines.push(...roundsTable(o, rows, hop !== undefined, full, latency));
  if (o.rounds > 0 && !hop) lines.push(`The relay hop's floor: skipped, ${hopStarted.why}.`, '');
  if (o.pgOutages > 0) lines.push(...(await pgOutageStage(o, sshd, targets)));
  process.stdout.write(lines.join('\n'));
}

runMain('bench-resume', main, cleanup);
