/**
 * connectTcp (src/forward/tcp-connect.ts): a -R connection's target connected as a TcpClient,
 * without net.Socket. An address or a name (each of its addresses tried in turn), errors as
 * net.Socket gives them (ECONNREFUSED with the address, ENOTFOUND, ETIMEDOUT), an address that
 * does not answer left for the next after 250 ms as Node's autoSelectFamily does, `done` called
 * once. It drives Node 20's internal handles: "Node's handles are as expected" fails first when
 * they change.
 */
import { spawn } from 'node:child_process';
import dns from 'node:dns';
import { once } from 'node:events';
import net from 'node:net';
import t, { type Test } from 'tap';
import { connectTcp, interleaved, tcpConnectsSupported } from '../src/forward/tcp-connect.js';
import type { TcpClient } from '../src/forward/tcp-client.js';
import { connect, deadline, refusedPort, startEchoFor, until } from './fixtures/net.js';

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
  // As `localhost` often resolves: ::1 first (nothing listens there on this port), then 127.0.0.1.
  resolveAs(t, 'target.test', [
    { address: '::1', family: 6 },
    { address: '127.0.0.1', family: 4 },
  ]);
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

/** Answers `lookup` of `name` with `addresses` until teardown. */
function resolveAs(t: Test, name: string, addresses: dns.LookupAddress[]): void {
  const { lookup } = dns;
  (dns as { lookup: unknown }).lookup = (host: string, options: unknown, cb: (e: null, a: dns.LookupAddress[]) => void) => {
    t.equal(host, name, 'the name looked up');
    t.match(options, { all: true, hints: dns.ADDRCONFIG }, "every address asked for, as net.connect asks (ADDRCONFIG)");
    cb(null, addresses);
  };
  t.teardown(() => void ((dns as { lookup: unknown }).lookup = lookup));
}

t.test('an address that does not answer: the next is tried after 250 ms, as net.connect does, not at the deadline', async (t) => {
  // A listener that never accepts, its queue full: a SYN to it gets no answer (python: Node always accepts).
  const py = spawn('python3', ['-c', "import socket,time\ns=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(0)\nprint(s.getsockname()[1], flush=True); time.sleep(60)"], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => void py.kill());
  const [out] = (await deadline(once(py.stdout!, 'data'), 10_000, 'the black hole listening')) as [Buffer];
  const port = Number(out.toString().trim());
  const filler = await connect(port); // the one connection its queue holds
  t.teardown(() => filler.destroy());
  const answering = net.createServer((s) => s.end());
  answering.listen(port, '127.0.0.2');
  await once(answering, 'listening');
  t.teardown(() => answering.close());
  resolveAs(t, 'two.test', [
    { address: '127.0.0.1', family: 4 },
    { address: '127.0.0.2', family: 4 },
  ]);
  const started = Date.now();
  const { err, client } = await connectOnce(t, 'two.test', port, 5000);
  t.equal(err, undefined, 'connected');
  t.equal(client!.remoteAddress, '127.0.0.2', 'to the address that answers');
  t.ok(Date.now() - started < 2000, `after the first had its 250 ms, long before the 5 s deadline (${Date.now() - started} ms)`);
});

t.test('the addresses of a name are tried IPv6 and IPv4 in turn, the first address\'s family first', async (t) => {
  const a = (address: string) => ({ address, family: address.includes(':') ? 6 : 4 });
  const order = (list: string[]) => interleaved(list.map(a)).map((x) => x.address);
  t.same(order(['::1', '::2', '10.0.0.1', '10.0.0.2', '10.0.0.3']), ['::1', '10.0.0.1', '::2', '10.0.0.2', '10.0.0.3']);
  t.same(order(['10.0.0.1', '::1']), ['10.0.0.1', '::1']);
  t.same(order(['10.0.0.1', '10.0.0.2']), ['10.0.0.1', '10.0.0.2'], 'one family: as resolved');
  t.same(order([]), []);
});
