/**
 * Deadlines after the event loop was blocked (a long GC, a synchronous write to a stalled log,
 * a starved container): libuv runs expired timers before it reads the sockets, so a deadline
 * could judge "no answer" while the answer sat unread. Each verdict now waits one poll phase.
 * The real sshd answers while this process busy-waits (it is another process).
 */
import t from 'tap';
import { once } from 'node:events';
import type { ClientChannel } from 'ssh2';
import { requireSshd, sshdInput, startSshd } from './fixtures/sshd.js';
import { deadline, startEchoFor } from './fixtures/net.js';
import { startSshkeep } from './fixtures/tunnel.js';

/** The scenario: this process's loop is blocked this long, not a synchronisation. */
function blockLoop(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end);
}

t.test('blocked loop – a probe whose reply came while the loop was blocked past its deadline: no suspect, no spare', async (t) => {
  if (!requireSshd(t)) return;
  const sshd = await startSshd(t);
  const echo = await startEchoFor(t);
  const { app } = await startSshkeep(t, sshdInput(sshd, { localForwards: [`0:127.0.0.1:${echo.port}`] }));
  const firstRtt = once(app.connection, 'rtt');
  await deadline(app.ready(), 10_000, 'tunnel ready');
  await deadline(firstRtt, 5000, 'the first round trip measured (the deadline is its 1 s floor)');
  const states: string[] = [];
  app.connection.on('status', (s) => states.push(s.to));
  const answered = once(app.connection, 'rtt');
  app.connection.probeNow('a test probe');
  blockLoop(1500);
  await deadline(answered, 5000, 'the reply read');
  await new Promise((r) => setImmediate(r)); // the deadline's verdict, if it were to come, is in this turn
  t.same(states, [], 'never suspect');
  t.equal(app.connection.generation, 1, 'no spare took over');
});

t.test('blocked loop – a channel open answered while the loop was blocked past its timeout is used, not given up', async (t) => {
  if (!requireSshd(t)) return;
  const sshd = await startSshd(t);
  const echo = await startEchoFor(t);
  const { app } = await startSshkeep(t, sshdInput(sshd, { localForwards: [`0:127.0.0.1:${echo.port}`] }));
  await deadline(app.ready(), 10_000, 'tunnel ready');
  const session = app.connection.readySession!;
  const opening = session.openChannel({ kind: 'tcp', host: '127.0.0.1', port: echo.port }, { address: '127.0.0.1', port: 0 }, 500);
  blockLoop(1000);
  const channel: ClientChannel = await deadline(opening, 5000, 'the open to settle');
  t.ok(channel, 'the channel the server opened');
  channel.resume(); // read the echo, so its end (and the close) come
  channel.end('x');
  await deadline(once(channel, 'close'), 5000, 'the channel to close');
});
