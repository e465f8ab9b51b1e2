import t, { type Test } from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { connect, deadline, roundTrip, until, echoOn, startEchoFor } from './fixtures/net.js';
import { nextState, blackholeUntilSuspect } from './fixtures/status.js';
import { inputFor, makeKeys, startRelay, startServer, startSshkeep } from './fixtures/tunnel.js';

/** Everything between sshkeep and the SSH server goes through a fault relay; probes after 500 ms of silence. */
async function setup(t: Test, extra: { holdTimeout?: string; holdBuffer?: string } = {}) {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const relay = await startRelay(t, keys, server);
  const echo = await startEchoFor(t);
  const { app, bound, logs } = await startSshkeep(
    t,
    inputFor(relay, keys, [`0:127.0.0.1:${echo.port}`], { keepaliveInterval: '500ms', ...extra }),
  );
  const firstRtt = once(app.connection, 'rtt'); // the adaptive deadline is set by a measured round trip
  await deadline(app.ready(), 5000, 'tunnel ready');
  await deadline(firstRtt, 5000, 'first round-trip measurement');
  return { server, relay, app, port: bound[0]!.port, logs };
}

t.test('resilience – a silent (blackholed) link becomes suspect within interval + deadline', async (t) => {
  const { relay, app } = await setup(t);
  const { status: s, ms: took } = await blackholeUntilSuspect(app.connection, relay);
  t.match(s.reason, /no reply to a probe/);
  t.ok(took < 4000, `noticed in ${Math.round(took)} ms (interval 500 ms + adaptive deadline ≥ 1 s)`);
});

t.test('resilience – a link that recovers from suspect keeps its streams untouched', async (t) => {
  const { relay, app, port, logs } = await setup(t);
  const sock = await connect(port);
  t.equal(await echoOn(sock, 'before'), 'before');
  const suspect = nextState(app.connection, 'suspect', 5000);
  relay.set('blackhole');
  await suspect;
  relay.restore();
  // Either the old connection answers first, or the spare wins and the old one, answering
  // its last probe, keeps its streams until they end. Either way nobody is reset.
  const outcome = await logs.waitFor(
    (l) => (l.event === 'state' && l.to === 'ready' && /answered again/.test(String(l.reason))) || l.event === 'drain' || l.event === 'retire',
    5000,
    'the old connection to recover or drain',
  );
  t.not(outcome.event, 'retire', 'the old connection was not closed');
  t.equal(app.connection.state, 'ready');
  t.equal(await echoOn(sock, 'after'), 'after', 'the stream carries on');
  t.notOk(logs.find('conn_end').some((l) => l.reset === true), 'nobody was reset');
  sock.destroy();
});

t.test('resilience – a replaced connection still carrying a stream rides out a brief silence (grace), not cut at its first missed probe', async (t) => {
  const { relay, port, logs } = await setup(t);
  const sock = await connect(port);
  t.equal(await echoOn(sock, 'before'), 'before');
  // Only the first connection goes silent: the spare's new flow passes, so the spare takes over.
  relay.hold(1);
  await logs.waitFor((l) => l.event === 'state' && l.to === 'ready' && /replaced silent generation 1/.test(String(l.reason)), 8000, 'a spare to replace generation 1');
  relay.restore(); // the old connection answers its last probe: it drains, its stream carries on
  await logs.waitFor((l) => l.event === 'drain' && l.generation === 1, 5000, 'generation 1 to drain');
  t.equal(await echoOn(sock, 'draining'), 'draining', 'the stream works on the draining connection');
  // A second, brief silence of the draining connection: one missed probe starts the grace period.
  relay.hold(1);
  await logs.waitFor((l) => l.event === 'drain_silent' && l.generation === 1, 8000, 'the draining connection to miss a probe');
  relay.restore();
  t.equal(await echoOn(sock, 'after'), 'after', 'the stream carries on after the silence');
  t.notOk(logs.find('retire').some((l) => l.generation === 1), 'the draining connection was not closed');
  t.notOk(logs.find('conn_end').some((l) => l.reset === true), 'nobody was reset');
  sock.destroy();
});

t.test('resilience – a client held during an outage is served after the restore, bytes intact', async (t) => {
  const { relay, app, port, logs } = await setup(t);
  const suspect = nextState(app.connection, 'suspect', 5000);
  relay.set('blackhole');
  await suspect;
  const sock = await connect(port); // accepted and held, not refused
  sock.write('sent while held');
  relay.restore();
  const reply = await deadline(roundTrip(sock, ' and after'), 10_000, 'held client served');
  t.equal(reply.toString(), 'sent while held and after');
  t.notOk(logs.find('conn_end').some((l) => l.reset === true), 'nobody was reset');
});

t.test('resilience – a NAT that forgot the flow (drop-existing): a spare replaces it, old streams reset, new ones work', async (t) => {
  const { relay, app, port, logs } = await setup(t);
  const old = await connect(port);
  t.equal(await echoOn(old, 'x'), 'x');
  const oldEnd = new Promise<string>((resolve) => {
    old.on('end', () => resolve('end'));
    old.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
  const replaced = nextState(app.connection, 'ready', 10_000, (s) => s.from === 'suspect' && /replaced/.test(s.reason));
  relay.set('drop-existing');
  await replaced;
  t.equal(app.connection.generation, 2, 'make-before-break: a second connection took over');
  t.equal(await deadline(oldEnd, 5000, 'old stream cut'), 'ECONNRESET', 'the stream on the dead connection is reset, not ended');
  const fresh = await connect(port);
  t.equal((await deadline(roundTrip(fresh, 'new'), 5000, 'new client')).toString(), 'new');
  t.ok(logs.find('retire').length >= 1, 'logs the retirement');
});

t.test('resilience – the server going away: held clients wait, then are served by the reconnect', async (t) => {
  const { server, relay, app, port } = await setup(t);
  const reconnecting = nextState(app.connection, 'reconnecting', 5000);
  relay.set('refuse');
  await reconnecting;
  const sock = await connect(port);
  sock.write('held');
  relay.restore();
  t.equal((await deadline(roundTrip(sock, '!'), 10_000, 'served after restore')).toString(), 'held!');
  t.ok(app.connection.generation >= 2);
  t.ok(server.connections >= 1);
});

t.test('resilience – hold timeout 0: clients are reset at once while the tunnel is down', async (t) => {
  const { relay, app, port, logs } = await setup(t, { holdTimeout: '0' });
  const reconnecting = nextState(app.connection, 'reconnecting', 5000);
  relay.set('refuse');
  await reconnecting;
  // The reset can beat the connect callback: either way the client sees ECONNRESET.
  const code = await deadline(
    new Promise<string>((r) => net.connect(port, '127.0.0.1').on('error', (e: NodeJS.ErrnoException) => r(e.code ?? '')).resume()),
    5000,
    'reset',
  );
  t.equal(code, 'ECONNRESET');
  t.ok(logs.find('conn_end').some((l) => l.reason === 'not_ready'));
});

t.test('resilience – a held client past --hold-buffer is paused, not dropped: every byte arrives after the restore', async (t) => {
  const { relay, app, port, logs } = await setup(t, { holdBuffer: '64KiB' });
  const reconnecting = nextState(app.connection, 'reconnecting', 5000);
  relay.set('refuse');
  await reconnecting;
  const sock = await connect(port);
  const payload = Buffer.alloc(512 * 1024, 7);
  sock.write(payload);
  await logs.waitFor((l) => l.event === 'accept', 5000, 'the client to be accepted and held');
  t.equal(app.forwards[0]!.held, 1, 'held');
  relay.restore();
  const reply = await deadline(roundTrip(sock, ''), 10_000, 'all bytes echoed');
  t.equal(reply.length, payload.length, 'nothing lost');
  t.ok(reply.equals(payload));
});

t.test('resilience – a client that leaves while held is not forwarded', async (t) => {
  const { server, relay, app, port } = await setup(t);
  const opened = server.channelsOpened;
  const reconnecting = nextState(app.connection, 'reconnecting', 5000);
  relay.set('refuse');
  await reconnecting;
  const quitter = await connect(port);
  await until(() => app.forwards[0]!.held === 1, 5000, 'the client to be held');
  quitter.resetAndDestroy();
  await until(() => app.forwards[0]!.held === 0, 5000, 'the departed client to be noticed');
  relay.restore();
  await nextState(app.connection, 'ready', 10_000);
  const next = await connect(port);
  t.equal((await deadline(roundTrip(next, 'n'), 5000, 'a later client')).toString(), 'n');
  t.equal(server.channelsOpened - opened, 1, 'only the later client reached the target');
});

t.test('resilience – a link that dies under traffic: a client arriving at once is held and served on a new connection, not reset at the open timeout', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const relay = await startRelay(t, keys, server);
  const echo = await startEchoFor(t);
  // No periodic probe within the test: only the unanswered open can reveal the dead link.
  const { app, bound } = await startSshkeep(t, inputFor(relay, keys, [`0:127.0.0.1:${echo.port}`], { keepaliveInterval: '60s', holdTimeout: '20s' }));
  await app.ready();
  const busy = await connect(bound[0]!.port);
  busy.on('error', () => {});
  const traffic = setInterval(() => busy.write('.'), 50); // the server's echoes keep the link from ever being quiet for 1 s
  t.teardown(() => clearInterval(traffic));
  await until(() => busy.bytesRead > 10, 5000, 'echoes flowing');
  relay.set('drop-existing'); // the NAT forgets the flow: nothing more either way; a new connection gets through
  const started = performance.now();
  const client = await connect(bound[0]!.port);
  client.on('error', () => {}); // a reset fails the echo below
  const answer = await deadline(echoOn(client, 'after'), 9000, 'the echo, before the 10 s open timeout');
  t.equal(answer, 'after');
  const tookMs = performance.now() - started;
  t.ok(tookMs < 8000, `served in ${Math.round(tookMs)} ms: the unanswered open had the link probed after about 1 s`);
  t.ok(app.connection.generation >= 2, 'on a new SSH connection');
  client.destroy();
});

t.test('resilience – a client that arrives just as the link goes silent is held past the open timeout until the tunnel is back, not reset at 10 s', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const relay = await startRelay(t, keys, server);
  const echo = await startEchoFor(t);
  const { app, bound } = await startSshkeep(t, inputFor(relay, keys, [`0:127.0.0.1:${echo.port}`], { keepaliveInterval: '60s', holdTimeout: '40s' }));
  await app.ready();
  relay.set('blackhole'); // nothing either way, new connections included: a dead link
  const client = await connect(bound[0]!.port);
  let reset: string | undefined;
  client.on('error', (err: NodeJS.ErrnoException) => (reset = err.code));
  let got = '';
  const answer = new Promise<string>((resolve) => client.on('data', (c: Buffer) => (got += c.toString()) === 'held' && resolve(got)));
  client.write('held'); // its open goes out on the silent connection, still ready
  // Its open outlives the 10 s open timeout, and the connection is given up only after its grace.
  await until(() => app.connection.state === 'reconnecting' || app.connection.state === 'connecting', 25_000, 'the silent connection to be given up');
  t.equal(reset, undefined, 'the client is still held');
  t.ok(server.channelsOpened === 0, 'no open reached the server');
  relay.restore();
  t.equal(await deadline(answer, 15_000, 'the echo once the link is back'), 'held', 'served on the new connection');
  client.destroy();
});
