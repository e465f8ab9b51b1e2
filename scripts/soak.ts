/**
 * Soak test (issue 7, "Faults over a long run"): sshkeep as a CLI child process, its SSH connection going
 * through a fault relay (test/fixtures/relay.ts) to a real OpenSSH sshd (test/fixtures/sshd.ts), carrying
 * mixed traffic to local targets for --duration while a fault chosen at random (seeded) hits every 20–40 s.
 *
 *   npm run soak -- [--duration 10m] [--seed N] [--json] [--fault-every 20s-40s] [--faults a,b,…]
 *                   [--bulk-size 1MiB-8MiB] [--bulk-rate 4MiB] [--uploads 2] [--downloads 2] [--echoes 4] [--idle 8]
 *                   [--grace 25s] [--stall 60s] [--drain 60s] [--sample-every 5s] [--keep-logs DIR] [--cli PATH]
 *
 * Traffic, all through sshkeep's -L forwards:
 *   - uploads: random data to a sink that answers "<bytes> <sha256>" after the client's EOF; compared;
 *   - downloads: "<size>\n" to a source that sends that many random bytes then their sha256; compared;
 *   - echoes: many short connections, a few KiB echoed back, compared;
 *   - idle: connections opened, one echo, left idle; one more echo at the end of the run.
 * Faults: blackhole (2–6 s, then the held bytes flow), drop-existing (a NAT forgets the flows), reset (the relay
 * resets every flow and refuses new ones for 1–3 s), sshd restart, sshd SIGSTOP (2–6 s). Each one's window is recorded.
 *
 * Integrity (exit 1 on any failure): every stream that completed has the right hash/echo; no stream ends with a clean
 * EOF before it is complete (a cut stream must look cut); every reset (or other error) overlaps a fault window
 * [start, end + grace]; no stream stalls (no progress for --stall) or is still unfinished --drain after the run; every
 * idle connection still open answers its last echo; sshkeep stays up, is ready again after the run and exits 0 on SIGTERM.
 *
 * Also reported: held connections served / timed out (sshkeep's debug `accept` lines carry the tunnel state; its
 * `conn_end` lines and /metrics the outcome), and sshkeep's RSS and fd count every --sample-every, with a trend flag.
 * Markdown on stdout (JSON with --json), progress on stderr. Every process is cleaned up on exit, error and SIGINT.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startSshd, type Sshd } from '../test/fixtures/sshd.js';
import { Relay } from '../test/fixtures/relay.js';
import { startEcho } from '../test/fixtures/net.js';
import { shebangNodeArgs } from '../test/fixtures/bin.js';
import { parseDuration } from '../src/config/duration.js';
import { parseSize } from '../src/config/size.js';
import { HOST, childEnv, cpuModel, isEntryPoint, killGroup, listen, newestMtime, runMain, sh, sshVersion, watchExit } from './lib/common.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DEFAULT_CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const CHUNK = 64 * 1024;

// ---------------------------------------------------------------- options

export const FAULT_KINDS = ['blackhole', 'drop-existing', 'reset', 'sshd-restart', 'sshd-stop'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface SoakOptions {
  durationMs: number;
  /** Pause between the end of one fault and the start of the next, drawn uniformly from [min, max]. */
  faultEveryMs: [number, number];
  faults: FaultKind[];
  seed: number;
  bulkSize: [number, number];
  /** Bytes per second per bulk stream; 0 = as fast as it goes. */
  bulkRate: number;
  uploads: number;
  downloads: number;
  echoes: number;
  idle: number;
  /** A reset this long after a fault's end is still that fault's. */
  graceMs: number;
  /** A stream that makes no progress this long is stalled (a failure). */
  stallMs: number;
  /** After the run, how long in-flight streams get to finish. */
  drainMs: number;
  /** No fault may end later than this before the end of the run. */
  quietTailMs: number;
  sampleEveryMs: number;
  cli: string;
  /** Keep sshkeep's log (and sshd's) in this directory. */
  keepLogs: string | undefined;
  json: boolean;
  failOnGrowth: boolean;
}

export const DEFAULT_OPTIONS: SoakOptions = {
  durationMs: 10 * 60_000,
  faultEveryMs: [20_000, 40_000],
  faults: [...FAULT_KINDS],
  seed: 0,
  bulkSize: [1024 ** 2, 8 * 1024 ** 2],
  bulkRate: 4 * 1024 ** 2,
  uploads: 2,
  downloads: 2,
  echoes: 4,
  idle: 8,
  // 2 s keepalive interval + a probe deadline (≤ 10 s) to suspect a silent link, + the old link's last-chance
  // deadline (≤ 10 s) after a spare took over, before its streams are reset.
  graceMs: 25_000,
  // Past the 30 s hold timeout plus a 10 s channel-open timeout.
  stallMs: 60_000,
  drainMs: 60_000,
  quietTailMs: 0,
  sampleEveryMs: 5_000,
  cli: DEFAULT_CLI,
  keepLogs: undefined,
  json: false,
  failOnGrowth: false,
};

const USAGE = `usage: npm run soak -- [options]
  --duration D         how long traffic and faults run (default 10m; 60s for a CI-like run)
  --seed N             seed of the fault schedule and traffic sizes (default: time-based, printed)
  --fault-every A-B    pause between faults, uniform in [A, B] (default 20s-40s)
  --faults LIST        comma-separated subset of ${FAULT_KINDS.join(',')} (default: all)
  --bulk-size A-B      size of each upload/download (default 1MiB-8MiB)
  --bulk-rate R        bytes/s per bulk stream, 0 = unpaced (default 4MiB)
  --uploads N --downloads N --echoes N --idle N   concurrent workers (default 2, 2, 4, 8)
  --grace D            a reset this long after a fault still belongs to it (default 25s)
  --stall D            no progress this long is a stall (default 60s)
  --drain D            time in-flight streams get after the run (default 60s)
  --sample-every D     RSS/fd sampling period (default 5s)
  --keep-logs DIR      keep sshkeep's JSON log and sshd's log there
  --cli PATH           sshkeep entry point (default dist/cli/main.js)
  --json               JSON report on stdout instead of Markdown
  --fail-on-growth     exit 1 also when RSS or fds show a growth trend
`;

function range(text: string, what: string, parse: (s: string, w: string) => number): [number, number] {
  const [a, b = a] = text.split(/-(?=\s*\d)/).map((s) => parse(s.trim(), what)) as [number, number?];
  if (b < a) throw new Error(`${what}: ${text}: the upper bound is below the lower one`);
  return [a, b];
}

export function parseOptions(argv: string[]): SoakOptions | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string' },
      seed: { type: 'string' },
      'fault-every': { type: 'string' },
      faults: { type: 'string' },
      'bulk-size': { type: 'string' },
      'bulk-rate': { type: 'string' },
      uploads: { type: 'string' },
      downloads: { type: 'string' },
      echoes: { type: 'string' },
      idle: { type: 'string' },
      grace: { type: 'string' },
      stall: { type: 'string' },
      drain: { type: 'string' },
      'sample-every': { type: 'string' },
      'keep-logs': { type: 'string' },
      cli: { type: 'string' },
      json: { type: 'boolean', default: false },
      'fail-on-growth': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return null;
  const o: SoakOptions = { ...DEFAULT_OPTIONS, faults: [...DEFAULT_OPTIONS.faults], seed: (Date.now() ^ process.pid) >>> 0 };
  const dur = (v: string | undefined, what: string, dflt: number) => (v === undefined ? dflt : parseDuration(v, what));
  const count = (v: string | undefined, what: string, dflt: number) => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${what}: "${v}" must be a whole number >= 0`);
    return n;
  };
  o.durationMs = dur(values.duration, '--duration', o.durationMs);
  if (values.seed !== undefined) {
    const n = Number(values.seed);
    if (!Number.isInteger(n)) throw new Error(`--seed: "${values.seed}" must be an integer`);
    o.seed = n >>> 0;
  }
  if (values['fault-every'] !== undefined) o.faultEveryMs = range(values['fault-every'], '--fault-every', parseDuration);
  if (values.faults !== undefined) {
    const list = values.faults.split(',').map((s) => s.trim()).filter(Boolean);
    for (const f of list) if (!(FAULT_KINDS as readonly string[]).includes(f)) throw new Error(`--faults: unknown fault "${f}" (known: ${FAULT_KINDS.join(', ')})`);
    o.faults = list as FaultKind[];
  }
  if (values['bulk-size'] !== undefined) o.bulkSize = range(values['bulk-size'], '--bulk-size', parseSize);
  if (values['bulk-rate'] !== undefined) o.bulkRate = parseSize(values['bulk-rate'], '--bulk-rate');
  o.uploads = count(values.uploads, '--uploads', o.uploads);
  o.downloads = count(values.downloads, '--downloads', o.downloads);
  o.echoes = count(values.echoes, '--echoes', o.echoes);
  o.idle = count(values.idle, '--idle', o.idle);
  o.graceMs = dur(values.grace, '--grace', o.graceMs);
  o.stallMs = dur(values.stall, '--stall', o.stallMs);
  o.drainMs = dur(values.drain, '--drain', o.drainMs);
  o.sampleEveryMs = dur(values['sample-every'], '--sample-every', o.sampleEveryMs);
  if (o.sampleEveryMs <= 0) throw new Error('--sample-every must be > 0');
  o.keepLogs = values['keep-logs'];
  o.cli = path.resolve(values.cli ?? DEFAULT_CLI);
  o.json = values.json ?? false;
  o.failOnGrowth = values['fail-on-growth'] ?? false;
  return o;
}

// ---------------------------------------------------------------- small helpers

/** mulberry32: a small seeded PRNG, [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const uniform = (rnd: () => number, [a, b]: [number, number]) => Math.round(a + rnd() * (b - a));

/** A sleep that ends early (resolving) when `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal?.addEventListener('abort', done, { once: true });
  });
}

function waitDrainOrClose(sock: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      sock.off('drain', done);
      sock.off('close', done);
      resolve();
    };
    sock.on('drain', done);
    sock.on('close', done);
  });
}

function httpGet(port: number, urlPath: string, timeoutMs = 5_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: HOST, port, path: urlPath, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** Sums a Prometheus counter's samples by one label. */
function sumByLabel(metricsText: string, metric: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of metricsText.split('\n')) {
    if (!line.startsWith(`${metric}{`)) continue;
    const m = new RegExp(`${label}="([^"]*)"`).exec(line);
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (m && Number.isFinite(v)) out[m[1]!] = (out[m[1]!] ?? 0) + v;
  }
  return out;
}

function rssKiB(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function fdCount(pid: number): number | undefined {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
}

/**
 * Whether Linux still lists a TCP connection between these two loopback ports, in either direction
 * (ESTABLISHED, CLOSE_WAIT, FIN_WAIT*, TIME_WAIT, LAST_ACK…): true after an orderly FIN exchange, false after
 * a reset (both ends are then gone at once, with no TIME_WAIT). undefined where /proc/net/tcp is not readable.
 *
 * Needed because a Node client cannot tell: when an RST arrives with data still unread, libuv's POLLHUP
 * short-cut reports EOF ('end') instead of ECONNRESET about half of the time.
 */
export function tcpPairListed(portA: number, portB: number): boolean | undefined {
  const hex = (p: number) => `:${p.toString(16).toUpperCase().padStart(4, '0')}`;
  const [a, b] = [hex(portA), hex(portB)];
  let readable = false;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    readable = true;
    for (const line of text.split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f.length < 4) continue;
      if ((f[1]!.endsWith(a) && f[2]!.endsWith(b)) || (f[1]!.endsWith(b) && f[2]!.endsWith(a))) return true;
    }
  }
  return readable ? false : undefined;
}

function signalAll(pids: Iterable<number>, sig: NodeJS.Signals): void {
  for (const p of pids) {
    try {
      process.kill(p, sig);
    } catch {}
  }
}

// ---------------------------------------------------------------- targets

interface Targets {
  sink: net.Server;
  source: net.Server;
  ports: { sink: number; source: number; echo: number };
  close(): Promise<void>;
}

/** The sink hashes what it receives and, at the client's EOF, answers "<bytes> <sha256 hex>\n". */
function sinkServer(sockets: Set<net.Socket>): net.Server {
  return net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    const hash = createHash('sha256');
    let n = 0;
    s.on('data', (c: Buffer) => {
      hash.update(c);
      n += c.length;
    });
    s.on('end', () => s.end(`${n} ${hash.digest('hex')}\n`));
  });
}

/** The source reads "<size>\n", sends that many random bytes (paced at `rate`), then their sha256 hex (64 bytes), then EOF. */
function sourceServer(sockets: Set<net.Socket>, rate: number): net.Server {
  return net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let header = '';
    const onData = (c: Buffer) => {
      header += c.toString('latin1');
      const nl = header.indexOf('\n');
      if (nl < 0) {
        if (header.length > 32) s.destroy();
        return;
      }
      s.off('data', onData);
      s.resume(); // the client's EOF must still be read
      const size = Number(header.slice(0, nl));
      if (!Number.isSafeInteger(size) || size < 0) return void s.destroy();
      void (async () => {
        const hash = createHash('sha256');
        const started = performance.now();
        let sent = 0;
        while (sent < size && !s.destroyed) {
          const chunk = randomBytes(Math.min(CHUNK, size - sent));
          hash.update(chunk);
          sent += chunk.length;
          if (!s.write(chunk)) await waitDrainOrClose(s);
          if (rate > 0) {
            const due = started + (sent / rate) * 1000;
            const wait = due - performance.now();
            if (wait > 1) await sleep(wait);
          }
        }
        if (!s.destroyed) s.end(hash.digest('hex'));
      })();
    };
    s.on('data', onData);
  });
}

async function startTargets(rate: number): Promise<Targets> {
  const sockets = new Set<net.Socket>();
  const sink = sinkServer(sockets);
  const source = sourceServer(sockets, rate);
  const echo = await startEcho();
  const ports = { sink: await listen(sink), source: await listen(source), echo: echo.port };
  return {
    sink,
    source,
    ports,
    async close() {
      for (const s of sockets) s.destroy();
      await Promise.allSettled([
        new Promise<void>((r) => sink.close(() => r())),
        new Promise<void>((r) => source.close(() => r())),
        echo.close(),
      ]);
    },
  };
}

// ---------------------------------------------------------------- streams

export type StreamKind = 'upload' | 'download' | 'echo' | 'idle';
/**
 * ok: complete and verified. corrupt: complete (clean EOF) but wrong hash/bytes. truncated: a clean EOF before
 * the stream was complete. reset: ECONNRESET/EPIPE. error: any other socket error (refused, …). stalled: no
 * progress for --stall. unfinished: still running --drain after the run.
 */
export type Outcome = 'ok' | 'corrupt' | 'truncated' | 'reset' | 'error' | 'stalled' | 'unfinished';
const OUTCOMES: Outcome[] = ['ok', 'corrupt', 'truncated', 'reset', 'error', 'stalled', 'unfinished'];

export interface StreamRecord {
  id: number;
  kind: StreamKind;
  /** Payload bytes (upload/download/echo). */
  size: number;
  /** ms since the start of the run. */
  startMs: number;
  endMs: number;
  outcome: Outcome;
  detail?: string;
  localPort?: number;
  /** sshkeep's side, from its log: the connection id, whether it was held, how sshkeep ended it. */
  conn?: number;
  held?: boolean;
  sshkeepEnd?: string;
  /** For a reset/error: the fault (index) whose window it overlaps. */
  fault?: number;
}

interface Active {
  rec: StreamRecord;
  lastProgress: number;
  /** Idle connections are not expected to progress while idle. */
  idle: boolean;
  settle(outcome: Outcome, detail?: string): void;
}

interface StreamCtl {
  readonly settled: boolean;
  progress(): void;
  settle(outcome: Outcome, detail?: string): void;
  setIdle(idle: boolean): void;
}

// ---------------------------------------------------------------- sshkeep's log

interface ConnInfo {
  held: boolean;
  acceptAt: number;
  end?: { side: string; reason: string; reset: boolean; pumped: boolean };
}

interface LogState {
  listens: Array<{ forward: string; address: string; port: number }>;
  health?: { address: string; port: number };
  states: Array<{ atMs: number; from: string; to: string; reason: string }>;
  conns: Map<number, ConnInfo>;
  /** Client port → the latest connection id sshkeep accepted from it. */
  byPort: Map<number, number>;
  events: Record<string, number>;
  warnings: number;
  errors: Array<{ atMs: number; msg: string }>;
}

// ---------------------------------------------------------------- report types

export interface FaultRecord {
  index: number;
  kind: FaultKind;
  startMs: number;
  endMs: number;
  detail: string;
}

export interface SeriesSummary {
  first: number;
  max: number;
  last: number;
  /** The trend (slope, thirds, growth) is over the samples from here on: the warm-up is left out. */
  trendFromMs: number;
  slopePerMin: number;
  firstThirdMedian: number;
  lastThirdMedian: number;
  growth: boolean;
}

export interface SoakReport {
  meta: Record<string, string>;
  options: SoakOptions;
  pass: boolean;
  failures: string[];
  streams: Record<StreamKind, Record<Outcome, number> & { started: number; bytesVerified: number }>;
  /** seenAsEof: resets the Node client saw as a clean EOF (libuv), told apart through /proc/net/tcp. */
  resets: { explained: number; unexplained: number; seenAsEof: number };
  completed: { total: number; matching: number };
  held: { held: number; served: number; timedOutLog: number; timedOutMetrics: number | undefined; clientLeft: number; other: number; open: number };
  faults: FaultRecord[];
  faultEffects: Array<{ index: number; streamsReset: number; states: string[] }>;
  states: Array<{ atMs: number; from: string; to: string; reason: string }>;
  /** Non-ok, non-reset records and unexplained ones, in full; the rest are counted. */
  problems: StreamRecord[];
  /** A sample of explained resets (up to 50), for the curious. */
  resetSamples: StreamRecord[];
  resources: {
    samples: Array<{ atMs: number; rssKiB: number; fds: number }>;
    rssMiB: SeriesSummary | undefined;
    fds: SeriesSummary | undefined;
  };
  metrics: { connectionsTotal: Record<string, number>; reconnects: number | undefined } | undefined;
  sshkeepExit: string | undefined;
  logEvents: Record<string, number>;
  durationMs: number;
}

/**
 * first/max/last over every point; the least-squares slope (per minute) and the growth trend (median of the last
 * third > 1.2 × median of the first third) over the points from `trendFromMs` on (a warm-up excluded), or over all
 * of them when fewer than 3 are left.
 */
export function summarize(all: Array<{ atMs: number; v: number }>, trendFromMs = 0): SeriesSummary | undefined {
  if (all.length === 0) return undefined;
  const late = all.filter((p) => p.atMs >= trendFromMs);
  const points = late.length >= 3 ? late : all;
  const xs = points.map((p) => p.atMs / 60_000);
  const ys = points.map((p) => p.v);
  const n = points.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i]! - mx) * (ys[i]! - my);
    sxx += (xs[i]! - mx) ** 2;
  }
  const median = (a: number[]) => {
    const s = [...a].sort((x, y) => x - y);
    return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  const third = Math.max(1, Math.floor(n / 3));
  const firstThirdMedian = median(ys.slice(0, third));
  const lastThirdMedian = median(ys.slice(n - third));
  const vs = all.map((p) => p.v);
  return {
    first: vs[0]!,
    max: Math.max(...vs),
    last: vs[vs.length - 1]!,
    trendFromMs: points[0]!.atMs,
    slopePerMin: sxx === 0 ? 0 : sxy / sxx,
    firstThirdMedian,
    lastThirdMedian,
    growth: n >= 3 && lastThirdMedian > firstThirdMedian * 1.2,
  };
}

/** The fault whose window [start, end + grace] the stream's life [start, end] overlaps (the latest such), if any. */
export function explainingFault(rec: { startMs: number; endMs: number }, faults: FaultRecord[], graceMs: number): FaultRecord | undefined {
  let found: FaultRecord | undefined;
  for (const f of faults) if (f.startMs <= rec.endMs && rec.startMs <= f.endMs + graceMs) found = f;
  return found;
}

// ---------------------------------------------------------------- the run

export interface SoakHooks {
  /** Progress lines (default: stderr). */
  progress?: (line: string) => void;
}

/** What a run started, so a SIGINT can clean it up. */
const runs = new Set<() => Promise<void>>();

export async function cleanupAll(): Promise<void> {
  await Promise.allSettled([...runs].map((c) => c()));
}

export async function runSoak(opts: SoakOptions, hooks: SoakHooks = {}): Promise<SoakReport> {
  const progressOut = hooks.progress ?? ((l: string) => process.stderr.write(`${l}\n`));
  if (!fs.existsSync(opts.cli)) throw new Error(`${opts.cli} is missing: run npm run build first`);
  const wallStart = Date.now();
  const t0 = performance.now();
  const at = () => Math.round(performance.now() - t0);
  const progress = (s: string) => progressOut(`[${(at() / 1000).toFixed(0).padStart(4)} s] ${s}`);
  const faultRnd = prng(opts.seed);
  const trafficRnd = prng(opts.seed ^ 0x9e3779b9);

  const failures: string[] = [];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sshkeep-soak-'));
  let sshd: Sshd | undefined;
  let relay: Relay | undefined;
  let targets: Targets | undefined;
  let stoppedPids = new Set<number>();
  const liveChildren = new Set<ChildProcess>();
  const clientSockets = new Set<net.Socket>();
  let logStream: fs.WriteStream | undefined;

  /** Timers and loops to end whatever way the run ends. */
  const disposers: Array<() => void> = [];
  let cleaned: Promise<void> | undefined;
  const cleanup = () =>
    (cleaned ??= (async () => {
      for (const d of disposers.splice(0)) d();
      signalAll(stoppedPids, 'SIGCONT');
      for (const c of liveChildren) {
        killGroup(c, 'SIGCONT');
        killGroup(c, 'SIGKILL');
      }
      for (const s of clientSockets) s.destroy();
      await Promise.allSettled([relay?.close(), targets?.close()]);
      if (sshd && opts.keepLogs) {
        try {
          fs.mkdirSync(opts.keepLogs, { recursive: true });
          fs.writeFileSync(path.join(opts.keepLogs, 'sshd.log'), sshd.logs());
        } catch {}
      }
      await sshd?.stop().catch(() => {});
      await new Promise<void>((r) => (logStream ? logStream.end(() => r()) : r()));
      fs.rmSync(tmp, { recursive: true, force: true });
    })());
  runs.add(cleanup);

  try {
    // ---- infrastructure
    sshd = await startSshd();
    relay = await new Relay(sshd.port).listen();
    fs.appendFileSync(sshd.knownHostsPath, `[${HOST}]:${relay.port} ${sshd.hostPublicKey}\n`);
    targets = await startTargets(opts.bulkRate);
    const { ports } = targets;
    progress(`sshd on ${sshd.port}, relay on ${relay.port}; targets sink ${ports.sink}, source ${ports.source}, echo ${ports.echo}; seed ${opts.seed}`);

    // ---- sshkeep
    const logFile = opts.keepLogs ? path.join(opts.keepLogs, 'sshkeep.log') : path.join(tmp, 'sshkeep.log');
    if (opts.keepLogs) fs.mkdirSync(opts.keepLogs, { recursive: true });
    logStream = fs.createWriteStream(logFile);
    const args = [
      ...shebangNodeArgs(opts.cli),
      opts.cli,
      '-F', 'none',
      '-i', sshd.userKeyPath,
      '-o', `UserKnownHostsFile=${sshd.knownHostsPath}`,
      '-o', 'GlobalKnownHostsFile=none',
      '-o', 'IdentitiesOnly=yes',
      '-p', String(relay.port),
      '-L', `0:${HOST}:${ports.sink}`,
      '-L', `0:${HOST}:${ports.source}`,
      '-L', `0:${HOST}:${ports.echo}`,
      '--keepalive-interval', '2s',
      '--health', `${HOST}:0`,
      '--log-format', 'json',
      '--log-level', 'debug',
      `${sshd.user}@${HOST}`,
    ];
    const proc = spawn(process.execPath, args, { detached: true, stdio: ['ignore', 'ignore', 'pipe'], env: childEnv() });
    liveChildren.add(proc);
    const { exited, info: exitInfo } = watchExit(proc, liveChildren);

    const log: LogState = { listens: [], states: [], conns: new Map(), byPort: new Map(), events: {}, warnings: 0, errors: [] };
    const logWaiters = new Set<() => void>();
    let partial = '';
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (s: string) => {
      logStream!.write(s);
      partial += s;
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        if (!line.startsWith('{')) continue;
        let l: Record<string, unknown>;
        try {
          l = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        takeLine(l);
      }
      for (const w of [...logWaiters]) w();
    });
    const takeLine = (l: Record<string, unknown>) => {
      const event = typeof l.event === 'string' ? l.event : '';
      if (event) log.events[event] = (log.events[event] ?? 0) + 1;
      if (l.level === 'warn') log.warnings++;
      if (l.level === 'error' && log.errors.length < 200) log.errors.push({ atMs: at(), msg: `${String(l.msg)}${l.error ? `: ${String(l.error)}` : ''}` });
      switch (event) {
        case 'listen':
          log.listens.push({ forward: String(l.forward), address: String(l.address), port: Number(l.port) });
          break;
        case 'health':
          log.health = { address: String(l.address), port: Number(l.port) };
          break;
        case 'state':
          log.states.push({ atMs: at(), from: String(l.from), to: String(l.to), reason: String(l.reason ?? '') });
          break;
        case 'accept': {
          const conn = Number(l.conn);
          const port = Number(String(l.client ?? '').split(':').pop());
          log.conns.set(conn, { held: l.state !== 'ready', acceptAt: at() });
          if (Number.isFinite(port)) log.byPort.set(port, conn);
          break;
        }
        case 'conn_end': {
          if (l.conn === undefined) break;
          const conn = Number(l.conn);
          const info = log.conns.get(conn) ?? { held: false, acceptAt: at() };
          info.end ??= { side: String(l.side ?? ''), reason: String(l.reason ?? ''), reset: l.reset === true, pumped: 'durationMs' in l };
          log.conns.set(conn, info);
          break;
        }
      }
    };
    const waitLog = (pred: () => boolean, ms: number, what: string) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (pred()) finish();
          else if (exitInfo()) finish(new Error(`sshkeep ${exitInfo()} before ${what}`));
        };
        const finish = (err?: Error) => {
          clearTimeout(timer);
          logWaiters.delete(check);
          if (err) reject(err);
          else resolve();
        };
        const timer = setTimeout(() => finish(new Error(`no ${what} within ${ms} ms`)), ms);
        logWaiters.add(check);
        void exited.then(() => logWaiters.has(check) && check()); // an exit without a last line
        check();
      });

    await waitLog(() => log.listens.length === 3 && log.health !== undefined, 20_000, 'listen and health lines');
    const portFor = (target: number) => {
      const l = log.listens.find((x) => x.forward.endsWith(`->${HOST}:${target}`));
      if (!l) throw new Error(`no listen line for the forward to ${target}: ${JSON.stringify(log.listens)}`);
      return l.port;
    };
    const fwd = { sink: portFor(ports.sink), source: portFor(ports.source), echo: portFor(ports.echo) };
    const healthPort = log.health!.port;
    const waitReady = async (ms: number): Promise<boolean> => {
      const until = performance.now() + ms;
      while (performance.now() < until && !exitInfo()) {
        const r = await httpGet(healthPort, '/readyz', 2_000).catch(() => undefined);
        if (r?.status === 200) return true;
        await sleep(100);
      }
      return false;
    };
    if (!(await waitReady(30_000))) throw new Error(`sshkeep not ready within 30 s (${exitInfo() ?? 'still running'})`);
    progress(`sshkeep ready (pid ${proc.pid}); forwards sink ${fwd.sink}, source ${fwd.source}, echo ${fwd.echo}; health ${healthPort}`);

    // ---- bookkeeping of streams
    const ctlRun = new AbortController();
    /** Aborted when the run ends (or sshkeep died): no new fault. */
    const stopCtl = new AbortController();
    setMaxListeners(0, ctlRun.signal, stopCtl.signal); // every worker's pause listens
    disposers.push(() => {
      stopping = true;
      ctlRun.abort();
    });
    ctlRun.signal.addEventListener('abort', () => stopCtl.abort(), { once: true });
    let stopping = false;
    let terminating = false;
    let terminatingAt = Infinity;
    const active = new Set<Active>();
    const counts = Object.fromEntries(
      (['upload', 'download', 'echo', 'idle'] as StreamKind[]).map((k) => [k, { started: 0, bytesVerified: 0, ...Object.fromEntries(OUTCOMES.map((o) => [o, 0])) }]),
    ) as SoakReport['streams'];
    const kept: StreamRecord[] = []; // every non-ok record (resets included)
    let resetSeenAsEof = 0;
    let seq = 0;

    const runStream = (kind: StreamKind, size: number, port: number, body: (s: net.Socket, ctl: StreamCtl) => void): Promise<StreamRecord> =>
      new Promise((resolve) => {
        const rec: StreamRecord = { id: ++seq, kind, size, startMs: at(), endMs: 0, outcome: 'ok' };
        counts[kind].started++;
        const sock = net.connect({ port, host: HOST, allowHalfOpen: true });
        sock.setNoDelay(true);
        clientSockets.add(sock);
        let settled = false;
        const a: Active = {
          rec,
          lastProgress: performance.now(),
          idle: false,
          settle: (outcome, detail) => {
            if (settled) return;
            settled = true;
            if (outcome === 'truncated' && rec.localPort !== undefined && tcpPairListed(rec.localPort, port) === false) {
              // No FIN exchange on record: sshkeep reset the stream and libuv reported the RST as EOF.
              outcome = 'reset';
              detail = `ECONNRESET seen as EOF by the Node client (${detail ?? ''}); no FIN exchange in /proc/net/tcp`;
              resetSeenAsEof++;
            }
            rec.endMs = at();
            rec.outcome = outcome;
            if (detail) rec.detail = detail;
            active.delete(a);
            clientSockets.delete(sock);
            sock.destroy();
            counts[kind][outcome]++;
            if (outcome === 'ok') counts[kind].bytesVerified += size;
            else kept.push(rec);
            resolve(rec);
          },
        };
        active.add(a);
        const ctl: StreamCtl = {
          get settled() {
            return settled;
          },
          progress: () => (a.lastProgress = performance.now()),
          settle: a.settle,
          setIdle: (idle) => {
            a.idle = idle;
            a.lastProgress = performance.now();
          },
        };
        sock.once('connect', () => {
          rec.localPort = sock.localPort;
          ctl.progress();
        });
        sock.on('error', (e: NodeJS.ErrnoException) => a.settle(e.code === 'ECONNRESET' || e.code === 'EPIPE' ? 'reset' : 'error', e.code ?? e.message));
        sock.on('close', () => a.settle('error', 'closed without an end or an error'));
        body(sock, ctl);
      });

    /** Writes `size` random bytes (paced), hashing them; resolves with the hash, or undefined if the stream ended first. */
    const writeRandom = async (sock: net.Socket, ctl: StreamCtl, size: number): Promise<string | undefined> => {
      const hash = createHash('sha256');
      const started = performance.now();
      let sent = 0;
      while (sent < size) {
        if (ctl.settled || sock.destroyed) return undefined;
        const chunk = randomBytes(Math.min(CHUNK, size - sent));
        hash.update(chunk);
        sent += chunk.length;
        if (!sock.write(chunk, (err) => err || ctl.progress())) await waitDrainOrClose(sock);
        if (opts.bulkRate > 0) {
          const wait = started + (sent / opts.bulkRate) * 1000 - performance.now();
          if (wait > 1) await sleep(wait);
        }
      }
      return hash.digest('hex');
    };

    const upload = (size: number) =>
      runStream('upload', size, fwd.sink, (sock, ctl) => {
        let reply = '';
        let digest: string | undefined;
        let wrote = false;
        sock.on('data', (c: Buffer) => {
          ctl.progress();
          reply += c.toString('latin1');
          if (reply.length > 200) ctl.settle('corrupt', `unexpected reply: ${JSON.stringify(reply.slice(0, 80))}…`);
        });
        sock.on('end', () => {
          if (!wrote) return ctl.settle('truncated', `clean EOF after ${reply.length} reply bytes, before the upload was written`);
          const m = /^(\d+) ([0-9a-f]{64})\n$/.exec(reply);
          if (!m) return ctl.settle(reply.endsWith('\n') ? 'corrupt' : 'truncated', `reply ${JSON.stringify(reply.slice(0, 100))}`);
          if (Number(m[1]) !== size || m[2] !== digest) return ctl.settle('corrupt', `sink got ${m[1]} bytes ${m[2]!.slice(0, 12)}…, sent ${size} bytes ${digest!.slice(0, 12)}…`);
          ctl.settle('ok');
        });
        sock.once('connect', () => {
          void writeRandom(sock, ctl, size).then((d) => {
            if (d === undefined || ctl.settled) return;
            digest = d;
            wrote = true;
            sock.end();
          });
        });
      });

    const download = (size: number) =>
      runStream('download', size, fwd.source, (sock, ctl) => {
        const hash = createHash('sha256');
        let got = 0;
        let trailer = '';
        sock.on('data', (c: Buffer) => {
          ctl.progress();
          const body = Math.max(0, Math.min(c.length, size - got));
          if (body > 0) hash.update(c.subarray(0, body));
          if (body < c.length) trailer += c.subarray(body).toString('latin1');
          got += c.length;
          if (got > size + 64) ctl.settle('corrupt', `${got - size - 64} bytes more than announced`);
        });
        sock.on('end', () => {
          if (got < size + 64) return ctl.settle('truncated', `clean EOF after ${got} of ${size + 64} bytes`);
          const mine = hash.digest('hex');
          if (trailer !== mine) return ctl.settle('corrupt', `announced ${trailer.slice(0, 12)}…, received data hashes to ${mine.slice(0, 12)}…`);
          ctl.settle('ok');
        });
        sock.once('connect', () => sock.end(`${size}\n`));
      });

    const echoOnce = (size: number) =>
      runStream('echo', size, fwd.echo, (sock, ctl) => {
        const payload = randomBytes(size);
        const got: Buffer[] = [];
        let n = 0;
        sock.on('data', (c: Buffer) => {
          ctl.progress();
          got.push(c);
          n += c.length;
          if (n > size) ctl.settle('corrupt', `${n} bytes echoed for ${size} sent`);
        });
        sock.on('end', () => {
          if (n < size) return ctl.settle('truncated', `clean EOF after ${n} of ${size} echoed bytes`);
          if (!Buffer.concat(got).equals(payload)) return ctl.settle('corrupt', 'echoed bytes differ');
          ctl.settle('ok');
        });
        sock.once('connect', () => sock.end(payload));
      });

    /** Resolves at the final phase (idle connections then send their last echo). */
    let startFinal!: () => void;
    const finalPhase = new Promise<void>((r) => (startFinal = r));

    const idleOnce = () =>
      runStream('idle', 64, fwd.echo, (sock, ctl) => {
        const hello = randomBytes(32);
        const last = randomBytes(32);
        let expect = hello;
        let got = Buffer.alloc(0);
        let phase: 'hello' | 'idle' | 'final' = 'hello';
        sock.on('data', (c: Buffer) => {
          ctl.progress();
          if (phase === 'idle') return ctl.settle('corrupt', `${c.length} unexpected bytes while idle`);
          got = Buffer.concat([got, c]);
          if (got.length < expect.length) return;
          if (got.length > expect.length || !got.equals(expect)) return ctl.settle('corrupt', `wrong ${phase} echo`);
          got = Buffer.alloc(0);
          if (phase === 'hello') {
            phase = 'idle';
            ctl.setIdle(true);
            void finalPhase.then(() => {
              if (ctl.settled) return;
              phase = 'final';
              expect = last;
              ctl.setIdle(false);
              sock.write(last);
            });
          } else {
            sock.end(); // the echo server ends when we do
            phase = 'idle';
            ctl.setIdle(false);
          }
        });
        sock.on('end', () => {
          if (phase === 'idle' && expect === last) return ctl.settle('ok');
          ctl.settle('truncated', `clean EOF in the ${phase} phase`);
        });
        sock.once('connect', () => sock.write(hello));
      });

    // ---- watchdog, samples
    const samples: Array<{ atMs: number; rssKiB: number; fds: number }> = [];
    const sample = () => {
      const r = rssKiB(proc.pid!);
      const f = fdCount(proc.pid!);
      if (r !== undefined && f !== undefined) samples.push({ atMs: at(), rssKiB: r, fds: f });
    };
    const watchdog = setInterval(() => {
      const now = performance.now();
      for (const a of [...active]) if (!a.idle && now - a.lastProgress > opts.stallMs) a.settle('stalled', `no progress for ${Math.round((now - a.lastProgress) / 1000)} s`);
    }, 1000);
    const sampler = setInterval(sample, opts.sampleEveryMs);
    let lastReport = 0;
    const status = setInterval(() => {
      if (at() - lastReport < 10_000) return;
      lastReport = at();
      const ok = Object.values(counts).reduce((n, c) => n + c.ok, 0);
      const reset = Object.values(counts).reduce((n, c) => n + c.reset + c.error, 0);
      const bad = Object.values(counts).reduce((n, c) => n + c.corrupt + c.truncated + c.stalled, 0);
      const s = samples[samples.length - 1];
      progress(`streams ok ${ok}, reset ${reset}, bad ${bad}, active ${active.size}; sshkeep rss ${s ? (s.rssKiB / 1024).toFixed(1) : '?'} MiB, fds ${s?.fds ?? '?'}`);
    }, 1000);
    disposers.push(() => {
      clearInterval(watchdog);
      clearInterval(sampler);
      clearInterval(status);
    });
    void exited.then(() => {
      if (!terminating) {
        failures.push(`sshkeep ${exitInfo()} during the run`);
        ctlRun.abort();
      }
    });

    // ---- workers
    const workers: Promise<void>[] = [];
    const loop = (fn: () => Promise<unknown>, pauseMs: [number, number]) =>
      workers.push(
        (async () => {
          while (!stopping && !ctlRun.signal.aborted) {
            await fn();
            await sleep(uniform(trafficRnd, pauseMs), ctlRun.signal);
          }
        })(),
      );
    sample();
    const trafficStart = at();
    for (let i = 0; i < opts.uploads; i++) loop(() => upload(uniform(trafficRnd, opts.bulkSize)), [50, 250]);
    for (let i = 0; i < opts.downloads; i++) loop(() => download(uniform(trafficRnd, opts.bulkSize)), [50, 250]);
    for (let i = 0; i < opts.echoes; i++) loop(() => echoOnce(uniform(trafficRnd, [1024, 8192])), [20, 120]);
    for (let i = 0; i < opts.idle; i++) loop(() => idleOnce(), [500, 1500]); // a reset idle connection is replaced

    // ---- faults
    const faults: FaultRecord[] = [];
    const endAt = trafficStart + opts.durationMs;
    /** How long each kind lasts: drawn before the fault, so it is known to end before the run does. */
    const planMs: Record<FaultKind, [number, number]> = {
      blackhole: [2_000, 6_000],
      'drop-existing': [0, 0],
      reset: [1_000, 3_000],
      'sshd-restart': [0, 0],
      'sshd-stop': [2_000, 6_000],
    };
    const RESTART_ALLOWANCE_MS = 5_000; // sshd.restart() retries a busy port for up to 5 s
    const faultLoop = (async () => {
      if (opts.faults.length === 0) return;
      let next = at() + uniform(faultRnd, opts.faultEveryMs);
      for (;;) {
        await sleep(next - at(), stopCtl.signal);
        const kind = opts.faults[Math.floor(faultRnd() * opts.faults.length)]!;
        const ms = uniform(faultRnd, planMs[kind]);
        const lasts = ms + (kind === 'sshd-restart' ? RESTART_ALLOWANCE_MS : 0);
        if (stopCtl.signal.aborted || at() + lasts + opts.quietTailMs > endAt) return;
        const f: FaultRecord = { index: faults.length + 1, kind, startMs: at(), endMs: at(), detail: '' };
        faults.push(f);
        switch (kind) {
          case 'blackhole': {
            relay!.set('blackhole');
            await sleep(ms, ctlRun.signal);
            relay!.restore();
            f.detail = `${ms} ms, then the held bytes flow`;
            break;
          }
          case 'drop-existing':
            relay!.set('drop-existing');
            relay!.restore(); // new flows pass either way; the dropped ones stay dead
            f.detail = 'existing flows go silent for ever';
            break;
          case 'reset': {
            relay!.set('refuse');
            await sleep(ms, ctlRun.signal);
            relay!.restore();
            f.detail = `every flow reset, new ones refused for ${ms} ms`;
            break;
          }
          case 'sshd-restart':
            await sshd!.restart();
            f.detail = 'sshd and its sessions killed, started again';
            break;
          case 'sshd-stop': {
            const pids = sshd!.pids();
            stoppedPids = new Set(pids);
            signalAll(pids, 'SIGSTOP');
            await sleep(ms, ctlRun.signal);
            signalAll(new Set([...pids, ...sshd!.pids()]), 'SIGCONT');
            stoppedPids = new Set();
            f.detail = `${pids.length} sshd process(es) stopped for ${ms} ms`;
            break;
          }
        }
        f.endMs = at();
        progress(`fault ${f.index}: ${kind} (${f.detail}) ${f.startMs}–${f.endMs} ms`);
        next = at() + uniform(faultRnd, opts.faultEveryMs);
      }
    })();

    // ---- the run, then the end of it
    await sleep(endAt - at(), ctlRun.signal);
    stopping = true;
    stopCtl.abort();
    await faultLoop;
    relay.restore();
    progress(`traffic stops; ${active.size} stream(s) in flight`);
    const readyAgain = ctlRun.signal.aborted ? false : await waitReady(60_000);
    if (!ctlRun.signal.aborted && !readyAgain) failures.push('sshkeep not ready again within 60 s of the end of the run');
    startFinal();
    // In-flight streams (and the idle connections' last echo) get --drain to finish.
    const drained = Promise.allSettled(workers);
    const drainTimer = new AbortController();
    await Promise.race([drained, sleep(opts.drainMs, drainTimer.signal)]);
    drainTimer.abort();
    for (const a of [...active]) a.settle('unfinished', `still running ${Math.round(opts.drainMs / 1000)} s after the run`);
    await drained;
    clearInterval(watchdog);
    clearInterval(sampler);
    clearInterval(status);
    sample();

    // ---- what sshkeep says
    let metrics: SoakReport['metrics'];
    if (!exitInfo()) {
      const m = await httpGet(healthPort, '/metrics').catch(() => undefined);
      if (m?.status === 200) {
        const rc = sumByLabel(m.body, 'sshkeep_tunnel_reconnects_total', 'tunnel');
        metrics = { connectionsTotal: sumByLabel(m.body, 'sshkeep_connections_total', 'result'), reconnects: Object.values(rc).reduce((a, b) => a + b, 0) };
      }
    }
    let sshkeepExit: string | undefined;
    if (!exitInfo()) {
      terminating = true;
      terminatingAt = at();
      killGroup(proc, 'SIGTERM');
      const exitTimer = new AbortController();
      await Promise.race([exited, sleep(15_000, exitTimer.signal)]);
      exitTimer.abort();
      if (!exitInfo()) {
        failures.push('sshkeep did not exit within 15 s of SIGTERM');
        killGroup(proc, 'SIGKILL');
        await exited;
      }
      sshkeepExit = exitInfo();
      if (sshkeepExit !== 'exited with 0') failures.push(`sshkeep ${sshkeepExit} on SIGTERM (want 0)`);
    } else sshkeepExit = exitInfo();
    // The last log lines are in now: join each kept record with sshkeep's view of its connection.
    for (const r of kept) {
      const conn = r.localPort !== undefined ? log.byPort.get(r.localPort) : undefined;
      const info = conn !== undefined ? log.conns.get(conn) : undefined;
      if (!info || info.acceptAt < r.startMs - 1000 || info.acceptAt > r.endMs + 1000) continue;
      r.conn = conn;
      r.held = info.held;
      if (info.end) r.sshkeepEnd = `${info.end.side}: ${info.end.reason}${info.end.reset ? ' (reset)' : ''}`;
    }

    // ---- verdict
    let explained = 0;
    let unexplained = 0;
    const effects = new Map<number, number>();
    for (const r of kept) {
      if (r.outcome === 'reset' || r.outcome === 'error') {
        const f = explainingFault(r, faults, opts.graceMs);
        if (f) {
          r.fault = f.index;
          explained++;
          effects.set(f.index, (effects.get(f.index) ?? 0) + 1);
        } else {
          unexplained++;
          failures.push(`${r.kind} #${r.id} ${r.outcome} (${r.detail ?? ''}) at ${r.endMs} ms, started ${r.startMs} ms: no fault within ${opts.graceMs} ms`);
        }
      } else if (r.outcome === 'corrupt') failures.push(`${r.kind} #${r.id} completed with the WRONG content: ${r.detail ?? ''}`);
      else if (r.outcome === 'truncated') failures.push(`${r.kind} #${r.id} ended cleanly before it was complete (a cut stream that looks complete): ${r.detail ?? ''}`);
      else if (r.outcome === 'stalled') failures.push(`${r.kind} #${r.id} stalled: ${r.detail ?? ''} (started ${r.startMs} ms)`);
      else if (r.outcome === 'unfinished') failures.push(`${r.kind} #${r.id} unfinished: ${r.detail ?? ''} (started ${r.startMs} ms)`);
    }
    const completedTotal = Object.values(counts).reduce((n, c) => n + c.ok + c.corrupt, 0);
    const matching = Object.values(counts).reduce((n, c) => n + c.ok, 0);

    const held = { held: 0, served: 0, timedOutLog: 0, timedOutMetrics: metrics?.connectionsTotal.hold_timeout, clientLeft: 0, other: 0, open: 0 };
    for (const c of log.conns.values()) {
      if (!c.held) continue;
      held.held++;
      if (!c.end) held.open++;
      else if (c.end.pumped) held.served++;
      else if (c.end.reason === 'hold_timeout') held.timedOutLog++;
      else if (c.end.side === 'client') held.clientLeft++;
      else held.other++;
    }
    if (metrics && held.timedOutMetrics === undefined) held.timedOutMetrics = 0;

    // Warm-up (heap growth, JIT, first buffers) is not a leak: the trend leaves out min(60 s, a fifth of the run).
    const trendFrom = trafficStart + Math.min(60_000, opts.durationMs / 5);
    const rssMiB = summarize(samples.map((s) => ({ atMs: s.atMs, v: s.rssKiB / 1024 })), trendFrom);
    const fds = summarize(samples.map((s) => ({ atMs: s.atMs, v: s.fds })), trendFrom);
    if (opts.failOnGrowth && (rssMiB?.growth || fds?.growth)) failures.push('RSS or fd count shows a growth trend (--fail-on-growth)');

    const faultEffects = faults.map((f) => ({
      index: f.index,
      streamsReset: effects.get(f.index) ?? 0,
      states: log.states.filter((s) => s.atMs >= f.startMs && s.atMs <= Math.min(f.endMs + opts.graceMs, terminatingAt)).map((s) => `${s.from}→${s.to}`),
    }));

    const head = sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']);
    const dirty = sh('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src']);
    const report: SoakReport = {
      meta: {
        date: new Date(wallStart).toISOString(),
        machine: `nproc ${os.cpus().length}, ${cpuModel()}, load avg at the end ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
        node: process.version,
        OpenSSH: sshVersion(),
        sshkeep: `${head}${dirty && !dirty.startsWith('unavailable') ? ' + uncommitted changes in src/' : ''}; ${opts.cli === DEFAULT_CLI ? 'dist/cli/main.js' : opts.cli} built ${fs.statSync(opts.cli).mtime.toISOString()}${opts.cli === DEFAULT_CLI && newestMtime(path.join(ROOT, 'src')) > fs.statSync(opts.cli).mtimeMs ? ' (OLDER than src/: run npm run build)' : ''}`,
        setup:
          'sshkeep -L ×3 --keepalive-interval 2s --health --log-level debug (CLI child process) → fault relay (test/fixtures/relay.ts) → OpenSSH sshd (test/fixtures/sshd.ts); targets in this process',
      },
      options: opts,
      pass: failures.length === 0,
      failures,
      streams: counts,
      resets: { explained, unexplained, seenAsEof: resetSeenAsEof },
      completed: { total: completedTotal, matching },
      held,
      faults,
      faultEffects,
      states: log.states,
      problems: kept.filter((r) => !((r.outcome === 'reset' || r.outcome === 'error') && r.fault !== undefined)),
      resetSamples: kept.filter((r) => r.fault !== undefined).slice(0, 50),
      resources: { samples, rssMiB, fds },
      metrics,
      sshkeepExit,
      logEvents: log.events,
      durationMs: at(),
    };
    progress(`done: ${report.pass ? 'PASS' : `FAIL (${failures.length} failure(s))`}`);
    return report;
  } finally {
    await cleanup();
    runs.delete(cleanup);
  }
}

// ---------------------------------------------------------------- Markdown

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const num = (x: number | undefined, digits = 1) => (x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(digits));

export function markdown(r: SoakReport, command: string): string {
  const o = r.options;
  const L: string[] = [];
  L.push('## Soak: mixed traffic with a fault every ' + `${o.faultEveryMs[0] / 1000}–${o.faultEveryMs[1] / 1000} s`, '');
  for (const [k, v] of Object.entries({ ...r.meta, command: `\`${command}\``, run: `${secs(o.durationMs)} of traffic, ${secs(r.durationMs)} in all; seed ${o.seed}` })) L.push(`- **${k}:** ${v}`);
  L.push(
    `- **traffic:** ${o.uploads} upload + ${o.downloads} download workers (${(o.bulkSize[0] / 1024 ** 2).toFixed(2)}–${(o.bulkSize[1] / 1024 ** 2).toFixed(2)} MiB each, ${o.bulkRate ? `${(o.bulkRate / 1024 ** 2).toFixed(1)} MiB/s` : 'unpaced'}, sha256-checked), ` +
      `${o.echoes} short request/response workers (1–8 KiB echoed), ${o.idle} idle connections (one echo at the start, one at the end)`,
  );
  L.push(`- **rules:** a reset must overlap a fault window [start, end + ${o.graceMs / 1000} s]; no progress for ${o.stallMs / 1000} s is a stall; in-flight streams get ${o.drainMs / 1000} s after the run`, '');
  L.push(`**Result: ${r.pass ? '✅ PASS' : '❌ FAIL'}**`, '');
  L.push('| check | value | |', '|---|---:|---|');
  const ok = (b: boolean) => (b ? '✅' : '❌');
  L.push(`| streams completed | ${r.completed.total} | |`);
  L.push(`| … with matching hash / echo | ${r.completed.matching} | ${ok(r.completed.matching === r.completed.total)} must be all |`);
  const sum = (k: Outcome) => Object.values(r.streams).reduce((n, c) => n + c[k], 0);
  L.push(`| ended cleanly but incomplete (truncated) | ${sum('truncated')} | ${ok(sum('truncated') === 0)} must be 0 |`);
  L.push(`| streams reset, in a fault window | ${r.resets.explained} | ${r.resets.seenAsEof ? `${r.resets.seenAsEof} of them seen by the Node client as EOF (libuv), told apart by /proc/net/tcp` : ''} |`);
  L.push(`| streams reset, no fault nearby | ${r.resets.unexplained} | ${ok(r.resets.unexplained === 0)} must be 0 |`);
  L.push(`| stalled / unfinished | ${sum('stalled')} / ${sum('unfinished')} | ${ok(sum('stalled') + sum('unfinished') === 0)} must be 0 |`);
  L.push(`| held connections served | ${r.held.served} of ${r.held.held} held | |`);
  L.push(`| held connections timed out (log / /metrics) | ${r.held.timedOutLog} / ${r.held.timedOutMetrics ?? '—'} | |`);
  L.push(`| faults | ${r.faults.length} | |`);
  L.push(`| sshkeep reconnects (/metrics) | ${r.metrics?.reconnects ?? '—'} | |`);
  L.push(`| sshkeep exit on SIGTERM | ${r.sshkeepExit ?? '—'} | ${ok(r.sshkeepExit === 'exited with 0')} |`, '');

  L.push('### Streams', '', '| kind | started | ok | wrong content | truncated | reset | other error | stalled | unfinished | MiB verified |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const [k, c] of Object.entries(r.streams)) {
    L.push(`| ${k} | ${c.started} | ${c.ok} | ${c.corrupt} | ${c.truncated} | ${c.reset} | ${c.error} | ${c.stalled} | ${c.unfinished} | ${(c.bytesVerified / 1024 ** 2).toFixed(1)} |`);
  }
  L.push('');

  L.push('### Faults', '', '| # | fault | window | what | streams reset | sshkeep states in the window (+ grace) |', '|---:|---|---|---|---:|---|');
  for (const f of r.faults) {
    const e = r.faultEffects.find((x) => x.index === f.index);
    L.push(`| ${f.index} | ${f.kind} | ${secs(f.startMs)} – ${secs(f.endMs)} | ${f.detail} | ${e?.streamsReset ?? 0} | ${e?.states.join(', ') || '—'} |`);
  }
  L.push('');

  const tf = r.resources.rssMiB?.trendFromMs;
  L.push(`### sshkeep process (every ${o.sampleEveryMs / 1000} s, ${r.resources.samples.length} samples)`, '');
  if (tf !== undefined) L.push(`first / max / last over every sample; slope and thirds over the samples from ${secs(tf)} on (warm-up left out).`, '');
  L.push('| series | first | max | last | slope / min | median, first third | median, last third | growth trend (> 20 %) |', '|---|---:|---:|---:|---:|---:|---:|---|');
  for (const [name, s, d] of [['RSS (MiB)', r.resources.rssMiB, 1], ['open fds', r.resources.fds, 0]] as const) {
    if (!s) continue;
    L.push(`| ${name} | ${num(s.first, d)} | ${num(s.max, d)} | ${num(s.last, d)} | ${s.slopePerMin >= 0 ? '+' : ''}${num(s.slopePerMin, 2)} | ${num(s.firstThirdMedian, d)} | ${num(s.lastThirdMedian, d)} | ${s.growth ? '⚠️ yes' : 'no'} |`);
  }
  L.push('');

  if (r.failures.length) {
    L.push('### Failures', '');
    for (const f of r.failures.slice(0, 50)) L.push(`- ${f}`);
    if (r.failures.length > 50) L.push(`- … ${r.failures.length - 50} more (--json for all)`);
    L.push('');
  }
  const probs = r.problems.filter((p) => p.sshkeepEnd || p.conn !== undefined);
  if (probs.length) {
    L.push('### sshkeep\'s view of the failed streams', '', '| stream | outcome | sshkeep conn | held | sshkeep ended it |', '|---|---|---:|---|---|');
    for (const p of probs.slice(0, 30)) L.push(`| ${p.kind} #${p.id} | ${p.outcome} | ${p.conn ?? '—'} | ${p.held ? 'yes' : 'no'} | ${p.sshkeepEnd ?? '—'} |`);
    L.push('');
  }
  return L.join('\n');
}

// ---------------------------------------------------------------- entry point

if (isEntryPoint(import.meta.url)) {
  let opts: SoakOptions | null;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`soak: ${(err as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  if (!opts) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const o = opts;
  const command = ['npm run soak --', ...process.argv.slice(2)].join(' ');
  runMain(
    'soak',
    async () => {
      const report = await runSoak(o);
      process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : `${markdown(report, command)}\n`);
      if (!report.pass) {
        process.stderr.write(`soak: ${report.failures.length} integrity failure(s)\n`);
        throw new Error('integrity failure');
      }
    },
    cleanupAll,
  );
}
