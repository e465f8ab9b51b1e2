import type ssh2 from 'ssh2';
import t from 'tap';
import { ChannelOpenError } from '../src/errors.js';
import { HOST, deadline, startEchoFor } from './fixtures/net.js';
import { embeddedSession } from './fixtures/tunnel.js';

/** How an open settled: its error's reason and message, or 'opened'. */
function settled(opening: Promise<ssh2.ClientChannel>) {
  return opening.then(
    (channel) => {
      channel.close();
      return { reason: 'opened', message: '' };
    },
    (err: ChannelOpenError) => ({ reason: err.reason, message: err.message }),
  );
}

t.test('channel opens: an abandon signal gives up every open waiting on it, and only those; the rest wait for their deadline', async (t) => {
  const echo = await startEchoFor(t);
  const { session, relay } = await embeddedSession(t, true);
  const target = { kind: 'tcp', host: HOST, port: echo.port } as const;
  const src = { address: HOST, port: 0 };

  // An open the server answers.
  const answered = await deadline(settled(session.openChannel(target, src, 300, new AbortController().signal)), 5000, 'an answered open');
  t.equal(answered.reason, 'opened');

  relay!.set('blackhole');
  const superseded = new AbortController();
  const other = new AbortController();
  // A deadline long enough that an abort handled at once cannot be mistaken for it on a loaded machine.
  const first = settled(session.openChannel(target, src, 1500, superseded.signal));
  const second = settled(session.openChannel(target, src, 1500, superseded.signal));
  const unaffected = settled(session.openChannel(target, src, 1500, other.signal));
  const startedAt = performance.now();
  superseded.abort();
  for (const [name, p] of [['first', first], ['second', second]] as const) {
    const r = await deadline(p, 2000, `the ${name} open to be abandoned`);
    t.equal(r.reason, 'tunnel-lost', `the ${name} is given up as re-issuable`);
    t.match(r.message, /abandoned/);
  }
  t.ok(performance.now() - startedAt < 1000, 'at the abort, not at the deadline');
  const late = await deadline(unaffected, 5000, 'the other open to reach its deadline');
  t.equal(late.reason, 'tunnel-lost', 'no answer and nothing from the server: the link');
  t.match(late.message, /the link is down/);
  t.ok(performance.now() - startedAt >= 1490, 'at its own deadline');

  // An abort signal already used: a new open on it is not given up by the old abort.
  const again = settled(session.openChannel(target, src, 200, superseded.signal));
  const r = await deadline(again, 5000, 'an open on an aborted signal');
  t.match(r.message, /the link is down/, 'it waits for its deadline as any open would');
});
