import { once } from 'node:events';
import t from 'tap';
import { connect, deadline, startEcho, until } from './fixtures/net.js';
import { nextState } from './fixtures/status.js';
import { inputFor, makeKeys, startRelay, startServer, startSshkeep } from './fixtures/tunnel.js';

// Regression (issue 13, item 6): with the server refusing for 5 s while a client was held, the
// client's reply came 2 s after the server was back: the full-jitter backoff had grown toward
// its 5 s cap, and the held client waited out the sleep in progress.
t.test('held clients – a held client is served within 1 s of the server coming back, and the outage is logged once', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const relay = await startRelay(t, keys, server);
  const echo = await startEcho();
  t.teardown(() => echo.close());
  // The 5 s default backoff cap applies: without the fix the held client waits for it.
  const { app, bound, logs } = await startSshkeep(t, inputFor(relay, keys, [`0:127.0.0.1:${echo.port}`], { holdTimeout: '30s' }));
  await deadline(app.ready(), 5000, 'tunnel ready');

  const lost = nextState(app.connection, 'reconnecting', 5000);
  relay.set('refuse'); // the server is down: every connection reset, every new one refused
  await lost;
  // Let the backoff grow before the client arrives (attempts 2–5: up to 0.25, 0.5, 1, 2 s).
  await until(() => relay.accepted >= 5, 10_000, 'a few refused attempts');

  const client = await connect(bound[0]!.port);
  t.teardown(() => client.destroy());
  const reply = once(client, 'data');
  client.write('held');
  await until(() => app.report().held === 1, 2000, 'the client to be held');

  // While the client is held the dial loop keeps trying, every 250 ms at most: 8 attempts take
  // about 1–2 s. Under the grown backoff (up to 4–5 s a sleep) they would take far longer than 4 s.
  const triesBefore = relay.accepted;
  const heldAt = performance.now();
  await until(() => relay.accepted - triesBefore >= 8, 4000, '8 connect attempts while a client is held');
  t.pass(`8 connect attempts in ${Math.round(performance.now() - heldAt)} ms while a client was held`);

  relay.set('pass');
  const passedAt = performance.now();
  const [data] = (await deadline(reply, 5000, 'the held client\'s echo')) as [Buffer];
  const afterMs = performance.now() - passedAt;
  t.equal(data.toString(), 'held', 'the held bytes went through');
  // Retries at most 250 ms apart: well under a second; the bug this guards against took 2 s. 1.5 s leaves room for a loaded machine.
  t.ok(afterMs < 1500, `the echo arrived ${Math.round(afterMs)} ms after the server came back (bound: 1.5 s)`);

  // The outage as a person reads it: one warn line when it starts, one info line when it ends.
  const noisy = logs.lines.filter((l) => (l.event === 'state' || l.event === 'reconnect') && l.level !== 'debug');
  const moves = noisy.map((l) => `${String(l.level)} ${String(l.from)} -> ${String(l.to)}`);
  t.same(moves, ['info idle -> connecting', 'info connecting -> ready', 'warn ready -> reconnecting', 'info connecting -> ready'], 'state lines above debug');
  const failures = logs.lines.filter((l) => l.event === 'reconnect');
  t.ok(failures.length >= 10 && failures.every((l) => l.level === 'debug'), `each of the ${failures.length} failed attempts at debug`);
  t.match(noisy.at(-1), { msg: /restored after \d+\.\d s, \d+ attempts$/, attempts: Number }, 'the end says how long and how many attempts');
});
