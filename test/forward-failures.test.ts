import t from 'tap';
import { once } from 'node:events';
import { connect, deadline, refusedPort, roundTrip, until, startEchoFor } from './fixtures/net.js';
import { nextState } from './fixtures/status.js';
import { inputFor, makeKeys, startEchoTunnel, startServer, startSshkeep } from './fixtures/tunnel.js';

/** Resolves with how the client socket ended: 'end' (clean EOF) or the error code of a reset. */
function howItEnds(sock: import('node:net').Socket): Promise<string> {
  return new Promise((resolve) => {
    sock.on('end', () => resolve('end'));
    sock.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    sock.resume();
  });
}

t.test('forward failures – a refused target resets that client only; the listener and tunnel live on', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const dead = await refusedPort();
  const { app, bound, logs } = await startSshkeep(t, inputFor(server, keys, [`0:127.0.0.1:${dead}`, `0:127.0.0.1:${echo.port}`]));
  await deadline(app.ready(), 5000, 'tunnel ready');

  const refused = await connect(bound[0]!.port);
  t.equal(await deadline(howItEnds(refused), 5000, 'refused client to end'), 'ECONNRESET', 'client is reset, not left hanging');
  const line = logs.find('conn_end').find((l) => l.reason === 'connect-failed');
  t.ok(line, 'logs the SSH reason');
  t.match(String(line?.target), `127.0.0.1:${dead}`, 'logs the target');

  const again = await connect(bound[1]!.port);
  t.equal((await deadline(roundTrip(again, 'still here'), 5000, 'echo')).toString(), 'still here');
  t.equal(app.connection.state, 'ready', 'the tunnel is untouched');
});

t.test('forward failures – administratively prohibited is logged with its reason', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys, { forwarding: 'deny' });
  const { app, bound, logs } = await startSshkeep(t, inputFor(server, keys, ['0:127.0.0.1:9']));
  await deadline(app.ready(), 5000, 'tunnel ready');
  const sock = await connect(bound[0]!.port);
  t.equal(await deadline(howItEnds(sock), 5000, 'client to end'), 'ECONNRESET');
  t.ok(logs.find('conn_end').some((l) => l.reason === 'administratively-prohibited'));
});

t.test('forward failures – tunnel loss resets open streams, never a clean EOF', async (t) => {
  const { server, app, bound, logs } = await startEchoTunnel(t);
  await deadline(app.ready(), 5000, 'tunnel ready');

  const sock = await connect(bound[0]!.port);
  sock.write('ping');
  await deadline(once(sock, 'data'), 5000, 'first echo');
  const ending = howItEnds(sock);
  server.dropConnections();
  t.equal(await deadline(ending, 5000, 'client to be cut'), 'ECONNRESET', 'a truncated stream fails loudly');
  t.ok(logs.find('conn_end').some((l) => l.side === 'tunnel' && l.reset === true), 'logged as cut by the tunnel');

  // The tunnel rebuilds itself and serves the next connection.
  await nextState(app.connection, 'ready', 10_000);
  const next = await connect(bound[0]!.port);
  t.equal((await deadline(roundTrip(next, 'after'), 5000, 'echo after reconnect')).toString(), 'after');
  t.ok(app.connection.generation >= 2, 'a new connection generation');
});

t.test('forward failures – a client that arrives before the first connect waits for it', async (t) => {
  const { app, bound } = await startEchoTunnel(t);
  t.not(app.connection.state, 'ready', 'connected before the tunnel is up');
  const sock = await connect(bound[0]!.port);
  t.equal((await deadline(roundTrip(sock, 'early'), 5000, 'echo')).toString(), 'early');
});

t.test('forward failures – a held client is reset when --hold-timeout passes, and the log names the option', async (t) => {
  const keys = makeKeys(t);
  const dead = await refusedPort();
  const { bound, logs } = await startSshkeep(t, inputFor({ port: dead }, keys, ['0:127.0.0.1:9'], { holdTimeout: '300ms' }));
  const sock = await connect(bound[0]!.port);
  t.equal(await deadline(howItEnds(sock), 5000, 'held client to be reset'), 'ECONNRESET');
  const line = logs.find('conn_end').find((l) => l.reason === 'hold_timeout');
  t.match(String(line?.msg), /--hold-timeout/, 'says which option raises the limit');
});

// Regression: an aborted stream's channel was unpiped and left paused, so it never emitted
// 'close' and its connection counted it open for ever (a replaced connection never ended).
t.test('forward failures – a client reset releases its channel on the SSH connection', async (t) => {
  const { app, bound } = await startEchoTunnel(t);
  await deadline(app.ready(), 5000, 'tunnel ready');
  const sock = await connect(bound[0]!.port);
  sock.write('x');
  await deadline(once(sock, 'data'), 5000, 'echo');
  const session = app.connection.readySession!;
  t.equal(session.channels, 1, 'one channel open');
  sock.resetAndDestroy();
  await until(() => session.channels === 0, 5000, 'the channel to be released');
  t.equal(session.channels, 0);
});
