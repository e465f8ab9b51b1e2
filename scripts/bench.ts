/**
 * Side-by-side benchmark (issue #6): sshkeep against OpenSSH `ssh -N -L` (and `autossh -M 0` where it
 * applies), through the same loopback sshd, in one run. Needs only `apt-get install openssh-server autossh`
 * (without autossh its column is skipped, with a note).
 *
 *   npm run build && node --import @tapjs/typescript/import scripts/bench.ts \
 *     [--ciphers default,aes128-gcm@openssh.com] [--cipher NAME] [--rounds 3] [--size-mib 512] [--streams 4]
 *     [--pings 5000] [--conns 300] [--rss-conns 1000] [--idle-seconds 60] [--multi-connections 4]
 *     [--sshkeep-args="<extra sshkeep args>"] [--json FILE]
 *
 *   Quick run: ... --size-mib 64 --pings 1000 --conns 100 --rss-conns 1000 --idle-seconds 10 --rounds 1
 *
 * One table per cipher mode (--ciphers, comma-separated; "default" = each tool negotiates its own
 * default; a name X = sshd restricted to `Ciphers X` and ssh given `-c X`, so both sides use X;
 * --cipher X is a shortcut for --ciphers X). Each round runs, per cipher mode, A B C D: sshkeep,
 * ssh -L, autossh -M 0 (RSS only), sshkeep --connections N (parallel streams only, after the same
 * burst of --rss-conns connections as the others), each a fresh process; then one idle window in
 * which every tool of every mode idles side by side, each behind its own byte-counting relay to
 * the sshd. Figures:
 *   - bulk upload/download, one stream of --size-mib each (MB = 10^6 bytes, first to last byte at the receiver);
 *   - the same --size-mib split over --streams concurrent uploads, then downloads: aggregate MB/s = total
 *     bytes / (last byte - first byte across all streams);
 *   - ping-pong round trips on one connection, 1 byte and 4 KiB (write 4096 bytes, wait for all 4096 back);
 *   - connect + first echo byte on --conns sequential new connections;
 *   - CPU seconds per GiB of the forwarder process (utime+stime, and utime alone; and, for reference, of the
 *     sshd sessions);
 *   - RSS (VmRSS, summed over the forwarder's process tree: autossh + its ssh) once the tunnel is up, and
 *     with --rss-conns connections open through it (each has echoed a byte; read 2 s after the last opened);
 *   - idle cost over --idle-seconds, after every tool has run 15 s (steady state), per minute: CPU (sum
 *     over all threads of /proc/PID/task/TID/schedstat run time; % of a core), wake-ups (voluntary +
 *     involuntary context switches of all threads), and bytes on the wire both ways between the
 *     forwarder and sshd (heartbeats). sshkeep at its default
 *     --keepalive-interval 15s, ssh and autossh with -o ServerAliveInterval=15; ssh with its default (no
 *     keepalive) is measured too and noted under the table.
 * Goals (issue #6) are printed next to each ratio. --sshkeep-args="…" (quote-aware split; the "=" is needed
 * because the value starts with a dash) is passed to every sshkeep process;
 * --multi-connections N (0 = off) adds the rows "N parallel streams, sshkeep --connections N", which
 * read "n/a (flag not supported)" when the sshkeep CLI rejects the flag.
 *
 * Markdown goes to stdout, progress to stderr; JSON (every sample and the summary) is written only
 * when --json FILE is given. Every process, relay and sshd is cleaned up on exit, error, SIGINT and
 * SIGTERM. Importing this module runs nothing: scripts/bench-smoke.ts reuses its functions.
 */
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process';
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
import { shebangNodeArgs } from '../test/fixtures/bin.js';
import { HOST, childEnv, intOption, cpuModel, echoProbe, freePorts, isEntryPoint, killGroup, listen, newestMtime, sh, sleep, sshVersion, runMain, watchExit } from './lib/common.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
export const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
const CHUNK = randomBytes(MIB); // the fixed buffer every bulk transfer repeats
const ONE = Buffer.from('x');
/** How long every tool runs before the idle window opens. */
const IDLE_SETTLE_MS = 15_000;
/** ssh's ServerAliveInterval for the idle comparison: sshkeep's default --keepalive-interval. */
const KEEPALIVE_S = 15;

export type ToolName = 'sshkeep' | 'ssh' | 'autossh';
export const LABEL: Record<ToolName, string> = { sshkeep: 'sshkeep', ssh: 'ssh -L', autossh: 'autossh -M 0' };

interface Options {
  sizeMiB: number;
  rounds: number;
  json: string | undefined;
  /** undefined = each tool's default cipher. */
  ciphers: Array<string | undefined>;
  pings: number;
  conns: number;
  streams: number;
  rssConns: number;
  idleSeconds: number;
  sshkeepArgs: string[];
  multiConnections: number;
}

// ---------------------------------------------------------------- arguments

const USAGE =
  'usage: node --import @tapjs/typescript/import scripts/bench.ts [--ciphers default,aes128-gcm@openssh.com] [--cipher NAME]\n' +
  '         [--rounds 3] [--size-mib 512] [--streams 4] [--pings 5000] [--conns 300] [--rss-conns 1000] [--idle-seconds 60]\n' +
  '         [--multi-connections 4 (0 = off)] [--sshkeep-args="<extra sshkeep args>" (with "=": the value starts with a dash)]\n' +
  '         [--json FILE (default: none)]\n' +
  '  quick: --size-mib 64 --pings 1000 --conns 100 --idle-seconds 10 --rounds 1\n';

/** Splits a command-line fragment on whitespace, honouring '…' and "…" quotes and backslash escapes. */
export function splitArgs(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let has = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < s.length) cur += s[++i];
      else cur += c;
    } else if (c === '"' || c === "'") (quote = c), (has = true);
    else if (c === '\\' && i + 1 < s.length) (cur += s[++i]), (has = true);
    else if (/\s/.test(c)) {
      if (has) out.push(cur);
      cur = '';
      has = false;
    } else (cur += c), (has = true);
  }
  if (quote) throw new Error(`unbalanced ${quote} in --sshkeep-args ${JSON.stringify(s)}`);
  if (has) out.push(cur);
  return out;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      'size-mib': { type: 'string', default: '512' },
      rounds: { type: 'string', default: '3' },
      json: { type: 'string' },
      ciphers: { type: 'string' },
      cipher: { type: 'string' },
      pings: { type: 'string', default: '5000' },
      conns: { type: 'string', default: '300' },
      streams: { type: 'string', default: '4' },
      'rss-conns': { type: 'string', default: '1000' },
      'idle-seconds': { type: 'string', default: '60' },
      'sshkeep-args': { type: 'string', default: '' },
      'multi-connections': { type: 'string', default: '4' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  if (values.cipher !== undefined && values.ciphers !== undefined) throw new Error('give --cipher or --ciphers, not both');
  const list = values.cipher ?? values.ciphers ?? 'default,aes128-gcm@openssh.com';
  const ciphers = list
    .split(',')
    .map((c) => c.trim())
    .filter(Boolean)
    .map((c) => (c === 'default' ? undefined : c));
  if (ciphers.length === 0) throw new Error('--ciphers is empty');
  return {
    sizeMiB: intOption('size-mib', values['size-mib'], 1),
    rounds: intOption('rounds', values.rounds, 1),
    json: values.json,
    ciphers,
    pings: intOption('pings', values.pings, 1),
    conns: intOption('conns', values.conns, 1),
    streams: intOption('streams', values.streams, 1),
    rssConns: intOption('rss-conns', values['rss-conns'], 1),
    idleSeconds: intOption('idle-seconds', values['idle-seconds'], 1),
    sshkeepArgs: splitArgs(values['sshkeep-args'] ?? ''),
    multiConnections: intOption('multi-connections', values['multi-connections'], 0),
  };
}

// ---------------------------------------------------------------- statistics

function sorted(xs: number[]): number[] {
  return [...xs].sort((a, b) => a - b);
}

/** Nearest-rank quantile. */
export function quantile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = sorted(xs);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
}

export const median = (xs: number[]): number => {
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

/** utime and stime of a whole process (all threads), in seconds. */
export function cpuTimes(pid: number): { user: number; system: number } {
  const f = statFields(pid);
  if (!f) throw new Error(`process ${pid} is gone`);
  return { user: Number(f[11]) / CLK_TCK, system: Number(f[12]) / CLK_TCK }; // fields 14 and 15 of /proc/PID/stat
}

/** utime + stime of a whole process, in seconds. */
export function cpuSeconds(pid: number): number {
  const { user, system } = cpuTimes(pid);
  return user + system;
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

/** VmRSS summed over processes (autossh + its ssh), in KiB. */
const treeRssKiB = (pids: number[]): number => pids.reduce((sum, p) => sum + rssKiB(p), 0);

/** What a set of processes has spent so far, summed over every thread. */
interface ProcCounters {
  /** On-CPU time of the live threads (/proc/PID/task/TID/schedstat, ns resolution), seconds. */
  runSeconds: number;
  /** utime + stime of the processes (/proc/PID/stat, clock ticks), seconds. */
  tickSeconds: number;
  /** voluntary_ctxt_switches + nonvoluntary_ctxt_switches of every live thread. */
  ctxSwitches: number;
  threads: number;
}

function procCounters(pids: number[]): ProcCounters {
  const c: ProcCounters = { runSeconds: 0, tickSeconds: 0, ctxSwitches: 0, threads: 0 };
  for (const pid of pids) {
    c.tickSeconds += cpuSeconds(pid);
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      try {
        c.runSeconds += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e9;
        const status = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
        c.ctxSwitches += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
        c.ctxSwitches += Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
        c.threads++;
      } catch {} // a thread that ended between readdir and read
    }
  }
  return c;
}

/**
 * The sshd listener's pid. sshd writes its PidFile only after it logs "Server listening", which is
 * when startSshd() returns, so wait for the file. A SIGHUP re-exec keeps the pid.
 */
export async function sshdPid(sshd: Sshd): Promise<number> {
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

export interface Targets {
  echo: number;
  sink: number;
  source: number;
  /** Resolves with the next sink connection that ends. */
  nextSink(): Promise<SinkResult>;
  close(): Promise<void>;
}

/** Counts what arrives on `s` and when its first and last bytes came (updated as data arrives). */
function recordArrivals(s: net.Socket): SinkResult {
  const r: SinkResult = { bytes: 0, firstNs: 0n, lastNs: 0n };
  s.on('data', (c: Buffer) => {
    const now = process.hrtime.bigint();
    if (r.bytes === 0) r.firstNs = now;
    r.bytes += c.length;
    r.lastNs = now;
  });
  return r;
}

export async function startTargets(): Promise<Targets> {
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
    const arrivals = recordArrivals(s);
    s.on('end', () => {
      s.end(String(arrivals.bytes));
      sinkWaiters.shift()?.({ ...arrivals });
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

// ---------------------------------------------------------------- byte-counting relay

interface CountingRelay {
  port: number;
  /** Bytes forwarder → sshd and sshd → forwarder so far, over every connection. */
  bytes(): { up: number; down: number };
  close(): Promise<void>;
}

/** 127.0.0.1:port → 127.0.0.1:targetPort, counting the bytes each way (for the idle window). */
async function startCountingRelay(targetPort: number): Promise<CountingRelay> {
  let up = 0;
  let down = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ port: targetPort, host: HOST });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (c: Buffer) => (up += c.length));
    upstream.on('data', (c: Buffer) => (down += c.length));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  const port = await listen(server);
  const relay: CountingRelay = {
    port,
    bytes: () => ({ up, down }),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      liveRelays.delete(relay);
    },
  };
  liveRelays.add(relay);
  return relay;
}

// ---------------------------------------------------------------- clients

async function connectTo(port: number): Promise<net.Socket> {
  const s = net.connect({ port, host: HOST, allowHalfOpen: true });
  s.setNoDelay(true);
  await once(s, 'connect');
  return s;
}

export interface Transfer {
  bytes: number;
  seconds: number;
  mbps: number;
}

export const transfer = (bytes: number, ns: bigint): Transfer => {
  const seconds = Number(ns) / 1e9;
  return { bytes, seconds, mbps: bytes / 1e6 / seconds };
};

/** Sends `bytes` to the sink and half-closes; resolves on the sink's reply (its byte count) and end. */
export async function sendToSink(port: number, bytes: number): Promise<void> {
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
    if (Number(reply) !== bytes) throw new Error(`upload: sent ${bytes}, sink replied "${reply}"`);
  } finally {
    s.destroy();
  }
}

/** Asks the source for `bytes`; first and last arrival times. */
async function receiveFromSource(port: number, bytes: number): Promise<SinkResult> {
  const s = await connectTo(port);
  try {
    const arrivals = recordArrivals(s);
    const ended = once(s, 'end');
    s.write(`${bytes}\n`);
    await ended;
    if (arrivals.bytes !== bytes) throw new Error(`download: expected ${bytes}, got ${arrivals.bytes}`);
    return { ...arrivals };
  } finally {
    s.destroy();
  }
}

/** `streams` concurrent uploads of `bytesEach`; aggregate over the first to the last byte at the sink across all of them. */
export async function upload(port: number, bytesEach: number, targets: Targets, streams = 1): Promise<Transfer> {
  const results = Array.from({ length: streams }, () => targets.nextSink());
  await Promise.all(Array.from({ length: streams }, () => sendToSink(port, bytesEach)));
  const rs = await Promise.all(results);
  for (const r of rs) if (r.bytes !== bytesEach) throw new Error(`upload: sent ${bytesEach}, the sink got ${r.bytes}`);
  return span(rs);
}

/** `streams` concurrent downloads of `bytesEach`; aggregate over the first to the last byte received across all of them. */
export async function download(port: number, bytesEach: number, streams = 1): Promise<Transfer> {
  return span(await Promise.all(Array.from({ length: streams }, () => receiveFromSource(port, bytesEach))));
}

function span(rs: SinkResult[]): Transfer {
  const first = rs.reduce((m, r) => (r.firstNs < m ? r.firstNs : m), rs[0]!.firstNs);
  const last = rs.reduce((m, r) => (r.lastNs > m ? r.lastNs : m), rs[0]!.lastNs);
  return transfer(
    rs.reduce((n, r) => n + r.bytes, 0),
    last - first,
  );
}

/** `n` sequential round trips of `size` bytes on one connection (write `size`, wait until `size` bytes are back); µs each. */
export async function pingPong(port: number, n: number, size = 1): Promise<number[]> {
  const msg = size === 1 ? ONE : CHUNK.subarray(0, size);
  const s = await connectTo(port);
  let waiting: { resolve: () => void; reject: (e: Error) => void } | undefined;
  let got = 0;
  const fail = (e: Error) => waiting?.reject(e);
  s.on('data', (c: Buffer) => {
    got += c.length;
    if (got < size) return;
    if (got > size) return fail(new Error(`ping-pong: ${got} bytes back for ${size}`));
    const w = waiting;
    waiting = undefined;
    w?.resolve();
  });
  s.on('error', fail);
  s.on('close', () => fail(new Error('ping-pong connection closed')));
  const out: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      got = 0;
      const back = new Promise<void>((resolve, reject) => (waiting = { resolve, reject }));
      const t0 = process.hrtime.bigint();
      s.write(msg);
      await back;
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

/**
 * Opens `n` connections through the forward (at most 32 connecting at a time), each having echoed one
 * byte so that its channel is really open, and keeps them open until close().
 */
async function holdConnections(port: number, n: number): Promise<{ close(): Promise<void> }> {
  const open: net.Socket[] = [];
  const close = async () => {
    const closed = open.map((s) => {
      const c = once(s, 'close').catch(() => {});
      s.on('error', () => {});
      s.end();
      return c;
    });
    await deadline(Promise.all(closed), 20_000, `${open.length} held connections to close`).catch(() => {});
    for (const s of open) s.destroy();
  };
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const s = net.connect({ port, host: HOST });
      s.setNoDelay(true);
      open.push(s);
      await deadline(
        new Promise<void>((resolve, reject) => {
          s.once('connect', () => s.write(ONE));
          s.once('data', () => resolve());
          s.once('error', reject);
          s.once('close', () => reject(new Error('closed before the echo')));
        }),
        20_000,
        `echo on held connection ${i + 1} of ${n}`,
      );
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(32, n) }, worker));
  } catch (err) {
    await close();
    throw err;
  }
  return { close };
}

// ---------------------------------------------------------------- tools

const live = new Set<ChildProcess>();
const liveRelays = new Set<CountingRelay>();

/** SIGKILLs every forwarder process still running (for a script's SIGINT/SIGTERM cleanup). */
export function killLiveChildren(): void {
  for (const c of live) {
    c.kill('SIGTERM');
    killGroup(c, 'SIGKILL');
  }
}

/** The CLI rejected a flag (exit 2, "unknown option"): an sshkeep that predates it. */
export class FlagUnsupported extends Error {}

export interface LaunchSpec {
  tool: ToolName;
  /** Restrict ssh to this cipher with -c (sshkeep follows the sshd's `Ciphers`); undefined = defaults. */
  cipher?: string | undefined;
  /** Where the forwarder dials: sshd itself (default) or a relay in front of it. */
  sshPort?: number;
  /** ssh / autossh: extra arguments (e.g. -o ServerAliveInterval=15). */
  sshArgs?: string[];
  /** sshkeep: extra arguments. */
  sshkeepArgs?: string[];
  /** sshkeep: node's flags instead of those of the CLI's shebang (scripts/bench-node-flags.ts). */
  nodeArgs?: string[];
}

export interface Running {
  tool: ToolName;
  /** The spawned process: sshkeep's node, ssh, or autossh (whose ssh child is in pids()). */
  pid: number;
  /** The spawned process and its descendants (autossh + its ssh). */
  pids(): number[];
  ports: { echo: number; sink: number; source: number };
  startupMs: number;
  cipher: string;
  /** The sshd log since this process was spawned. */
  sshdLog(): string;
  stop(): Promise<void>;
}

function commandFor(spec: LaunchSpec, sshd: Sshd, fwd: Array<[number, number]>): [string, string[], NodeJS.ProcessEnv] {
  const L = fwd.flatMap(([local, target]) => ['-L', `${local}:${HOST}:${target}`]);
  const port = String(spec.sshPort ?? sshd.port);
  if (spec.tool === 'sshkeep') {
    return [
      process.execPath,
      [
        ...(spec.nodeArgs ?? shebangNodeArgs(CLI)),
        CLI,
        '-F', 'none',
        '-i', sshd.userKeyPath,
        '-o', `UserKnownHostsFile=${sshd.knownHostsPath}`,
        '-o', 'GlobalKnownHostsFile=none',
        '-o', 'IdentitiesOnly=yes',
        '-p', port,
        ...L,
        '-q',
        ...(spec.sshkeepArgs ?? []),
        `${sshd.user}@${HOST}`,
      ],
      {},
    ];
  }
  const ssh = [
    '-N',
    '-F', 'none',
    '-o', 'BatchMode=yes',
    '-o', 'ExitOnForwardFailure=yes',
    '-o', `UserKnownHostsFile=${sshd.knownHostsPath}`,
    '-o', 'IdentitiesOnly=yes',
    '-i', sshd.userKeyPath,
    '-p', port,
    ...(spec.cipher ? ['-c', spec.cipher] : []),
    ...(spec.sshArgs ?? []),
    ...L,
    `${sshd.user}@${HOST}`,
  ];
  if (spec.tool === 'ssh') return ['ssh', ssh, {}];
  // autossh's own defaults otherwise (AUTOSSH_POLL 600 s): what a user of `autossh -M 0` runs.
  return ['autossh', ['-M', '0', ...ssh], {}];
}

export async function launch(sshd: Sshd, targets: Targets, spec: LaunchSpec): Promise<Running> {
  const tool = spec.tool;
  for (let attempt = 1; ; attempt++) {
    const [echo, sink, source] = (await freePorts(3)) as [number, number, number];
    const [cmd, args, env] = commandFor(spec, sshd, [[echo, targets.echo], [sink, targets.sink], [source, targets.source]]);
    const logFrom = sshd.logs().length;
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { detached: true, stdio: ['ignore', 'ignore', 'pipe'], env: childEnv(env) });
    live.add(child);
    let stderr = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => (stderr = (stderr + s).slice(-8192)));
    const stderrClosed = once(child.stderr!, 'close').catch(() => {});
    const { exited, info: exitInfo } = watchExit(child, live);
    const stop = async () => {
      if (exitInfo()) return;
      child.kill('SIGTERM');
      await deadline(exited, 5_000, `${tool} to exit`).catch(() => killGroup(child, 'SIGKILL'));
      await exited;
      killGroup(child, 'SIGKILL'); // nothing should be left in its group (autossh's ssh); make sure
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
      await deadline(stderrClosed, 1_000, 'stderr').catch(() => {});
      const why = exitInfo() ?? `not ready within 20 s (last probe: ${lastError})`;
      if (why === 'exited with 2' && /unknown option/i.test(stderr)) throw new FlagUnsupported(stderr.trim());
      if (/in use/i.test(stderr) && attempt < 3) {
        process.stderr.write(`  ${tool}: a chosen local port was taken, retrying\n`);
        continue;
      }
      throw new Error(`${tool} ${why}\n--- ${cmd} ${args.join(' ')}\n--- ${tool} stderr ---\n${stderr}\n--- sshd log (since start) ---\n${sshd.logs().slice(logFrom).slice(-4000)}`);
    }
    const startupMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const log = sshd.logs().slice(logFrom);
    const c2s = /kex: client->server cipher: (\S+)/.exec(log)?.[1] ?? 'unknown';
    const s2c = /kex: server->client cipher: (\S+)/.exec(log)?.[1] ?? 'unknown';
    return {
      tool,
      pid: child.pid!,
      pids: () => [child.pid!, ...descendants(child.pid!)],
      ports: { echo, sink, source },
      startupMs,
      cipher: c2s === s2c ? c2s : `${c2s} / ${s2c}`,
      sshdLog: () => sshd.logs().slice(logFrom),
      stop,
    };
  }
}

// ---------------------------------------------------------------- sshd log level

/**
 * sshd_config takes the first value of a keyword, and the fixture writes `LogLevel VERBOSE` before
 * `extraConfig`, so `extraConfig: ['LogLevel DEBUG1']` cannot raise it. VERBOSE does not log the
 * negotiated cipher; DEBUG1 does ("kex: client->server cipher: ..."). So rewrite the running sshd's
 * config file and SIGHUP it: sshd re-execs itself (same pid, same stderr) with the new config.
 */
export async function sshdDebugLogging(sshd: Sshd, pid: number): Promise<void> {
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

/** An sshd for one cipher mode: restricted to `Ciphers cipher` when given, logging at DEBUG1. */
export async function startBenchSshd(cipher: string | undefined): Promise<{ sshd: Sshd; listener: number }> {
  const sshd = await startSshd(undefined, { extraConfig: cipher ? [`Ciphers ${cipher}`] : [] });
  try {
    const listener = await sshdPid(sshd);
    await sshdDebugLogging(sshd, listener);
    return { sshd, listener };
  } catch (err) {
    await sshd.stop();
    throw err;
  }
}

// ---------------------------------------------------------------- sessions

export interface Bulk extends Transfer {
  cpuSeconds: number;
  cpuSecondsPerGiB: number;
  /** The user-space part of cpuSecondsPerGiB; the rest is the kernel's (syscalls, loopback delivery). */
  userCpuSecondsPerGiB: number;
  sshdCpuSecondsPerGiB: number;
}

/** sshkeep or ssh -L: every figure but idle cost. */
interface FullSample {
  round: number;
  tool: ToolName;
  cipher: string;
  startupMs: number;
  rssKiB: number;
  rssConnsKiB: number;
  pingUs: number[];
  ping4kUs: number[];
  connectUs: number[];
  upload: Bulk;
  download: Bulk;
  parallelUpload: Bulk;
  parallelDownload: Bulk;
}

/** autossh -M 0: RSS only (its data path is ssh's). */
type RssSample = Pick<FullSample, 'round' | 'tool' | 'cipher' | 'startupMs' | 'rssKiB' | 'rssConnsKiB'>;

/** sshkeep --connections N: parallel streams only. */
interface MultiSample {
  round: number;
  supported: boolean;
  note?: string;
  sshConnections?: number;
  parallelUpload?: Bulk;
  parallelDownload?: Bulk;
}

type IdleKey = 'sshkeep' | 'ssh' | 'autossh' | 'sshNoKeepalive';
const IDLE_LABEL: Record<IdleKey, string> = {
  sshkeep: 'sshkeep (default --keepalive-interval 15s)',
  ssh: `ssh -L -o ServerAliveInterval=${KEEPALIVE_S}`,
  autossh: `autossh -M 0 -o ServerAliveInterval=${KEEPALIVE_S}`,
  sshNoKeepalive: 'ssh -L (its default: no keepalive)',
};

interface IdleSample {
  round: number;
  tool: IdleKey;
  windowSeconds: number;
  threads: number;
  cpuSecondsPerMin: number;
  /** The same from clock ticks (/proc/PID/stat utime+stime), coarser: a cross-check. */
  tickCpuSecondsPerMin: number;
  corePercent: number;
  wakeupsPerMin: number;
  bytesUpPerMin: number;
  bytesDownPerMin: number;
  bytesPerMin: number;
  rssKiB: number;
}

interface Mode {
  /** undefined = each tool's default cipher. */
  cipher: string | undefined;
  sshd: Sshd;
  listener: number;
  full: FullSample[];
  autossh: RssSample[];
  multi: MultiSample[];
  idle: IdleSample[];
}

interface Ctx {
  opts: Options;
  targets: Targets;
  autossh: boolean;
  /** Cleared once the CLI has rejected --connections. */
  multiSupported: boolean;
  multiNote?: string;
}

export async function measuredBulk(pid: number, sshdListener: number, fn: () => Promise<Transfer>): Promise<Bulk> {
  const cpu0 = cpuTimes(pid);
  const sshd0 = sshdSessionCpu(sshdListener);
  const t = await fn();
  const cpu1 = cpuTimes(pid);
  const user = cpu1.user - cpu0.user;
  const cpu = user + cpu1.system - cpu0.system;
  const sshdCpu = sshdCpuDelta(sshd0, sshdSessionCpu(sshdListener));
  const gib = t.bytes / GIB;
  return { ...t, cpuSeconds: cpu, cpuSecondsPerGiB: cpu / gib, userCpuSecondsPerGiB: user / gib, sshdCpuSecondsPerGiB: sshdCpu / gib };
}

const bulkMs = (bytes: number) => 120_000 + bytes / 5_000; // generous: 5 MB/s would still finish

/**
 * A burst of `n` connections through the forward: opened (each echoed once), held, `measure()`d
 * 2 s after the last one echoed, closed. Also what a forwarder that has served clients has been through.
 */
export async function connectionBurst<T>(run: Running, n: number, measure: () => T): Promise<T> {
  const held = await deadline(holdConnections(run.ports.echo, n), 120_000, `${n} held connections`);
  try {
    await sleep(2_000);
    return measure();
  } finally {
    await held.close();
  }
}

/** RSS with `n` connections held open through the forward, read 2 s after the last one echoed. */
const rssWithConnections = (run: Running, n: number): Promise<number> => connectionBurst(run, n, () => treeRssKiB(run.pids()));

async function parallelPair(run: Running, mode: Mode, opts: Options, targets: Targets): Promise<[Bulk, Bulk]> {
  const each = Math.max(1, Math.floor((opts.sizeMiB * MIB) / opts.streams));
  const warm = Math.min(each, 4 * MIB);
  const ms = bulkMs(opts.sizeMiB * MIB);
  await deadline(upload(run.ports.sink, warm, targets, opts.streams), ms, 'parallel upload warm-up');
  await deadline(download(run.ports.source, warm, opts.streams), ms, 'parallel download warm-up');
  const up = await measuredBulk(run.pid, mode.listener, () => deadline(upload(run.ports.sink, each, targets, opts.streams), ms, 'parallel upload'));
  const down = await measuredBulk(run.pid, mode.listener, () => deadline(download(run.ports.source, each, opts.streams), ms, 'parallel download'));
  return [up, down];
}

const sshkeepSpec = (opts: Options, extra: string[] = []): LaunchSpec => ({ tool: 'sshkeep', sshkeepArgs: [...opts.sshkeepArgs, ...extra] });

async function fullSession(round: number, tool: 'sshkeep' | 'ssh', mode: Mode, ctx: Ctx): Promise<FullSample> {
  const { opts, targets } = ctx;
  const run = await launch(mode.sshd, targets, tool === 'sshkeep' ? sshkeepSpec(opts) : { tool, cipher: mode.cipher });
  try {
    const bytes = opts.sizeMiB * MIB;
    const warm = Math.min(bytes, 16 * MIB);
    await sleep(500); // let startup settle before reading the idle footprint
    const rss = treeRssKiB(run.pids());
    const rssConns = await rssWithConnections(run, opts.rssConns);

    await deadline(pingPong(run.ports.echo, 100), 30_000, 'ping-pong warm-up');
    const pingUs = await deadline(pingPong(run.ports.echo, opts.pings), 120_000 + opts.pings * 20, 'ping-pong');
    await deadline(pingPong(run.ports.echo, 100, 4096), 30_000, '4 KiB ping-pong warm-up');
    const ping4kUs = await deadline(pingPong(run.ports.echo, opts.pings, 4096), 120_000 + opts.pings * 20, '4 KiB ping-pong');
    await newConnections(run.ports.echo, 10);
    const connectUs = await newConnections(run.ports.echo, opts.conns);

    await deadline(upload(run.ports.sink, warm, targets), bulkMs(warm), 'upload warm-up');
    await deadline(download(run.ports.source, warm), bulkMs(warm), 'download warm-up');
    const up = await measuredBulk(run.pid, mode.listener, () => deadline(upload(run.ports.sink, bytes, targets), bulkMs(bytes), 'upload'));
    const down = await measuredBulk(run.pid, mode.listener, () => deadline(download(run.ports.source, bytes), bulkMs(bytes), 'download'));
    const [pUp, pDown] = await parallelPair(run, mode, opts, targets);

    const sample: FullSample = {
      round,
      tool,
      cipher: run.cipher,
      startupMs: run.startupMs,
      rssKiB: rss,
      rssConnsKiB: rssConns,
      pingUs,
      ping4kUs,
      connectUs,
      upload: up,
      download: down,
      parallelUpload: pUp,
      parallelDownload: pDown,
    };
    process.stderr.write(
      `  round ${round} ${LABEL[tool].padEnd(12)} up ${up.mbps.toFixed(0)}, down ${down.mbps.toFixed(0)}, ` +
        `${opts.streams}× up ${pUp.mbps.toFixed(0)}, down ${pDown.mbps.toFixed(0)} MB/s; ` +
        `ping ${median(pingUs).toFixed(0)} / 4K ${median(ping4kUs).toFixed(0)} µs, connect ${median(connectUs).toFixed(0)} µs, ` +
        `cpu ${up.cpuSecondsPerGiB.toFixed(2)}/${down.cpuSecondsPerGiB.toFixed(2)} s/GiB, ` +
        `rss ${(rss / 1024).toFixed(1)} MiB, ${opts.rssConns} conns ${(rssConns / 1024).toFixed(1)} MiB, ${run.cipher}\n`,
    );
    return sample;
  } finally {
    await run.stop();
  }
}

async function autosshSession(round: number, mode: Mode, ctx: Ctx): Promise<RssSample> {
  const run = await launch(mode.sshd, ctx.targets, { tool: 'autossh', cipher: mode.cipher });
  try {
    await sleep(500);
    const rss = treeRssKiB(run.pids());
    const rssConns = await rssWithConnections(run, ctx.opts.rssConns);
    process.stderr.write(
      `  round ${round} ${LABEL.autossh.padEnd(12)} rss ${(rss / 1024).toFixed(1)} MiB, ${ctx.opts.rssConns} conns ${(rssConns / 1024).toFixed(1)} MiB (autossh + ssh), ${run.cipher}\n`,
    );
    return { round, tool: 'autossh', cipher: run.cipher, startupMs: run.startupMs, rssKiB: rss, rssConnsKiB: rssConns };
  } finally {
    await run.stop();
  }
}

async function multiSession(round: number, mode: Mode, ctx: Ctx): Promise<MultiSample> {
  const n = ctx.opts.multiConnections;
  if (!ctx.multiSupported) return { round, supported: false, note: ctx.multiNote ?? 'flag not supported' };
  let run: Running;
  try {
    run = await launch(mode.sshd, ctx.targets, sshkeepSpec(ctx.opts, ['--connections', String(n)]));
  } catch (err) {
    if (!(err instanceof FlagUnsupported)) throw err;
    ctx.multiSupported = false;
    ctx.multiNote = `flag not supported: ${err.message.split('\n')[0]}`;
    process.stderr.write(`  round ${round} sshkeep --connections ${n}: ${ctx.multiNote}\n`);
    return { round, supported: false, note: ctx.multiNote };
  }
  try {
    // The extra connections start once the first is up: wait until sshd has authenticated all N.
    const authenticated = () => (run.sshdLog().match(/Accepted publickey/g) ?? []).length;
    const until = Date.now() + 15_000;
    while (authenticated() < n && Date.now() < until) await sleep(20);
    const sshConnections = authenticated();
    // The history of the one-connection rows (their RSS stage): V8's state after a burst of
    // connections differs from a fresh process's (BENCHMARKS.md, GC on the main thread).
    await connectionBurst(run, ctx.opts.rssConns, () => undefined);
    const [up, down] = await parallelPair(run, mode, ctx.opts, ctx.targets);
    process.stderr.write(
      `  round ${round} sshkeep --connections ${n}: ${ctx.opts.streams}× up ${up.mbps.toFixed(0)}, down ${down.mbps.toFixed(0)} MB/s ` +
        `(${sshConnections} SSH connections authenticated)\n`,
    );
    return { round, supported: true, sshConnections, parallelUpload: up, parallelDownload: down };
  } finally {
    await run.stop();
  }
}

/**
 * One idle window: every idle tool of every mode runs side by side, each dialling sshd through its
 * own byte-counting relay; after a settle period, counters are read at the start and end of the window.
 */
async function idleWindow(round: number, modes: Mode[], ctx: Ctx): Promise<void> {
  const { opts } = ctx;
  const keys: IdleKey[] = ['sshkeep', 'ssh', ...(ctx.autossh ? (['autossh'] as const) : []), 'sshNoKeepalive'];
  const SA = ['-o', `ServerAliveInterval=${KEEPALIVE_S}`];
  const entries: Array<{ mode: Mode; key: IdleKey; relay: CountingRelay; run: Running }> = [];
  try {
    for (const mode of modes) {
      for (const key of keys) {
        const relay = await startCountingRelay(mode.sshd.port);
        // The relay is the server as the tool sees it: trust the sshd's host key under the relay's port.
        fs.appendFileSync(mode.sshd.knownHostsPath, `[${HOST}]:${relay.port} ${mode.sshd.hostPublicKey}\n`);
        const spec: LaunchSpec =
          key === 'sshkeep'
            ? { ...sshkeepSpec(opts), sshPort: relay.port }
            : { tool: key === 'sshNoKeepalive' ? 'ssh' : key, cipher: mode.cipher, sshPort: relay.port, sshArgs: key === 'sshNoKeepalive' ? [] : SA };
        try {
          entries.push({ mode, key, relay, run: await launch(mode.sshd, ctx.targets, spec) });
        } catch (err) {
          await relay.close();
          throw err;
        }
      }
    }
    // Steady state, as a sidecar idles for hours: start-up work (JIT, the readiness probe's channel)
    // and, for sshkeep, V8's memory reducer (two compacting GCs ~8 s after start, ~15 ms once) end first.
    await sleep(IDLE_SETTLE_MS);
    const start = entries.map((e) => ({ c: procCounters(e.run.pids()), b: e.relay.bytes() }));
    const t0 = process.hrtime.bigint();
    process.stderr.write(`  round ${round} idle window: ${entries.length} forwarders idle for ${opts.idleSeconds} s\n`);
    await sleep(opts.idleSeconds * 1000);
    const end = entries.map((e) => ({ c: procCounters(e.run.pids()), b: e.relay.bytes(), rss: treeRssKiB(e.run.pids()) }));
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const perMin = 60 / seconds;
    entries.forEach((e, i) => {
      const a = start[i]!;
      const z = end[i]!;
      const cpu = z.c.runSeconds - a.c.runSeconds;
      const up = z.b.up - a.b.up;
      const down = z.b.down - a.b.down;
      const s: IdleSample = {
        round,
        tool: e.key,
        windowSeconds: seconds,
        threads: z.c.threads,
        cpuSecondsPerMin: cpu * perMin,
        tickCpuSecondsPerMin: (z.c.tickSeconds - a.c.tickSeconds) * perMin,
        corePercent: (cpu / seconds) * 100,
        wakeupsPerMin: (z.c.ctxSwitches - a.c.ctxSwitches) * perMin,
        bytesUpPerMin: up * perMin,
        bytesDownPerMin: down * perMin,
        bytesPerMin: (up + down) * perMin,
        rssKiB: z.rss,
      };
      e.mode.idle.push(s);
      process.stderr.write(
        `    ${modeName(e.mode).padEnd(36)} ${IDLE_LABEL[e.key].padEnd(44)} cpu ${(s.cpuSecondsPerMin * 1000).toFixed(1)} ms/min ` +
          `(${s.corePercent.toFixed(3)} %), ${s.wakeupsPerMin.toFixed(0)} wake-ups/min, ${s.bytesPerMin.toFixed(0)} B/min\n`,
      );
    });
  } finally {
    await Promise.allSettled(entries.map((e) => e.run.stop()));
    await Promise.allSettled(entries.map((e) => e.relay.close()));
  }
}

// ---------------------------------------------------------------- report

interface Goal {
  /** Compare the ratio sshkeep/ssh, or sshkeep's own value. */
  on: 'ratio' | 'sshkeep';
  op: '>=' | '<=' | '<';
  limit: number;
  text: string;
}

interface Row {
  metric: string;
  unit: string;
  higherIsBetter: boolean;
  digits: number;
  sshkeep: number;
  ssh: number;
  /** undefined: not applicable to autossh (its data path is ssh's). */
  autossh: number | undefined;
  ratio: number;
  goal?: Goal;
  met?: 'PASS' | 'MISS' | 'n/a';
  /** Shown instead of sshkeep's value when it has none. */
  note?: string;
}

const ratioGoal = (op: Goal['op'], limit: number): Goal => ({ on: 'ratio', op, limit, text: `ratio ${op === '>=' ? '≥' : op === '<=' ? '≤' : '<'} ${limit.toFixed(1)}` });

function met(r: Row): Row['met'] {
  if (!r.goal) return undefined;
  const x = r.goal.on === 'ratio' ? r.ratio : r.sshkeep;
  if (!Number.isFinite(x)) return 'n/a';
  const ok = r.goal.op === '>=' ? x >= r.goal.limit : r.goal.op === '<=' ? x <= r.goal.limit : x < r.goal.limit;
  return ok ? 'PASS' : 'MISS';
}

function modeName(mode: Mode): string {
  return mode.cipher ? `same cipher ${mode.cipher}` : 'default ciphers';
}

function summarize(mode: Mode, opts: Options, autossh: boolean): Row[] {
  const of = (tool: ToolName) => mode.full.filter((s) => s.tool === tool);
  const rows: Row[] = [];
  const idleOf = (k: IdleKey) => mode.idle.filter((s) => s.tool === k);
  const perRound = <S>(xs: S[], g: (s: S) => number) => median(xs.map(g));
  const pooled = <S>(xs: S[], g: (s: S) => number[], p: number) => quantile(xs.flatMap(g), p);
  const push = (r: Omit<Row, 'ratio' | 'met'>) => {
    const row: Row = { ...r, ratio: r.sshkeep / r.ssh };
    row.met = met(row);
    rows.push(row);
  };
  const add = (metric: string, unit: string, higherIsBetter: boolean, digits: number, f: (xs: FullSample[]) => number, goal?: Goal) =>
    push({ metric, unit, higherIsBetter, digits, sshkeep: f(of('sshkeep')), ssh: f(of('ssh')), autossh: undefined, ...(goal ? { goal } : {}) });

  const tput = ratioGoal('>=', mode.cipher ? 0.9 : 1.0);
  const n = opts.streams;
  add('Upload, 1 stream', 'MB/s', true, 0, (xs) => perRound(xs, (s) => s.upload.mbps), tput);
  add('Download, 1 stream', 'MB/s', true, 0, (xs) => perRound(xs, (s) => s.download.mbps), tput);
  add(`Upload, ${n} parallel streams (aggregate)`, 'MB/s', true, 0, (xs) => perRound(xs, (s) => s.parallelUpload.mbps), ratioGoal('>=', 1.0));
  add(`Download, ${n} parallel streams (aggregate)`, 'MB/s', true, 0, (xs) => perRound(xs, (s) => s.parallelDownload.mbps), ratioGoal('>=', 1.0));
  if (opts.multiConnections > 0) {
    const m = opts.multiConnections;
    const ok = mode.multi.filter((s) => s.supported);
    const note = ok.length ? undefined : 'n/a (flag not supported)';
    for (const dir of ['Upload', 'Download'] as const) {
      const key = dir === 'Upload' ? 'parallelUpload' : 'parallelDownload';
      push({
        metric: `${dir}, ${n} parallel streams, sshkeep --connections ${m}`,
        unit: 'MB/s',
        higherIsBetter: true,
        digits: 0,
        sshkeep: ok.length ? perRound(ok, (s) => s[key]!.mbps) : NaN,
        ssh: perRound(of('ssh'), (s) => s[key].mbps),
        autossh: undefined,
        goal: ratioGoal('>=', 1.0),
        ...(note ? { note } : {}),
      });
    }
  }
  const lat = ratioGoal('<=', 1.0);
  add('Ping-pong RTT 1 B, median', 'µs', false, 0, (xs) => pooled(xs, (s) => s.pingUs, 0.5), lat);
  add('Ping-pong RTT 1 B, p99', 'µs', false, 0, (xs) => pooled(xs, (s) => s.pingUs, 0.99));
  add('Ping-pong RTT 4 KiB, median', 'µs', false, 0, (xs) => pooled(xs, (s) => s.ping4kUs, 0.5), lat);
  add('Ping-pong RTT 4 KiB, p99', 'µs', false, 0, (xs) => pooled(xs, (s) => s.ping4kUs, 0.99));
  add('New connection + first echo, median', 'µs', false, 0, (xs) => pooled(xs, (s) => s.connectUs, 0.5), lat);
  add('New connection + first echo, p99', 'µs', false, 0, (xs) => pooled(xs, (s) => s.connectUs, 0.99));
  add('Forwarder CPU, upload', 's/GiB', false, 2, (xs) => perRound(xs, (s) => s.upload.cpuSecondsPerGiB));
  add('Forwarder CPU, download', 's/GiB', false, 2, (xs) => perRound(xs, (s) => s.download.cpuSecondsPerGiB));
  add('Forwarder CPU in user space, upload', 's/GiB', false, 2, (xs) => perRound(xs, (s) => s.upload.userCpuSecondsPerGiB));
  add('Forwarder CPU in user space, download', 's/GiB', false, 2, (xs) => perRound(xs, (s) => s.download.userCpuSecondsPerGiB));
  add('sshd session CPU, upload (server side, for reference)', 's/GiB', false, 2, (xs) => perRound(xs, (s) => s.upload.sshdCpuSecondsPerGiB));
  add('sshd session CPU, download (server side, for reference)', 's/GiB', false, 2, (xs) => perRound(xs, (s) => s.download.sshdCpuSecondsPerGiB));

  const MB = 1.024e-3; // KiB → MB (10^6 bytes)
  const au = autossh ? mode.autossh : [];
  const withAutossh = (r: Omit<Row, 'ratio' | 'met' | 'autossh'>, g: (s: RssSample) => number) =>
    push({ ...r, autossh: autossh ? perRound(au, g) : undefined });
  withAutossh(
    { metric: 'RSS idle (tunnel up)', unit: 'MB', higherIsBetter: false, digits: 1, sshkeep: perRound(of('sshkeep'), (s) => s.rssKiB * MB), ssh: perRound(of('ssh'), (s) => s.rssKiB * MB) },
    (s) => s.rssKiB * MB,
  );
  withAutossh(
    {
      metric: `RSS with ${opts.rssConns.toLocaleString('en-US')} idle connections`,
      unit: 'MB',
      higherIsBetter: false,
      digits: 1,
      sshkeep: perRound(of('sshkeep'), (s) => s.rssConnsKiB * MB),
      ssh: perRound(of('ssh'), (s) => s.rssConnsKiB * MB),
      goal: { on: 'sshkeep', op: '<=', limit: 80, text: 'sshkeep ≤ 80 MB' },
    },
    (s) => s.rssConnsKiB * MB,
  );

  const idle = (metric: string, unit: string, digits: number, g: (s: IdleSample) => number, goal?: Goal) =>
    push({
      metric,
      unit,
      higherIsBetter: false,
      digits,
      sshkeep: perRound(idleOf('sshkeep'), g),
      ssh: perRound(idleOf('ssh'), g),
      autossh: autossh ? perRound(idleOf('autossh'), g) : undefined,
      ...(goal ? { goal } : {}),
    });
  idle('Idle CPU', 'ms/min', 1, (s) => s.cpuSecondsPerMin * 1000);
  idle('Idle CPU, % of a core', '%', 3, (s) => s.corePercent, { on: 'sshkeep', op: '<', limit: 0.1, text: 'sshkeep < 0.1 %' });
  idle('Idle wake-ups (context switches)', '/min', 0, (s) => s.wakeupsPerMin);
  idle('Idle bytes on the wire, both ways (keepalive 15 s)', 'B/min', 0, (s) => s.bytesPerMin);
  push({
    metric: 'Startup: spawn → first echo',
    unit: 'ms',
    higherIsBetter: false,
    digits: 0,
    sshkeep: perRound(of('sshkeep'), (s) => s.startupMs),
    ssh: perRound(of('ssh'), (s) => s.startupMs),
    autossh: autossh ? perRound(au, (s) => s.startupMs) : undefined,
  });
  return rows;
}

function verdict(r: Row): string {
  if (!Number.isFinite(r.ratio) || r.ratio === 0) return 'n/a';
  const better = r.higherIsBetter ? r.ratio > 1 : r.ratio < 1;
  if (Math.abs(r.ratio - 1) < 0.03) return 'about equal';
  const factor = r.ratio >= 1 ? r.ratio : 1 / r.ratio;
  const cost = ['s/GiB', 'ms/min', '%', '/min', 'B/min'].includes(r.unit);
  const how = r.higherIsBetter ? (better ? 'faster' : 'slower') : r.unit === 'MB' ? (better ? 'smaller' : 'larger') : cost ? (better ? 'cheaper' : 'costlier') : better ? 'faster' : 'slower';
  return `${factor.toFixed(2)}× ${how}`;
}

function table(rows: Row[], autossh: boolean): string[] {
  const lines = [
    `| metric | sshkeep | ssh -L |${autossh ? ' autossh -M 0 |' : ''} ratio sshkeep/ssh | sshkeep is | goal | met |`,
    `|---|---:|---:|${autossh ? '---:|' : ''}---:|---|---|---|`,
  ];
  for (const r of rows) {
    const fmt = (x: number | undefined) =>
      x === undefined ? '—' : Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: r.digits, maximumFractionDigits: r.digits }) : 'n/a';
    const keep = r.note && !Number.isFinite(r.sshkeep) ? r.note : fmt(r.sshkeep);
    lines.push(
      `| ${r.metric} (${r.unit}, ${r.higherIsBetter ? 'higher' : 'lower'} is better) | ${keep} | ${fmt(r.ssh)} |${autossh ? ` ${fmt(r.autossh)} |` : ''} ` +
        `${Number.isFinite(r.ratio) ? r.ratio.toFixed(2) : 'n/a'} | ${verdict(r)} | ${r.goal?.text ?? ''} | ${r.met ?? ''} |`,
    );
  }
  return lines;
}

function modeSection(mode: Mode, rows: Row[], opts: Options, autossh: boolean): string {
  const ciphers = (tool: ToolName) => [...new Set([...mode.full, ...mode.autossh].filter((s) => s.tool === tool).map((s) => s.cipher))].join(', ') || 'n/a';
  const noKa = mode.idle.filter((s) => s.tool === 'sshNoKeepalive');
  const lines = [
    `### ${mode.cipher ? `Same cipher on both sides: ${mode.cipher}` : "Each tool's default cipher"}`,
    '',
    `- **cipher mode:** ${mode.cipher ? `sshd restricted to \`Ciphers ${mode.cipher}\`, ssh/autossh given \`-c ${mode.cipher}\`` : "each tool's own default"}`,
    `- **negotiated cipher (from sshd log):** sshkeep: ${ciphers('sshkeep')}; ssh -L: ${ciphers('ssh')}${autossh ? `; autossh: ${ciphers('autossh')}` : ''}`,
  ];
  if (opts.multiConnections > 0) {
    const ok = mode.multi.filter((s) => s.supported);
    lines.push(
      `- **sshkeep --connections ${opts.multiConnections}:** ` +
        (ok.length
          ? `SSH connections authenticated per round: ${ok.map((s) => s.sshConnections).join(', ')}`
          : `n/a (${mode.multi[0]?.note ?? 'not run'})`),
    );
  }
  lines.push(
    `- **idle, ssh -L with its default (no ServerAliveInterval):** ` +
      (noKa.length
        ? `${median(noKa.map((s) => s.bytesPerMin)).toFixed(0)} B/min on the wire, ${median(noKa.map((s) => s.wakeupsPerMin)).toFixed(0)} wake-ups/min, ` +
          `${median(noKa.map((s) => s.corePercent)).toFixed(3)} % of a core`
        : 'not measured'),
    '',
    ...table(rows, autossh),
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

/** `autossh -V`, or undefined when autossh is not installed. */
function autosshVersion(): string | undefined {
  const r = spawnSync('autossh', ['-V'], { encoding: 'utf8' });
  if (r.error) return undefined;
  const v = (r.stdout || r.stderr || '').trim();
  return /autossh/i.test(v) ? v : undefined;
}

// ---------------------------------------------------------------- main

let cleanupPromise: Promise<void> | undefined;
const sshdRefs: Sshd[] = [];
let targetsRef: Targets | undefined;

function cleanup(): Promise<void> {
  return (cleanupPromise ??= (async () => {
    killLiveChildren();
    await Promise.allSettled([...sshdRefs.map((s) => s.stop()), targetsRef?.close(), ...[...liveRelays].map((r) => r.close())]);
  })());
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  if (!fs.existsSync(CLI)) throw new Error(`${path.relative(process.cwd(), CLI)} is missing: run npm run build first`);
  const ssh2 = ssh2Info();
  for (const c of opts.ciphers) {
    if (c && ssh2.supported.length && !ssh2.supported.includes(c)) {
      throw new Error(`ssh2 ${ssh2.version} does not support ${c}; it supports ${ssh2.supported.join(', ')}`);
    }
  }
  const stale = newestMtime(path.join(ROOT, 'src')) > fs.statSync(CLI).mtimeMs;
  const autosshV = autosshVersion();
  if (!autosshV) process.stderr.write('autossh not found (apt-get install -y autossh): its column is skipped\n');
  const loadBefore = os.loadavg();
  const startedAt = Date.now();

  targetsRef = await startTargets();
  const modes: Mode[] = [];
  for (const cipher of opts.ciphers) {
    const { sshd, listener } = await startBenchSshd(cipher);
    sshdRefs.push(sshd);
    modes.push({ cipher, sshd, listener, full: [], autossh: [], multi: [], idle: [] });
  }
  const ctx: Ctx = { opts, targets: targetsRef, autossh: autosshV !== undefined, multiSupported: opts.multiConnections > 0 };
  process.stderr.write(
    `${opts.rounds} round(s); cipher modes: ${modes.map(modeName).join('; ')}; ${opts.sizeMiB} MiB each way; idle window ${opts.idleSeconds} s\n`,
  );

  for (let round = 1; round <= opts.rounds; round++) {
    for (const mode of modes) {
      process.stderr.write(`round ${round}, ${modeName(mode)} (sshd on ${HOST}:${mode.sshd.port})\n`);
      for (const tool of ['sshkeep', 'ssh'] as const) mode.full.push(await fullSession(round, tool, mode, ctx));
      if (ctx.autossh) mode.autossh.push(await autosshSession(round, mode, ctx));
      if (opts.multiConnections > 0) mode.multi.push(await multiSession(round, mode, ctx));
    }
    await idleWindow(round, modes, ctx);
  }

  const cmdline = ['node', ...process.execArgv, path.relative(process.cwd(), process.argv[1]!), ...process.argv.slice(2)].join(' ');
  const elapsed = (Date.now() - startedAt) / 1000;
  const header: Array<[string, string]> = [
    ['date', new Date().toISOString()],
    ['command', `\`${cmdline}\` (${elapsed.toFixed(0)} s)`],
    ['machine', `nproc ${sh('nproc', [])}, ${cpuModel()}, load avg before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`],
    ['node', process.version],
    ['OpenSSH', sshVersion()],
    ['autossh', autosshV ?? 'not installed (apt-get install -y autossh): its column is skipped'],
    ['ssh2 native crypto binding', ssh2.binding],
    ['sshkeep extra args', opts.sshkeepArgs.length ? `\`${opts.sshkeepArgs.join(' ')}\`` : 'none'],
    [
      'workload',
      `${opts.rounds} round(s), per cipher mode sshkeep, ssh -L, ${ctx.autossh ? 'autossh -M 0 (RSS)' : 'no autossh'}, ` +
        `${opts.multiConnections > 0 ? `sshkeep --connections ${opts.multiConnections} (parallel streams)` : 'no --connections row'} in turn, ` +
        `fresh process each; ${opts.sizeMiB} MiB up + down on 1 stream, and split over ${opts.streams} concurrent streams; ` +
        `${opts.pings.toLocaleString('en-US')} ping-pongs of 1 B and of 4 KiB; ${opts.conns} new connections; RSS with ${opts.rssConns.toLocaleString('en-US')} open connections; ` +
        `one ${opts.idleSeconds} s idle window per round (all tools of all modes side by side); sshd LogLevel DEBUG1 (for the cipher lines); CLK_TCK ${CLK_TCK}`,
    ],
  ];
  if (stale) header.push(['warning', 'dist/ is older than src/: run npm run build']);
  if (opts.idleSeconds < 2 * KEEPALIVE_S) {
    header.push(['note', `the ${opts.idleSeconds} s idle window is shorter than two ${KEEPALIVE_S} s keepalive intervals: its bytes-on-the-wire figures are mostly 0 or one heartbeat (use --idle-seconds 60)`]);
  }

  const summaries = modes.map((m) => ({ mode: m, rows: summarize(m, opts, ctx.autossh) }));
  const md = [
    '## sshkeep vs OpenSSH `ssh -N -L`' + (ctx.autossh ? ' (and `autossh -M 0`)' : ''),
    '',
    ...header.map(([k, v]) => `- **${k}:** ${v}`),
    '',
    ...summaries.map(({ mode, rows }) => modeSection(mode, rows, opts, ctx.autossh)),
    'Throughput: median of per-round MB/s (10^6 bytes/s, first to last byte at the receiver; parallel: total bytes over the first to the ' +
      'last byte across all streams). Latencies: median/p99 over all samples of all rounds. CPU: utime+stime of the forwarder process ' +
      '(/proc/PID/stat) over each measured transfer, and utime alone (in user space). RSS: VmRSS (MB = 10^6 bytes) 0.5 s after the first echo, and 2 s after the last of ' +
      `the ${opts.rssConns.toLocaleString('en-US')} connections echoed; autossh = autossh + its ssh. Idle: per minute over the window, which opens once every tool has run ${IDLE_SETTLE_MS / 1000} s (steady state), summed over every thread ` +
      '(run time from schedstat; wake-ups = voluntary + involuntary context switches) and, for autossh, over autossh and its ssh; bytes ' +
      `counted both ways by a relay between the forwarder and sshd; sshkeep at its default --keepalive-interval 15s, ssh/autossh with ServerAliveInterval=${KEEPALIVE_S}. ` +
      'Goals (issue #6) apply to the median rows; "met" compares the ratio, or sshkeep\'s own value where the goal is absolute. ' +
      'autossh applies only where it adds a process (RSS, idle, startup): its data path is ssh\'s.',
    '',
  ].join('\n');
  process.stdout.write(md);

  if (opts.json) {
    const json = {
      meta: Object.fromEntries(header),
      options: { ...opts, ciphers: opts.ciphers.map((c) => c ?? 'default') },
      ssh2: { version: ssh2.version, binding: ssh2.binding, defaultCiphers: ssh2.defaults },
      modes: summaries.map(({ mode, rows }) => ({
        cipher: mode.cipher ?? 'default',
        summary: rows,
        samples: { full: mode.full, autossh: mode.autossh, multiConnections: mode.multi, idle: mode.idle },
      })),
    };
    fs.writeFileSync(opts.json, JSON.stringify(json, null, 2) + '\n');
    process.stderr.write(`wrote ${opts.json}\n`);
  }
}

if (isEntryPoint(import.meta.url)) runMain('bench', main, cleanup);
