/**
 * The SSH socket's reads through onread (src/ssh/socket-reads.ts): nothing handed on is read into
 * again, since ssh2 hands payloads on as views that may wait in a client's write queue; what a
 * chunk keeps in memory is bounded by its own size; and the tunnel's socket really reads that
 * way, with every byte intact when a client stalls while others carry on.
 */
import t from 'tap';
import fc from 'fast-check';
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { socketReads } from '../src/ssh/socket-reads.js';
import { connect, deadline, until } from './fixtures/net.js';
import { startEchoTunnel } from './fixtures/tunnel.js';

t.test('reads of any sizes: every chunk keeps its bytes while later reads fill what they are offered, and keeps little else', (t) => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 64 * 1024 }), { minLength: 1, maxLength: 300 }), (sizes) => {
      const sock = new EventEmitter();
      const chunks: Buffer[] = [];
      sock.on('data', (c: Buffer) => chunks.push(c));
      const { buffer, callback } = socketReads(() => sock as net.Socket);
      const next = buffer as () => Buffer;
      let offered = next(); // as net.Socket takes its first buffer
      sizes.forEach((n, i) => {
        if (offered.length < n) throw new Error(`a read of ${n} bytes offered only ${offered.length}`);
        offered.fill(i % 251, 0, n);
        callback(n, offered);
        offered = next();
        offered.fill(0xff); // the next read may write anywhere in what it is offered
      });
      const intact = chunks.length === sizes.length && chunks.every((c, i) => c.length === sizes[i] && c.every((b) => b === i % 251));
      // A chunk waiting in a write queue keeps its ArrayBuffer: a pool's, or at most twice its own size.
      const small = chunks.every((c) => c.buffer.byteLength <= Math.max(Buffer.poolSize, 2 * c.length));
      return intact && small;
    }),
  );
  t.end();
});

t.test('the SSH socket reads through onread; a stalled client gets every byte once it reads again, others meanwhile', async (t) => {
  const { connect: netConnect } = net;
  const options: net.NetConnectOpts[] = [];
  net.connect = ((o: net.NetConnectOpts) => (options.push(o), netConnect(o))) as typeof net.connect;
  t.teardown(() => void (net.connect = netConnect));
  const { app, bound, server } = await startEchoTunnel(t);
  await deadline(app.ready(), 5000, 'tunnel ready');
  net.connect = netConnect;
  const toServer = options.filter((o) => 'port' in o && o.port === server.port);
  t.equal(toServer.length, 1, 'one socket to the SSH server');
  t.ok(toServer[0]!.onread, 'reading through onread');

  const port = bound[0]!.port;
  const size = 4 * 1024 * 1024;
  const echo = async (sock: net.Socket, bytes: Buffer, stalledUntil?: Promise<void>) => {
    const hash = createHash('sha256');
    let got = 0;
    if (stalledUntil) {
      sock.pause();
      void stalledUntil.then(() => sock.resume());
    }
    sock.on('data', (c: Buffer) => {
      hash.update(c);
      got += c.length;
    });
    sock.write(bytes);
    await until(() => got >= bytes.length, 30_000, 'the echo');
    return hash.digest('hex');
  };
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const stalled = await connect(port);
  const others = await Promise.all([1, 2, 3].map(() => connect(port)));
  const data = [0, 1, 2, 3].map(() => randomBytes(size));
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const stalledEcho = echo(stalled, data[0]!, released);
  const otherEchoes = others.map((s, i) => echo(s, data[i + 1]!));
  t.same(await Promise.all(otherEchoes), data.slice(1).map(sha), 'the other clients: every byte, in order');
  release();
  t.equal(await stalledEcho, sha(data[0]!), 'the stalled client: every byte, in order, read after the others');
  for (const s of [stalled, ...others]) s.destroy();
});
