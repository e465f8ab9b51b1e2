/**
 * TcpClient (src/forward/tcp-client.ts): an accepted TCP connection on libuv's handle, as -L and -D
 * take their clients, behaving as net.Socket does where holding and pumping rely on it: reads
 * only while resumed, every byte in order, the peer's FIN as 'end', write() saying when to wait
 * and 'drain' when to go on, our FIN after what was written, a reset, a peer's reset as an
 * errno 'error', 'close' last. It drives Node 20's internal handles: "Node's handles are as
 * expected" fails first when they change.
 */
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import net from 'node:net';
import t, { type Test } from 'tap';
import { offerHandles, TCP_CLIENT } from '../src/forward/accept-handles.js';
import { TcpClient, tcpClientsSupported, type TcpHandle } from '../src/forward/tcp-client.js';
import { streamWrap } from '../src/stream-wrap.js';
import type { SocketEvent } from '../src/local-socket.js';
import { spawnSync } from 'node:child_process';
import { CLI_MAIN, untracked } from './fixtures/bin.js';
import diagnostics from 'node:diagnostics_channel';
import { connect, deadline, listenFor, startEchoFor, until } from './fixtures/net.js';
import { connect4, echoes, socks5 } from './fixtures/socks-client.js';
import { inputFor, makeKeys, startServer, startSshkeep } from './fixtures/tunnel.js';

const HIGH_WATER = 64 * 1024;

/** node's events.once() takes a TcpClient as it takes an EventEmitter: it needs on, once and removeListener. */
const eventOf = (client: TcpClient, event: SocketEvent) => once(client as unknown as EventEmitter, event);

/** A listener offering handles, a client connected to it, and the TcpClient made of the accepted handle. */
async function acceptOne(t: Test): Promise<{ peer: net.Socket; client: TcpClient; handle: TcpHandle }> {
  const server = net.createServer(() => t.fail('a net.Socket made while handles are taken'));
  offerHandles(server);
  const handles: unknown[] = [];
  server.on(TCP_CLIENT, (h: unknown) => handles.push(h));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const peer = await connect((server.address() as net.AddressInfo).port);
  t.teardown(() => peer.destroy());
  await until(() => handles.length === 1, 5000, 'the accepted handle');
  const handle = handles[0];
  if (!tcpClientsSupported(handle)) throw new Error("Node's handles are not as src/forward/tcp-client.ts knows them");
  const client = new TcpClient(handle, HIGH_WATER);
  t.teardown(() => client.destroy());
  return { peer, client, handle };
}

const turns = async (n = 3) => {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
};

t.test("Node's handles are as expected (Node 20): a listener offering them hands its connections over as handles", async (t) => {
  const { client, peer } = await acceptOne(t);
  t.equal(client.remoteAddress, '127.0.0.1', 'the peer address');
  t.equal(client.remotePort, peer.localPort, 'the peer port');
  t.equal(client.remoteFamily, 'IPv4', 'the family (a reset is possible)');
});

t.test('reads only while resumed, copied out of the shared buffer, every byte in order; the peer FIN is its end', async (t) => {
  const { client, peer } = await acceptOne(t);
  const chunks: Buffer[] = [];
  client.on('data', (c: Buffer) => chunks.push(c));
  peer.write('hello');
  await turns();
  t.equal(chunks.length, 0, 'accepted paused: nothing read');
  t.ok(client.isPaused(), 'paused');
  client.resume();
  await until(() => chunks.length === 1, 5000, 'the first read');
  t.equal(chunks[0]!.buffer.byteLength, Buffer.poolSize, 'a small read is copied into the pool, not handed on as the read buffer');
  client.pause();
  peer.end(' again');
  await turns();
  t.equal(chunks.length, 1, 'pause() stops the reads');
  const ended = eventOf(client, 'end');
  client.resume();
  await deadline(ended, 5000, 'the end');
  t.equal(Buffer.concat(chunks).toString(), 'hello again', 'every byte, then the end');
  t.equal(client.bytesRead, 11, 'bytesRead');
  t.notOk(client.destroyed, 'half-open: still open for writing after the peer FIN');
});

t.test('lendReads: a small read goes to the borrower as a view, not a copy and not a Buffer; a bulk one still comes as data; undefined ends it', async (t) => {
  const { client, peer } = await acceptOne(t);
  const lent: Uint8Array[] = [];
  const copies: Buffer[] = [];
  let seen = '';
  client.lendReads((view) => {
    lent.push(view);
    seen += Buffer.from(view).toString(); // a borrower copies what it keeps
  });
  client.on('data', (c: Buffer) => copies.push(c));
  client.resume();
  peer.write('hello');
  await until(() => lent.length === 1, 5000, 'the lent read');
  t.equal(seen, 'hello');
  t.notOk(Buffer.isBuffer(lent[0]), 'a plain Uint8Array (ssh2 patch 008 takes it)');
  t.equal(lent[0]!.buffer.byteLength, 64 * 1024, 'a view of the read buffer itself');
  const bulk = randomBytes(4 << 20);
  let bytes = 0;
  const hash = createHash('sha256');
  const count = (c: Uint8Array) => (hash.update(c), (bytes += c.length));
  client.lendReads((view) => count(view));
  client.on('data', count);
  peer.write(bulk);
  await until(() => bytes === bulk.length, 10_000, 'the bulk bytes');
  t.ok(copies.length > 0, 'reads that filled their buffer come as data, handed on whole');
  t.equal(hash.digest('hex'), createHash('sha256').update(bulk).digest('hex'), 'every byte in order, lent or handed on');
  client.off('data', count);
  client.lendReads(undefined);
  const before = copies.length;
  peer.write('again');
  await until(() => copies.length === before + 1, 5000, 'a read as data');
  t.equal(copies.at(-1)!.toString(), 'again', 'no borrower: every read as data again');
});

t.test('a pause and a resume in one tick leave the reads running: no stop and restart of libuv\'s reads (two epoll_ctl calls)', async (t) => {
  const { client, peer, handle } = await acceptOne(t);
  const calls: string[] = [];
  for (const m of ['readStart', 'readStop'] as const) {
    const real = handle[m].bind(handle);
    handle[m] = () => (calls.push(m), real());
  }
  const chunks: Buffer[] = [];
  client.on('data', (c: Buffer) => chunks.push(c));
  client.resume();
  client.pause(); // the hold's release
  client.resume(); // the pump's link, in the same tick
  peer.write('hello');
  await until(() => chunks.length === 1, 5000, 'the read');
  t.same(calls, ['readStart'], 'started once, never stopped');
  client.pause();
  await turns(1);
  t.same(calls, ['readStart', 'readStop'], 'a pause that lasts past its tick stops the reads');
});

t.test('paused from its own data handler with more in the kernel: nothing more is handed on until resumed, then all of it in order', async (t) => {
  const { client, peer } = await acceptOne(t);
  const sent = randomBytes(1 << 20);
  let got = 0;
  let whilePaused = 0;
  const hash = createHash('sha256');
  client.on('data', (c: Buffer) => {
    if (client.isPaused()) whilePaused++;
    hash.update(c);
    got += c.length;
    client.pause(); // after every read, as a pump whose channel is full
    setImmediate(() => client.resume());
  });
  client.resume();
  peer.end(sent);
  await until(() => got === sent.length, 10_000, 'every byte');
  t.equal(whilePaused, 0, 'no read handed on while paused');
  t.equal(hash.digest('hex'), createHash('sha256').update(sent).digest('hex'), 'in order');
});

t.test('4 MiB up, and down until the peer and kernel buffers are full and 4 MiB more: write() says wait, drain says go on, every byte in order; then a clean close both ways', async (t) => {
  const { client, peer } = await acceptOne(t);
  const up = randomBytes(4 << 20);
  // Up: the peer sends 4 MiB; the client reads it all (its own buffers for full reads).
  const got = createHash('sha256');
  let gotBytes = 0;
  client.on('data', (c: Buffer) => {
    got.update(c);
    gotBytes += c.length;
  });
  client.resume();
  peer.end(up);
  await until(() => gotBytes === up.length, 10_000, 'the upload');
  t.equal(got.digest('hex'), createHash('sha256').update(up).digest('hex'), 'upload: every byte, in order');
  // Down: the peer is paused until the client is told to wait.
  peer.pause();
  const back = createHash('sha256');
  let backBytes = 0;
  peer.on('data', (c: Buffer) => {
    back.update(c);
    backBytes += c.length;
  });
  let waits = 0;
  let drains = 0;
  client.on('drain', () => drains++);
  // The kernel takes what a paused peer does not read, as much as its autotuned buffers hold
  // (tcp_rmem's maximum: 32 MiB on some machines): written until write() says wait, then 4 MiB more.
  const sent = createHash('sha256');
  let sentBytes = 0;
  let afterWait = 0;
  while (waits === 0 ? sentBytes < 256 << 20 : afterWait < 4 << 20) {
    const chunk = randomBytes(256 * 1024);
    sent.update(chunk);
    sentBytes += chunk.length;
    if (waits > 0) afterWait += chunk.length;
    if (!client.write(chunk)) {
      waits++;
      if (waits === 1) peer.resume();
      await deadline(eventOf(client, 'drain'), 10_000, 'drain');
    }
  }
  t.ok(waits > 0, `write() said wait (${waits} times, after ${sentBytes - afterWait} bytes)`);
  t.equal(drains, waits, "a 'drain' for each wait");
  const closed = eventOf(client, 'close');
  const finished = eventOf(client, 'finish');
  client.end();
  t.ok(client.writableEnded, 'writableEnded at once');
  await deadline(finished, 10_000, "'finish' once our FIN is out");
  t.ok(client.writableFinished, 'writableFinished');
  await deadline(once(peer, 'end'), 10_000, 'the peer sees our FIN');
  t.equal(backBytes, sentBytes, 'download: every byte before the FIN');
  t.equal(back.digest('hex'), sent.digest('hex'), 'download: in order');
  t.same(await deadline(closed, 5000, 'close'), [false], "both ways ended: 'close', no error");
  t.equal(client.bytesWritten, sentBytes, 'bytesWritten');
});

t.test('end(cb) before the peer FIN: the callback once FIN is out; open for reading until the peer ends', async (t) => {
  const { client, peer } = await acceptOne(t);
  let finished = false;
  client.end(() => (finished = true));
  await deadline(once(peer, 'end'), 5000, 'the peer sees FIN');
  await until(() => finished, 5000, 'the callback');
  t.notOk(client.destroyed, 'not closed: the peer may still send');
  const data: Buffer[] = [];
  client.on('data', (c: Buffer) => data.push(c));
  client.resume();
  const closed = eventOf(client, 'close');
  peer.end('late');
  await deadline(closed, 5000, 'close once the peer ends too');
  t.equal(Buffer.concat(data).toString(), 'late', 'what the peer sent after our FIN');
});

t.test('resetAndDestroy: the peer sees a reset, not an end', async (t) => {
  const { client, peer } = await acceptOne(t);
  peer.resume();
  const peerError = once(peer, 'error');
  const closed = eventOf(client, 'close');
  client.resetAndDestroy();
  t.ok(client.destroyed, 'destroyed at once');
  t.notOk(client.write(Buffer.from('more')), 'a write after it is refused');
  const [err] = (await deadline(peerError, 5000, 'the peer error')) as [NodeJS.ErrnoException];
  t.equal(err.code, 'ECONNRESET', 'the peer sees ECONNRESET');
  await deadline(closed, 5000, "'close'");
});

t.test('end() while writes wait for a peer that does not read: FIN waits for them, so a reset is still possible (net.Socket does the same)', async (t) => {
  const { client, peer, handle } = await acceptOne(t);
  peer.pause();
  const reset = handle.reset.bind(handle);
  const results: number[] = [];
  handle.reset = (cb) => {
    const r = reset(cb);
    results.push(r);
    return r;
  };
  const chunk = randomBytes(256 * 1024);
  let writes = 0;
  while (client.write(chunk) && ++writes < 256);
  t.ok(writes < 256, 'write() said wait: the kernel buffers are full and writes are pending');
  client.end();
  t.ok(client.writableEnded && !client.writableFinished, 'ended, not finished');
  const closed = eventOf(client, 'close');
  client.resetAndDestroy();
  t.same(results, [0], 'the reset is taken (libuv refuses it with EINVAL once FIN is asked)');
  await deadline(closed, 5000, "'close'");
});

t.test('resetAndDestroy once FIN is asked (nothing was pending): the complete stream is closed, not left open by a refused reset', async (t) => {
  const { client, peer } = await acceptOne(t);
  peer.resume();
  client.write(Buffer.from('whole'));
  client.end();
  const closed = eventOf(client, 'close');
  client.resetAndDestroy();
  await deadline(closed, 5000, "'close' (a refused reset would leave the handle open, and no 'close')");
  await deadline(once(peer, 'end'), 5000, 'the peer sees a clean end');
});

t.test('end(cb) is never left waiting: called once FIN is out, after it, or when the socket closes first', async (t) => {
  const { client, peer } = await acceptOne(t);
  peer.resume();
  const calls: string[] = [];
  client.end(() => calls.push('first'));
  await deadline(eventOf(client, 'finish'), 5000, "'finish'");
  client.end(() => calls.push('after finish')); // the pump's end-then-destroy on a CLOSE after its FIN went out
  await until(() => calls.length === 2, 5000, 'both callbacks');
  t.same(calls, ['first', 'after finish'], 'in order');
  const other = await acceptOne(t);
  other.peer.pause(); // kernel buffers fill: FIN waits behind the writes
  const chunk = randomBytes(256 * 1024);
  while (other.client.write(chunk));
  let called = false;
  other.client.end(() => (called = true));
  other.client.destroy();
  await until(() => called, 5000, 'the callback of an end the close overtook');
  t.pass('called when the socket closed first');
});

t.test("write after end: 'error' (ERR_STREAM_WRITE_AFTER_END), as net.Socket, for the pump to answer with a reset", async (t) => {
  const { client, peer } = await acceptOne(t);
  peer.resume();
  const errors: NodeJS.ErrnoException[] = [];
  client.on('error', (e: NodeJS.ErrnoException) => errors.push(e));
  client.end();
  t.notOk(client.write(Buffer.from('late')), 'refused');
  await until(() => errors.length === 1, 5000, 'the error');
  t.equal(errors[0]!.code, 'ERR_STREAM_WRITE_AFTER_END');
  t.ok(client.destroyed, 'closed');
});

t.test('-L end to end: a target that replies, ends and closes while its client goes on writing; the client is closed and no longer counted', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const target = net.createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => {
      s.end('bye');
      s.once('finish', () => s.destroy());
    });
  });
  const port = await listenFor(t, target);
  const { app, bound } = await startSshkeep(t, inputFor(server, keys, [`0:127.0.0.1:${port}`]));
  const c = net.connect({ port: bound[0]!.port, host: '127.0.0.1', allowHalfOpen: true });
  await once(c, 'connect');
  let got = '';
  let closed = false;
  c.on('data', (d: Buffer) => (got += d.toString()));
  c.on('error', () => {});
  c.on('close', () => (closed = true));
  c.write('hi');
  const writer = setInterval(() => !c.destroyed && c.write('more'), 20);
  t.teardown(() => {
    clearInterval(writer);
    c.destroy();
  });
  await until(() => closed, 5000, 'the client to be closed (before the fix it stayed open, paused, for good)');
  t.equal(got, 'bye', 'the reply, whole');
  await until(() => app.clients() === 0, 5000, 'no client counted');
  t.pass('closed and uncounted');
});

t.test('-D over TCP takes its clients as TcpClients too: the SOCKS handshake, then the stream, with no net.Socket made', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const { bound } = await startSshkeep(t, inputFor(server, keys, [], { dynamicForwards: ['127.0.0.1:0'] }));
  const port = bound[0]!.port;
  let sockets = 0;
  const onAccept = (m: unknown) => void ((m as { socket: net.Socket }).socket.localPort === port && sockets++);
  diagnostics.subscribe('net.server.socket', onAccept);
  t.teardown(() => diagnostics.unsubscribe('net.server.socket', onAccept));
  const { raw, reply } = await socks5(port, connect4('127.0.0.1', echo.port));
  t.teardown(() => raw.sock.destroy());
  t.equal(reply[1], 0, 'SOCKS5 succeeded');
  t.equal(await echoes(raw, 'through -D'), 'through -D', 'the stream');
  t.equal(sockets, 0, 'no net.Socket made of the -D client');
});

t.test('pending deprecation turned on by the environment: no DEP0111 warning, and sshkeep does not stop on it under --throw-deprecation', async (t) => {
  const env = { ...process.env, NODE_PENDING_DEPRECATION: '1' };
  const r = spawnSync(...untracked(process.execPath, ['--throw-deprecation', CLI_MAIN, '--version'], env), { env, encoding: 'utf8', timeout: 20_000 });
  t.equal(r.status, 0, `exit 0 (stderr: ${r.stderr.trim()})`);
  t.notMatch(r.stderr, /DEP0111|process\.binding/, 'nothing said about process.binding');
});

t.test("a reset libuv refuses all the same ends in 'close': the client is not counted for ever", async (t) => {
  // A stand-in handle whose reset fails, as Node's does when libuv refuses it (it then marks the handle closing, and close() does nothing).
  let closes = 0;
  const handle = {
    onread: () => undefined,
    readStart: () => 0,
    readStop: () => 0,
    useUserBuffer: () => {},
    writeBuffer: () => 0,
    shutdown: () => 0,
    setNoDelay: () => 0,
    getpeername: (out: { address?: string; family?: string; port?: number }) => (Object.assign(out, { address: '127.0.0.1', family: 'IPv4', port: 1 }), 0),
    reset: () => -22,
    close: () => void closes++,
  } as TcpHandle;
  const client = new TcpClient(handle, HIGH_WATER);
  const closed = eventOf(client, 'close');
  client.resetAndDestroy();
  await deadline(closed, 5000, "'close'");
  t.ok(client.destroyed, 'destroyed');
  t.equal(closes, 0, 'no close() asked of a handle Node already marked closing');
});

t.test("a peer's reset: an errno 'error' then 'close'; with no listener for errors, only 'close' (the daemon stays up)", async (t) => {
  for (const listening of [true, false]) {
    const { client, peer } = await acceptOne(t);
    const errors: NodeJS.ErrnoException[] = [];
    if (listening) client.on('error', (e: NodeJS.ErrnoException) => errors.push(e));
    const closed = new Promise<[boolean]>((resolve) => client.once('close', (hadError: boolean) => resolve([hadError])));
    client.resume();
    peer.resetAndDestroy();
    const [hadError] = await deadline(closed, 5000, "'close'");
    t.ok(hadError, `'close' says it had an error (${listening ? 'listened for' : 'no listener'})`);
    if (listening) t.match(errors, [{ code: 'ECONNRESET', syscall: 'read' }], "one 'error' before it, ECONNRESET on read");
  }
});

t.test("a write the kernel refuses (the peer reset): 'error' comes after write() returns, never within it", async (t) => {
  const { client, peer } = await acceptOne(t);
  peer.resetAndDestroy();
  await deadline(once(peer, 'close'), 5000, 'the peer closes');
  let writing = false;
  const errors: { code?: string; inWrite: boolean }[] = [];
  client.on('error', (e: NodeJS.ErrnoException) => errors.push({ code: e.code, inWrite: writing }));
  writing = true;
  const ok = client.write(Buffer.from('x'));
  writing = false;
  t.notOk(ok, 'write() says no');
  await until(() => errors.length > 0, 5000, "the write's error");
  t.match(errors, [{ code: /^(ECONNRESET|EPIPE)$/, inWrite: false }], "one 'error', after write() returned");
  t.ok(client.destroyed, 'closed');
});

t.test('destroy: the peer sees the connection end; a second destroy and a pause or end after it do nothing', async (t) => {
  const { client, peer } = await acceptOne(t);
  peer.resume();
  const closed = eventOf(client, 'close');
  client.destroy();
  client.destroy();
  client.pause();
  client.end();
  await deadline(closed, 5000, "'close'");
  await deadline(once(peer, 'end'), 5000, 'the peer sees the end');
  t.pass('closed once');
});

t.test('without a listener for handles, or with handles not as expected, a listener offering them makes net.Sockets as before', async (t) => {
  const tcpClient = { TcpClient, tcpClientsSupported: () => false };
  const mocked = await t.mockImport<typeof import('../src/forward/accept-handles.js')>('../src/forward/accept-handles.js', { '../src/forward/tcp-client.js': tcpClient });
  for (const [what, offer, handles] of [
    ['no listener for handles', offerHandles, false],
    ['handles not as expected', mocked.offerHandles, true],
  ] as const) {
    const sockets: net.Socket[] = [];
    const server = net.createServer((s) => sockets.push(s));
    offer(server);
    if (handles) server.on(TCP_CLIENT, () => t.fail('a handle handed over'));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const peer = await connect((server.address() as net.AddressInfo).port);
    await until(() => sockets.length === 1, 5000, 'the net.Socket');
    t.ok(sockets[0] instanceof net.Socket, `${what}: a net.Socket`);
    peer.destroy();
    sockets[0]!.destroy();
    server.close();
  }
});

t.test("a write request the kernel's write took whole serves the next write, of any client; one left to finish later is not used again", async (t) => {
  const wrap = streamWrap!;
  const Original = wrap.WriteWrap;
  let made = 0;
  wrap.WriteWrap = new Proxy(Original, {
    construct(target, args) {
      made++;
      return Reflect.construct(target, args) as object;
    },
  });
  t.teardown(() => {
    wrap.WriteWrap = Original;
  });
  const a = await acceptOne(t);
  const b = await acceptOne(t);
  const small = Buffer.from('small');
  a.client.write(small);
  const first = made;
  for (let i = 0; i < 10; i++) (i % 2 ? a : b).client.write(small);
  t.equal(made, first, 'ten writes done at once, by two clients: no request made for them');
  // A peer that does not read: the writes are left to finish later, each keeping its request.
  a.peer.pause();
  const big = randomBytes(256 * 1024);
  let sent = 0;
  for (;;) {
    const goOn = a.client.write(big);
    sent += big.length;
    if (!goOn) break;
    if (sent > 256 << 20) return t.fail('write() never said wait');
  }
  const afterFull = made;
  b.client.write(small);
  t.equal(made, afterFull + 1, "the next write takes a new request, not one of the writes left for later");
  b.client.write(small);
  t.equal(made, afterFull + 1, 'and that one serves again');
  let got = 0;
  a.peer.on('data', (c: Buffer) => (got += c.length));
  a.peer.resume();
  await until(() => got === sent + small.length * 6, 20_000, 'every byte at the peer that did not read');
  t.pass('what was written later arrived whole');
});
