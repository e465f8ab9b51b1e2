/**
 * A listening port (or live Unix socket) in use at start: a previous instance may still be
 * draining, so the bind is retried for a short window (EADDRINUSE only); past it, a ListenError
 * with its own exit code. The forwards and the --health port alike.
 */
import t, { type Test } from 'tap';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { once } from 'node:events';
import { deadline, freePorts, httpGet, listenFor } from './fixtures/net.js';
import { tempDir } from './fixtures/tmp.js';
import { LogCapture } from './fixtures/tunnel.js';
import { LocalForward } from '../src/forward/local-forward.js';
import { bindAs, parseLocalForward } from '../src/config/forward-spec.js';
import { SshConnection } from '../src/ssh/connection.js';
import { EXIT, ListenError, exitCodeOf } from '../src/errors.js';
import { createLogger } from '../src/log.js';
import { DEFAULTS } from '../src/config/defaults.js';
import type { Fleet } from '../src/fleet.js';
import { startHealthServer } from '../src/ops/health.js';
import { Metrics } from '../src/ops/metrics.js';

/** A -L forward on `listen`, bound as the CLI binds it (never connected: only its listener is under test), with a `retryMs` window. */
function forwardOn(listen: string, retryMs: number) {
  const logs = new LogCapture();
  const logger = createLogger('debug', 'json', logs);
  const source = new SshConnection({ dial: () => Promise.reject(new Error('not dialled')), logger, backoff: () => 0, refusedBackoff: () => 0, heldRetryCapMs: 0, outageSummaryMs: 0 });
  const forward = new LocalForward(bindAs(parseLocalForward(`${listen}:127.0.0.1:1`), 'any', false), {
    source,
    logger,
    holdTimeoutMs: 0,
    holdBufferBytes: 0,
    channelOpenTimeoutMs: 1000,
    limits: { maxConnections: 0, maxHeld: 0, clients: () => 0, held: () => 0 },
    socksTimeoutMs: 1000,
    socketHighWaterMarkBytes: DEFAULTS.localSocketHighWaterMarkBytes,
    listenRetryMs: retryMs,
    listenRetryIntervalMs: 50,
  });
  return { forward, logs };
}

async function heldPort(t: Test): Promise<{ holder: net.Server; port: number }> {
  const holder = net.createServer();
  const port = await listenFor(t, holder);
  return { holder, port };
}

t.test('listen – a port in use at start is bound once the holder frees it, after one warning', async (t) => {
  const { holder, port } = await heldPort(t);
  const { forward, logs } = forwardOn(`127.0.0.1:${port}`, 10_000);
  t.teardown(() => forward.stopAccepting());
  const listening = forward.listen();
  const warned = await logs.waitFor((l) => l.event === 'listen_wait', 3000, 'the "in use" warning');
  t.equal(warned.level, 'warn', 'the wait is logged at warn');
  t.match(String(warned.msg), new RegExp(`127\\.0\\.0\\.1:${port} is in use`), 'naming the address');
  holder.close();
  const bound = await deadline(listening, 3000, 'the listener bound once the port is free');
  t.same(bound, { kind: 'tcp', host: '127.0.0.1', port }, 'on the port asked for');
  t.equal(logs.find('listen_wait').length, 1, 'the wait is logged once, not at every attempt');
});

t.test('listen – stopped while waiting for the port: it gives up and never binds it later', async (t) => {
  const { holder, port } = await heldPort(t);
  const { forward, logs } = forwardOn(`127.0.0.1:${port}`, 10_000);
  const listening = forward.listen().then(() => undefined, (e: unknown) => e);
  await logs.waitFor((l) => l.event === 'listen_wait', 3000, 'the "in use" warning');
  forward.stopAccepting();
  holder.close();
  const err = await deadline(listening, 3000, 'listen() to give up');
  t.type(err, ListenError, 'a ListenError');
  t.match((err as Error).message, /stopped while waiting/, 'saying it was stopped');
  // The port is free again and nobody listens on it: the stopped forward did not take it.
  const probe = net.connect(port, '127.0.0.1');
  const [outcome] = await Promise.race([once(probe, 'error').then(() => ['refused']), once(probe, 'connect').then(() => ['connected'])]);
  probe.destroy();
  t.equal(outcome, 'refused', 'nothing listens on the port after the stop');
});

t.test('listen – a port still in use past the window is a ListenError with exit code 4', async (t) => {
  const { port } = await heldPort(t);
  const { forward } = forwardOn(`127.0.0.1:${port}`, 300);
  const started = performance.now();
  const err = await forward.listen().then(() => undefined, (e: unknown) => e);
  const tookMs = performance.now() - started;
  t.type(err, ListenError, 'a ListenError');
  t.match((err as Error).message, new RegExp(`127\\.0\\.0\\.1:${port} is already in use`), 'naming the address');
  t.equal(exitCodeOf(err), EXIT.listen, 'exit code of "could not listen"');
  t.equal(EXIT.listen, 4, 'which is 4');
  t.ok(tookMs >= 250, `it waited out the window first (${Math.round(tookMs)} ms)`);
});

t.test('listen – an address of no interface here fails at once, not retried', async (t) => {
  const { forward, logs } = forwardOn('192.0.2.1:0', 10_000); // TEST-NET-1: never a local address
  const started = performance.now();
  const err = await forward.listen().then(() => undefined, (e: unknown) => e);
  t.type(err, ListenError, 'a ListenError');
  t.match((err as Error).message, /192\.0\.2\.1 is not an address of this host/);
  t.ok(performance.now() - started < 2000, 'without waiting out the retry window');
  t.equal(logs.find('listen_wait').length, 0, 'no "in use" wait');
});

/** Something listening on a Unix socket in a fresh directory. */
async function liveUnixSocket(t: Test): Promise<{ holder: net.Server; sock: string }> {
  const sock = path.join(tempDir(t, 'sshkeep-unix-'), 'live.sock');
  const holder = net.createServer();
  holder.listen(sock);
  await once(holder, 'listening');
  return { holder, sock };
}

t.test('listen – a live Unix socket at start is waited for like a port in use, then bound once it is free', async (t) => {
  const { holder, sock } = await liveUnixSocket(t);
  const { forward, logs } = forwardOn(sock, 10_000);
  t.teardown(() => forward.stopAccepting());
  const listening = forward.listen();
  await logs.waitFor((l) => l.event === 'listen_wait', 3000, 'the "in use" warning');
  holder.close(); // leaves no file: the forward finds the path free
  t.same(await deadline(listening, 3000, 'the listener bound once the path is free'), { kind: 'unix', path: sock });
  t.equal(fs.statSync(sock).mode & 0o777, 0o600, 'the forward\'s own socket, 0600');
});

t.test('listen – a live Unix socket past the window: ListenError "in use", naming the path', async (t) => {
  const { holder, sock } = await liveUnixSocket(t);
  t.teardown(() => holder.close());
  const { forward } = forwardOn(sock, 300);
  const err = await forward.listen().then(() => undefined, (e: unknown) => e);
  t.type(err, ListenError, 'a ListenError');
  t.equal((err as Error).message, `-L ${sock}:127.0.0.1:1: ${sock} is in use: another process listens on it.`);
});

t.test('--health – its port in use at start is bound once the holder frees it, after one warning; past the window, a ListenError', async (t) => {
  const { holder, port } = await heldPort(t);
  const logs = new LogCapture();
  const retry = { retryMs: 10_000, intervalMs: 50, logger: createLogger('debug', 'json', logs) };
  const fleet = {} as Fleet; // not asked before a request for /readyz or /metrics
  const starting = startHealthServer({ host: '127.0.0.1', port }, fleet, new Metrics(), undefined, undefined, [], retry);
  const warned = await logs.waitFor((l) => l.event === 'listen_wait', 3000, 'the "in use" warning');
  t.equal(warned.level, 'warn');
  t.match(String(warned.msg), `--health 127.0.0.1:${port} is in use`);
  holder.close();
  const health = await deadline(starting, 3000, 'the health port bound once free');
  t.teardown(() => health.close());
  t.same(await httpGet(port, '/healthz'), { status: 200, body: '{"status":"alive"}\n' }, 'and answering');
  t.equal(logs.find('listen_wait').length, 1, 'the wait is logged once, not at every attempt');

  const err = await startHealthServer({ host: '127.0.0.1', port }, fleet, new Metrics(), undefined, undefined, [], { ...retry, retryMs: 300 }).then(() => undefined, (e: unknown) => e);
  t.type(err, ListenError, 'in use past the window: a ListenError (exit 4)');
  t.equal((err as Error).message, `--health 127.0.0.1:${port}: cannot listen (already in use).`);
});

t.test('listen – a forward stopped before it bound: listen() is a ListenError and leaves nothing listening', async (t) => {
  const [port] = await freePorts(1);
  const { forward } = forwardOn(`${port}`, 10_000); // no bind address: 127.0.0.1 and ::1
  forward.stopAccepting();
  const err = await forward.listen().then(() => undefined, (e: unknown) => e);
  t.type(err, ListenError, 'a ListenError');
  t.match((err as Error).message, /stopped while it was binding/);
  for (const host of ['127.0.0.1', '::1']) {
    const probe = net.connect(port!, host);
    const [outcome] = await Promise.race([once(probe, 'error').then(() => ['refused']), once(probe, 'connect').then(() => ['connected'])]);
    probe.destroy();
    t.equal(outcome, 'refused', `nothing listens on ${host}`);
  }
});
