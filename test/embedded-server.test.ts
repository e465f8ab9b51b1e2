import t, { type Test } from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import ssh2 from 'ssh2';
import type { ClientChannel, ConnectConfig, ParsedKey } from 'ssh2';
import { startEmbeddedServer, type EmbeddedServer, type EmbeddedServerOptions } from '../src/demo/embedded-server.js';
import { refusedPort, deadline, listenFor, startEchoFor } from './fixtures/net.js';
import { ed25519Pair } from '../src/demo/keygen.js';

const { Client, utils } = ssh2;
const clientKey = ed25519Pair();

async function server(t: Test, opts: EmbeddedServerOptions = {}): Promise<EmbeddedServer> {
  const s = await startEmbeddedServer({ authorizedKeys: [clientKey.public], ...opts });
  t.teardown(() => s.close());
  return s;
}

/** Connects and resolves on 'ready'; rejects with the client's first 'error'. */
async function connect(t: Test, s: EmbeddedServer, cfg: ConnectConfig = {}): Promise<ssh2.Client> {
  const c = new Client();
  c.on('error', () => {}); // tests that expect an error await it explicitly
  t.teardown(() => c.end());
  const ready = once(c, 'ready'); // events.once rejects on the first 'error'
  c.connect({
    host: s.host,
    port: s.port,
    username: 'demo',
    privateKey: clientKey.private,
    hostVerifier: (key: Buffer) => key.equals(s.hostKeyBlob),
    ...cfg,
  });
  await deadline(ready, 5000, 'ssh client ready');
  return c;
}

function forwardOut(c: ssh2.Client, port: number): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    c.forwardOut('127.0.0.1', 0, '127.0.0.1', port, (err, ch) => (err ? reject(err) : resolve(ch)));
  });
}

/** Resolves to the error `p` rejects with; a resolution is itself a failure. */
async function errorOf(p: Promise<unknown>, what: string): Promise<Error & { reason?: number; level?: string }> {
  const err = await deadline(p.then(() => undefined, (e: unknown) => e), 5000, what);
  if (!(err instanceof Error)) throw new Error(`expected ${what} to fail`);
  return err;
}

/** Everything the channel sends until its 'end'. */
async function readAll(ch: ClientChannel): Promise<Buffer> {
  const chunks: Buffer[] = [];
  ch.on('data', (c: Buffer) => chunks.push(c));
  await deadline(once(ch, 'end'), 5000, 'channel end');
  return Buffer.concat(chunks);
}

t.test('embedded server – forwards bytes to the target and back', async (t) => {
  const echo = await startEchoFor(t);
  const s = await server(t);
  t.match(s.hostPublicKey, /^ssh-ed25519 AAAA[A-Za-z0-9+/=]+$/);
  const c = await connect(t, s);
  t.equal(s.connections, 1);

  const ch = await forwardOut(c, echo.port);
  // Larger than ssh2's 2 MiB channel window, so window/backpressure handling is exercised.
  const payload = randomBytes(3 * 1024 * 1024);
  const got = readAll(ch);
  ch.end(payload);
  t.ok((await got).equals(payload), 'payload echoed back intact');
  t.equal(s.channelsOpened, 1);
});

t.test('embedded server – target EOF is a half-close: the client can still write', async (t) => {
  let received: Promise<Buffer> | undefined;
  const target = net.createServer({ allowHalfOpen: true }, (sock) => {
    sock.on('error', () => {});
    const chunks: Buffer[] = [];
    sock.on('data', (d: Buffer) => chunks.push(d));
    received = once(sock, 'end').then(() => Buffer.concat(chunks));
    sock.end('banner'); // target is done talking right away
  });
  await listenFor(t, target);
  const s = await server(t);
  const c = await connect(t, s);

  const ch = await forwardOut(c, (target.address() as net.AddressInfo).port);
  const closed = once(ch, 'close');
  t.equal((await readAll(ch)).toString(), 'banner');
  ch.end('late data');
  t.ok(received, 'target saw the connection');
  t.equal((await deadline(received!, 5000, 'target end')).toString(), 'late data');
  await deadline(closed, 5000, 'channel close once both sides are done');
});

t.test('embedded server – a target reset closes the channel', async (t) => {
  const target = net.createServer((sock) => {
    sock.on('error', () => {});
    sock.once('data', () => sock.resetAndDestroy());
  });
  await listenFor(t, target);
  const s = await server(t);
  const c = await connect(t, s);

  const ch = await forwardOut(c, (target.address() as net.AddressInfo).port);
  ch.on('data', () => {});
  const closed = once(ch, 'close');
  ch.write('trigger reset');
  await deadline(closed, 5000, 'channel close after target RST');
  t.equal(s.connections, 1, 'the SSH connection itself survives');
});

t.test('embedded server – refused target fails the channel open with connect-failed (2)', async (t) => {
  const s = await server(t);
  const c = await connect(t, s);
  const err = await errorOf(forwardOut(c, await refusedPort()), 'forwardOut');
  t.equal(err.reason, 2);
  t.equal(s.channelsOpened, 0);
});

t.test('embedded server – forwarding deny rejects with administratively prohibited (1)', async (t) => {
  const echo = await startEchoFor(t);
  const s = await server(t, { forwarding: 'deny' });
  const c = await connect(t, s);
  const err = await errorOf(forwardOut(c, echo.port), 'forwardOut');
  t.equal(err.reason, 1);
  t.equal(s.channelsOpened, 0);
});

t.test('embedded server – session channels (exec) are refused', async (t) => {
  const s = await server(t);
  const c = await connect(t, s);
  const err = await errorOf(new Promise((resolve, reject) => c.exec('id', (e) => (e ? reject(e) : resolve(e)))), 'exec');
  t.match(err.message, /open failure/);
});

t.test('embedded server – an unknown client key fails client-authentication', async (t) => {
  const s = await server(t);
  const other = ed25519Pair();
  const err = await errorOf(connect(t, s, { privateKey: other.private }), 'connect');
  t.equal(err.level, 'client-authentication');
  t.equal(s.channelsOpened, 0);
});

t.test('embedded server – an authorized key with a bad signature is rejected', async (t) => {
  const s = await server(t);
  // Offers the authorized public key but signs with another key: only the signature check can catch it.
  const forged = utils.parseKey(clientKey.private) as ParsedKey;
  const other = utils.parseKey(ed25519Pair().private) as ParsedKey;
  let signed = 0;
  forged.sign = (data, algo) => (signed++, other.sign(data, algo));
  // ssh2's privateKey option only takes string/Buffer; a ParsedKey has to go through authHandler.
  const auth = [{ type: 'publickey' as const, username: 'demo', key: forged }];
  const err = await errorOf(connect(t, s, { privateKey: undefined, authHandler: auth }), 'connect');
  t.equal(signed, 1, 'the key was accepted in principle, then a signature was sent');
  t.equal(err.level, 'client-authentication');
});

t.test('embedded server – bad key options fail startup', async (t) => {
  await t.rejects(startEmbeddedServer({ hostKey: 'not a key' }), /cannot parse hostKey/);
  await t.rejects(startEmbeddedServer({ hostKey: clientKey.public }), /hostKey must be a private key/);
  await t.rejects(startEmbeddedServer({ authorizedKeys: ['ssh-ed25519 nope'] }), /cannot parse authorizedKeys\[0\]/);
  // A well-formed OpenSSH key file holding zero keys: ssh2's parseKey returns undefined, not an Error.
  const noKeys = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAAA\n-----END OPENSSH PRIVATE KEY-----';
  await t.rejects(startEmbeddedServer({ hostKey: noKeys }), /cannot parse hostKey: no key found/);
});

t.test('embedded server – password auth for the configured pair only', async (t) => {
  const s = await server(t, { authorizedKeys: undefined, password: { username: 'alice', password: 's3cret' } });
  const ok = await connect(t, s, { username: 'alice', password: 's3cret', privateKey: undefined });
  t.ok(ok, 'password accepted');
  for (const bad of [{ username: 'alice', password: 'nope' }, { username: 'bob', password: 's3cret' }]) {
    const err = await errorOf(connect(t, s, { ...bad, privateKey: undefined }), 'connect');
    t.equal(err.level, 'client-authentication', `${bad.username}/${bad.password}`);
  }
});

t.test('embedded server – dropConnections closes clients but keeps listening', async (t) => {
  const echo = await startEchoFor(t);
  const s = await server(t);
  const c = await connect(t, s);
  const ch = await forwardOut(c, echo.port);
  ch.on('error', () => {});
  const closed = once(c, 'close');
  s.dropConnections();
  await deadline(closed, 5000, 'client close after dropConnections');
  t.equal(s.connections, 0);

  const again = await connect(t, s);
  const ch2 = await forwardOut(again, echo.port);
  const got = readAll(ch2);
  ch2.end('still here');
  t.equal((await got).toString(), 'still here');
});

t.test('embedded server – close() stops listening and is idempotent', async (t) => {
  const echo = await startEchoFor(t);
  const s = await server(t);
  const c = await connect(t, s);
  await forwardOut(c, echo.port); // left open: close() must tear it down
  const closed = once(c, 'close');
  await deadline(s.close(), 5000, 'server close');
  await deadline(s.close(), 1000, 'second close');
  await deadline(closed, 5000, 'client close');

  const sock = net.connect(s.port, s.host);
  const [err] = await deadline(once(sock, 'error'), 5000, 'connect error');
  t.equal((err as NodeJS.ErrnoException).code, 'ECONNREFUSED');
});
