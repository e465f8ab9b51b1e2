/**
 * LeanChannel: ssh2's channel messages without its Duplex stream. Against a recording stand-in of
 * ssh2's client (the window, packet size, queue, EOF and CLOSE as a Channel sends them), and end to
 * end over the embedded server: what the server sends before the channel is linked, its EOF and
 * its CLOSE included, reaches the client in order, and ssh2's own handlers drive it.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import type { Channel } from 'ssh2';
import t, { type Test } from 'tap';
import { link, type SshSession } from '../src/ssh/adapter.js';
import type { LocalSocket } from '../src/local-socket.js';
import { LeanChannel } from '../src/ssh/lean-channel.js';
import { HOST, connect, deadline, listenFor, until } from './fixtures/net.js';
import { embeddedSession } from './fixtures/tunnel.js';

const MAX_WINDOW = 2 * 1024 * 1024;

/** What ssh2's WINDOW_ADJUST handler does to a channel (lib/client.js), without patch 004's 'window' event. */
function windowAdjust(lean: LeanChannel, amount: number): void {
  lean.outgoing.window += amount;
  if (!lean._waitWindow) return;
  lean._waitWindow = false;
  lean._chunkcb();
}

/** A channel ssh2 has just opened, in a stand-in client that records what the channel sends. */
function opened(window = MAX_WINDOW, packetSize = 32 * 1024) {
  const sent: string[] = [];
  const data: Buffer[] = [];
  const table = new Map<number, unknown>();
  const client = {
    _chanMgr: { get: (id: number) => table.get(id), update: (id: number, c: unknown) => table.set(id, c) },
    _protocol: {
      channelData: (id: number, d: Buffer) => (sent.push(`data ${id} ${d.length}`), data.push(d)),
      channelEOF: (id: number) => sent.push(`eof ${id}`),
      channelClose: (id: number) => sent.push(`close ${id}`),
      channelWindowAdjust: (id: number, n: number) => sent.push(`adjust ${id} ${n}`),
    },
  };
  const channel = {
    type: 'direct-tcpip',
    incoming: { id: 3, window: MAX_WINDOW, packetSize: 32 * 1024, state: 'open' },
    outgoing: { id: 7, window, packetSize, state: 'open' },
    _client: client,
  };
  table.set(3, channel);
  const lean = LeanChannel.replacing(channel as unknown as Channel);
  if (!lean) throw new Error('not replaced');
  return { lean, sent, data, table };
}

/** A client stand-in for link() that records what lendReads() is given, and a session that only coalesces. */
function lendingSocket(): { socket: LocalSocket; borrowers: unknown[] } {
  const borrowers: unknown[] = [];
  const socket = { on: () => socket, off: () => socket, resume: () => socket, pause: () => socket, lendReads: (b: unknown) => borrowers.push(b) };
  return { socket: socket as unknown as LocalSocket, borrowers };
}
const SESSION = { coalesceWrites: () => {} } as unknown as SshSession;

t.test('LeanChannel – takes the Channel’s place in ssh2’s table; not when ssh2 is not as it knows it', async (t) => {
  const { lean, table } = opened();
  t.equal(table.get(3), lean, 'the table holds the lean channel');
  t.equal(lean.type, 'direct-tcpip');
  const noProtocol = { _chanMgr: { get: () => undefined, update: () => {} }, _protocol: {} };
  t.equal(LeanChannel.drives(noProtocol), false);
  t.equal(LeanChannel.replacing({ type: 'direct-tcpip', incoming: { id: 1 }, outgoing: { window: 1 }, _client: noProtocol } as unknown as Channel), undefined, 'no protocol');
  const other = opened();
  other.table.set(3, {});
  t.equal(LeanChannel.replacing({ type: 'direct-tcpip', incoming: { id: 3 }, outgoing: { window: 1 }, _client: (other.lean as unknown as { _client: unknown })._client } as unknown as Channel), undefined, 'the table holds another channel under its id');
});

t.test('LeanChannel – a write within the window is one packet; beyond it, packets up to the window, the rest queued until the window opens, then drain', async (t) => {
  const { lean, sent, data } = opened(50_000, 32 * 1024);
  const small = randomBytes(100);
  t.equal(lean.write(small), true);
  t.same(sent, ['data 7 100']);
  t.equal(data[0], small, 'the buffer itself, not a copy');
  t.equal(lean.write(Buffer.alloc(0)), true);
  t.equal(sent.length, 1, 'no empty packet');
  let drains = 0;
  lean.on('drain', () => drains++);
  const big = randomBytes(70_000);
  t.equal(lean.write(big), false, 'wait');
  t.same(sent.slice(1), ['data 7 32768', 'data 7 17132'], 'a full packet, then what the window allows');
  t.equal(lean.outgoing.window, 0);
  t.equal(lean.write(Buffer.from('tail')), false, 'behind the queue');
  t.equal(sent.length, 3, 'nothing sent ahead of the queue');
  t.equal(lean._waitWindow, true, "ssh2 is asked to call back at the server's WINDOW_ADJUST");
  windowAdjust(lean, 10_000);
  t.same(sent.slice(3), ['data 7 10000'], 'what the window allows');
  t.equal(drains, 0);
  windowAdjust(lean, 1_000_000);
  t.same(sent.slice(4), ['data 7 10100', 'data 7 4']);
  t.equal(drains, 1, 'drain once the queue is sent');
  t.ok(Buffer.concat(data.slice(1)).equals(Buffer.concat([big, Buffer.from('tail')])), 'every byte, in order');
});

t.test("LeanChannel – a lent view (a client's read, read into again once write() returns) is sent as it is, or copied when it must wait", async (t) => {
  const { lean, data } = opened(10);
  const read = new Uint8Array(64);
  read.fill(1);
  t.equal(lean.write(read.subarray(0, 6), true), true, 'within the window: sent now');
  t.equal(data[0]!.buffer, read.buffer, 'the view itself: ssh2 copies it into its packet');
  read.fill(2);
  t.equal(lean.write(read.subarray(0, 20), true), false, 'beyond the window: wait');
  read.fill(3); // the next read lands where the view was
  windowAdjust(lean, 100);
  const after = Buffer.concat(data.slice(1));
  t.same([...after], [...Array(20).fill(2)], 'what was queued went out as it was written, not as the buffer reads now');
});

t.test("link – a lean channel borrows its client's small reads (ssh2 copies them into their packets), and gives them back at unlink", async (t) => {
  const { lean, data } = opened();
  const { socket, borrowers } = lendingSocket();
  const l = link(socket, lean, SESSION);
  t.equal(borrowers.length, 1);
  const borrower = borrowers[0] as (view: Uint8Array) => void;
  t.type(borrower, 'function', 'lent to');
  borrower(new Uint8Array([1, 2, 3]));
  t.same([...data[0]!], [1, 2, 3], 'a lent read goes out as its packet');
  l.unlink();
  t.same(borrowers.slice(1), [undefined], 'given back');
});

t.test('link – where ssh2 takes no plain views (patch 008 missing), nothing is lent: reads come as data, copied', async (t) => {
  const leanModule = await import('../src/ssh/lean-channel.js');
  const adapter = await t.mockImport<typeof import('../src/ssh/adapter.js')>('../src/ssh/adapter.js', {
    '../src/ssh/lean-channel.js': { ...leanModule, takesViews: false },
  });
  const { lean } = opened();
  const { socket, borrowers } = lendingSocket();
  const l = adapter.link(socket, lean, SESSION);
  l.unlink();
  t.same(borrowers, [undefined], 'never lent to (only given back at unlink)');
});

t.test('LeanChannel – end() sends EOF after what is queued, then finish; CLOSE once; a write after end() throws', async (t) => {
  const { lean, sent } = opened(10);
  lean.write(Buffer.alloc(25));
  let finished = 0;
  lean.on('finish', () => finished++);
  lean.end();
  t.same(sent, ['data 7 10'], 'no EOF ahead of the data');
  t.equal(lean.writableFinished, false);
  windowAdjust(lean, 90);
  t.same(sent, ['data 7 10', 'data 7 15', 'eof 7']);
  t.equal(finished, 1);
  t.equal(lean.writableFinished, true);
  lean.end();
  t.equal(finished, 1, 'once');
  t.throws(() => lean.write(Buffer.from('x')), /write after end/);
  lean.close();
  lean.close();
  t.same(sent.slice(3), ['close 7'], 'CLOSE once');
  t.equal(lean.outgoing.state, 'closing');
});

t.test('LeanChannel – what comes before receive() is kept, the window held; then handed over in order, with the EOF after it', async (t) => {
  const { lean, sent } = opened();
  t.equal(lean.push(Buffer.from('one ')), false, 'held back: ssh2 does not open the window');
  lean.push(Buffer.from('two'));
  lean.incoming.window = MAX_WINDOW / 2 - 10; // what the server used meanwhile
  lean._waitChanDrain = true; // as ssh2 sets it on push()'s false
  lean.push(null);
  t.equal(lean.readable, true, 'no end yet: ssh2 makes close wait for it');
  const got: string[] = [];
  lean.on('end', () => got.push('end'));
  lean.receive((chunk) => (got.push(chunk.toString()), true));
  t.same(got, ['one ', 'two', 'end']);
  t.equal(lean.readable, false);
  t.same(sent, [], 'no window for a channel that ended');
});

t.test('LeanChannel – a full receiver holds the window until readMore(); resume() drops what comes and keeps the window open', async (t) => {
  const { lean, sent } = opened();
  let room = false;
  lean.receive(() => room);
  t.equal(lean.push(Buffer.alloc(10)), false);
  lean._waitChanDrain = true;
  lean.incoming.window = 100;
  room = true;
  lean.readMore();
  t.same(sent, [`adjust 7 ${MAX_WINDOW - 100}`], "ssh2's rule: back to its maximum");
  lean.readMore();
  t.equal(sent.length, 1, 'once');
  lean.resume();
  t.equal(lean.push(Buffer.alloc(10)), true, 'dropped, window open');
  let ended = false;
  lean.on('end', () => (ended = true));
  lean.push(null);
  t.ok(ended, 'end at once');
});

t.test('LeanChannel – after end(), no drain; data after the server’s EOF is dropped', async (t) => {
  const { lean, sent } = opened(10);
  const events: string[] = [];
  lean.on('drain', () => events.push('drain'));
  lean.on('finish', () => events.push('finish'));
  t.equal(lean.write(Buffer.alloc(20)), false);
  lean.end();
  windowAdjust(lean, 100);
  t.same(events, ['finish'], 'finish, no drain: nothing more may be written');
  t.same(sent, ['data 7 10', 'data 7 10', 'eof 7']);
  const got: string[] = [];
  lean.receive((c) => (got.push(c.toString()), true));
  lean.push(Buffer.from('a'));
  lean.push(null);
  t.equal(lean.push(Buffer.from('after EOF')), true, 'taken, its window kept open');
  t.same(got, ['a']);
});

/** A target that greets its client and closes at once (a server that speaks first). */
function greeter(t: Test, greeting: Buffer): Promise<number> {
  return listenFor(t, net.createServer((s) => s.end(greeting)));
}

t.test('LeanChannel over ssh2 – the server’s data and EOF before the link reach the client in order; our EOF, then its CLOSE closes the channel', async (t) => {
  const { session } = await embeddedSession(t);
  const greeting = randomBytes(100_000);
  const replacing = LeanChannel.replacing;
  let replaced = 0;
  LeanChannel.replacing = (c) => (replaced++, replacing(c));
  t.teardown(() => void (LeanChannel.replacing = replacing));
  const channel = await session.openForward({ kind: 'tcp', host: HOST, port: await greeter(t, greeting) }, { address: HOST, port: 0 }, 5000);
  t.ok(channel instanceof LeanChannel, 'openForward gives a LeanChannel with the pinned ssh2');
  t.equal(replaced, 0, 'made lean by ssh2 (patch 007), no Channel made first');
  const lean = channel as LeanChannel;
  await until(() => lean.incoming.state === 'eof', 5000, "the server's EOF");

  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const outside = await connect(await listenFor(t, server));
  const [inside] = await accepted;
  t.teardown(() => (outside.destroy(), inside.destroy()));
  const chunks: Buffer[] = [];
  outside.on('data', (c: Buffer) => chunks.push(c));
  lean.on('end', () => inside.end());
  inside.on('end', () => lean.end());
  const closed = new Promise((r) => lean.once('close', r));
  link(inside, lean, session);
  await deadline(once(outside, 'end'), 5000, "the client's EOF");
  t.ok(Buffer.concat(chunks).equals(greeting), 'every byte before the EOF');
  outside.end();
  await deadline(closed, 5000, "the server's CLOSE");
  t.equal(session.channels, 0, 'counted closed');
});

t.test("LeanChannel – ssh2's CLOSE handler before the link: the close waits until the data and the end are handed over", async (t) => {
  const { onCHANNEL_CLOSE } = createRequire(import.meta.url)('ssh2/lib/utils.js') as { onCHANNEL_CLOSE: (client: unknown, id: number, channel: unknown) => void };
  const { lean, sent, table } = opened();
  const client = (lean as unknown as { _client: { _chanMgr: object } })._client;
  Object.assign(client._chanMgr, { remove: (id: number) => table.delete(id) });
  lean.push(Buffer.from('last words'));
  const events: string[] = [];
  lean.on('close', () => events.push('close'));
  onCHANNEL_CLOSE(client, 3, lean);
  t.same(events, [], 'no close before the end');
  t.same(sent, ['close 7'], 'our CLOSE in answer');
  t.equal(table.has(3), false, 'out of the table');
  lean.on('end', () => events.push('end'));
  lean.receive((c) => (events.push(c.toString()), true));
  t.same(events, ['last words', 'close', 'end'], "data, then ssh2's close (its once('end') listener came first), then the user's end");
});

t.test('LeanChannel over ssh2 – bytes both ways through an echo, well past the window', async (t) => {
  const { session } = await embeddedSession(t);
  const echo = net.createServer((s) => s.pipe(s));
  const port = await listenFor(t, echo);
  const lean = (await session.openForward({ kind: 'tcp', host: HOST, port }, { address: HOST, port: 0 }, 5000)) as LeanChannel;
  const data = randomBytes(5 * 1024 * 1024);
  const got: Buffer[] = [];
  let n = 0;
  const all = new Promise<void>((resolve) => lean.receive((c) => (got.push(c), (n += c.length) === data.length && resolve(), true)));
  for (let p = 0; p < data.length; p += 256 * 1024) {
    if (!lean.write(data.subarray(p, p + 256 * 1024))) await deadline(new Promise((r) => lean.once('drain', r)), 5000, 'drain');
  }
  await deadline(all, 20_000, 'the echo');
  t.ok(Buffer.concat(got).equals(data), '5 MiB back intact');
  lean.end();
  lean.close();
  await deadline(new Promise((r) => lean.once('close', r)), 5000, 'close');
});

t.test("LeanChannel over ssh2 – ssh2's own handlers for what a server may send on any channel: extended data, exit status, request replies", async (t) => {
  const { session, client } = await embeddedSession(t);
  const echo = net.createServer((s) => s.pipe(s));
  const port = await listenFor(t, echo);
  const lean = (await session.openForward({ kind: 'tcp', host: HOST, port }, { address: HOST, port: 0 }, 5000)) as LeanChannel;
  const got: Buffer[] = [];
  lean.receive((c) => (got.push(c), true));
  const protocol = (client as unknown as { _protocol: { _handlers: Record<string, (...args: unknown[]) => void> } })._protocol;
  const on = protocol._handlers;
  const id = lean.incoming.id;
  const before = lean.incoming.window;
  on.CHANNEL_EXTENDED_DATA!(protocol, id, Buffer.alloc(1000), 1);
  t.equal(lean.incoming.window, before - 1000, 'extended data taken (and dropped): no window adjust above the threshold');
  on.CHANNEL_EXTENDED_DATA!(protocol, id, Buffer.alloc(before - 1000), 1);
  t.equal(lean.incoming.window, before, "the whole window's worth: it opens again, the channel's data is not stalled");
  on.CHANNEL_REQUEST!(protocol, id, 'exit-status', true, 0);
  on.CHANNEL_REQUEST!(protocol, id, 'exit-signal', false, { signal: 'TERM', coreDumped: false, errorMessage: '' });
  on.CHANNEL_SUCCESS!(protocol, id);
  on.CHANNEL_FAILURE!(protocol, id);
  t.equal(lean.write(Buffer.from('still here')), true);
  await until(() => Buffer.concat(got).toString() === 'still here', 5000, 'the echo after all of it');
  lean.end();
  lean.close();
  await deadline(new Promise((r) => lean.once('close', r)), 5000, 'close');
  t.equal(session.channels, 0);
});
