import net from 'node:net';
import { EventEmitter, once } from 'node:events';
import t, { type Test } from 'tap';
import { ChannelOpenError } from '../src/errors.js';
import { Hold, type HoldOptions } from '../src/forward/hold.js';
import { silentLogger } from '../src/log.js';
import type { SessionSource } from '../src/ssh/pool.js';
import type { ForwardChannel, SshSession } from '../src/ssh/adapter.js';
import type { ConnectionState, ConnectionStatus } from '../src/ssh/connection.js';
import { deadline, outcome, until } from './fixtures/net.js';

/** A channel open the test answers: its target, and whether the hold gave up on it. */
interface PendingOpen {
  resolve(channel: ForwardChannel): void;
  reject(err: Error): void;
  abandoned: boolean;
}

/** Stands in for an SshSession: only openForward, closed and channels are used by the hold. */
class FakeSession {
  closed = false;
  channels = 0;
  opens: PendingOpen[] = [];
  /** When its server was last heard from. */
  heardAt = 0;
  constructor(readonly description: string) {}
  lastInboundAt(): number {
    return this.heardAt;
  }
  openForward(_target: unknown, _src: unknown, _timeoutMs: number, abandon?: AbortSignal): Promise<ForwardChannel> {
    return new Promise((resolve, reject) => {
      const open: PendingOpen = { resolve, reject, abandoned: false };
      abandon?.addEventListener('abort', () => {
        open.abandoned = true;
        reject(new ChannelOpenError('channel open abandoned', 'tunnel-lost'));
      });
      this.opens.push(open);
    });
  }
}

/** A tunnel the test moves by hand: which session is ready, and how many clients say they wait. */
class FakeSource extends EventEmitter<{ status: [ConnectionStatus] }> implements SessionSource {
  state: ConnectionState = 'connecting';
  ready: FakeSession | undefined;
  waiting = 0;
  get readySession(): SshSession | undefined {
    return this.ready as unknown as SshSession | undefined;
  }
  readonly #superseded = new Map<unknown, AbortController>();
  supersededSignal(session: SshSession): AbortSignal | undefined {
    let c = this.#superseded.get(session);
    if (!c) this.#superseded.set(session, (c = new AbortController()));
    return c.signal;
  }
  noteNewClient(): void {}
  clientWaiting(): () => void {
    this.waiting++;
    return () => this.waiting--;
  }
  /** Moves to `to`, serving `session` when ready. */
  move(to: ConnectionState, session?: FakeSession): void {
    const from = this.state;
    // A spare taking over supersedes every other session (the connection's make-before-break).
    if (to === 'ready' && session) for (const [s, c] of this.#superseded) if (s !== session) c.abort();
    this.state = to;
    this.ready = to === 'ready' ? session : undefined;
    this.emit('status', { type: 'state', from, to, reason: 'test', generation: 0 });
  }
}

/** A connected socket pair on 127.0.0.1: the hold gets `held`, the test plays the client on `client`. */
async function socketPair(t: Test): Promise<{ client: net.Socket; held: net.Socket }> {
  const server = net.createServer({ pauseOnConnect: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  const [held] = await accepted;
  server.close();
  t.teardown(() => {
    client.destroy();
    held.destroy();
  });
  return { client, held };
}

function setup(t: Test, options: Partial<HoldOptions> = {}) {
  const source = new FakeSource();
  const hold: Hold = new Hold({
    source,
    limits: { maxConnections: 0, maxHeld: 1024, clients: () => 0, held: (): number => hold.size },
    holdTimeoutMs: 5000,
    holdBufferBytes: 1024,
    channelOpenTimeoutMs: 5000,
    ...options,
  });
  t.teardown(() => hold.cutAll('test over'));
  return { source, hold };
}

const TARGET = { kind: 'tcp' as const, host: 'db', port: 5432 };
const SRC = { address: '127.0.0.1', port: 1 };
const channel = {} as ForwardChannel;

/** A client arriving while `first` is ready: resolves once its channel open is out on `first`. */
async function openingOn(t: Test, first: FakeSession, options: Parameters<typeof setup>[1] = {}) {
  const { source, hold } = setup(t, options);
  const { held } = await socketPair(t);
  source.move('ready', first);
  const opened = hold.open(held, TARGET, SRC, silentLogger);
  await until(() => first.opens.length === 1, 2000, `the open on ${first.description}`);
  return { source, opened };
}

t.test('hold – a client waits for the first ready connection, with its bytes kept; the tunnel knows it waits', async (t) => {
  const { source, hold } = setup(t);
  const { client, held } = await socketPair(t);
  const opened = hold.open(held, TARGET, SRC, silentLogger, Buffer.from('early '));
  client.write('bytes');
  t.equal(hold.size, 1, 'held');
  t.equal(source.waiting, 1, 'the tunnel was told a client waits');
  await until(() => held.bytesRead === 5, 2000, 'the client bytes read while held');
  const s1 = new FakeSession('s1');
  source.move('ready', s1);
  t.equal(source.waiting, 0, 'and that it no longer waits');
  await until(() => s1.opens.length === 1, 2000, 'the open on s1');
  s1.opens[0]!.resolve(channel);
  const result = await opened;
  if (!result.ok) throw new Error(`not opened: ${result.result}`);
  t.equal(result.session, s1 as unknown as SshSession);
  t.equal(Buffer.concat(result.held.chunks).toString(), 'early bytes', 'the early and held bytes, in order');
  t.equal(hold.size, 0, 'no longer held');
});

t.test('hold – an open cut short when another connection takes over is re-issued on the new one', async (t) => {
  const silent = new FakeSession('silent');
  const { source, opened } = await openingOn(t, silent);
  source.move('suspect');
  t.notOk(silent.opens[0]!.abandoned, 'a suspect connection keeps its open: it may answer yet');
  const spare = new FakeSession('spare');
  source.move('ready', spare);
  t.ok(silent.opens[0]!.abandoned, 'abandoned once another connection serves');
  await until(() => spare.opens.length === 1, 2000, 'the open re-issued on the spare');
  spare.opens[0]!.resolve(channel);
  const result = await opened;
  t.ok(result.ok && result.session === (spare as unknown as SshSession), 'opened on the spare');
});

t.test('hold – an open the lost connection failed waits for another connection, not the same one', async (t) => {
  const s1 = new FakeSession('s1');
  const { source, opened } = await openingOn(t, s1);
  s1.opens[0]!.reject(new ChannelOpenError('Not connected', 'tunnel-lost')); // s1 still looks ready for a moment
  await until(() => source.waiting === 1, 2000, 'the client to wait again');
  t.equal(s1.opens.length, 1, 'not re-issued on the failed connection');
  const s2 = new FakeSession('s2');
  source.move('ready', s2);
  await until(() => s2.opens.length === 1, 2000, 'the open on s2');
  s2.opens[0]!.resolve(channel);
  t.ok((await opened).ok);
});

t.test('hold – an open lost on a silent connection is re-issued on it once its server is heard from again', async (t) => {
  const s1 = new FakeSession('s1');
  const { source, opened } = await openingOn(t, s1);
  s1.opens[0]!.reject(new ChannelOpenError('nothing came from the server in the 10000 ms since the channel to db:5432 was asked for: the link is down', 'tunnel-lost'));
  await until(() => source.waiting === 1, 2000, 'the client to wait again');
  t.equal(s1.opens.length, 1, 'not re-issued while it is silent');
  s1.heardAt = performance.now();
  source.move('ready', s1); // its probe answered: ready again
  await until(() => s1.opens.length === 2, 2000, 'the open re-issued on s1');
  s1.opens[1]!.resolve(channel);
  t.ok((await opened).ok);
});

t.test('hold – an open lost with the link past the hold timeout is the tunnel\'s failure (hold_timeout), not the target\'s', async (t) => {
  const s1 = new FakeSession('s1');
  const { opened } = await openingOn(t, s1, { holdTimeoutMs: 1 });
  const past = performance.now() + 2;
  await until(() => performance.now() > past, 1000, 'the 1 ms hold to pass'); // the clock is what is waited for
  s1.opens[0]!.reject(new ChannelOpenError('nothing came from the server', 'tunnel-lost'));
  t.match(await opened, { ok: false, result: 'hold_timeout', message: /no SSH connection answered within 1 ms \(nothing came from the server\); --hold-timeout raises the limit/ });
});

t.test('hold – no connection within the hold timeout: hold_timeout, naming --hold-timeout', async (t) => {
  const { hold, source } = setup(t, { holdTimeoutMs: 50 });
  const { held } = await socketPair(t);
  const result = await hold.open(held, TARGET, SRC, silentLogger);
  t.match(result, { ok: false, result: 'hold_timeout', message: /no SSH connection ready within 50 ms; --hold-timeout raises the limit/ });
  t.equal(source.waiting, 0);
  t.equal(hold.size, 0);
});

t.test('hold – a refused target is not re-issued', async (t) => {
  const s1 = new FakeSession('s1');
  const { opened } = await openingOn(t, s1);
  s1.opens[0]!.reject(new ChannelOpenError('server could not open db:5432: Connection refused', 'connect-failed'));
  t.match(await opened, { ok: false, result: 'target_refused', reason: 'connect-failed' });
  t.equal(s1.opens.length, 1);
});

t.test('hold – refusals name the option that would allow the client', async (t) => {
  t.match(setup(t, { holdTimeoutMs: 0 }).hold.refusal(), { result: 'not_ready', message: /--hold-timeout is 0/ });
  const full = setup(t, { limits: { maxConnections: 0, maxHeld: 2, clients: () => 0, held: () => 2 } });
  t.match(full.hold.refusal(), { result: 'limit', message: /2 clients already held; --max-held raises the limit/ });
  full.source.move('ready', new FakeSession('s'));
  t.equal(full.hold.refusal(), undefined, 'no refusal when a connection is ready: nobody is held');
});

t.test('hold – the tunnel closing for good ends the wait; cutAll resets every held client', async (t) => {
  const { source, hold } = setup(t);
  const first = await socketPair(t);
  const closing = hold.open(first.held, TARGET, SRC, silentLogger);
  source.move('closed');
  t.match(await closing, { ok: false, result: 'hold_timeout' }, 'given up at once, not at the hold timeout');

  source.move('connecting');
  const second = await socketPair(t);
  const end = outcome(second.client);
  const cut = hold.open(second.held, TARGET, SRC, silentLogger);
  t.equal(hold.cutAll('shutdown'), 1, 'one cut');
  t.match(await cut, { ok: false, result: 'left' });
  t.equal((await end).errorCode, 'ECONNRESET', 'the client sees a reset');
  t.equal(source.waiting, 0, 'nobody waits any more');
});

t.test('hold – early bytes that already fill --hold-buffer leave the client paused', async (t) => {
  const { hold } = setup(t, { holdBufferBytes: 8 });
  const { held } = await socketPair(t);
  void hold.open(held, TARGET, SRC, silentLogger, Buffer.from('12345678'));
  t.ok(held.isPaused(), 'not read beyond the buffer');
  const small = await socketPair(t);
  void hold.open(small.held, TARGET, SRC, silentLogger, Buffer.from('1234'));
  t.notOk(small.held.isPaused(), 'under the limit: read on');
});

t.test('hold – a client that leaves while waiting for a connection stops the wait at once, and is not forwarded', async (t) => {
  const { source, hold } = setup(t);
  const { client, held } = await socketPair(t);
  const opened = hold.open(held, TARGET, SRC, silentLogger);
  t.equal(source.waiting, 1, 'waiting');
  client.destroy();
  // The hold timeout is 5 s: an outcome within 1 s came from the client's leaving.
  t.match(await deadline(opened, 1000, 'the wait to end'), { ok: false, result: 'left' }, 'given up when it left, not at the hold timeout');
  t.equal(source.waiting, 0, 'the tunnel was told it no longer waits');
  t.equal(hold.size, 0, 'no longer held');
  const s1 = new FakeSession('s1');
  source.move('ready', s1);
  t.equal(s1.opens.length, 0, 'no channel opened for it');
});
