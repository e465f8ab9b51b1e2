/**
 * connectTcp (src/forward/tcp-connect.ts): a -R connection's target connected as a TcpClient,
 * without net.Socket. An address or a name (each of its addresses tried in turn), errors as
 * net.Socket gives them (ECONNREFUSED with the address, ENOTFOUND, ETIMEDOUT), `done` called
 * once. It drives Node 20's internal handles: "Node's handles are as expected" fails first when
 * they change.
 */
import dns from 'node:dns';
import t, { type Test } from 'tap';
import { connectTcp, tcpConnectsSupported } from '../src/forward/tcp-connect.js';
import type { TcpClient } from '../src/forward/tcp-client.js';
import { refusedPort, startEchoFor, until } from './fixtures/net.js';

const HIGH_WATER = 64 * 1024;

/** connectTcp as a promise of its one outcome; a second call of `done` fails the test. */
function connectOnce(t: Test, host: string, port: number, timeoutMs = 5000): Promise<{ err?: NodeJS.ErrnoException; client?: TcpClient }> {
  return new Promise((resolve) => {
    let calls = 0;
    connectTcp(host, port, HIGH_WATER, timeoutMs, (err, client) => {
      if (++calls > 1) t.fail('done called twice');
      if (client) t.teardown(() => void client.destroy());
      resolve({ err, client });
    });
  });
}

/** One round trip through an echo on `client`. */
async function echoThrough(client: TcpClient, text: string): Promise<string> {
  const got: Buffer[] = [];
  client.on('data', (c: Buffer) => got.push(c));
  client.resume();
  client.write(Buffer.from(text));
  await until(() => Buffer.concat(got).length >= text.length, 5000, 'the echo');
  return Buffer.concat(got).toString();
}

t.test("Node's handles are as expected (Node 20): a TCP target can be connected without net.Socket", async (t) => {
  t.ok(tcpConnectsSupported(), "tcp_wrap's TCP handle connects, and makes a TcpClient");
});

t.test('an address: connected, a TcpClient that carries bytes both ways', async (t) => {
  const echo = await startEchoFor(t);
  const { err, client } = await connectOnce(t, '127.0.0.1', echo.port);
  t.equal(err, undefined, 'no error');
  t.equal(client!.remoteAddress, '127.0.0.1', 'connected to the address');
  t.equal(client!.remotePort, echo.port, 'and the port');
  t.equal(await echoThrough(client!, 'hello'), 'hello', 'an echo through it');
});

t.test('a name: looked up, each address tried in turn until one accepts', async (t) => {
  const echo = await startEchoFor(t); // 127.0.0.1 only
  const { lookup } = dns;
  // As `localhost` often resolves: ::1 first (nothing listens there on this port), then 127.0.0.1.
  (dns as { lookup: unknown }).lookup = (host: string, options: unknown, cb: (e: null, a: dns.LookupAddress[]) => void) => {
    t.equal(host, 'target.test', 'the name looked up');
    t.match(options, { all: true }, 'every address asked for');
    cb(null, [
      { address: '::1', family: 6 },
      { address: '127.0.0.1', family: 4 },
    ]);
  };
  t.teardown(() => void ((dns as { lookup: unknown }).lookup = lookup));
  const { err, client } = await connectOnce(t, 'target.test', echo.port);
  t.equal(err, undefined, 'connected');
  t.equal(client!.remoteAddress, '127.0.0.1', 'through the address that accepted');
  t.equal(await echoThrough(client!, 'by name'), 'by name');
});

t.test("a refused address: net.Socket's error, with the address; an unknown name: ENOTFOUND", async (t) => {
  const port = await refusedPort();
  const refused = await connectOnce(t, '127.0.0.1', port);
  t.equal(refused.client, undefined, 'no client');
  t.match(refused.err, { code: 'ECONNREFUSED', syscall: 'connect', message: `connect ECONNREFUSED 127.0.0.1:${port}` }, 'ECONNREFUSED, as net.Socket says it');
  const unknown = await connectOnce(t, 'no-such-host.invalid', 80);
  t.match(unknown.err, { code: 'ENOTFOUND' }, 'a name that does not resolve');
});

t.test('no answer within the time given: ETIMEDOUT, once, whatever comes after', async (t) => {
  const echo = await startEchoFor(t);
  const { lookup } = dns;
  let answer: (() => void) | undefined;
  // A lookup that answers only after the time is up (a resolver that hangs).
  (dns as { lookup: unknown }).lookup = (_host: string, _options: unknown, cb: (e: null, a: dns.LookupAddress[]) => void) => {
    answer = () => cb(null, [{ address: '127.0.0.1', family: 4 }]);
  };
  t.teardown(() => void ((dns as { lookup: unknown }).lookup = lookup));
  const started = Date.now();
  const { err, client } = await connectOnce(t, 'slow.test', echo.port, 200);
  t.equal(client, undefined, 'no client');
  t.match(err, { code: 'ETIMEDOUT', syscall: 'connect', message: `connect ETIMEDOUT slow.test:${echo.port}` }, 'ETIMEDOUT, as net.Socket says it');
  t.ok(Date.now() - started < 2000, `given up at the time given (${Date.now() - started} ms)`);
  answer!(); // the late answer connects nothing, and done is not called again (connectOnce fails the test if it is)
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(echo.connections, 0, 'no connection made after the time was up');
});
