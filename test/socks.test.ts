import t, { type Test } from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import {
  REPLY,
  SocksError,
  SocksParser,
  negotiateSocks,
  replyForOpenFailure,
  socksReply,
  type SocksOptions,
  type Step,
} from '../src/forward/socks.js';
import { connect, deadline, until, listen } from './fixtures/net.js';

const hex = (s: string) => Buffer.from(s.replace(/\s/g, ''), 'hex');
const ascii = (s: string) => Buffer.from(s, 'latin1');
const cat = (...parts: Buffer[]) => Buffer.concat(parts);

const AUTH: SocksOptions = { auth: { user: 'alice', pass: 's3cret' } };
const NO_AUTH_GREETING = hex('05 01 00');
const AUTH_GREETING = hex('05 02 00 02');
/** RFC 1929 username/password subnegotiation. */
const login = (user: string, pass: string) =>
  cat(hex('01'), Buffer.from([Buffer.byteLength(user)]), ascii(user), Buffer.from([Buffer.byteLength(pass)]), ascii(pass));
/** CONNECT 10.1.2.3:80. */
const CONNECT_V4 = hex('05 01 00 01 0a010203 0050');
const connectDomain = (name: string, port = 443) =>
  cat(hex('05 01 00 03'), Buffer.from([name.length]), ascii(name), Buffer.from([port >> 8, port & 0xff]));
const socks4 = (user: string, ip = '0a010203', port = '0050') => cat(hex(`04 01 ${port} ${ip}`), ascii(user), hex('00'));

interface Outcome {
  writes: Buffer[];
  step: Step;
}

/** Feeds chunks as negotiateSocks does: after a 'write', feed(empty) until the parser wants more or is done. */
function drive(parser: SocksParser, chunks: Buffer[]): Outcome {
  const writes: Buffer[] = [];
  for (const [i, chunk] of chunks.entries()) {
    let step = parser.feed(chunk);
    for (; step.type === 'write'; step = parser.feed(Buffer.alloc(0))) writes.push(step.data);
    if (step.type === 'request') step.request.rest = cat(step.request.rest, ...chunks.slice(i + 1));
    if (step.type !== 'more') return { writes, step };
  }
  return { writes, step: { type: 'more' } };
}

/** Parses `input` whole and byte by byte; both must give the same outcome. */
function parse(t: Test, input: Buffer, options?: SocksOptions): Outcome {
  const whole = drive(new SocksParser(options), [input]);
  const bytes = drive(new SocksParser(options), [...input].map((b) => Buffer.from([b])));
  t.same(bytes, whole, 'byte by byte parses as whole');
  return whole;
}

function failure(t: Test, outcome: Outcome, reason: RegExp, reply?: Buffer): void {
  const { step } = outcome;
  if (step.type !== 'fail') return void t.fail(`expected a failure, got ${step.type}`);
  t.match(step.reason, reason);
  t.same(step.reply, reply, 'failure reply');
}

t.test('socksReply bytes', async (t) => {
  t.same(socksReply(5, REPLY.succeeded), hex('05 00 00 01 00000000 0000'));
  t.same(socksReply(5, REPLY.connectionRefused), hex('05 05 00 01 00000000 0000'));
  t.same(socksReply(4, REPLY.succeeded), hex('00 5a 0000 00000000'));
  t.same(socksReply(4, REPLY.hostUnreachable), hex('00 5b 0000 00000000'));
});

t.test('replyForOpenFailure maps channel-open failures to reply codes', async (t) => {
  t.equal(replyForOpenFailure('connect-failed'), 0x05);
  t.equal(replyForOpenFailure('administratively-prohibited'), 0x02);
  t.equal(replyForOpenFailure('timeout'), 0x06);
  t.equal(replyForOpenFailure('unresolvable'), 0x04);
  t.equal(replyForOpenFailure('host-unreachable'), 0x04);
  t.equal(replyForOpenFailure('tunnel-lost'), 0x03);
  for (const other of ['', 'resource-shortage', 'constructor', 'toString', 'CONNECT-FAILED']) {
    t.equal(replyForOpenFailure(other), REPLY.generalFailure, other);
  }
});

t.test('SOCKS5 without auth: IPv4, domain and IPv6 targets', async (t) => {
  const v4 = parse(t, cat(NO_AUTH_GREETING, CONNECT_V4));
  t.same(v4, {
    writes: [hex('05 00')],
    step: { type: 'request', request: { version: 5, target: { host: '10.1.2.3', port: 80 }, rest: Buffer.alloc(0) } },
  });

  const domain = parse(t, cat(hex('05 03 01 02 00'), connectDomain('example.com', 8443)));
  t.same(domain.writes, [hex('05 00')], 'no-auth chosen among several methods');
  t.match(domain.step, { type: 'request', request: { target: { host: 'example.com', port: 8443 } } });

  const cases: Array<[string, string]> = [
    ['20010db8000000000000000000000001', '2001:db8::1'],
    ['00000000000000000000000000000001', '::1'],
    ['00000000000000000000000000000000', '::'],
    ['00010000000000010000000000000001', '1:0:0:1::1'],
    ['00000000000000000000ffff7f000001', '::ffff:7f00:1'],
  ];
  for (const [bytes, host] of cases) {
    const v6 = parse(t, cat(NO_AUTH_GREETING, hex(`05 01 00 04 ${bytes} 0016`)));
    t.match(v6.step, { type: 'request', request: { target: { host, port: 22 } } }, host);
    t.equal(net.isIPv6(host), true);
  }
});

t.test('bytes after the request are kept as rest', async (t) => {
  const { step } = parse(t, cat(NO_AUTH_GREETING, CONNECT_V4, ascii('GET / HTTP/1.1\r\n')));
  t.match(step, { type: 'request', request: { rest: ascii('GET / HTTP/1.1\r\n') } });
  const v4 = parse(t, cat(socks4('bob'), ascii('hello')));
  t.match(v4.step, { type: 'request', request: { version: 4, rest: ascii('hello') } });
});

t.test('feed(empty) after a write goes on with the bytes already buffered', async (t) => {
  const parser = new SocksParser();
  t.same(parser.feed(Buffer.alloc(0)), { type: 'more' });
  t.same(parser.feed(cat(NO_AUTH_GREETING, CONNECT_V4)), { type: 'write', data: hex('05 00') });
  t.equal(parser.buffered, CONNECT_V4.length);
  t.match(parser.feed(Buffer.alloc(0)), { type: 'request', request: { target: { host: '10.1.2.3', port: 80 } } });
});

t.test('feeding after the handshake ended is a programming error', async (t) => {
  const done = new SocksParser();
  done.feed(NO_AUTH_GREETING);
  done.feed(CONNECT_V4);
  t.throws(() => done.feed(Buffer.alloc(0)), /after the handshake ended/);
  const failed = new SocksParser();
  t.match(failed.feed(ascii('GET')), { type: 'fail' });
  t.throws(() => failed.feed(ascii(' /')), /after the handshake ended/);
});

t.test('a first byte other than 4 or 5 fails with no reply', async (t) => {
  failure(t, parse(t, ascii('GET / HTTP/1.1\r\n')), /not a SOCKS client \(first byte 0x47\)/);
  failure(t, parse(t, hex('00')), /first byte 0x00/);
});

t.test('SOCKS5 greeting: methods', async (t) => {
  const noMethod = hex('05 ff');
  failure(t, parse(t, hex('05 00')), /no authentication method/, noMethod);
  failure(t, parse(t, hex('05 01 02')), /does not offer no authentication/, noMethod);
  failure(t, parse(t, hex('05 02 01 80')), /does not offer no authentication/, noMethod);
  failure(t, parse(t, NO_AUTH_GREETING, AUTH), /does not offer username\/password/, noMethod);
  t.same(parse(t, hex('05 01')).step, { type: 'more' }, 'waits for the methods');
});

t.test('SOCKS5 with RFC 1929 auth', async (t) => {
  const ok = parse(t, cat(AUTH_GREETING, login('alice', 's3cret'), CONNECT_V4, ascii('x')), AUTH);
  t.same(ok, {
    writes: [hex('05 02'), hex('01 00')],
    step: {
      type: 'request',
      request: { version: 5, target: { host: '10.1.2.3', port: 80 }, rest: ascii('x'), user: 'alice' },
    },
  });

  const denied = hex('01 01');
  failure(t, parse(t, cat(AUTH_GREETING, login('alice', 'wrong!'), CONNECT_V4), AUTH), /failed for user "alice"/, denied);
  failure(t, parse(t, cat(AUTH_GREETING, login('alice', 's3cret-but-longer')), AUTH), /failed for user "alice"/, denied);
  failure(t, parse(t, cat(AUTH_GREETING, login('alic', 's3cret')), AUTH), /failed for user "alic"/, denied);
  failure(t, parse(t, cat(AUTH_GREETING, login('mallory', 's')), AUTH), /failed for user "mallory"/, denied);
  failure(t, parse(t, cat(AUTH_GREETING, hex('05 05'), ascii('alice')), AUTH), /authentication version 5 is not 1/, denied);
  failure(t, parse(t, cat(AUTH_GREETING, hex('01 00 06'), ascii('s3cret')), AUTH), /empty username/, denied);
  failure(t, parse(t, cat(AUTH_GREETING, hex('01 05'), ascii('alice'), hex('00')), AUTH), /empty password/, denied);
  const half = parse(t, cat(AUTH_GREETING, hex('01 05'), ascii('ali')), AUTH);
  t.same(half.step, { type: 'more' }, 'waits for the whole username');
});

t.test('SOCKS5 request errors', async (t) => {
  const refused = (code: number) => hex(`05 ${code.toString(16).padStart(2, '0')} 00 01 00000000 0000`);
  const after = (request: string) => parse(t, cat(NO_AUTH_GREETING, hex(request)));

  failure(t, after('04 01 00 01 0a010203 0050'), /request version 4 is not 5/);
  for (const cmd of ['02', '03', '00', 'ff']) {
    failure(t, after(`05 ${cmd} 00 01 0a010203 0050`), /command \d+ is not supported/, refused(REPLY.commandNotSupported));
  }
  for (const atyp of ['00', '02', '05', 'ff']) {
    failure(t, after(`05 01 00 ${atyp} 0a010203 0050`), /address type \d+ is not supported/, refused(REPLY.addressTypeNotSupported));
  }
  failure(t, after('05 01 00 03 00 0050'), /empty domain name/, refused(REPLY.generalFailure));
  for (const bad of ['exa mple.com', 'exa\0mple.com', 'caf\xe9.fr', 'del\x7f', '\t']) {
    failure(t, parse(t, cat(NO_AUTH_GREETING, connectDomain(bad))), /not printable ASCII/, refused(REPLY.generalFailure));
  }
  failure(t, after('05 01 00 01 0a010203 0000'), /port 0 of 10\.1\.2\.3/, refused(REPLY.generalFailure));
  failure(t, parse(t, cat(NO_AUTH_GREETING, connectDomain('example.com', 0))), /port 0/, refused(REPLY.generalFailure));
  t.match(after('05 01 ff 01 0a010203 0050').step, { type: 'request' }, 'RSV is not checked');
  t.match(parse(t, cat(NO_AUTH_GREETING, connectDomain('x'.repeat(255)))).step, { type: 'request' }, '255-byte name');
});

t.test('SOCKS4 and SOCKS4a', async (t) => {
  t.same(parse(t, socks4('')), {
    writes: [],
    step: { type: 'request', request: { version: 4, target: { host: '10.1.2.3', port: 80 }, rest: Buffer.alloc(0) } },
  });
  const user = parse(t, socks4('bob', 'c0a80001', '1f90'));
  t.match(user.step, { type: 'request', request: { target: { host: '192.168.0.1', port: 8080 } } });
  t.notOk((user.step as { request?: { user?: string } }).request?.user, 'a SOCKS4 user id is not an authenticated user');

  const v4a = parse(t, cat(socks4('bob', '00000001'), ascii('example.com'), hex('00'), ascii('data')));
  t.same(v4a.step, {
    type: 'request',
    request: { version: 4, target: { host: 'example.com', port: 80 }, rest: ascii('data') },
  });
  t.match(parse(t, socks4('', '00000000')).step, { request: { target: { host: '0.0.0.0' } } }, '0.0.0.0 is not 4a');
  t.match(parse(t, cat(socks4('', '000000ff'), ascii('h'.repeat(255)), hex('00'))).step, { type: 'request' }, '255-byte name');

  const rejected = hex('00 5b 0000 00000000');
  failure(t, parse(t, hex('04 02 0050 0a010203 00')), /SOCKS4 command 2 is not supported/, rejected);
  failure(t, parse(t, socks4('', '0a010203', '0000')), /port 0 of 10\.1\.2\.3/, rejected);
  failure(t, parse(t, cat(socks4('', '00000001'), hex('00'))), /hostname is empty/, rejected);
  failure(t, parse(t, cat(socks4('', '00000001'), ascii('a b'), hex('00'))), /not printable ASCII/, rejected);
  failure(t, parse(t, socks4('bob'), AUTH), /SOCKS4 has no password: --socks-auth requires SOCKS5/, rejected);
});

t.test('SOCKS4 strings are bounded: a client that never sends NUL is refused, not buffered', async (t) => {
  const rejected = hex('00 5b 0000 00000000');
  t.match(parse(t, socks4('u'.repeat(255))).step, { type: 'request' }, '255-byte user id');
  failure(t, parse(t, socks4('u'.repeat(256))), /user id is longer than 255 bytes/, rejected);
  failure(t, parse(t, cat(socks4('', '00000001'), ascii('h'.repeat(256)), hex('00'))), /hostname is longer than 255/, rejected);

  const parser = new SocksParser();
  let step = parser.feed(hex('04 01 0050 0a010203'));
  let fed = 8;
  while (step.type === 'more' && fed < 10_000) {
    step = parser.feed(ascii('u'));
    fed++;
    t.ok(parser.buffered <= 8 + 256, 'buffered stays bounded');
  }
  t.equal(fed, 8 + 256, 'fails on the 256th byte without a NUL');
  t.match(step, { type: 'fail', reason: /user id is longer/ });
});

// negotiateSocks over real loopback sockets.

interface Pair {
  client: net.Socket;
  server: net.Socket;
  /** Everything the client has received so far. */
  received(): Buffer;
}

/** A loopback connection; the server side is accepted paused, as the forwards accept clients. */
async function pair(t: Test): Promise<Pair> {
  const listener = net.createServer({ pauseOnConnect: true });
  await listen(listener);
  const accepted = once(listener, 'connection') as Promise<[net.Socket]>;
  const client = await connect((listener.address() as net.AddressInfo).port);
  const [server] = await accepted;
  const chunks: Buffer[] = [];
  client.on('data', (c: Buffer) => chunks.push(c));
  client.on('error', () => {});
  t.teardown(async () => {
    client.destroy();
    server.destroy();
    await new Promise<void>((r) => listener.close(() => r()));
  });
  return { client, server, received: () => Buffer.concat(chunks) };
}

const LISTENER_EVENTS = ['data', 'end', 'close', 'error', 'readable'] as const;
const listenerCounts = (s: net.Socket) => LISTENER_EVENTS.map((e) => s.listenerCount(e));

async function rejection(t: Test, p: Promise<unknown>): Promise<SocksError> {
  const err = await deadline(p.then(() => undefined, (e: unknown) => e), 5000, 'the handshake to reject');
  t.type(err, SocksError);
  return err as SocksError;
}

t.test('negotiateSocks: success, rest preserved, socket left paused without our listeners', async (t) => {
  const { client, server, received } = await pair(t);
  const before = listenerCounts(server);
  const result = negotiateSocks(server, { timeoutMs: 5000 });

  client.write(NO_AUTH_GREETING);
  await until(() => received().length >= 2, 5000, 'the method selection');
  t.same(received(), hex('05 00'));
  client.write(cat(connectDomain('example.com', 443), ascii('hello ')));

  const request = await deadline(result, 5000, 'the request');
  t.same(request.target, { host: 'example.com', port: 443 });
  t.equal(request.version, 5);
  t.equal(server.isPaused(), true, 'left paused');
  t.equal(server.listenerCount('data'), 0);
  t.same(listenerCounts(server), before, 'no listener of ours left behind');

  // Nothing after the request is lost: rest, then whatever the socket still holds.
  client.end('world');
  const after: Buffer[] = [request.rest];
  server.on('data', (c: Buffer) => after.push(c));
  server.resume();
  await deadline(once(server, 'end'), 5000, 'the client end');
  t.equal(Buffer.concat(after).toString(), 'hello world');
});

t.test('negotiateSocks: SOCKS4 request with optimistic data in one write', async (t) => {
  const { client, server } = await pair(t);
  const result = negotiateSocks(server, { timeoutMs: 5000 });
  client.write(cat(socks4('bob'), ascii('ping')));
  const request = await deadline(result, 5000, 'the request');
  t.same(request.target, { host: '10.1.2.3', port: 80 });
  const rest = [request.rest];
  if (request.rest.length < 4) {
    server.on('data', (c: Buffer) => rest.push(c));
    server.resume();
    await until(() => Buffer.concat(rest).length >= 4, 5000, 'the rest of the data');
  }
  t.equal(Buffer.concat(rest).toString(), 'ping');
});

t.test('negotiateSocks: auth success and failure', async (t) => {
  const ok = await pair(t);
  const granted = negotiateSocks(ok.server, { ...AUTH, timeoutMs: 5000 });
  ok.client.write(cat(AUTH_GREETING, login('alice', 's3cret'), CONNECT_V4));
  const request = await deadline(granted, 5000, 'the request');
  t.equal(request.user, 'alice');
  await until(() => ok.received().length >= 4, 5000, 'the auth replies');
  t.same(ok.received(), hex('05 02 01 00'));

  const bad = await pair(t);
  const closed = Promise.all([once(bad.server, 'close'), once(bad.client, 'end')]);
  const denied = negotiateSocks(bad.server, { ...AUTH, timeoutMs: 5000 });
  bad.client.write(cat(AUTH_GREETING, login('alice', 'guess')));
  const err = await rejection(t, denied);
  t.match(err.message, /authentication failed for user "alice"/);
  t.same(err.reply, hex('01 01'));
  await deadline(closed, 5000, 'the socket to close');
  t.same(bad.received(), hex('05 02 01 01'), 'the failure reply reached the client before the close');
});

t.test('negotiateSocks: a protocol error writes the reply, closes, and leaves no listener of ours', async (t) => {
  const { client, server, received } = await pair(t);
  const closed = Promise.all([once(server, 'close'), once(client, 'end')]);
  const result = negotiateSocks(server, { timeoutMs: 5000 });
  client.write(hex('05 01 02'));
  const err = await rejection(t, result);
  t.match(err.message, /does not offer no authentication/);
  await deadline(closed, 5000, 'the socket to close');
  t.same(received(), hex('05 ff'));
  t.equal(server.destroyed, true);
  t.equal(server.listenerCount('data'), 0);
});

t.test('negotiateSocks: timeout', async (t) => {
  const { client, server } = await pair(t);
  const closed = Promise.all([once(server, 'close'), once(client, 'end')]);
  const result = negotiateSocks(server, { timeoutMs: 200 });
  client.write(NO_AUTH_GREETING); // then nothing
  const err = await rejection(t, result);
  t.equal(err.message, 'SOCKS handshake not complete within 200 ms');
  t.equal(err.reply, undefined);
  await deadline(closed, 5000, 'the socket to close');
});

t.test('negotiateSocks: the client leaving mid-handshake rejects', async (t) => {
  const ended = await pair(t);
  const result = negotiateSocks(ended.server, { timeoutMs: 5000 });
  ended.client.end(hex('05 01'));
  t.match((await rejection(t, result)).message, /client closed the connection during the SOCKS handshake/);

  const reset = await pair(t);
  const resetResult = negotiateSocks(reset.server, { timeoutMs: 5000 });
  reset.client.resetAndDestroy();
  t.match((await rejection(t, resetResult)).message, /during the SOCKS handshake/);
});
