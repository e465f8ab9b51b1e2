import t, { type Test } from 'tap';
import os from 'node:os';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { connect, deadline, expectEcho, hashedEchoClient, httpGet, refusedPort, roundTrip, startEchoFor } from './fixtures/net.js';
import { nextState } from './fixtures/status.js';
import { inputFor, makeKeys, startRelay, startServer, LogCapture } from './fixtures/tunnel.js';
import { resolveTunnel } from '../src/config/resolve.js';
import { Fleet } from '../src/fleet.js';
import { Metrics } from '../src/ops/metrics.js';
import { startHealthServer } from '../src/ops/health.js';
import { createLogger } from '../src/log.js';
import { metricSamples, metricSum, metricValue } from './fixtures/metrics.js';


/** Resolves when the socket has closed, however (events.once would reject on its reset). */
const closed = (s: net.Socket) => new Promise((resolve) => s.on('close', resolve));

/** One tunnel through a fault relay, with health endpoints and metrics, like the CLI wires them. */
async function setup(t: Test, extraForwards: string[] = [], process = { maxConnections: 0, maxHeld: 1024 }, dynamicForwards: string[] = [], serverDown = false) {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const relay = await startRelay(t, keys, server);
  if (serverDown) relay.set('refuse');
  const echo = await startEchoFor(t);
  const logs = new LogCapture();
  const config = resolveTunnel(
    inputFor(relay, keys, [`0:127.0.0.1:${echo.port}`, ...extraForwards], { keepaliveInterval: '500ms', holdTimeout: '1s', dynamicForwards }),
    { home: os.tmpdir(), localUser: 'tester', authSock: undefined },
  );
  const fleet = new Fleet([config], process, { logger: createLogger('debug', 'json', logs) });
  const metrics = new Metrics();
  for (const app of fleet.tunnels) metrics.watch(app);
  const bound = await fleet.start();
  const health = await startHealthServer({ host: '127.0.0.1', port: 0 }, fleet, metrics);
  t.teardown(async () => {
    health.closeAllConnections();
    health.close();
    await fleet.stop('test over');
  });
  const healthPort = (health.address() as AddressInfo).port;
  return { fleet, app: fleet.tunnels[0]!, relay, bound, healthPort, logs };
}

t.test('endpoints – readiness and startup follow the tunnel through its states', async (t) => {
  const { fleet, app, relay, healthPort } = await setup(t);
  const before = await httpGet(healthPort, '/startupz');
  if (app.connection.state !== 'ready') t.equal(before.status, 503, 'starting: /startupz is 503');
  await deadline(fleet.ready(), 5000, 'ready');
  await deadline(once(app.connection, 'rtt'), 5000, 'first RTT');
  t.equal((await httpGet(healthPort, '/healthz')).status, 200);
  t.equal((await httpGet(healthPort, '/startupz')).status, 200);
  const ready = await httpGet(healthPort, '/readyz');
  t.equal(ready.status, 200);
  const body = JSON.parse(ready.body);
  t.equal(body.tunnels[0].state, 'ready');
  t.type(body.tunnels[0].rttMs, 'number', 'reports the last RTT');
  t.equal(body.tunnels[0].reconnects, 0);

  const suspect = nextState(app.connection, 'suspect', 5000);
  relay.set('blackhole');
  await suspect;
  const during = await httpGet(healthPort, '/readyz');
  t.equal(during.status, 503, 'suspect: not ready');
  t.equal(JSON.parse(during.body).tunnels[0].state, 'suspect');
  t.equal((await httpGet(healthPort, '/healthz')).status, 200, 'liveness does not follow the tunnel');
  t.equal((await httpGet(healthPort, '/startupz')).status, 200, 'started stays started');

  const back = nextState(app.connection, 'ready', 10_000);
  relay.restore();
  await back;
  t.equal((await httpGet(healthPort, '/readyz')).status, 200, 'ready again');
  t.equal((await httpGet(healthPort, '/nope')).status, 404);
});

t.test('endpoints – /readyz never shows secrets or key material', async (t) => {
  const { fleet, healthPort } = await setup(t);
  await deadline(fleet.ready(), 5000, 'ready');
  const body = (await httpGet(healthPort, '/readyz')).body;
  t.notMatch(body, /PRIVATE KEY|identity|passphrase|password/i);
});

t.test('metrics – names, labels and counters move with what happens', async (t) => {
  const dead = await refusedPort();
  const { fleet, app, relay, bound, healthPort } = await setup(t, [`0:127.0.0.1:${dead}`]);
  await deadline(fleet.ready(), 5000, 'ready');
  await deadline(once(app.connection, 'rtt'), 5000, 'first RTT');
  const [ok, refused] = app.forwards;

  // ok: one echo of 5 bytes each way
  t.equal((await roundTrip(await connect(bound[0]!.port), 'hello')).toString(), 'hello');
  // target_refused
  const r = net.connect(bound[1]!.port, '127.0.0.1').on('error', () => {});
  await deadline(closed(r), 5000, 'refused client closed');
  // reset_by_tunnel_loss: an open stream when the server goes away
  const open = await connect(bound[0]!.port);
  open.on('error', () => {});
  open.write('x');
  await once(open, 'data');
  const reconnecting = nextState(app.connection, 'reconnecting', 5000);
  relay.set('refuse');
  await reconnecting;
  await deadline(closed(open), 5000, 'open stream cut');
  // hold_timeout: the tunnel stays down past --hold-timeout 1s
  const held = net.connect(bound[0]!.port, '127.0.0.1').on('error', () => {});
  await deadline(closed(held), 5000, 'held client timed out');
  const back = nextState(app.connection, 'ready', 10_000);
  relay.restore();
  await back;

  const text = (await httpGet(healthPort, '/metrics')).body;
  const tunnel = app.name;
  t.equal(metricValue(text, 'sshkeep_tunnel_up', { tunnel }), 1);
  t.equal(metricValue(text, 'sshkeep_tunnel_state', { tunnel, state: 'ready' }), 1);
  t.equal(metricValue(text, 'sshkeep_tunnel_state', { tunnel, state: 'reconnecting' }), 0);
  t.equal(metricValue(text, 'sshkeep_tunnel_reconnects_total', { tunnel }), 1);
  t.ok((metricValue(text, 'sshkeep_heartbeat_rtt_seconds_count', { tunnel }) ?? 0) >= 1, 'RTT histogram has samples');
  t.equal(metricValue(text, 'sshkeep_connections_total', { forward: ok!.name, result: 'ok' }), 1);
  t.equal(metricValue(text, 'sshkeep_connections_total', { forward: refused!.name, result: 'target_refused' }), 1);
  t.equal(metricValue(text, 'sshkeep_connections_total', { forward: ok!.name, result: 'reset_by_tunnel_loss' }), 1);
  t.equal(metricValue(text, 'sshkeep_connections_total', { forward: ok!.name, result: 'hold_timeout' }), 1);
  t.equal(metricValue(text, 'sshkeep_bytes_total', { forward: ok!.name, direction: 'up' }), 6, '5 + 1 bytes up');
  t.equal(metricValue(text, 'sshkeep_bytes_total', { forward: ok!.name, direction: 'down' }), 6);
  t.equal(metricValue(text, 'sshkeep_connections_active', { forward: ok!.name }), 0);
  t.equal(metricValue(text, 'sshkeep_connections_held', { forward: ok!.name }), 0);
  t.ok((metricValue(text, 'sshkeep_outage_seconds_total', { tunnel }) ?? 0) > 0.5, 'the outage was counted');
  t.ok(metricValue(text, 'process_cpu_user_seconds_total') !== undefined, 'default process metrics too');
});

t.test('metrics – every series of a tunnel and its forwards exists at 0 before anything happens', async (t) => {
  // The server is down: nothing has connected, probed or forwarded yet.
  const { app, healthPort } = await setup(t, [], undefined, ['0'], true);
  const text = (await httpGet(healthPort, '/metrics')).body;
  const tunnel = app.name;
  t.not(app.connection.state, 'ready', 'scraped before any connection');
  t.equal(metricValue(text, 'sshkeep_tunnel_reconnects_total', { tunnel }), 0, 'reconnects, before the first reconnect');
  t.equal(metricValue(text, 'sshkeep_heartbeat_rtt_seconds_count', { tunnel }), 0, 'the RTT histogram, before its first sample');
  const [local, dynamic] = app.forwards;
  for (const result of ['ok', 'target_refused', 'hold_timeout', 'reset_by_tunnel_loss', 'limit', 'not_ready', 'shutdown']) {
    t.equal(metricValue(text, 'sshkeep_connections_total', { tunnel, forward: local!.name, result }), 0, `-L ${result}`);
  }
  t.equal(metricValue(text, 'sshkeep_connections_total', { forward: dynamic!.name, result: 'socks_error' }), 0, '-D socks_error');
  t.equal(metricValue(text, 'sshkeep_connections_total', { forward: local!.name, result: 'socks_error' }), undefined, 'no SOCKS series for -L');
  t.notMatch(text, /forward="[^"]*:0(->|")/, 'forwards are named by their bound port, not 0');
});

t.test('limits – past --max-connections clients are reset, counted, and /readyz says not ready', async (t) => {
  const { fleet, app, bound, healthPort } = await setup(t, [], { maxConnections: 1, maxHeld: 1024 });
  await deadline(fleet.ready(), 5000, 'ready');
  const first = await connect(bound[0]!.port);
  first.write('a');
  await once(first, 'data');
  t.equal((await httpGet(healthPort, '/readyz')).status, 503, 'full: not ready');
  const second = net.connect(bound[0]!.port, '127.0.0.1');
  const code = await deadline(new Promise<string>((r) => second.on('error', (e: NodeJS.ErrnoException) => r(e.code ?? ''))), 5000, 'second reset');
  t.equal(code, 'ECONNRESET');
  const text = (await httpGet(healthPort, '/metrics')).body;
  t.equal(metricValue(text, 'sshkeep_connections_total', { forward: app.forwards[0]!.name, result: 'limit' }), 1);
  first.destroy();
});

t.test('metrics – across a reload that replaces a tunnel, no counter goes backwards and its open streams are still counted', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const env = { home: os.tmpdir(), localUser: 'tester', authSock: undefined };
  const configOf = (holdTimeout: string) => ({ ...resolveTunnel(inputFor(server, keys, [`127.0.0.1:0:127.0.0.1:${echo.port}`], { keepaliveInterval: '200ms', holdTimeout }), env), name: 'db' });
  const fleet = new Fleet([configOf('1s')], { maxConnections: 0, maxHeld: 1024 });
  const metrics = new Metrics();
  // Wired as the CLI wires them (src/cli/run.ts).
  for (const app of fleet.tunnels) metrics.watch(app);
  fleet.on('added', (a) => metrics.watch(a));
  fleet.on('retired', (a) => metrics.unwatch(a));
  t.teardown(() => fleet.stop('test over'));
  const [bound] = await fleet.start();
  await deadline(fleet.ready(), 5000, 'ready');
  await deadline(once(fleet.tunnels[0]!.connection, 'rtt'), 5000, 'an RTT sample');
  const stream = await hashedEchoClient(bound!.port);
  await stream.send(Buffer.alloc(1000, 'a'));
  const bytes = async () => metricSum(await metrics.text(), 'sshkeep_bytes_total', { tunnel: 'db' });
  const rtts = async () => metricValue(await metrics.text(), 'sshkeep_heartbeat_rtt_seconds_count', { tunnel: 'db' }) ?? 0;
  const before = { bytes: await bytes(), rtts: await rtts() };
  t.equal(before.bytes, 2000, '1000 bytes each way');

  await fleet.reconfigure([configOf('2s')], { maxConnections: 0, maxHeld: 1024, maxDrainMs: 10_000 });
  const during = await metrics.text();
  t.equal(metricSum(during, 'sshkeep_bytes_total', { tunnel: 'db' }), 2000, 'the retiring tunnel\'s bytes still count');
  t.equal(metricSum(during, 'sshkeep_connections_active', { tunnel: 'db' }), 1, 'and its open stream');
  t.equal(metricSamples(during, 'sshkeep_tunnel_up', { tunnel: 'db' }).length, 1, 'one state per tunnel name');
  t.ok((await rtts()) >= before.rtts, 'the RTT histogram was not zeroed');

  const retired = once(fleet, 'retired');
  await stream.send(Buffer.alloc(500, 'b'));
  await stream.end();
  await deadline(retired, 10_000, 'the old tunnel stops once its stream ended');
  t.equal(await bytes(), 3000, 'every byte, the retired tunnel\'s kept');
  await expectEcho(t, bound!.port, 'the replacement serves');
  t.ok((await bytes()) > 3000, 'and its bytes add to the same counter');
});
