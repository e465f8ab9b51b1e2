/**
 * --connections N: N managed SSH connections; each new stream goes to the ready one with
 * the fewest channels; a client arriving while none is ready is held and served by whichever
 * comes up first.
 */
import t from 'tap';
import type net from 'node:net';
import { connect, deadline, roundTrip, until, startEchoFor } from './fixtures/net.js';
import { inputFor, makeKeys, startRelay, startServer, startSshkeep } from './fixtures/tunnel.js';

t.test('connections – streams spread over the ready connections, fewest channels first', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const { app, bound } = await startSshkeep(t, inputFor(server, keys, [`0:127.0.0.1:${echo.port}`], { connections: '3' }));
  await app.ready();
  await until(() => app.report().sshConnections.ready === 3, 10_000, 'three connections ready');
  t.equal(server.connections, 3, 'the server sees three SSH connections');
  t.same(app.report().sshConnections, { ready: 3, total: 3 });

  const open: net.Socket[] = [];
  t.teardown(() => open.forEach((s) => s.destroy()));
  for (let i = 0; i < 6; i++) {
    const s = await connect(bound[0]!.port);
    open.push(s);
    // Each stream is open end to end before the next arrives, so the count it was placed by is current.
    s.write('x');
    await deadline(new Promise((r) => s.once('data', r)), 5000, `echo on stream ${i + 1}`);
  }
  t.same(app.sshConnections.map((m) => m.readySession?.channels), [2, 2, 2], 'two streams on each connection');
  t.equal((await roundTrip(await connect(bound[0]!.port), 'seventh')).toString(), 'seventh', 'a further stream works');
});

t.test('connections – a client held while none is ready is served by the first to come back', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const relay = await startRelay(t, keys, server);
  const echo = await startEchoFor(t);
  const input = inputFor(relay, keys, [`0:127.0.0.1:${echo.port}`], { connections: '2', holdTimeout: '20s' });
  const { app, bound } = await startSshkeep(t, input);
  await app.ready();
  await until(() => app.report().sshConnections.ready === 2, 10_000, 'two connections ready');
  relay.set('refuse');
  await until(() => app.report().sshConnections.ready === 0, 10_000, 'both connections lost');
  const held = await connect(bound[0]!.port);
  const reply = roundTrip(held, 'held through the outage');
  await until(() => app.report().held === 1, 5000, 'the client held');
  relay.set('pass');
  t.equal((await deadline(reply, 15_000, 'the held client served')).toString(), 'held through the outage');
});

t.test('connections – out of range is a usage error naming the flag', async (t) => {
  const keys = makeKeys(t);
  const { resolveTunnel } = await import('../src/config/resolve.js');
  for (const bad of ['0', '17', 'two']) {
    t.throws(() => resolveTunnel(inputFor({ port: 22 }, keys, ['0:h:1'], { connections: bad })), /--connections: .* from 1 to 16/, bad);
  }
});
