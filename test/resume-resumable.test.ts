/**
 * The resumable stream alone: a real client socket, a fake channel to the agent that records the
 * frames sshkeep sends and plays the agent's. The cases the end-to-end tests cannot steer.
 */
import net from 'node:net';
import { once } from 'node:events';
import { Duplex, type DuplexOptions } from 'node:stream';
import { randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import type { ClientChannel } from 'ssh2';
import { FrameParser, MAX_PAYLOAD, MAX_PEER_TEXT, encodeFrame, type Frame } from '../src/resume/frames.js';
import { ResumableStream } from '../src/resume/resumable.js';
import { ReplayBudget, StreamState } from '../src/resume/stream.js';
import type { PumpResult } from '../src/forward/pump.js';
import type { SshSession } from '../src/ssh/adapter.js';
import { silentLogger } from '../src/log.js';
import { deadline, listenFor, outcome, until } from './fixtures/net.js';

/** A channel to the agent: what sshkeep writes is parsed into `sent`; `play()` is the agent speaking. */
class FakeChannel extends Duplex {
  readonly sent: Frame[] = [];
  constructor(options: DuplexOptions = {}) {
    super(options);
  }
  readonly #parser = new FrameParser();
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    this.sent.push(...this.#parser.push(chunk).frames);
    done();
  }
  override _read(): void {}
  play(frame: Frame): void {
    this.push(encodeFrame(frame));
  }
  close(): void {
    this.emit('close');
  }
}

const session = { closed: false, coalesceWrites: () => {} } as unknown as SshSession;

/** A resumable stream over a real client socket: `peer` is the application's end. */
async function streamFor(t: Test, graceMs = 60_000, state = new StreamState(1024, new ReplayBudget(1 << 20))) {
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
  const port = await listenFor(t, server);
  const accepted = once(server, 'connection');
  const peer = net.connect({ port, host: '127.0.0.1' });
  const [client] = (await accepted) as [net.Socket];
  t.teardown(() => {
    peer.destroy();
    client.destroy();
  });
  const detached: ResumableStream[] = [];
  let result: PumpResult | undefined;
  const stream = new ResumableStream(client, randomBytes(16), state, { chunks: [], bytes: 0, ended: false }, {
    graceMs,
    log: silentLogger,
    onDone: (r) => (result = r),
    onDetached: (s) => detached.push(s),
  });
  const attach = <C extends FakeChannel>(peerReceived = 0, channel: C = new FakeChannel() as C) => {
    stream.attach({ channel: channel as unknown as ClientChannel, session, parser: new FrameParser() }, peerReceived, []);
    return channel;
  };
  return { stream, peer, attach, detached, result: () => result };
}

t.test('resumable – a client gone while no channel is attached is told to the agent at the next attach', async (t) => {
  const { stream, peer, attach, detached, result } = await streamFor(t);
  const first = attach();
  peer.write('abc');
  await until(() => first.sent.some((f) => f.type === 'data'), 5000, 'the bytes framed');
  first.close();
  t.equal(detached.length, 1, 'the stream asks for a new channel');
  peer.resetAndDestroy();
  await until(() => result() !== undefined, 5000, 'the stream to end for the client');
  t.match(result(), { side: 'client', reset: true });
  t.ok(stream.detached, 'still owed to the agent');
  const second = attach(3);
  t.match(second.sent, [{ type: 'reset', offset: 3 }], 'one RESET, at the offset reached');
  t.notOk(stream.detached, 'nothing owed any more');
});

t.test('resumable – an agent that says it received more than was sent: the client is reset, the agent told', async (t) => {
  const { peer, attach, result } = await streamFor(t);
  const end = outcome(peer);
  const first = attach();
  peer.write('abc');
  await until(() => first.sent.length > 0, 5000, 'the bytes framed');
  first.close();
  const second = attach(10);
  t.match(await deadline(end, 5000, 'the client reset'), { errorCode: 'ECONNRESET' });
  t.match(result(), { side: 'tunnel', reset: true, reason: /beyond what was sent/ });
  t.match(second.sent.at(-1), { type: 'reset' });
});

t.test('resumable – a full replay buffer pauses the client until the agent acknowledges', async (t) => {
  const { stream, peer, attach } = await streamFor(t);
  const channel = attach();
  peer.write(Buffer.alloc(4096, 1)); // the per-stream limit here is 1 KiB
  await until(() => stream.state.replayBytes >= 1024, 5000, 'the buffer full');
  const held = stream.state.replayBytes;
  await new Promise((r) => setImmediate(r));
  t.equal(stream.state.replayBytes, held, 'no more read while full');
  channel.play({ type: 'ack', ack: held });
  await until(() => stream.bytesUp === 4096, 5000, 'reading again after the ack');
  t.pass('every byte read once the agent acknowledged');
});

t.test('resumable – its buffer emptied by its own acks while the total is full of another stream: reads again once the other is acknowledged', async (t) => {
  for (const freedBy of ['an ACK', 'the ACCEPT of a re-attach']) {
    const budget = new ReplayBudget(1536); // the per-stream limit is 1 KiB: two full buffers fill it
    const a = await streamFor(t, 60_000, new StreamState(1024, budget));
    const b = await streamFor(t, 60_000, new StreamState(1024, budget));
    const aChannel = a.attach();
    const bChannel = b.attach();
    a.peer.write(Buffer.alloc(2048, 1));
    await until(() => a.stream.state.replayBytes >= 1024, 5000, `${freedBy}: a's buffer full`);
    b.peer.write(Buffer.alloc(2048, 2));
    await until(() => b.stream.state.replayBytes >= 1024, 5000, `${freedBy}: b's buffer full`);
    a.peer.write(Buffer.alloc(2048, 3)); // waits in the socket while a is paused
    const aRead = a.stream.bytesUp;
    if (freedBy === 'an ACK') aChannel.play({ type: 'ack', ack: a.stream.state.sent });
    else {
      aChannel.close();
      a.attach(a.stream.state.sent);
    }
    await until(() => a.stream.state.replayBytes === 0, 5000, `${freedBy}: a's buffer empty`);
    t.ok(budget.full, `${freedBy}: the total still full of b's bytes`);
    await new Promise((r) => setImmediate(r));
    t.equal(a.stream.bytesUp, aRead, `${freedBy}: a waits for the total`);
    bChannel.play({ type: 'ack', ack: b.stream.state.sent });
    await until(() => a.stream.bytesUp === 4096, 5000, `${freedBy}: a reading again once b's bytes are acknowledged`);
    t.pass(`${freedBy}: a read the rest`);
  }
});

t.test('resumable – the agent does not know the stream: the client is reset', async (t) => {
  const { peer, attach, result } = await streamFor(t);
  const end = outcome(peer);
  const channel = attach();
  channel.play({ type: 'error', code: 2, message: 'unknown stream' });
  t.match(await deadline(end, 5000, 'the client reset'), { errorCode: 'ECONNRESET' });
  t.match(result(), { side: 'tunnel', reset: true, reason: /no longer knows/ });
});

t.test('resumable – a protocol error either way resets the client at once; the stream does not wait for a re-attach', async (t) => {
  for (const [name, play, sends] of [
    ['the agent answers ERROR 1', { type: 'error', code: 1, message: 'unknown frame type 238' }, []],
    ['a frame not allowed on a stream', { type: 'accept', received: 0 }, ['error']],
  ] as [string, Frame, string[]][]) {
    const { stream, peer, attach, result } = await streamFor(t);
    const end = outcome(peer);
    const channel = attach();
    channel.play(play);
    t.match(await deadline(end, 5000, `the client reset: ${name}`), { errorCode: 'ECONNRESET' }, name);
    t.match(result(), { side: 'tunnel', reset: true }, `${name}: ended as the tunnel's reset`);
    t.notOk(stream.detached, `${name}: not waiting for a re-attach`);
    t.same(channel.sent.map((f) => f.type).filter((type) => type === 'error'), sends, `${name}: ERROR 1 sent to the agent only when sshkeep found the fault`);
  }
});

t.test('resumable – data resent across an attach is delivered once; EOF both ways ends cleanly', async (t) => {
  const { stream, peer, attach, result } = await streamFor(t);
  const end = outcome(peer);
  const first = attach();
  first.play({ type: 'data', offset: 0, ack: 0, data: Buffer.from('hello') });
  await until(() => stream.bytesDown === 5, 5000, 'the first bytes delivered');
  first.close();
  const second = attach();
  second.play({ type: 'data', offset: 0, ack: 0, data: Buffer.from('hello world') }); // the agent resends from 0
  second.play({ type: 'eof', offset: 11 });
  peer.end();
  await until(() => second.sent.some((f) => f.type === 'eof'), 5000, "the client's EOF framed");
  second.play({ type: 'ack', ack: 1 }); // our EOF (offset 0) acknowledged
  const o = await deadline(end, 5000, 'the client to finish');
  t.equal(o.data.toString(), 'hello world', 'each byte once');
  t.equal(o.ended, true, 'a clean end');
  t.match(result(), { reset: false });
});

/** A channel whose writes wait for `release()`, as ssh2's wait for the send window. */
class WindowlessChannel extends FakeChannel {
  readonly #held: (() => void)[] = [];
  #open = false;
  /** How many frames had gone out when close() was called. */
  sentAtClose: number | undefined;
  override _write(chunk: Buffer, enc: string, done: () => void): void {
    if (this.#open) super._write(chunk, enc, done);
    else this.#held.push(() => super._write(chunk, enc, done));
  }
  /** The window opens: what waits goes out, and later writes at once. */
  release(): void {
    this.#open = true;
    for (const go of this.#held.splice(0)) go();
  }
  override close(): void {
    this.sentAtClose ??= this.sent.length;
    super.close();
  }
}

t.test('resumable – a RESET queued behind the window goes out before the channel closes', async (t) => {
  const { peer, attach, result } = await streamFor(t);
  const channel = attach(0, new WindowlessChannel());
  peer.write('queued behind the window');
  await until(() => channel.writableLength > 0, 5000, 'a DATA frame waiting for the window');
  peer.resetAndDestroy();
  await until(() => result() !== undefined, 5000, 'the stream to end for the client');
  t.equal(channel.sentAtClose, undefined, 'not closed while frames wait: ssh2 would drop them');
  channel.release();
  await until(() => channel.sentAtClose !== undefined, 5000, 'the close once they went out');
  const beforeClose = channel.sent.slice(0, channel.sentAtClose);
  t.match(beforeClose.map((f) => f.type), ['data', 'reset'], 'the data, then the RESET, then the close');
});

/** A channel whose writes stall (queued) until release(): the send window shut. */
class StallingChannel extends FakeChannel {
  readonly #stalled: (() => void)[] = [];
  #open = false;
  constructor() {
    super({ writableHighWaterMark: 16 });
  }
  override _write(chunk: Buffer, enc: string, done: () => void): void {
    if (this.#open) return super._write(chunk, enc, done);
    this.#stalled.push(() => super._write(chunk, enc, done));
  }
  release(): void {
    this.#open = true;
    for (const write of this.#stalled.splice(0)) write();
  }
}

/** The bytes the DATA frames in `frames` cover, in order, checked to follow one another from 0. */
function dataCovered(frames: Frame[]): number {
  let end = 0;
  for (const f of frames) {
    if (f.type !== 'data') continue;
    if (f.offset !== end) throw new Error(`DATA at ${f.offset}, expected ${end}`);
    end += f.data.length;
  }
  return end;
}

t.test('resumable – a client reset while the window is shut: its bytes still go before the RESET', async (t) => {
  const { stream, peer, attach, result } = await streamFor(t);
  const channel = attach(0, new StallingChannel());
  peer.write(Buffer.alloc(300, 1));
  await until(() => stream.bytesUp === 300, 5000, 'the first bytes read');
  peer.write(Buffer.alloc(300, 2)); // no room: they wait in the replay buffer
  await until(() => stream.bytesUp === 600, 5000, 'the next bytes read');
  peer.resetAndDestroy();
  await until(() => result() !== undefined, 5000, 'the stream to end for the client');
  channel.release();
  await until(() => channel.sent.some((f) => f.type === 'reset'), 5000, 'the RESET');
  const reset = channel.sent.findIndex((f) => f.type === 'reset');
  t.equal(dataCovered(channel.sent.slice(0, reset)), 600, 'DATA for all 600 bytes, then the RESET');
  t.match(channel.sent[reset], { type: 'reset', offset: 600 });
});

t.test('resumable – an agent ERROR as long as a frame allows resets its stream, nothing thrown; sshkeep repeats 200 characters of it', async (t) => {
  const { peer, attach, result } = await streamFor(t);
  const end = outcome(peer);
  const channel = attach();
  // Repeated whole, it made sshkeep's own RESET too large to encode: the throw left the stream's
  // handler and ssh2's packet loop, and the whole SSH connection was dropped.
  channel.play({ type: 'error', code: 1, message: 'x'.repeat(MAX_PAYLOAD - 1) });
  t.match(await deadline(end, 5000, 'the client reset'), { errorCode: 'ECONNRESET' });
  t.match(result(), { side: 'tunnel', reset: true, reason: new RegExp(`agent error 1: x{${MAX_PEER_TEXT - 1}}…$`) });
  const reset = channel.sent.find((f): f is Extract<Frame, { type: 'reset' }> => f.type === 'reset');
  t.match(reset?.reason, /^agent error 1: x+…$/, 'a RESET went to the agent, its reason the clipped message');
});

t.test('resumable – an ACK beyond what went out on the channel resets the stream, nothing thrown', async (t) => {
  const { stream, peer, attach, result } = await streamFor(t);
  const end = outcome(peer);
  const channel = attach(0, new StallingChannel());
  peer.write(Buffer.alloc(300, 1));
  await until(() => stream.bytesUp === 300, 5000, 'the first bytes read');
  peer.write(Buffer.alloc(300, 2)); // read, not framed: the window is shut
  await until(() => stream.bytesUp === 600, 5000, 'the next bytes read');
  channel.play({ type: 'ack', ack: 301 });
  t.match(await deadline(end, 5000, 'the client reset'), { errorCode: 'ECONNRESET' });
  t.match(result(), { side: 'tunnel', reset: true, reason: /ack 301 beyond what was sent \(300\)/ });
});
