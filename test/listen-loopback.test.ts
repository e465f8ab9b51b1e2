/**
 * A -L or -D without a bind address listens on localhost as OpenSSH does: 127.0.0.1 and ::1 on
 * one port, so a client that resolves localhost to ::1 first is served, not refused. Where ::1
 * cannot be bound, 127.0.0.1's clients are served and the gap is logged. Every interface (`*`, or -g) is
 * 0.0.0.0 and :: the same way, and an IPv6 listener takes IPv6 only, as ssh's.
 */
import t, { type Test } from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { connect, deadline, freePorts, roundTrip, startEchoFor, tryConnect } from './fixtures/net.js';
import { inputFor, makeKeys, startEchoTunnel, startServer, startSshkeep } from './fixtures/tunnel.js';

/** Whether this host can listen on an IPv6 address: a container may have no IPv6 at all, or `::` but not `::1`. */
async function canListenOn(host: string): Promise<boolean> {
  const probe = net.createServer();
  try {
    probe.listen({ port: 0, host, ipv6Only: true });
    await once(probe, 'listening');
    return true;
  } catch {
    return false;
  } finally {
    probe.close();
  }
}
const hasIpv6Loopback = () => canListenOn('::1');

/** A client of each host reaches the echo target through `port`. */
async function expectServed(t: Test, port: number, hosts: string[]): Promise<void> {
  for (const host of hosts) {
    const sock = await deadline(connect(port, host), 5000, `connect to ${host}`);
    t.equal((await deadline(roundTrip(sock, `via ${host}`), 5000, `echo via ${host}`)).toString(), `via ${host}`, `served on ${host}`);
    sock.destroy();
  }
}

t.test('-L 0:…: clients of 127.0.0.1 and of ::1 reach the target through the one port the OS picked', async (t) => {
  const v6 = await hasIpv6Loopback();
  const { app, bound, logs } = await startEchoTunnel(t);
  await deadline(app.ready(), 5000, 'tunnel ready');
  const port = bound[0]!.port;
  // Without ::1 here, 127.0.0.1 alone, and a debug line says why.
  if (!v6) t.match(logs.find('listen_partial'), [{ level: 'debug', address: `[::1]:${port}` }], 'no ::1 here: said at debug');
  else t.equal(logs.find('listen_partial').length, 0, 'both bound, nothing to say');
  await expectServed(t, port, v6 ? ['127.0.0.1', '::1'] : ['127.0.0.1']);
});

t.test('-L PORT:… with [::1]:PORT taken by another process: 127.0.0.1 is served, the gap logged at warn', async (t) => {
  if (!(await hasIpv6Loopback())) return t.plan(0, 'no ::1 on this host: nothing for another process to hold');
  const [port] = await freePorts(1);
  const other = net.createServer((s) => s.end('not sshkeep'));
  other.listen({ port, host: '::1', ipv6Only: true });
  await once(other, 'listening');
  t.teardown(() => other.close());
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const { app, logs } = await startSshkeep(t, inputFor(server, keys, [`${port}:127.0.0.1:${echo.port}`]));
  await deadline(app.ready(), 5000, 'tunnel ready');
  t.match(logs.find('listen_partial'), [{ level: 'warn', address: `[::1]:${port}`, error: 'EADDRINUSE' }], 'one warning naming the address');
  const sock = await connect(port, '127.0.0.1');
  t.equal((await deadline(roundTrip(sock, 'v4'), 5000, 'echo')).toString(), 'v4', '127.0.0.1 served');
  sock.destroy();
});

t.test('-L *:0:…: every interface is 0.0.0.0 and :: on one port, as ssh binds it; clients of 127.0.0.1 and ::1 both served', async (t) => {
  const [v6, v6Loopback] = [await canListenOn('::'), await hasIpv6Loopback()];
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const { app, bound, logs } = await startSshkeep(t, inputFor(server, keys, [`*:0:127.0.0.1:${echo.port}`]));
  await deadline(app.ready(), 5000, 'tunnel ready');
  const port = bound[0]!.port;
  if (!v6) t.match(logs.find('listen_partial'), [{ level: 'debug', address: `[::]:${port}` }], 'no IPv6 here: said at debug');
  else t.equal(logs.find('listen_partial').length, 0, 'both bound, nothing to say');
  await expectServed(t, port, v6 && v6Loopback ? ['127.0.0.1', '::1'] : ['127.0.0.1']);
});

t.test('-L [::]:0:…: an IPv6 listener is IPv6 only, as ssh sets IPV6_V6ONLY: an IPv4 client is refused', async (t) => {
  if (!(await hasIpv6Loopback())) return t.plan(0, 'no IPv6 on this host');
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const { app, bound } = await startSshkeep(t, inputFor(server, keys, [`[::]:0:127.0.0.1:${echo.port}`]));
  await deadline(app.ready(), 5000, 'tunnel ready');
  const port = bound[0]!.port;
  await expectServed(t, port, ['::1']);
  t.equal(await tryConnect(port, '127.0.0.1'), 'ECONNREFUSED', '127.0.0.1 refused: the port is not taken for IPv4');
});

t.test('-L [::ffff:127.0.0.1]:0:…: an IPv4-mapped address is bound as the IPv4 address it is, not refused as IPv6 only', async (t) => {
  if (!(await canListenOn('::'))) return t.plan(0, 'no IPv6 on this host');
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const { app, bound } = await startSshkeep(t, inputFor(server, keys, [`[::ffff:127.0.0.1]:0:127.0.0.1:${echo.port}`]));
  await deadline(app.ready(), 5000, 'tunnel ready');
  await expectServed(t, bound[0]!.port, ['127.0.0.1']);
});
