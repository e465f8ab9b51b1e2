/**
 * takeWrites (src/ssh/socket-writes.ts): the SSH connection's writes straight to its TCP socket's
 * libuv handle. Every byte in order, at once or (after hold()) in one writev in the check phase,
 * in order behind a write the kernel could not take at once, before the FIN of end(); a write
 * that fails destroys the socket with an errno error; the socket's Writable is never used. It
 * drives Node 20's internal handles: "Node's sockets are as expected" fails first when they change.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import t, { type Test } from 'tap';
import { LeanChannel } from '../src/ssh/lean-channel.js';
import { takeWrites } from '../src/ssh/socket-writes.js';
import { connect, deadline, listenFor, startEchoFor, until } from './fixtures/net.js';
import { embeddedSession } from './fixtures/tunnel.js';

interface Handle {
  writeBuffer(...args: unknown[]): number;
  writev(...args: unknown[]): number;
  writeQueueSize: number;
}

const handleOf = (sock: net.Socket) => (sock as unknown as { _handle: Handle })._handle;

/** A connected pair: `sock` (ours, its writes taken) and `peer` (the accepted side, paused until read). */
async function pair(t: Test): Promise<{ sock: net.Socket; peer: net.Socket }> {
  const accepted: net.Socket[] = [];
  const server = net.createServer({ pauseOnConnect: true }, (s) => accepted.push(s));
  const port = await listenFor(t, server);
  t.teardown(() => accepted.forEach((s) => s.destroy())); // before the server's close, which waits for them
  const sock = await connect(port);
  t.teardown(() => sock.destroy());
  await until(() => accepted.length === 1, 5000, 'the accepted side');
  const peer = accepted[0]!;
  return { sock, peer };
}

/** Fails the test if the socket's Writable is asked to write: every write must bypass it. */
function forbidWritable(t: Test, sock: net.Socket): void {
  const fields = sock as unknown as Record<string, unknown>;
  fields._write = () => t.fail("a write went through the socket's Writable");
  fields._writev = () => t.fail("a write went through the socket's Writable");
}

/** Counts the system-call-level writes: how many chunks each writeBuffer (1) or writev (n) carried. */
function countWrites(sock: net.Socket): number[] {
  const handle = handleOf(sock);
  const calls: number[] = [];
  const { writeBuffer, writev } = handle;
  handle.writeBuffer = function (this: Handle, ...args: unknown[]) {
    calls.push(1);
    return writeBuffer.apply(this, args);
  };
  handle.writev = function (this: Handle, ...args: unknown[]) {
    calls.push((args[1] as Buffer[]).length);
    return writev.apply(this, args);
  };
  return calls;
}

/** Everything `peer` sends until its end. */
async function readAll(peer: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  peer.on('data', (c: Buffer) => chunks.push(c));
  peer.resume();
  await deadline(once(peer, 'end'), 20_000, "the writer's FIN");
  return Buffer.concat(chunks);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

t.test("Node's sockets are as expected (Node 20): a connected TCP socket's writes are taken; other streams keep theirs", async (t) => {
  const { sock } = await pair(t);
  t.ok(takeWrites(sock), 'a connected TCP socket: taken');
  t.equal(takeWrites(new PassThrough()), undefined, 'a stream that is not a socket (a jump host channel, a ProxyCommand): not taken');
  const connecting = net.connect(sock.remotePort!, '127.0.0.1');
  t.teardown(() => connecting.destroy());
  t.equal(takeWrites(connecting), undefined, 'a socket still connecting: not taken');
  const { sock: corked } = await pair(t);
  corked.cork();
  t.equal(takeWrites(corked), undefined, 'a socket with its Writable corked: not taken (what it holds would be overtaken)');
  corked.uncork();
});

t.test('writes go to libuv at once, in order, without the Writable; end() sends FIN after them', async (t) => {
  const { sock, peer } = await pair(t);
  takeWrites(sock);
  forbidWritable(t, sock);
  const calls = countWrites(sock);
  sock.write(Buffer.from('one '));
  sock.write(Buffer.from('two'));
  t.same(calls, [1, 1], 'each write handed to libuv as it is made');
  t.equal(sock.writableLength, 0, 'nothing waits in the Writable');
  sock.end();
  t.equal((await readAll(peer)).toString(), 'one two', 'every byte, in order, then the FIN');
});

t.test("hold(): this turn's writes leave together in the check phase, in one writev; end() sends them before its FIN", async (t) => {
  const { sock, peer } = await pair(t);
  const writes = takeWrites(sock)!;
  forbidWritable(t, sock);
  const calls = countWrites(sock);
  writes.hold();
  writes.hold(); // a second hold in the same turn adds nothing
  for (const word of ['a', 'b', 'c']) sock.write(Buffer.from(word));
  t.same(calls, [], 'held: nothing written yet');
  await new Promise((resolve) => setImmediate(resolve));
  t.same(calls, [3], 'one writev with the three');
  sock.write(Buffer.from('d'));
  t.same(calls, [3, 1], 'after the check phase, written at once again');
  writes.hold();
  sock.write(Buffer.from('e'));
  sock.end();
  t.equal((await readAll(peer)).toString(), 'abcde', 'what end() found held went before the FIN');
});

t.test("a peer that does not read: writes the kernel cannot take wait in libuv's queue, and none overtakes another", async (t) => {
  const { sock, peer } = await pair(t);
  const writes = takeWrites(sock)!;
  forbidWritable(t, sock);
  const sent: Buffer[] = [];
  let queued = 0;
  // 16 MiB, far past the loopback's socket buffers: some writes must wait, held ones and direct ones alike.
  for (let turn = 0; turn < 64; turn++) {
    if (turn % 2 === 0) writes.hold();
    for (let i = 0; i < 4; i++) {
      const chunk = randomBytes(64 * 1024);
      sent.push(chunk);
      sock.write(chunk);
    }
    queued = Math.max(queued, handleOf(sock).writeQueueSize);
    await new Promise((resolve) => setImmediate(resolve));
    queued = Math.max(queued, handleOf(sock).writeQueueSize);
  }
  t.ok(queued > 0, `libuv queued writes the kernel could not take at once (up to ${queued} bytes)`);
  sock.end();
  const got = await readAll(peer);
  t.equal(got.length, 16 * 1024 * 1024, 'every byte');
  t.equal(sha(got), sha(Buffer.concat(sent)), 'in the order written');
});

t.test("a write that fails destroys the socket with the write's errno error, as net.Socket does; nothing throws", async (t) => {
  const { sock, peer } = await pair(t);
  takeWrites(sock);
  sock.pause(); // the reset is found by a write, not by a read
  peer.resetAndDestroy();
  const failed = once(sock, 'error');
  await until(
    () => {
      if (!sock.destroyed) sock.write(Buffer.alloc(1024));
      return sock.destroyed;
    },
    5000,
    'a write to find the reset',
  );
  const [err] = (await deadline(failed, 5000, "the socket's error")) as [NodeJS.ErrnoException];
  t.equal(err.syscall, 'write', 'a write error');
  t.match(err.code, /^(EPIPE|ECONNRESET)$/, `the errno's code (${err.code})`);
  t.match(err.message, /^write (EPIPE|ECONNRESET)$/, "net.Socket's message");
});

t.test('a socket destroyed while writes are held: the check phase writes nothing and does not throw', async (t) => {
  const { sock, peer } = await pair(t);
  const writes = takeWrites(sock)!;
  const chunks: Buffer[] = [];
  peer.on('data', (c: Buffer) => chunks.push(c));
  peer.resume();
  writes.hold();
  sock.write(Buffer.from('never'));
  sock.destroy();
  await deadline(once(peer, 'close'), 5000, 'the peer closed');
  t.equal(Buffer.concat(chunks).length, 0, 'nothing of it sent');
});

t.test("an SSH session over TCP: ssh2's packets bypass the socket's Writable, and a forward's bytes go through whole", async (t) => {
  const echo = await startEchoFor(t);
  const { session } = await embeddedSession(t);
  const sock = (session as unknown as { sock: net.Socket }).sock;
  forbidWritable(t, sock);
  const channel = await session.openForward({ kind: 'tcp', host: '127.0.0.1', port: echo.port }, { address: '127.0.0.1', port: 0 }, 5000);
  if (!(channel instanceof LeanChannel)) throw new Error('openForward gives a LeanChannel with the pinned ssh2');
  const payload = randomBytes(3 * 1024 * 1024);
  const got: Buffer[] = [];
  let bytes = 0;
  const all = new Promise<void>((resolve) =>
    channel.receive((chunk) => {
      got.push(Buffer.from(chunk));
      bytes += chunk.length;
      if (bytes === payload.length) resolve();
      return true;
    }),
  );
  for (let at = 0; at < payload.length; at += 60_000) {
    session.coalesceWrites();
    if (!channel.write(payload.subarray(at, at + 60_000))) await new Promise((resolve) => channel.once('drain', resolve));
  }
  await deadline(all, 20_000, 'the echo of 3 MiB');
  t.equal(sha(Buffer.concat(got)), sha(payload), 'the echo, every byte in order');
  t.equal(sock.writableLength, 0, "nothing ever waited in the socket's Writable");
});
