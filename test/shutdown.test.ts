import t from 'tap';
import { setImmediate } from 'node:timers/promises';
import { connect, roundTrip, startEcho } from './fixtures/net.js';
import { inputFor, makeKeys, startServer, startSshkeep } from './fixtures/tunnel.js';

// Alone in its file: the count is only meaningful in a process that runs nothing else.
/** Handles and timers alive now; setImmediate turns (used to wait) are left out. */
const resources = () => process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap' && r !== 'Immediate').sort();

t.test('resilience – nothing is left running after stop', async (t) => {
  const before = resources();
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEcho();
  const { app, bound } = await startSshkeep(t, inputFor(server, keys, [`0:127.0.0.1:${echo.port}`], { keepaliveInterval: '500ms' }));
  await app.ready();
  await roundTrip(await connect(bound[0]!.port), 'x');
  t.not(resources().length, before.length, 'sshkeep holds handles while running');
  await app.stop();
  await server.close();
  await echo.close();
  // Closing sockets takes a few event-loop turns; no timer of our own may skew the count.
  for (let turn = 0; turn < 5000 && resources().join() !== before.join(); turn++) await setImmediate();
  t.same(resources(), before, 'the same handles and timers as before start');
});
