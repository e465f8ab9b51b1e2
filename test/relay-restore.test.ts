/**
 * The fault relay's restore() (test/fixtures/relay.ts): a stalled direction delivers what it
 * held, then the end or close that came meanwhile, as TCP's retransmissions would; through the
 * link's shape when one is played; and stalls set to start later are called off.
 */
import net from 'node:net';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import { Relay } from './fixtures/relay.js';
import { connect, deadline, echoOn, listenFor, until } from './fixtures/net.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** What a socket receives, and whether it ended cleanly. */
function collect(s: net.Socket): { bytes: () => Buffer; ended: Promise<unknown> } {
  const got: Buffer[] = [];
  s.on('data', (c: Buffer) => got.push(c));
  return { bytes: () => Buffer.concat(got), ended: once(s, 'end') };
}

/** A relay in front of a server whose accepted sockets are handed to `serve`. */
async function relayTo(t: Test, serve: (s: net.Socket) => void): Promise<Relay> {
  const server = net.createServer((s) => serve(s.on('error', () => {})));
  const relay = await new Relay(await listenFor(t, server)).listen();
  t.teardown(() => relay.close());
  return relay;
}

t.test("a blackholed flow delivers the client's bytes and then its end on restore", async (t) => {
  let target: ReturnType<typeof collect> | undefined;
  const relay = await relayTo(t, (s) => (target = collect(s)));
  const client = await connect(relay.port);
  t.teardown(() => client.destroy());
  await until(() => target !== undefined, 5000, 'the target accepts');
  relay.set('blackhole');
  const bytes = randomBytes(100_000);
  client.end(bytes);
  // The relay's side of the client closes once it has the end (it is not half-open): both are held.
  await until(() => relay.closes.up === 1, 5000, 'the relay holds the bytes, the end and the close');
  t.equal(relay.bytes().up, bytes.length, 'all of the bytes came before them');
  t.equal(target!.bytes().length, 0, 'nothing reached the target while stalled');
  relay.restore();
  await deadline(target!.ended, 5000, "the client's end, after the restore");
  t.equal(sha(target!.bytes()), sha(bytes), 'every byte before it');
});

t.test("a reply held on its way (holdDown) is delivered with the target's end and close on restore", async (t) => {
  const reply = randomBytes(50_000);
  const relay = await relayTo(t, (s) => s.once('data', () => s.end(reply, () => s.destroy())));
  const client = await connect(relay.port);
  t.teardown(() => client.destroy());
  const got = collect(client);
  relay.holdDown();
  client.write('ask');
  await until(() => relay.closes.down === 1, 5000, 'the relay holds the reply, its end and the close');
  t.equal(got.bytes().length, 0, 'nothing reached the client while stalled');
  relay.restore();
  await deadline(got.ended, 5000, "the target's end, after the restore");
  t.equal(sha(got.bytes()), sha(reply), 'the whole reply before it');
  await until(() => relay.openFlows === 0, 5000, "the target's close, passed on (the relay let the flow go)");
});

t.test('restore() calls off a stall set to start later (hold(n, when))', async (t) => {
  const relay = await relayTo(t, (s) => s.pipe(s));
  const client = await connect(relay.port);
  t.teardown(() => client.destroy());
  t.equal(await echoOn(client, 'one'), 'one', 'passes before');
  relay.hold(1, () => true);
  relay.holdDown(() => true);
  relay.restore();
  t.equal(await echoOn(client, 'two'), 'two', 'both ways pass after it');
});

t.test('on a shaped link, what a blackhole held is paced on restore, not written at once', async (t) => {
  let target: ReturnType<typeof collect> | undefined;
  const relay = await relayTo(t, (s) => (target = collect(s)));
  relay.shape({ bytesPerSecond: 512 * 1024, rttMs: 10 });
  const client = await connect(relay.port);
  t.teardown(() => client.destroy());
  await until(() => target !== undefined, 5000, 'the target accepts');
  relay.set('blackhole');
  const bytes = randomBytes(256 * 1024);
  client.end(bytes);
  await until(() => relay.closes.up === 1, 5000, 'the relay holds the bytes, the end and the close');
  const restored = performance.now();
  relay.restore();
  await deadline(target!.ended, 10_000, 'the end, after the paced bytes');
  const ms = performance.now() - restored;
  t.equal(sha(target!.bytes()), sha(bytes), 'every byte, in order');
  // 256 KiB at 512 KiB/s is 500 ms on the wire at the least: a lower bound, so no timing makes it flaky.
  t.ok(ms >= 450, `not faster than the link (${ms.toFixed(0)} ms)`);
});
