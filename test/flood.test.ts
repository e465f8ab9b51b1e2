/**
 * Load: sshkeep as a CLI child process under a connection flood past --max-connections, and
 * with peers that never read (SSH window and socket backpressure must bound its memory).
 * Its file descriptors and RSS are read from /proc/<pid>, so this file is Linux-only.
 */
import t, { type Test } from 'tap';
import fs from 'node:fs';
import net from 'node:net';
import { once } from 'node:events';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { cliArgs, spawnCliFor, type SpawnedCli } from './fixtures/cli.js';
import { connect, deadline, httpGet, refusedPort, echoRoundTrip, listen, startEchoFor } from './fixtures/net.js';
import { makeKeys, startServer } from './fixtures/tunnel.js';
import { fdCount, rssKiB } from './fixtures/proc.js';
import { metricSum } from './fixtures/metrics.js';


const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const FLOOD = 5000;
const MAX_CONNECTIONS = 500;
/** Retained JS heap allowed after a flood and a full GC (JIT code for the paths it exercised). */
const HEAP_SLACK = 4 * MiB;
/** RSS allowed above baseline after a flood and a full GC (V8 and malloc keep some pages they grew into). */
const RSS_SLACK = 30 * MiB;

if (process.platform !== 'linux' || !fs.existsSync('/proc/self/fd')) {
  t.plan(0, 'needs /proc (Linux)');
  process.exit(0);
}

// ---------------------------------------------------------------- /proc readings

/** The soft "Max open files" limit of `pid` (or 'self'). */
function softNoFile(pid: number | 'self'): number {
  const line = fs.readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.split(/\s{2,}/)[1];
  return soft === 'unlimited' ? Infinity : Number(soft);
}

/** Resolves at the socket's 'close', however it ends (events.once would reject on an error first). */
const closed = (s: net.Socket) => new Promise<void>((resolve) => s.once('close', () => resolve()));

const mb = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;

/** Resolves with `read()` once `ok` holds for it, polled every `everyMs`; rejects after `ms` naming `what` and the last value read. */
async function pollUntil<T>(read: () => T | Promise<T>, ok: (v: T) => boolean, ms: number, what: string, everyMs = 50): Promise<T> {
  const giveUp = Date.now() + ms;
  let last: T | undefined;
  for (;;) {
    try {
      last = await read();
      if (ok(last)) return last;
    } catch {
      // not there yet (e.g. the health port not listening yet)
    }
    if (Date.now() > giveUp) throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

// ---------------------------------------------------------------- HTTP (health endpoints)

// ---------------------------------------------------------------- the sshkeep child

interface Child {
  cli: SpawnedCli;
  pid: number;
  fwdPort: number;
  healthPort: number;
}

/**
 * sshkeep as a child process to an embedded SSH server, forwarding a fixed local port to
 * `targetPort`, with health endpoints; logs at error level only, so 4,500 refusals do not
 * become 4,500 lines (hence fixed ports: the `listen` and `health` lines are info).
 */
async function startChild(t: Test, targetPort: number, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Child> {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const fwdPort = await refusedPort();
  const healthPort = await refusedPort();
  const cli = spawnCliFor(
    t,
    cliArgs(server.port, keys, `${fwdPort}:127.0.0.1:${targetPort}`, [
      '--health', `127.0.0.1:${healthPort}`, '--log-level', 'error', '--log-format', 'json', ...extra,
    ]),
    { env },
  );
  const pid = cli.child.pid!;
  await pollUntil(() => httpGet(healthPort, '/readyz'), (r) => r.status === 200, 10_000, `sshkeep ready on /readyz; stderr: ${cli.stderr()}`);
  return { cli, pid, fwdPort, healthPort };
}

/** fd count and RSS once the fd count has held still for a few polls (the last round trip's sockets closed). */
async function steady(pid: number): Promise<{ fds: number; rss: number }> {
  let prev = -1;
  let same = 0;
  await pollUntil(
    () => fdCount(pid),
    (n) => {
      same = n === prev ? same + 1 : 0;
      prev = n;
      return same >= 4;
    },
    5000,
    'a steady fd count',
  );
  return { fds: prev, rss: rssKiB(pid) * 1024 };
}

// ---------------------------------------------------------------- flood

type Attempt = { kind: 'served'; sock: net.Socket } | { kind: 'reset'; code: string } | { kind: 'other'; detail: string };

/** Connects, writes a byte, and resolves at the echo (socket kept open) or at the close (reset or otherwise). */
function attempt(port: number): Promise<Attempt> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    let code: string | undefined;
    let served = false;
    s.on('error', (e: NodeJS.ErrnoException) => (code = e.code ?? e.message));
    s.once('connect', () => s.write('x'));
    s.once('data', (d: Buffer) => {
      if (d.toString() !== 'x') return resolve({ kind: 'other', detail: `echoed ${JSON.stringify(d.toString())}` });
      served = true;
      resolve({ kind: 'served', sock: s });
    });
    s.once('close', (hadError) => {
      if (served) return;
      // A reset reads as ECONNRESET, or as EPIPE when our byte was written after the RST came in.
      if (code === 'ECONNRESET' || code === 'EPIPE') resolve({ kind: 'reset', code });
      else resolve({ kind: 'other', detail: `closed (hadError ${hadError}, code ${code})` });
    });
  });
}

/** NODE_OPTIONS for a child whose garbage a test can collect on demand (see fixtures/gc-on-signal.cjs). */
const GC_ON_SIGNAL = `--expose-gc --require ${fileURLToPath(new URL('./fixtures/gc-on-signal.cjs', import.meta.url))}`;

let gcRuns = 0;
/** Full garbage collections in the child, then its JS heap in use, RSS and fds (fd count steady). */
async function collected(child: Child): Promise<{ heap: number; rss: number; fds: number }> {
  const n = ++gcRuns;
  process.kill(child.pid, 'SIGUSR2');
  await child.cli.waitForLog((l) => l.event === 'test_gc' && l.n === n, 10_000, `garbage collection #${n} in the child`);
  const { fds, rss } = await steady(child.pid);
  // prom-client reads v8.getHeapStatistics() when scraped.
  const heap = metricSum((await httpGet(child.healthPort, '/metrics')).body, 'nodejs_heap_size_used_bytes');
  return { heap, rss, fds };
}

/** Sends `n` simultaneous clients; checks they split into exactly `limit` served and the rest reset. Served ones are left open. */
async function floodOnce(t: Test, child: Child, n: number, round: number) {
  const { pid, healthPort, fwdPort } = child;
  const before = (await httpGet(healthPort, '/metrics')).body;
  const metricsBefore = metricSum(before, 'sshkeep_connections_total', { result: 'limit' });
  const allBefore = metricSum(before, 'sshkeep_connections_total', {});
  // Sampled during the flood: the most descriptors and memory it ever held.
  let peakFds = 0;
  let peakRss = 0;
  const sample = () => {
    try {
      peakFds = Math.max(peakFds, fdCount(pid));
      peakRss = Math.max(peakRss, rssKiB(pid) * 1024);
    } catch {}
  };
  sample();
  const sampler = setInterval(sample, 20);
  const started = performance.now();
  const results = await deadline(Promise.all(Array.from({ length: n }, () => attempt(fwdPort))), 30_000, `${n} flood clients to be echoed or reset`).finally(() =>
    clearInterval(sampler),
  );
  const ms = Math.round(performance.now() - started);
  sample();

  const served = results.filter((r): r is Extract<Attempt, { kind: 'served' }> => r.kind === 'served');
  const resets = results.filter((r) => r.kind === 'reset');
  const others = results.filter((r): r is Extract<Attempt, { kind: 'other' }> => r.kind === 'other');
  t.comment(`flood #${round} of ${n} in ${ms} ms: ${served.length} served (all open at once), ${resets.length} reset, ${others.length} other; peak ${peakFds} fds, RSS ${mb(peakRss)}`);
  t.same(others.map((o) => o.detail).slice(0, 5), [], `flood #${round}: every client was either echoed or reset`);
  // Served sockets are all still open, so this is also the number served at once.
  t.equal(served.length, MAX_CONNECTIONS, `flood #${round}: exactly --max-connections (${MAX_CONNECTIONS}) clients served at once`);
  t.equal(resets.length, n - MAX_CONNECTIONS, `flood #${round}: the other ${n - MAX_CONNECTIONS} were reset`);

  t.equal(child.cli.child.exitCode, null, 'sshkeep is still running');
  t.equal((await httpGet(healthPort, '/healthz')).status, 200, '/healthz answers at the limit');
  t.equal((await httpGet(healthPort, '/readyz')).status, 503, '/readyz: not ready while at --max-connections');
  const metrics = (await httpGet(healthPort, '/metrics')).body;
  // Another test file's probe of a port it took for closed may land here while the limit holds (the
  // suite runs four files at once): sshkeep counts it too, as one more connection of any result.
  const strangers = metricSum(metrics, 'sshkeep_connections_total', {}) - allBefore - (n - MAX_CONNECTIONS);
  t.ok(strangers >= 0 && strangers <= 2, `no more than a stray connection or two besides the flood's (${strangers})`);
  t.equal(metricSum(metrics, 'sshkeep_connections_total', { result: 'limit' }) - metricsBefore, resets.length + strangers, 'sshkeep_connections_total{result="limit"} counts every reset client');
  t.equal(metricSum(metrics, 'sshkeep_connections_active', {}), MAX_CONNECTIONS, 'sshkeep_connections_active is the limit');

  // Close every served client; sshkeep must give back their sockets and channels.
  await Promise.all(
    served.map(({ sock }) => {
      const done = closed(sock);
      sock.end();
      return done;
    }),
  );
  // A clean end counts until the server's CLOSE (src/forward/pump.ts): the last connections
  // leave a round trip after their clients. Within 10 s, or the test fails naming what it saw.
  const idle = (r: { status: number; body: string }) => {
    const tunnel = (JSON.parse(r.body) as { tunnels: { active: number; held: number }[] }).tunnels[0]!;
    return r.status === 200 && tunnel.active + tunnel.held === 0;
  };
  await pollUntil(() => httpGet(healthPort, '/readyz'), idle, 10_000, '/readyz 200 with no connection left active or held once the clients are gone');
  return { served: served.length, reset: resets.length, ms, peakFds, peakRss };
}

t.test(`flood – ${FLOOD} simultaneous clients with --max-connections ${MAX_CONNECTIONS}: excess reset and counted, fds and memory back to baseline`, async (t) => {
  // Each client is one fd here, each served one two more (the embedded server's target
  // socket and the echo server's), plus what node and tap hold.
  const ownLimit = softNoFile('self');
  const n = Math.min(FLOOD, ownLimit - 2 * MAX_CONNECTIONS - 300);
  if (n < FLOOD) t.comment(`scaled down to ${n} clients: this process's soft RLIMIT_NOFILE is ${ownLimit} (needs ~${FLOOD + 2 * MAX_CONNECTIONS + 300})`);
  t.ok(n > MAX_CONNECTIONS * 2, `enough descriptors for a meaningful flood (soft limit ${ownLimit}, ${n} clients)`);

  const echo = await startEchoFor(t);
  const child = await startChild(t, echo.port, ['--max-connections', String(MAX_CONNECTIONS)], { NODE_OPTIONS: GC_ON_SIGNAL });
  const { pid, fwdPort, healthPort, cli } = child;
  const childLimit = softNoFile(pid);
  t.ok(childLimit >= MAX_CONNECTIONS * 2 + 100, `the sshkeep child may open its ${MAX_CONNECTIONS} clients and their channels (soft limit ${childLimit})`);

  t.equal((await echoRoundTrip(fwdPort, 'ping')).toString(), 'ping', 'a round trip before the flood');
  await httpGet(healthPort, '/metrics'); // the first scrape's allocations belong to the baseline
  const base = await collected(child);
  t.comment(`baseline: ${base.fds} fds, RSS ${mb(base.rss)}, JS heap in use ${mb(base.heap)}`);

  // Two floods: the first shows the return to baseline, the second that nothing grows per flood.
  const after: { heap: number; rss: number; fds: number }[] = [];
  for (const round of [1, 2]) {
    const f = await floodOnce(t, child, n, round);
    t.ok(f.peakFds < base.fds + MAX_CONNECTIONS * 2 + 200, `flood #${round}: the child's descriptors stayed bounded by the limit (peak ${f.peakFds}, baseline ${base.fds})`);
    const fds = await pollUntil(() => fdCount(pid), (k) => k <= base.fds + 2, 10_000, `the child's fd count back to its baseline ${base.fds} (±2)`);
    t.ok(fds <= base.fds + 2, `flood #${round}: fds back to baseline: ${fds} (baseline ${base.fds})`);
    const m = await collected(child);
    after.push(m);
    t.comment(`after flood #${round} and a GC: ${m.fds} fds, RSS ${mb(m.rss)} (+${mb(m.rss - base.rss)}), JS heap in use ${mb(m.heap)} (+${mb(m.heap - base.heap)})`);
    // What is left is JIT code for the paths the flood exercised (~0.5 MiB), not connections.
    t.ok(m.heap < base.heap + HEAP_SLACK, `flood #${round}: the JS heap retains nothing of the flood: ${mb(m.heap)} < baseline ${mb(base.heap)} + ${mb(HEAP_SLACK)}`);
    t.ok(m.rss < base.rss + RSS_SLACK, `flood #${round}: RSS back within ${mb(RSS_SLACK)} of baseline: ${mb(m.rss)} (baseline ${mb(base.rss)}, peak ${mb(f.peakRss)})`);
  }
  t.ok(after[1]!.heap < after[0]!.heap + HEAP_SLACK / 2, `no growth from one flood to the next: JS heap ${mb(after[0]!.heap)} -> ${mb(after[1]!.heap)}`);

  t.equal((await echoRoundTrip(fwdPort, 'after the flood')).toString(), 'after the flood', 'a new round trip works after the floods');
  t.equal((await httpGet(healthPort, '/healthz')).status, 200, '/healthz still answers');
  t.equal(cli.child.exitCode, null, 'sshkeep is still running');
});

// ---------------------------------------------------------------- peers that never read

const CHUNK = 64 * 1024;
/** Far below 1 GiB: kernel socket buffers on the path plus SSH windows are a few MiB. */
const MOVED_BOUND = 64 * MiB;
const RSS_BOUND = 64 * MiB;

/**
 * Writes up to 1 GiB to `sock` as fast as it accepts (waiting for 'drain' whenever write()
 * returns false). `offered` is what write() took; `stalledMs()` how long since it last took any.
 */
function flood(sock: net.Socket) {
  const chunk = Buffer.alloc(CHUNK, 0x61);
  const state = { offered: 0, sawBackpressure: false, lastProgress: performance.now(), stopped: false };
  const pump = () => {
    while (!state.stopped && !sock.destroyed && state.offered < GiB) {
      state.offered += CHUNK;
      state.lastProgress = performance.now();
      if (!sock.write(chunk)) {
        state.sawBackpressure = true;
        sock.once('drain', pump);
        return;
      }
    }
  };
  sock.on('error', () => {});
  pump();
  return {
    state,
    stalledMs: () => performance.now() - state.lastProgress,
    stop: () => (state.stopped = true),
  };
}

/**
 * Waits for the writer to stall (no progress for 1 s), sampling the child's RSS every 50 ms from
 * the start of the transfer, then keeps sampling 2 s into the stall. Fails early if RSS or the
 * bytes moved run past their bounds (unbounded buffering would get there within a second).
 */
async function watchStall(t: Test, pid: number, base: number, writer: ReturnType<typeof flood>) {
  let peak = rssKiB(pid) * 1024;
  const overBound = () => peak - base >= RSS_BOUND || writer.state.offered >= MOVED_BOUND;
  await pollUntil(
    () => (peak = Math.max(peak, rssKiB(pid) * 1024)),
    () => overBound() || writer.stalledMs() > 1000,
    20_000,
    'the writer to stall',
  );
  if (!overBound()) {
    const stalledAt = writer.state.offered;
    const sampleUntil = performance.now() + 2000;
    await pollUntil(
      () => (peak = Math.max(peak, rssKiB(pid) * 1024)),
      () => overBound() || performance.now() > sampleUntil,
      5000,
      'RSS samples during the stall',
    );
    t.equal(writer.state.offered, stalledAt, 'the writer made no progress while stalled');
  }
  return peak;
}

t.test('flood – every file descriptor taken (EMFILE): the process stays up and serves again once the flood leaves', async (t) => {
  const echo = await startEchoFor(t);
  const { cli, pid, fwdPort } = await startChild(t, echo.port, ['--log-level', 'debug']);
  t.equal((await echoRoundTrip(fwdPort, 'before')).toString(), 'before', 'a round trip before the flood');
  // node raised its soft limit to the hard one at start: lower both, as LimitNOFILE or docker --ulimit would.
  const limit = (await steady(pid)).fds + 30;
  const prlimit = spawnSync('prlimit', ['--pid', String(pid), `--nofile=${limit}:${limit}`], { encoding: 'utf8' });
  t.equal(prlimit.status, 0, `prlimit (util-linux) lowered the child's RLIMIT_NOFILE to ${limit}: ${prlimit.stderr}`);
  const flood: net.Socket[] = [];
  t.teardown(() => flood.forEach((s) => s.destroy()));
  for (let i = 0; i < 80; i++) {
    const s = net.connect(fwdPort, '127.0.0.1');
    s.on('error', () => {});
    flood.push(s);
  }
  // The network watch reads the interfaces every 2 s; without a descriptor that reading threw, uncaught.
  const unreadable = await cli.waitForLog((l) => l.event === 'network_unreadable', 10_000, 'a reading of the interfaces without a descriptor');
  t.match(unreadable, { level: 'debug', error: /24|EMFILE/ }, 'the failed reading is logged at debug, not thrown');
  t.equal(cli.child.exitCode, null, 'still running');
  flood.forEach((s) => s.destroy());
  await pollUntil(() => echoRoundTrip(fwdPort, 'after'), (r) => r.toString() === 'after', 10_000, `a round trip once the flood left; stderr tail: ${cli.stderr().slice(-500)}`);
  t.pass('serves again once the flood left');
});

t.test('backpressure – a client that never reads while the target sends 1 GiB: RSS bounded, the target is held back', async (t) => {
  let writer: ReturnType<typeof flood> | undefined;
  const targetClosed: Promise<unknown>[] = [];
  const target = net.createServer((s) => {
    targetClosed.push(closed(s));
    writer = flood(s);
  });
  await listen(target);
  t.teardown(() => {
    writer?.stop();
    target.close();
  });
  const { cli, pid, fwdPort } = await startChild(t, (target.address() as net.AddressInfo).port);
  const base = await steady(pid);

  const client = net.connect({ port: fwdPort, host: '127.0.0.1' });
  client.pause(); // never read: not even the first chunk is taken off the kernel's queue
  client.on('error', () => {});
  await once(client, 'connect');
  await pollUntil(() => writer, (w) => w !== undefined, 5000, 'the target to be connected');
  const peak = await watchStall(t, pid, base.rss, writer!);
  const offered = writer!.state.offered;
  t.comment(`never-reading client: target stalled at ${mb(offered)} written; sshkeep RSS baseline ${mb(base.rss)}, peak ${mb(peak)} (+${mb(peak - base.rss)})`);
  t.ok(writer!.state.sawBackpressure, "the target's write() returned false (backpressure reached it)");
  t.ok(offered < MOVED_BOUND, `the target stopped far below 1 GiB: ${mb(offered)} < ${mb(MOVED_BOUND)}`);
  t.ok(peak - base.rss < RSS_BOUND, `sshkeep RSS stayed bounded: +${mb(peak - base.rss)} < +${mb(RSS_BOUND)}`);
  t.equal(client.bytesRead, 0, 'the client read nothing');

  client.destroy();
  await deadline(Promise.all(targetClosed), 5000, 'the target connection to close after the client left');
  t.equal(cli.child.exitCode, null, 'sshkeep is still running');
});

t.test('backpressure – a target that never reads while the client sends 1 GiB: RSS bounded, the client is held back', async (t) => {
  const accepted: net.Socket[] = [];
  // pauseOnConnect and never resumed: the target does not read a byte.
  const target = net.createServer({ pauseOnConnect: true }, (s) => {
    s.on('error', () => {});
    accepted.push(s);
  });
  await listen(target);
  t.teardown(() => {
    for (const s of accepted) s.destroy();
    target.close();
  });
  const { cli, pid, fwdPort } = await startChild(t, (target.address() as net.AddressInfo).port);
  const base = await steady(pid);

  const client = await connect(fwdPort);
  t.teardown(() => client.destroy());
  const writer = flood(client);
  const peak = await watchStall(t, pid, base.rss, writer);
  const offered = writer.state.offered;
  t.comment(`never-reading target: client stalled at ${mb(offered)} written; sshkeep RSS baseline ${mb(base.rss)}, peak ${mb(peak)} (+${mb(peak - base.rss)})`);
  t.equal(accepted.length, 1, 'the target was connected');
  t.ok(writer.state.sawBackpressure, "the client's write() returned false (backpressure reached it)");
  t.ok(offered < MOVED_BOUND, `the client stopped far below 1 GiB: ${mb(offered)} < ${mb(MOVED_BOUND)}`);
  t.ok(peak - base.rss < RSS_BOUND, `sshkeep RSS stayed bounded: +${mb(peak - base.rss)} < +${mb(RSS_BOUND)}`);

  writer.stop();
  const clientClosed = closed(client);
  client.destroy();
  await clientClosed;
  t.equal(cli.child.exitCode, null, 'sshkeep is still running');
  // The stalled stream took nothing else down: a new client still gets through to the target.
  const next = await connect(fwdPort);
  t.teardown(() => next.destroy());
  await pollUntil(() => accepted.length, (k) => k === 2, 5000, 'a second connection at the target');
  t.equal(accepted.length, 2, 'a new client reaches the target after the stalled one left');
});
