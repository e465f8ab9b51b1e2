/** scripts/bench/small.ts's RequestReply: round trips on connections kept open across measured runs, so a run's figure leaves out their set-up. */
import net from 'node:net';
import t from 'tap';
import { listenFor, startEchoFor } from './fixtures/net.js';
import { RequestReply } from '../scripts/bench/small.js';

t.test('runs go over the same connections, each round trip whole', async (t) => {
  const echo = await startEchoFor(t);
  const load = await RequestReply.open(echo.port, 3, 64);
  t.teardown(() => load.close());
  t.equal(await load.run(5), 15, 'three connections × five round trips');
  t.equal(await load.run(7), 21, 'a second run');
  t.equal(echo.connections, 3, 'no connection opened after the first three');
});

t.test('a reply of the wrong size fails the run', async (t) => {
  const server = net.createServer((s) => s.on('data', (c: Buffer) => s.write(Buffer.concat([c, c]))));
  const port = await listenFor(t, server);
  const load = await RequestReply.open(port, 1, 8);
  t.teardown(() => load.close());
  await t.rejects(load.run(3), /16 bytes back for 8/);
});

t.test('a connection the server closes fails the run it is in and any after', async (t) => {
  const server = net.createServer((s) => s.on('data', () => s.destroy()));
  const port = await listenFor(t, server);
  const load = await RequestReply.open(port, 2, 1);
  t.teardown(() => load.close());
  await t.rejects(load.run(2), /ended by the other side/);
  await t.rejects(load.run(1), /ended by the other side/);
});

t.test('an echo target: the load closes its connections', async (t) => {
  const echo = await startEchoFor(t);
  const load = await RequestReply.open(echo.port, 2, 1);
  t.equal(await load.run(3), 6);
  load.close();
  await t.rejects(load.run(1), /closed|destroyed/, 'nothing to run on once closed');
});
