/**
 * Socket reads through onread (src/socket-reads.ts): nothing handed on is read into again, since
 * ssh2 hands payloads on as views that may wait in a client's write queue, and sockets share one
 * buffer; what a chunk keeps in memory is bounded by its own size, and a socket keeps no buffer of
 * its own after a read that did not fill one; an accepted socket gets the same reads (through
 * Node's internals, so this fails if they change), pauses at once, even in the tick it was resumed,
 * and is read through its Readable where those internals are missing; and the tunnel's socket, a
 * forward's clients and a remote forward's targets really read that way, with every byte intact
 * when a client stalls while others carry on.
 */
import t, { type Test } from 'tap';
import fc from 'fast-check';
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import diagnostics from 'node:diagnostics_channel';
import net from 'node:net';
import { acceptedReads, ReadBuffers, socketReads } from '../src/socket-reads.js';
import { TcpClient } from '../src/forward/tcp-client.js';
import { connect, deadline, expectEcho, until } from './fixtures/net.js';
import { forwardDeps, LogCapture, startEchoTunnel } from './fixtures/tunnel.js';
import { parseLocalForward } from '../src/config/forward-spec.js';

t.test('reads of any sizes on several sockets: every chunk keeps its bytes while later reads fill what they are offered, and keeps little else', (t) => {
  const FULL = 64 * 1024;
  const read = fc.record({ socket: fc.integer({ min: 0, max: 2 }), size: fc.oneof(fc.integer({ min: 1, max: FULL }), fc.constant(FULL)) });
  const flowing = () => Object.assign(new EventEmitter(), { readableLength: 0, isPaused: () => false }) as unknown as net.Socket;
  const shared = (socketReads(flowing).buffer as () => Buffer)(); // what a socket that has not just filled a buffer is offered
  fc.assert(
    fc.property(fc.array(read, { minLength: 1, maxLength: 300 }), (reads) => {
      const chunks: Buffer[] = [];
      const sockets = [0, 1, 2].map(() => {
        const sock = flowing();
        sock.on('data', (c: Buffer) => chunks.push(c));
        const { buffer, callback } = socketReads(() => sock);
        const next = buffer as () => Buffer;
        return { next, callback, offered: next() }; // as net.Socket takes its first buffer
      });
      let idleKeepsNothing = true;
      reads.forEach(({ socket, size }, i) => {
        const s = sockets[socket]!;
        if (s.offered.length < size) throw new Error(`a read of ${size} bytes offered only ${s.offered.length}`);
        s.offered.fill(i % 251, 0, size);
        s.callback(size, s.offered);
        s.offered = s.next();
        if (size < FULL && s.offered !== shared) idleKeepsNothing = false;
        for (const other of sockets) other.offered.fill(0xff); // the next read, of any socket, may write anywhere in what it is offered
      });
      const intact = chunks.length === reads.length && chunks.every((c, i) => c.length === reads[i]!.size && c.every((b) => b === i % 251));
      // A chunk waiting in a write queue keeps its ArrayBuffer: a pool's, or at most twice its own size.
      const small = chunks.every((c) => c.buffer.byteLength <= Math.max(Buffer.poolSize, 2 * c.length));
      return intact && small && idleKeepsNothing;
    }),
  );
  t.end();
});

/**
 * Writes on loopback, where the bytes are in the peer's receive queue once the write completes, then
 * lets the event loop turn twice: a socket that reads would have read them in the first turn's poll.
 */
async function writeThenTurn(client: net.Socket, text: string, end = false): Promise<void> {
  await new Promise<void>((resolve) => (end ? client.end(text, resolve) : client.write(text, () => resolve())));
  for (let turn = 0; turn < 2; turn++) await new Promise((resolve) => setImmediate(resolve));
}

/** A client and the socket a server accepted paused from it, set to read through onread, its reads collected. */
async function acceptOne(t: Test): Promise<{ client: net.Socket; socket: net.Socket; chunks: Buffer[] }> {
  const accepted: net.Socket[] = [];
  const server = net.createServer({ pauseOnConnect: true }, (s) => accepted.push(s));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const client = await connect((server.address() as net.AddressInfo).port);
  await until(() => accepted.length === 1, 5000, 'the accept');
  const socket = accepted[0]!;
  t.ok(acceptedReads(socket), "Node's internals are as expected (Node 20): the socket reads through onread");
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  return { client, socket, chunks };
}

t.test('an accepted socket reads through onread: copied out of the shared buffer, paused and resumed, then its end', async (t) => {
  const { client, socket, chunks } = await acceptOne(t);
  await writeThenTurn(client, 'hello');
  t.equal(chunks.length, 0, 'nothing is read while the socket is paused');
  socket.resume();
  await until(() => chunks.length === 1, 5000, 'the first read');
  // Node's own reads hand on a trimmed ArrayBuffer of the read's size; ours a copy from its pool.
  t.equal(chunks[0]!.buffer.byteLength, Buffer.poolSize, 'copied out of the shared buffer into the pool');
  socket.pause();
  await writeThenTurn(client, ' again', true);
  t.equal(chunks.length, 1, 'pause() stops the reads');
  const ended = once(socket, 'end');
  socket.resume();
  await deadline(ended, 5000, 'the end');
  t.equal(Buffer.concat(chunks).toString(), 'hello again', 'every byte, in order, then the end');
  socket.destroy();
});

t.test('an accepted socket resumed and paused again in one tick reads nothing out to its listener until resumed: the bytes wait, in order', async (t) => {
  const { client, socket, chunks } = await acceptOne(t);
  socket.resume();
  socket.pause(); // Node's read(0), deferred by the resume, starts the handle's reads again
  await writeThenTurn(client, 'first');
  await writeThenTurn(client, ' second');
  t.equal(chunks.length, 0, 'nothing reaches the listener while paused');
  socket.resume();
  await until(() => Buffer.concat(chunks).toString() === 'first second', 5000, 'both writes after the resume');
  await writeThenTurn(client, ' third');
  await until(() => Buffer.concat(chunks).toString() === 'first second third', 5000, 'the reads that follow, behind them');
  t.pass('every byte, in order');
  client.destroy();
  socket.destroy();
});

t.test('the SSH socket reads through onread, -L takes its clients without net.Socket; a stalled client gets every byte once it reads again, others meanwhile', async (t) => {
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
  // net.Server says each net.Socket it makes of an accepted connection (the echo target's too); a TcpClient is none.
  let sockets = 0;
  const onAccept = (m: unknown) => void ((m as { socket: net.Socket }).socket.localPort === port && sockets++);
  diagnostics.subscribe('net.server.socket', onAccept);
  t.teardown(() => diagnostics.unsubscribe('net.server.socket', onAccept));
  await expectEcho(t, port, 'the forward');
  t.equal(sockets, 0, "the forward's client is a TcpClient (src/forward/tcp-client.ts), not a net.Socket");
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

t.test('on a Node whose handles and sockets are neither as sshkeep knows them, -L takes net.Sockets read through their Readable: served all the same, said once at debug', async (t) => {
  const tcpClient = { TcpClient, tcpClientsSupported: () => false };
  const acceptHandles = await t.mockImport<typeof import('../src/forward/accept-handles.js')>('../src/forward/accept-handles.js', { '../src/forward/tcp-client.js': tcpClient });
  const { LocalForward } = await t.mockImport<typeof import('../src/forward/local-forward.js')>('../src/forward/local-forward.js', {
    '../src/socket-reads.js': { acceptedReads: () => false, socketReads, ReadBuffers },
    '../src/forward/accept-handles.js': acceptHandles,
    '../src/forward/tcp-client.js': tcpClient,
  });
  const { app, echo } = await startEchoTunnel(t);
  await deadline(app.ready(), 5000, 'tunnel ready');
  const logs = new LogCapture();
  const forward = new LocalForward(parseLocalForward(`0:127.0.0.1:${echo.port}`), forwardDeps(app, logs));
  const at = await forward.listen();
  t.teardown(() => {
    forward.stopAccepting();
    forward.resetAll('test over');
  });
  if (at.kind !== 'tcp') throw new Error('expected a TCP listener');
  let sockets = 0;
  const onAccept = (m: unknown) => void ((m as { socket: net.Socket }).socket.localPort === at.port && sockets++);
  diagnostics.subscribe('net.server.socket', onAccept);
  t.teardown(() => diagnostics.unsubscribe('net.server.socket', onAccept));
  await expectEcho(t, at.port, 'the first client');
  await expectEcho(t, at.port, 'the second client');
  t.equal(sockets, 2, 'each client a net.Socket');
  t.match(logs.find('reads_readable'), [{ level: 'debug', msg: /read through their Readable stream/ }], 'said once, at debug');
});
