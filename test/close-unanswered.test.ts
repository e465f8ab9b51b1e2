/**
 * A server that never answers sshkeep's CHANNEL_CLOSE (a broken peer). ssh2 emits a channel's
 * 'close' only once the server's CLOSE has come, so a clean end that waited for it kept the
 * connection counted for ever: in `active` (the report, the sshkeep_connections_active gauge,
 * the SIGTERM drain), in the session's channel count, and its channel id taken
 * in ssh2. Now the session closes such a channel after DEFAULTS.channelCloseTimeoutMs, and says so
 * once per SSH connection; a server that answers is waited for as before. --max-connections
 * counts clients, so it never waited for the CLOSE: a client that closed frees its place at once.
 */
import t, { type Test } from 'tap';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { DEFAULTS } from '../src/config/defaults.js';
import { Metrics } from '../src/ops/metrics.js';
import type { Sshkeep } from '../src/sshkeep.js';
import type { SshSession } from '../src/ssh/adapter.js';
import { connect, deadline, echoOn, roundTrip, startEchoFor, until } from './fixtures/net.js';
import { metricValue } from './fixtures/metrics.js';
import { inputFor, makeKeys, startServer, startSshkeep, startEchoTunnel } from './fixtures/tunnel.js';

const WAIT_MS = DEFAULTS.channelCloseTimeoutMs;

interface ProtocolInternals {
  _server: boolean;
  channelClose(id: number): void;
}

/**
 * While `on`, every ssh2 server in this process sends no CHANNEL_CLOSE, neither its own nor in
 * answer to the client's (sshkeep's client side, the same Protocol class, still sends its own).
 */
function serversNeverClose(t: Test): { on: boolean } {
  const { prototype } = createRequire(import.meta.url)('ssh2/lib/protocol/Protocol.js') as { prototype: ProtocolInternals };
  const sendClose = prototype.channelClose;
  const hostile = { on: false };
  prototype.channelClose = function (this: ProtocolInternals, id: number) {
    if (this._server && hostile.on) return;
    sendClose.call(this, id);
  };
  t.teardown(() => {
    prototype.channelClose = sendClose;
  });
  return hostile;
}

/** Channel ids ssh2 holds on the session's connection. */
const idsTaken = (session: SshSession) => (session as unknown as { client: { _chanMgr: { _count: number } } }).client._chanMgr._count;

async function activeGauge(t: Test, app: Sshkeep): Promise<number | undefined> {
  const metrics = new Metrics();
  metrics.watch(app);
  t.teardown(() => metrics.unwatch(app));
  return metricValue(await metrics.text(), 'sshkeep_connections_active', { forward: app.forwards[0]!.name });
}

/** `n` clients through `port`: each echoes a line, half-closes, reads to the end and closes. Resolves once all are closed. */
async function cleanClients(port: number, n: number): Promise<void> {
  await deadline(
    Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const s = await connect(port);
        const closed = once(s, 'close');
        const back = await roundTrip(s, `hello ${i}`);
        if (back.toString() !== `hello ${i}`) throw new Error(`client ${i}: echoed ${JSON.stringify(back.toString())}`);
        await closed;
      }),
    ),
    5000,
    `${n} clients to echo and close cleanly`,
  );
}

t.test('unanswered close – a server that never answers our CLOSE: the connection stops counting after the bound, said once per SSH connection', async (t) => {
  const hostile = serversNeverClose(t);
  const { app, bound, logs } = await startEchoTunnel(t);
  await deadline(app.ready(), 5000, 'the tunnel ready');
  const session = app.connection.readySession!;
  const generation = app.connection.generation;
  hostile.on = true;

  // Two clean ends, counted until the server's CLOSE; and a client reset, counted as ended at
  // once, whose channel the session counts until the server's CLOSE.
  const N = 2;
  await cleanClients(bound[0]!.port, N);
  const closedAt = performance.now();
  const reset = await connect(bound[0]!.port);
  reset.on('error', () => {});
  await echoOn(reset, 'then a reset');
  reset.resetAndDestroy();
  await logs.waitFor((l) => l.event === 'conn_end' && l.reset === true, 2000, 'the reset connection to end');
  t.equal(app.report().active, N, `the clean ends still counted after their clients closed: the server's CLOSE is awaited`);
  t.equal(session.channels, N + 1, 'their channels and the reset one open on the session');

  const first = await logs.waitFor((l) => l.event === 'close_unanswered', WAIT_MS + 5000, `the unanswered CLOSE to be given up on (${WAIT_MS} ms)`);
  const afterMs = performance.now() - closedAt;
  t.ok(afterMs >= WAIT_MS - 500, `not before the bound (after ${Math.round(afterMs)} ms)`);
  t.equal(first.level, 'warn', 'said as a warning');
  t.match(String(first.msg), /did not answer a channel's CLOSE within 10000 ms/, 'naming what the server did not do');
  await logs.waitFor((l) => l.event === 'close_unanswered' && l.count === N + 1, 2000, 'the other channels given up on too');
  t.equal(logs.lines.filter((l) => l.event === 'close_unanswered' && l.level === 'warn').length, 1, 'the warning once per SSH connection; the next ones at debug');

  await until(() => app.report().active === 0, 2000, 'the connections to stop counting');
  t.equal(await activeGauge(t, app), 0, 'sshkeep_connections_active back to 0');
  t.equal(session.channels, 0, 'no channel left on the session (a drain or endWhenIdle is not held up)');
  t.equal(idsTaken(session), 0, "ssh2 freed the channels' ids");
  const ends = logs.find('conn_end');
  t.equal(ends.length, N + 1, 'one conn_end per connection');
  t.equal(ends.filter((l) => l.reset === false).length, N, 'the clean ones logged as clean ends, as their clients saw them');

  t.equal(app.connection.readySession, session, 'the same SSH connection serves on');
  t.equal(app.connection.generation, generation, 'no reconnect');
  await cleanClients(bound[0]!.port, 1);
});

t.test('unanswered close – a server that answers: the connection stops counting at its CLOSE, well within the bound, and nothing is said', async (t) => {
  serversNeverClose(t); // off: the same code path as above, answering
  const { app, bound, logs } = await startEchoTunnel(t);
  await deadline(app.ready(), 5000, 'the tunnel ready');
  const session = app.connection.readySession!;

  const N = 20;
  const started = performance.now();
  await cleanClients(bound[0]!.port, N);
  await until(() => app.report().active === 0, 2000, 'the connections to stop counting at the server\'s CLOSE');
  const tookMs = performance.now() - started;
  t.ok(tookMs < WAIT_MS / 2, `all ${N} counted as ended in ${Math.round(tookMs)} ms`);
  t.equal(await activeGauge(t, app), 0, 'sshkeep_connections_active back to 0');
  t.equal(session.channels, 0, 'no channel left on the session');
  t.equal(idsTaken(session), 0, "ssh2 freed the channels' ids");
  t.equal(logs.find('conn_end').length, N, 'one conn_end per connection');
  t.same(logs.find('close_unanswered'), [], 'no unanswered CLOSE said');
});

t.test('unanswered close – --max-connections counts clients, not channels waiting for the server\'s CLOSE: the next client is served, a drain still waits for them', async (t) => {
  const hostile = serversNeverClose(t);
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  let app!: Sshkeep;
  const limits = { maxConnections: 1, maxHeld: 8, clients: () => app.clients(), held: () => app.held() };
  const started = await startSshkeep(t, inputFor(server, keys, [`0:127.0.0.1:${echo.port}`]), { limits });
  app = started.app;
  await deadline(app.ready(), 5000, 'the tunnel ready');
  const port = started.bound[0]!.port;
  hostile.on = true; // each ended connection now waits for a CLOSE that does not come (up to 10 s)

  // One client at a time, each gone before the next connects: every one is served, none reset as over the limit.
  for (let i = 0; i < 5; i++) await cleanClients(port, 1);
  t.equal(app.clients(), 0, 'no client open');
  t.equal(app.report().active, 5, 'the five still counted as active until their CLOSE');
  t.equal(app.unfinished(), 5, 'and unfinished: a drain waits for them');
});
