import t from 'tap';
import { connect, deadline, roundTrip } from './fixtures/net.js';
import { startEchoTunnel } from './fixtures/tunnel.js';

t.test('local forward – bytes echo through the tunnel', async (t) => {
  const { server, app, bound, logs } = await startEchoTunnel(t);
  await deadline(app.ready(), 5000, 'tunnel ready');
  t.equal(bound[0]!.address, '127.0.0.1', 'binds loopback by default');
  const sock = await connect(bound[0]!.port);
  const reply = await deadline(roundTrip(sock, 'hello sshkeep'), 5000, 'echo');
  t.equal(reply.toString(), 'hello sshkeep');
  await deadline(new Promise((r) => sock.once('close', r)), 5000, 'client close');
  t.equal(server.channelsOpened, 1);
  t.ok(logs.find('state').some((l) => l.to === 'ready'), 'logs the ready transition');
});
