/**
 * The relay's link shaping (test/fixtures/pacer.ts), which scripts/bench-resume.ts uses to play
 * a slower, longer link: every byte delivered once and in order, an end only after them, and
 * never faster than the rate (a lower bound, so no timing can make it flaky).
 */
import net from 'node:net';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import { Relay } from './fixtures/relay.js';
import { connect, deadline, listenFor, until } from './fixtures/net.js';
import { Pacer } from './fixtures/pacer.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A server behind a shaped relay: `serve` runs on each connection it accepts. */
async function behindRelay(t: Test, serve: (s: net.Socket) => void) {
  const server = net.createServer(serve);
  const port = await listenFor(t, server);
  const relay = await new Relay(port).listen();
  t.teardown(() => relay.close());
  return relay;
}

const echo = (s: net.Socket) => s.on('error', () => {}).pipe(s);

/** Sends `bytes` (then `more`, after `between()`) to an echo server; resolves with what came back. */
async function echoed(port: number, bytes: Buffer, more = Buffer.alloc(0), between = () => {}): Promise<Buffer> {
  const s = await connect(port);
  const got: Buffer[] = [];
  let length = 0;
  const all = new Promise<void>((resolve) =>
    s.on('data', (c: Buffer) => {
      got.push(c);
      if ((length += c.length) >= bytes.length + more.length) resolve();
    }),
  );
  s.write(bytes);
  between();
  s.write(more);
  await deadline(all, 20_000, 'the echo');
  s.destroy();
  return Buffer.concat(got);
}

t.test('a shaped relay delivers every byte in order, never faster than its rate', async (t) => {
  const relay = await behindRelay(t, echo);
  relay.shape({ bytesPerSecond: 8 * 1024 * 1024, rttMs: 20 });
  const bytes = randomBytes(2 * 1024 * 1024);
  const started = performance.now();
  const back = await echoed(relay.port, bytes);
  const ms = performance.now() - started;
  t.equal(sha(back), sha(bytes), 'every byte back, in order, none changed');
  // 2 MiB at 8 MiB/s is 250 ms on the wire at the least (each way, overlapped), plus the round trip.
  t.ok(ms >= 250, `not faster than the link (${ms.toFixed(0)} ms)`);
});

t.test("a shaped relay ends the receiver only after the sender's last byte", async (t) => {
  const bytes = randomBytes(512 * 1024);
  const relay = await behindRelay(t, (s) => s.end(bytes));
  relay.shape({ bytesPerSecond: 4 * 1024 * 1024, rttMs: 40 });
  const s = await connect(relay.port);
  const got: Buffer[] = [];
  s.on('data', (c: Buffer) => got.push(c));
  await deadline(once(s, 'end'), 20_000, 'the end');
  s.destroy();
  t.equal(sha(Buffer.concat(got)), sha(bytes), 'all of it before the end');
});

t.test('unshaped again, a flow goes on with nothing overtaken', async (t) => {
  const relay = await behindRelay(t, echo);
  relay.shape({ bytesPerSecond: 1024 * 1024, rttMs: 50 });
  const first = randomBytes(256 * 1024);
  const second = randomBytes(64 * 1024);
  const back = await echoed(relay.port, first, second, () => relay.shape(undefined)); // the first bytes still queued
  t.equal(sha(back), sha(Buffer.concat([first, second])), 'the queued bytes first, then the rest');
});

t.test('unshaped again with nothing queued, a chunk is passed on at once, not a timer later', async (t) => {
  const written: string[] = [];
  const to = { destroyed: false, write: (c: Buffer) => (written.push(c.toString()), true) } as unknown as net.Socket;
  const from = { pause() {}, resume() {}, isPaused: () => false } as unknown as net.Socket;
  const pacer = new Pacer({ bytesPerSecond: 1024, rttMs: 10 }, from, to);
  pacer.push(Buffer.from('shaped'));
  t.same(written, [], 'a shaped link holds a chunk for its time');
  await until(() => written.length === 1, 5000, 'the shaped chunk');
  pacer.reshape(undefined);
  pacer.push(Buffer.from('now'));
  t.same(written, ['shaped', 'now'], 'passed on within the call');
});
