/**
 * Side-by-side benchmark: sshkeep against OpenSSH `ssh -N -L`, through the same loopback sshd, in one run.
 *
 *   npm run build && node --import @tapjs/typescript/import scripts/bench.ts \
 *     [--size-mib 256] [--rounds 3] [--json out.json] [--cipher aes128-gcm@openssh.com] [--pings 2000] [--conns 200]
 *
 * Each round runs sshkeep then ssh (A B A B …), each as a fresh process, and measures:
 *   - bulk upload/download, one stream of --size-mib each (MB = 10^6 bytes, first byte to last byte),
 *   - 1-byte ping-pong round trips on one connection, and connect + first echo byte on new connections,
 *   - CPU seconds per GiB of the forwarder process (and, for reference, of the sshd session processes),
 *   - the forwarder's RSS once the tunnel is up, and the time from spawn to the first echo through it.
 * Without --cipher each tool negotiates its own default; with --cipher X, ssh gets `-c X` and sshd is
 * restricted to `Ciphers X`, so both tools use X. The sshd runs with LogLevel DEBUG1 so that its log
 * names the cipher each tool negotiated.
 *
 * Markdown goes to stdout, progress to stderr. Every process and the sshd are cleaned up on exit,
 * error, SIGINT and SIGTERM.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startSshd, type Sshd } from '../test/fixtures/sshd.js';
import { startEcho, deadline } from '../test/fixtures/net.js';
import { HOST, childEnv, cpuModel, freePorts, killGroup, listen, newestMtime, sh, sleep, sshVersion, runMain, watchExit } from './lib/common.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
const CHUNK = randomBytes(MIB); // the fixed buffer every bulk transfer repeats
const ONE = Buffer.from('x');

type ToolName = 'sshkeep' | 'ssh';
const TOOLS: ToolName[] = ['sshkeep', 'ssh'];
const LABEL: Record<ToolName, string> = { sshkeep: 'sshkeep', ssh: 'ssh -L' };

interface Options {
  sizeMiB: number;
  rounds: number;
  json: string | undefined;
  cipher: string | undefined;
  pings: number;
  conns: number;
}

// ---------------------------------------------------------------- arguments

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      'size-mib': { type: 'string', default: '256' },
      rounds: { type: 'string', default: '3' },
      json: { type: 'string' },
      cipher: { type: 'string' },
      pings: { type: 'string', default: '2000' },
      conns: { type: 'string', default: '200' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(
      'usage: node --import @tapjs/typescript/import scripts/bench.ts [--size-mib 256] [--rounds 3] [--json FILE] ' +
        '[--cipher NAME] [--pings 2000] [--conns 200]\n',
    );
    process.exit(0);
  }
  const int = (name: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got ${v}`);
    return n;
  };
  return {
    sizeMiB: int('size-mib', values['size-mib'], 1),
    rounds: int('rounds', values.rounds, 1),
    json: values.json,
    cipher: values.cipher,
    pings: int('pings', values.pings, 1),
    conns: int('conns', values.conns, 1),
  };
}

// ---------------------------------------------------------------- statistics

function sorted(xs: number[]): number[] {
  return [...xs].sort((a, b) => a - b);
}

/** Nearest-rank quantile. */
function quantile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = sorted(xs);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
}

const median = (xs: number[]): number => {
  if (xs.length === 0) return NaN;
  const s = sorted(xs);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const nsToUs = (ns: bigint): number => Number(ns) / 1e3;

// ---------------------------------------------------------------- /proc

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

function statFields(pid: number): string[] | null {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may contain spaces and parentheses; the fields after the last ')' are fixed.
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** utime + stime of a whole process (all threads), in seconds. */
function cpuSeconds(pid: number): number {
  const f = statFields(pid);
  if (!f) throw new Error(`process ${pid} is gone`);
  return (Number(f[11]) + Number(f[12])) / CLK_TCK; // fields 14 and 15 of /proc/PID/stat
}

function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]);
}

function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const f = statFields(Number(e));
    if (!f) continue;
    const ppid = Number(f[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(e));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length) for (const c of children.get(queue.shift()!) ?? []) out.push(c), queue.push(c);
  return out;
}

/**
 * The sshd listener's pid. sshd writes its PidFile only after it logs "Server listening", which is
 * when startSshd() returns, so wait for the file. A SIGHUP re-exec keeps the pid.
 */
async function sshdPid(sshd: Sshd): Promise<number> {
  const file = path.join(sshd.dir, 'sshd.pid');
  const until = Date.now() + 10_000;
  for (;;) {
    try {
      const pid = Number(fs.readFileSync(file, 'utf8').trim());
      if (pid > 0) return pid;
    } catch {}
    if (Date.now() > until) throw new Error(`sshd wrote no ${file}`);
    await sleep(10);
  }
}

/** CPU seconds of every live sshd session process (the listener's descendants), by pid. */
function sshdSessionCpu(root: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of descendants(root)) {
    const f = statFields(pid);
    if (f) out.set(pid, (Number(f[11]) + Number(f[12])) / CLK_TCK);
  }
  return out;
}

/** CPU the sshd sessions spent between two snapshots (processes present in both). */
function sshdCpuDelta(before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0;
  for (const [pid, t] of after) sum += t - (before.get(pid) ?? 0);
  return sum;
}

// ---------------------------------------------------------------- targets

interface SinkResult {
  bytes: number;
  firstNs: bigint;
  lastNs: bigint;
}

interface Targets {
  echo: number;
  sink: number;
  source: number;
  /** Resolves with the next sink connection that ends. */
  nextSink(): Promise<SinkResult>;
  close(): Promise<void>;
}

async function startTargets(): Promise<Targets> {
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.setNoDelay(true);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  };

  const echo = await startEcho();

  // Sink: reads and discards, replies with the total on end.
  const sinkWaiters: Array<(r: SinkResult) => void> = [];
  const sink = net.createServer({ allowHalfOpen: true }, (s) => {
    track(s);
    let bytes = 0;
    let firstNs = 0n;
    let lastNs = 0n;
    s.on('data', (c: Buffer) => {
      const now = process.hrtime.bigint();
      if (bytes === 0) firstNs = now;
      bytes += c.length;
      lastNs = now;
    });
    s.on('end', () => {
      s.end(String(bytes));
      sinkWaiters.shift()?.({ bytes, firstNs, lastNs });
    });
  });

  // Source: reads "N\n", sends N bytes of CHUNK repeated, then ends.
  const source = net.createServer({ allowHalfOpen: true }, (s) => {
    track(s);
    let head = '';
    const onData = (c: Buffer) => {
      head += c.toString('latin1');
      const nl = head.indexOf('\n');
      if (nl < 0) return;
      s.off('data', onData);
      const total = Number(head.slice(0, nl));
      let sent = 0;
      const pump = () => {
        while (sent < total) {
          const len = Math.min(CHUNK.length, total - sent);
          sent += len;
          if (!s.write(len === CHUNK.length ? CHUNK : CHUNK.subarray(0, len))) {
            s.once('drain', pump);
            return;
          }
        }
        s.end();
      };
      pump();
    };
    s.on('data', onData);
  });

  const sinkPort = await listen(sink);
  const sourcePort = await listen(source);
  return {
    echo: echo.port,
    sink: sinkPort,
    source: sourcePort,
    nextSink: () => new Promise((resolve) => sinkWaiters.push(resolve)),
    close: async () => {
      for (const s of sockets) s.destroy();
      await Promise.all([
        echo.close(),
        new Promise<void>((r) => sink.close(() => r())),
        new Promise<void>((r) => source.close(() => r())),
      ]);
    },
  };
}

// ---------------------------------------------------------------- clients

async function connectTo(port: number): Promise<net.Socket> {
  const s = net.connect({ port, host: HOST, allowHalfOpen: true });
  s.setNoDelay(true);
  await once(s, 'connect');
  return s;
}

/** Connects, sends one byte, waits for its echo; throws on any failure. */
async function echoProbe(port: number): Promise<void> {
  const s = net.connect({ port, host: HOST });
  s.setNoDelay(true);
  try {
    await new Promise<void>((resolve, reject) => {
      s.once('data', () => resolve());
      s.once('error', reject);
      s.once('close', () => reject(new Error('closed before the echo')));
      s.once('connect', () => s.write(ONE));
    });
  } finally {
    s.on('error', () => {});
    s.destroy();
  }
}

interface Transfer {
  bytes: number;
  seconds: number;
  mbps: number;
}

const transfer = (bytes: number, ns: bigint): Transfer => {
  const seconds = Number(ns) / 1e9;
  return { bytes, seconds, mbps: bytes / 1e6 / seconds };
};

async function upload(port: number, bytes: number, targets: Targets): Promise<Transfer> {
  const result = targets.nextSink();
  const s = await connectTo(port);
  try {
    let reply = '';
    s.on('data', (c: Buffer) => (reply += c.toString('latin1')));
    const ended = once(s, 'end');
    ended.catch(() => {}); // observed below
    let sent = 0;
    while (sent < bytes) {
      const len = Math.min(CHUNK.length, bytes - sent);
      sent += len;
      if (!s.write(len === CHUNK.length ? CHUNK : CHUNK.subarray(0, len))) await once(s, 'drain');
    }
    s.end();
    await ended;
    const r = await result;
    if (r.bytes !== bytes || Number(reply) !== bytes) throw new Error(`upload: sent ${bytes}, sink got ${r.bytes}, replied "${reply}"`);
    return transfer(bytes, r.lastNs - r.firstNs);
  } finally {
    s.destroy();
  }
}

async function download(port: number, bytes: number): Promise<Transfer> {
  const s = await connectTo(port);
  try {
    let got = 0;
    let firstNs = 0n;
    let lastNs = 0n;
    s.on('data', (c: Buffer) => {
      const now = process.hrtime.bigint();
      if (got === 0) firstNs = now;
      got += c.length;
      lastNs = now;
    });
    const ended = once(s, 'end');
    s.write(`${bytes}\n`);
    await ended;
    if (got !== bytes) throw new Error(`download: expected ${bytes}, got ${got}`);
    return transfer(bytes, lastNs - firstNs);
  } finally {
    s.destroy();
  }
}

/** `n` sequential 1-byte round trips on one connection; µs each. */
async function pingPong(port: number, n: number): Promise<number[]> {
  const s = await connectTo(port);
  let waiting: { resolve: () => void; reject: (e: Error) => void } | undefined;
  const fail = (e: Error) => waiting?.reject(e);
  s.on('data', () => {
    const w = waiting;
    waiting = undefined;
    w?.resolve();
  });
  s.on('error', fail);
  s.on('close', () => fail(new Error('ping-pong connection closed')));
  const out: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const got = new Promise<void>((resolve, reject) => (waiting = { resolve, reject }));
      const t0 = process.hrtime.bigint();
      s.write(ONE);
      await got;
      out.push(nsToUs(process.hrtime.bigint() - t0));
    }
  } finally {
    s.destroy();
  }
  return out;
}

/** `n` sequential new connections: connect, write one byte, first echoed byte; µs each. Each is closed cleanly before the next. */
async function newConnections(port: number, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    const s = net.connect({ port, host: HOST });
    s.setNoDelay(true);
    const closed = once(s, 'close');
    closed.catch(() => {}); // rejects on 'error'; awaited below
    try {
      const t1 = await deadline(
        new Promise<bigint>((resolve, reject) => {
          s.once('connect', () => s.write(ONE));
          s.once('data', () => resolve(process.hrtime.bigint()));
          s.once('error', reject);
          s.once('close', () => reject(new Error('closed before the echo')));
        }),
        10_000,
        `echo on new connection ${i + 1}`,
      );
      out.push(nsToUs(t1 - t0));
    } finally {
      s.on('error', () => {});
      s.end();
    }
    // Untimed: let the previous connection's teardown finish so it does not overlap the next.
    await deadline(closed, 10_000, `connection ${i + 1} to close`).catch(() => s.destroy());
  }
  return out;
}

// ---------------------------------------------------------------- tools

const live = new Set<ChildProcess>();

interface Running {
  tool: ToolName;
  pid: number;
  ports: { echo: number; sink: number; source: number };
  startupMs: number;
  cipher: { clientToServer: string; serverToClient: string };
  stop(): Promise<void>;
}

function commandFor(tool: ToolName, sshd: Sshd, fwd: Array<[number, number]>, opts: Options): [string, string[]] {
  const L = fwd.flatMap(([local, target]) => ['-L', `${local}:${HOST}:${target}`]);
  if (tool === 'sshkeep') {
    return [
      process.execPath,
      [
        CLI,
        '-F', 'none',
        '-i', sshd.userKeyPath,
        '-o', `UserKnownHostsFile=${sshd.knownHostsPath}`,
        '-o', 'GlobalKnownHostsFile=none',
        '-o', 'IdentitiesOnly=yes',
        '-p', String(sshd.port),
        ...L,
        '-q',
        `${sshd.user}@${HOST}`,
      ],
    ];
  }
  return [
    'ssh',
    [
      '-N',
      '-F', 'none',
      '-o', 'BatchMode=yes',
      '-o', 'ExitOnForwardFailure=yes',
      '-o', `UserKnownHostsFile=${sshd.knownHostsPath}`,
      '-o', 'IdentitiesOnly=yes',
      '-i', sshd.userKeyPath,
      '-p', String(sshd.port),
      ...(opts.cipher ? ['-c', opts.cipher] : []),
      ...L,
      `${sshd.user}@${HOST}`,
    ],
  ];
}

async function launch(tool: ToolName, sshd: Sshd, targets: Targets, opts: Options): Promise<Running> {
  for (let attempt = 1; ; attempt++) {
    const [echo, sink, source] = (await freePorts(3)) as [number, number, number];
    const [cmd, args] = commandFor(tool, sshd, [[echo, targets.echo], [sink, targets.sink], [source, targets.source]], opts);
    const logFrom = sshd.logs().length;
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { detached: true, stdio: ['ignore', 'ignore', 'pipe'], env: childEnv() });
    live.add(child);
    let stderr = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => (stderr = (stderr + s).slice(-8192)));
    const { exited, info: exitInfo } = watchExit(child, live);
    const stop = async () => {
      if (exitInfo()) return;
      child.kill('SIGTERM');
      await deadline(exited, 5_000, `${tool} to exit`).catch(() => killGroup(child, 'SIGKILL'));
      await exited;
      killGroup(child, 'SIGKILL'); // nothing should be left in its group; make sure
    };

    // Ready = the first byte echoed through the tunnel (for ssh, the listener appears only after auth;
    // sshkeep listens at once and holds early connections until the tunnel is up).
    const until = Date.now() + 20_000;
    let lastError = '';
    let ready = false;
    while (!exitInfo() && Date.now() < until) {
      try {
        await deadline(echoProbe(echo), 5_000, 'echo probe');
        ready = true;
        break;
      } catch (err) {
        lastError = (err as Error).message;
        await sleep(10);
      }
    }
    if (!ready) {
      await stop();
      const why = exitInfo() ?? `not ready within 20 s (last probe: ${lastError})`;
      if (/in use/i.test(stderr) && attempt < 3) {
        process.stderr.write(`  ${tool}: a chosen local port was taken, retrying\n`);
        continue;
      }
      throw new Error(`${tool} ${why}\n--- ${tool} stderr ---\n${stderr}\n--- sshd log (since start) ---\n${sshd.logs().slice(logFrom).slice(-4000)}`);
    }
    const startupMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const log = sshd.logs().slice(logFrom);
    const c2s = /kex: client->server cipher: (\S+)/.exec(log)?.[1] ?? 'unknown';
    const s2c = /kex: server->client cipher: (\S+)/.exec(log)?.[1] ?? 'unknown';
    return { tool, pid: child.pid!, ports: { echo, sink, source }, startupMs, cipher: { clientToServer: c2s, serverToClient: s2c }, stop };
  }
}

// ---------------------------------------------------------------- sshd log level

/**
 * sshd_config takes the first value of a keyword, and the fixture writes `LogLevel VERBOSE` before
 * `extraConfig`, so `extraConfig: ['LogLevel DEBUG1']` cannot raise it. VERBOSE does not log the
 * negotiated cipher; DEBUG1 does ("kex: client->server cipher: ..."). So rewrite the running sshd's
 * config file and SIGHUP it: sshd re-execs itself (same pid, same stderr) with the new config.
 */
async function sshdDebugLogging(sshd: Sshd, pid: number): Promise<void> {
  const configPath = path.join(sshd.dir, 'sshd_config');
  const config = fs.readFileSync(configPath, 'utf8');
  fs.writeFileSync(configPath, /^LogLevel /m.test(config) ? config.replace(/^LogLevel .*$/m, 'LogLevel DEBUG1') : `LogLevel DEBUG1\n${config}`);
  const from = sshd.logs().length;
  process.kill(pid, 'SIGHUP');
  const line = `Server listening on ${HOST} port ${sshd.port}`;
  const until = Date.now() + 10_000;
  while (!sshd.logs().slice(from).includes(line)) {
    if (Date.now() > until) throw new Error(`sshd did not come back after SIGHUP:\n${sshd.logs().slice(from)}`);
    await sleep(10);
  }
}

// ---------------------------------------------------------------- one session

interface Bulk extends Transfer {
  cpuSeconds: number;
  cpuSecondsPerGiB: number;
  sshdCpuSecondsPerGiB: number;
}

interface RoundSample {
  round: number;
  tool: ToolName;
  cipher: string;
  startupMs: number;
  rssKiB: number;
  pingUs: number[];
  connectUs: number[];
  upload: Bulk;
  download: Bulk;
}

async function measuredBulk(run: Running, sshdListener: number, fn: () => Promise<Transfer>): Promise<Bulk> {
  const cpu0 = cpuSeconds(run.pid);
  const sshd0 = sshdSessionCpu(sshdListener);
  const t = await fn();
  const cpu = cpuSeconds(run.pid) - cpu0;
  const sshdCpu = sshdCpuDelta(sshd0, sshdSessionCpu(sshdListener));
  const gib = t.bytes / GIB;
  return { ...t, cpuSeconds: cpu, cpuSecondsPerGiB: cpu / gib, sshdCpuSecondsPerGiB: sshdCpu / gib };
}

async function session(round: number, tool: ToolName, sshd: Sshd, sshdListener: number, targets: Targets, opts: Options): Promise<RoundSample> {
  const run = await launch(tool, sshd, targets, opts);
  try {
    const bytes = opts.sizeMiB * MIB;
    const bulkMs = 120_000 + bytes / 5_000; // generous: 5 MB/s would still finish
    const warm = Math.min(bytes, 16 * MIB);
    await sleep(500); // let startup settle before reading the idle footprint
    const rss = rssKiB(run.pid);

    await deadline(pingPong(run.ports.echo, 100), 30_000, 'ping-pong warm-up');
    const pingUs = await deadline(pingPong(run.ports.echo, opts.pings), 120_000, 'ping-pong');
    await newConnections(run.ports.echo, 10);
    const connectUs = await newConnections(run.ports.echo, opts.conns);

    await deadline(upload(run.ports.sink, warm, targets), bulkMs, 'upload warm-up');
    await deadline(download(run.ports.source, warm), bulkMs, 'download warm-up');
    const up = await measuredBulk(run, sshdListener, () => deadline(upload(run.ports.sink, bytes, targets), bulkMs, 'upload'));
    const down = await measuredBulk(run, sshdListener, () => deadline(download(run.ports.source, bytes), bulkMs, 'download'));

    const cipher =
      run.cipher.clientToServer === run.cipher.serverToClient
        ? run.cipher.clientToServer
        : `${run.cipher.clientToServer} / ${run.cipher.serverToClient}`;
    const sample: RoundSample = { round, tool, cipher, startupMs: run.startupMs, rssKiB: rss, pingUs, connectUs, upload: up, download: down };
    process.stderr.write(
      `  round ${round} ${LABEL[tool].padEnd(7)} up ${up.mbps.toFixed(0)} MB/s, down ${down.mbps.toFixed(0)} MB/s, ` +
        `ping ${median(pingUs).toFixed(0)} µs, connect ${median(connectUs).toFixed(0)} µs, ` +
        `cpu ${up.cpuSecondsPerGiB.toFixed(2)}/${down.cpuSecondsPerGiB.toFixed(2)} s/GiB, rss ${(rss / 1024).toFixed(1)} MiB, ${cipher}\n`,
    );
    return sample;
  } finally {
    await run.stop();
  }
}

// ---------------------------------------------------------------- report

interface Row {
  metric: string;
  unit: string;
  higherIsBetter: boolean;
  sshkeep: number;
  ssh: number;
  ratio: number;
  digits: number;
}

function summarize(samples: RoundSample[]): Row[] {
  const of = (tool: ToolName) => samples.filter((s) => s.tool === tool);
  const rows: Row[] = [];
  const add = (metric: string, unit: string, higherIsBetter: boolean, digits: number, f: (xs: RoundSample[]) => number) => {
    const a = f(of('sshkeep'));
    const b = f(of('ssh'));
    rows.push({ metric, unit, higherIsBetter, sshkeep: a, ssh: b, ratio: a / b, digits });
  };
  const perRound = (g: (s: RoundSample) => number) => (xs: RoundSample[]) => median(xs.map(g));
  const pooled = (g: (s: RoundSample) => number[], p: number) => (xs: RoundSample[]) => quantile(xs.flatMap(g), p);
  add('Upload throughput', 'MB/s', true, 0, perRound((s) => s.upload.mbps));
  add('Download throughput', 'MB/s', true, 0, perRound((s) => s.download.mbps));
  add('Ping-pong RTT, median', 'µs', false, 0, pooled((s) => s.pingUs, 0.5));
  add('Ping-pong RTT, p99', 'µs', false, 0, pooled((s) => s.pingUs, 0.99));
  add('New connection + first echo, median', 'µs', false, 0, pooled((s) => s.connectUs, 0.5));
  add('New connection + first echo, p99', 'µs', false, 0, pooled((s) => s.connectUs, 0.99));
  add('Forwarder CPU, upload', 's/GiB', false, 2, perRound((s) => s.upload.cpuSecondsPerGiB));
  add('Forwarder CPU, download', 's/GiB', false, 2, perRound((s) => s.download.cpuSecondsPerGiB));
  add('sshd session CPU, upload (server side, for reference)', 's/GiB', false, 2, perRound((s) => s.upload.sshdCpuSecondsPerGiB));
  add('sshd session CPU, download (server side, for reference)', 's/GiB', false, 2, perRound((s) => s.download.sshdCpuSecondsPerGiB));
  add('RSS idle (tunnel up)', 'MiB', false, 1, perRound((s) => s.rssKiB / 1024));
  add('Startup: spawn → first echo', 'ms', false, 0, perRound((s) => s.startupMs));
  return rows;
}

function verdict(r: Row): string {
  if (!Number.isFinite(r.ratio)) return 'n/a';
  const better = r.higherIsBetter ? r.ratio > 1 : r.ratio < 1;
  if (Math.abs(r.ratio - 1) < 0.03) return 'about equal';
  const factor = r.ratio >= 1 ? r.ratio : 1 / r.ratio;
  const how = r.higherIsBetter ? (better ? 'faster' : 'slower') : r.unit === 'MiB' ? (better ? 'smaller' : 'larger') : better ? (r.unit === 's/GiB' ? 'cheaper' : 'faster') : r.unit === 's/GiB' ? 'costlier' : 'slower';
  return `${factor.toFixed(2)}× ${how}`;
}

function markdown(rows: Row[], header: Array<[string, string]>): string {
  const lines: string[] = ['## sshkeep vs OpenSSH `ssh -N -L`', ''];
  for (const [k, v] of header) lines.push(`- **${k}:** ${v}`);
  lines.push('', '| metric | sshkeep (median) | ssh -L (median) | ratio sshkeep/ssh | sshkeep is |', '|---|---:|---:|---:|---|');
  for (const r of rows) {
    const fmt = (x: number) => (Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: r.digits, maximumFractionDigits: r.digits }) : 'n/a');
    lines.push(`| ${r.metric} (${r.unit}, ${r.higherIsBetter ? 'higher' : 'lower'} is better) | ${fmt(r.sshkeep)} | ${fmt(r.ssh)} | ${Number.isFinite(r.ratio) ? r.ratio.toFixed(2) : 'n/a'} | ${verdict(r)} |`);
  }
  lines.push(
    '',
    'Throughput: median of per-round MB/s (10^6 bytes/s, first to last byte at the receiver). Latencies: median/p99 over all ' +
      'samples of all rounds. CPU: utime+stime of the forwarder process (/proc/PID/stat) over each measured transfer. ' +
      'RSS: VmRSS 0.5 s after the first echo through the tunnel.',
    '',
  );
  return lines.join('\n');
}

// ---------------------------------------------------------------- environment

function ssh2Info(): { version: string; binding: string; supported: string[]; defaults: string[] } {
  const req = createRequire(path.join(ROOT, 'package.json'));
  let version = 'unknown';
  try {
    version = (req('ssh2/package.json') as { version: string }).version;
  } catch {}
  let binding: string;
  try {
    const crypto = req('ssh2/lib/protocol/crypto.js') as { bindingAvailable?: boolean };
    const nodeFile = path.join(path.dirname(req.resolve('ssh2/lib/protocol/crypto.js')), 'crypto', 'build', 'Release', 'sshcrypto.node');
    binding = crypto.bindingAvailable
      ? `loaded (ssh2 ${version}, ${path.relative(ROOT, nodeFile)})`
      : `NOT loaded (ssh2 ${version} falls back to pure JS; ChaCha20 roughly halves)`;
  } catch (err) {
    binding = `unknown (${(err as Error).message})`;
  }
  let supported: string[] = [];
  let defaults: string[] = [];
  try {
    const c = req('ssh2/lib/protocol/constants.js') as { SUPPORTED_CIPHER?: string[]; DEFAULT_CIPHER?: string[] };
    supported = c.SUPPORTED_CIPHER ?? [];
    defaults = c.DEFAULT_CIPHER ?? [];
  } catch {}
  return { version, binding, supported, defaults };
}

// ---------------------------------------------------------------- main

let cleanupPromise: Promise<void> | undefined;
let sshdRef: Sshd | undefined;
let targetsRef: Targets | undefined;

function cleanup(): Promise<void> {
  return (cleanupPromise ??= (async () => {
    for (const c of live) {
      c.kill('SIGTERM');
      killGroup(c, 'SIGKILL');
    }
    await Promise.allSettled([sshdRef?.stop(), targetsRef?.close()]);
  })());
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  if (!fs.existsSync(CLI)) throw new Error(`${path.relative(process.cwd(), CLI)} is missing: run npm run build first`);
  const ssh2 = ssh2Info();
  if (opts.cipher && ssh2.supported.length && !ssh2.supported.includes(opts.cipher)) {
    throw new Error(`ssh2 ${ssh2.version} does not support ${opts.cipher}; it supports ${ssh2.supported.join(', ')}`);
  }
  const stale = newestMtime(path.join(ROOT, 'src')) > fs.statSync(CLI).mtimeMs;
  const loadBefore = os.loadavg();

  sshdRef = await startSshd(undefined, { extraConfig: opts.cipher ? [`Ciphers ${opts.cipher}`] : [] });
  const sshdListener = await sshdPid(sshdRef);
  await sshdDebugLogging(sshdRef, sshdListener);
  targetsRef = await startTargets();
  const sshd = sshdRef;
  const targets = targetsRef;
  process.stderr.write(`sshd on ${HOST}:${sshd.port}; ${opts.rounds} round(s), ${opts.sizeMiB} MiB each way, cipher ${opts.cipher ?? 'tool defaults'}\n`);

  const samples: RoundSample[] = [];
  for (let round = 1; round <= opts.rounds; round++) {
    for (const tool of TOOLS) samples.push(await session(round, tool, sshd, sshdListener, targets, opts));
  }

  const rows = summarize(samples);
  const ciphers = (tool: ToolName) => [...new Set(samples.filter((s) => s.tool === tool).map((s) => s.cipher))].join(', ');
  const cmdline = ['node', ...process.execArgv, path.relative(process.cwd(), process.argv[1]!), ...process.argv.slice(2)].join(' ');
  const header: Array<[string, string]> = [
    ['date', new Date().toISOString()],
    ['command', `\`${cmdline}\``],
    ['machine', `nproc ${sh('nproc', [])}, ${cpuModel()}, load avg before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`],
    ['node', process.version],
    ['OpenSSH', sshVersion()],
    ['ssh2 native crypto binding', ssh2.binding],
    ['cipher mode', opts.cipher ? `same cipher: sshd restricted to \`Ciphers ${opts.cipher}\`, ssh given \`-c ${opts.cipher}\`` : 'each tool\'s own default'],
    ['negotiated cipher (from sshd log)', `sshkeep: ${ciphers('sshkeep')}; ssh -L: ${ciphers('ssh')}`],
    ['workload', `${opts.rounds} rounds, A/B alternating (sshkeep, ssh), fresh process each; ${opts.sizeMiB} MiB up + down per round; ${opts.pings} ping-pongs; ${opts.conns} new connections; sshd LogLevel DEBUG1 (for the cipher lines); CLK_TCK ${CLK_TCK}`],
  ];
  if (stale) header.push(['warning', 'dist/ is older than src/: run npm run build']);
  process.stdout.write(markdown(rows, header));

  if (opts.json) {
    const json = {
      meta: Object.fromEntries(header),
      options: opts,
      ssh2: { version: ssh2.version, binding: ssh2.binding, defaultCiphers: ssh2.defaults },
      summary: rows,
      samples,
    };
    fs.writeFileSync(opts.json, JSON.stringify(json, null, 2) + '\n');
    process.stderr.write(`wrote ${opts.json}\n`);
  }
}

runMain('bench', main, cleanup);
