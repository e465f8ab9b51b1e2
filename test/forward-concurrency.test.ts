import t from 'tap';
import { randomBytes } from 'node:crypto';
import { connect, deadline, roundTrip, until } from './fixtures/net.js';
import { startEchoTunnel } from './fixtures/tunnel.js';

t.test('concurrency – 200 simultaneous connections each get their own bytes back', async (t) => {
  const { server, app, bound, logs } = await startEchoTunnel(t);
  await deadline(app.ready(), 5000, 'tunnel ready');

  const payloads = Array.from({ length: 200 }, () => randomBytes(1024));
  const replies = await deadline(
    Promise.all(payloads.map(async (p) => roundTrip(await connect(bound[0]!.port), p))),
    30_000,
    '200 echoes',
  );
  const wrong = replies.filter((r, i) => !r.equals(payloads[i]!)).length;
  t.equal(wrong, 0, 'every connection got exactly its own payload');
  t.equal(server.channelsOpened, 200, 'one channel per connection, over one SSH connection');
  t.equal(app.connection.generation, 1, 'no reconnect was needed');
  await until(() => logs.find('conn_end').length >= 200, 10_000, 'every connection to be accounted for');
  t.equal(app.forwards[0]!.active, 0, 'nothing left open');
});
