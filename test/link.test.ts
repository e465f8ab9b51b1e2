/**
 * The adapter's link(): a socket and a channel joined on the lean data path (no stream layer of
 * the channel for a small message) or, when the channel is not as it expects, over pipes; bytes
 * intact and in order either way, and a client that stops reading holds the server back.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import ssh2 from 'ssh2';
import t, { type Test } from 'tap';
import { link, openPort } from '../src/ssh/adapter.js';
import { HOST, connect, deadline, listenFor, startEchoFor, until } from './fixtures/net.js';
import { embeddedSession } from './fixtures/tunnel.js';

function forwardOut(client: ssh2.Client, port: number): Promise<ssh2.ClientChannel> {
  return new Promise((resolve, reject) => client.forwardOut(HOST, 0, HOST, port, (err, ch) => (err ? reject(err) : resolve(ch))));
}

/** A local client and the accepted socket that link() joins to the channel (as a forward's listener accepts it). */
async function clientPair(t: Test): Promise<{ outside: net.Socket; accepted: net.Socket }> {
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const outside = await connect(await listenFor(t, server));
  const [acc] = await accepted;
  t.teardown(() => (outside.destroy(), acc.destroy()));
  return { outside, accepted: acc };
}

/** Reads `n` bytes from `s`. */
function readN(s: net.Socket, n: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let got = 0;
  return deadline(
    new Promise((resolve) => {
      const onData = (c: Buffer) => {
        chunks.push(c);
        got += c.length;
        if (got < n) return;
        s.off('data', onData);
        resolve(Buffer.concat(chunks));
      };
      s.on('data', onData);
    }),
    20_000,
    `${n} bytes`,
  );
}

t.test('link – the pinned ssh2 takes the lean path; small and large writes come back intact, in order', async (t) => {
  const { session: s, client } = await embeddedSession(t);
  const echo = await startEchoFor(t);
  const { outside, accepted } = await clientPair(t);
  const l = link(accepted, await forwardOut(client, echo.port), s);
  t.equal(l.lean, true, 'lean path');
  const data = randomBytes(3 * 1024 * 1024); // past the 2 MiB window: the stream API takes over while it is full
  const back = readN(outside, data.length);
  for (let p = 0; p < 4096; p += 64) outside.write(data.subarray(p, p + 64));
  outside.write(data.subarray(4096));
  t.ok((await back).equals(data), '3 MiB echoed intact');
  l.unlink();
});

t.test('link – a channel whose stream already holds data is linked by pipes, and loses none of it', async (t) => {
  const { session: s, client } = await embeddedSession(t);
  const greeting = randomBytes(1000);
  const targets: net.Socket[] = [];
  const server = net.createServer((c) => (targets.push(c), c.write(greeting), c.pipe(c)));
  const port = await listenFor(t, server);
  t.teardown(() => targets.forEach((c) => c.destroy()));
  const channel = await forwardOut(client, port);
  await until(() => channel.readableLength >= greeting.length, 10_000, 'the greeting buffered in the channel');
  const { outside, accepted } = await clientPair(t);
  const l = link(accepted, channel, s);
  t.equal(l.lean, false, 'pipes');
  const back = readN(outside, greeting.length + 5);
  outside.write('hello');
  t.ok((await back).equals(Buffer.concat([greeting, Buffer.from('hello')])), 'greeting, then the echo');
  l.unlink();
});

t.test('link – a client that stops reading holds the server back; every byte arrives once it reads', async (t) => {
  const { session: s, client } = await embeddedSession(t);
  const total = 64 * 1024 * 1024;
  const data = randomBytes(total);
  let sent = 0;
  let progressAt = performance.now();
  const targets: net.Socket[] = [];
  const server = net.createServer((c) => {
    targets.push(c);
    c.once('data', () => pump()); // not before the channel is linked
    const pump = () => {
      while (sent < total) {
        const n = Math.min(65536, total - sent);
        const more = c.write(data.subarray(sent, sent + n));
        sent += n;
        progressAt = performance.now();
        if (!more) return void c.once('drain', pump);
      }
      c.end();
    };
  });
  const port = await listenFor(t, server);
  t.teardown(() => targets.forEach((c) => c.destroy()));
  const { outside, accepted } = await clientPair(t);
  outside.pause();
  t.equal(link(accepted, await forwardOut(client, port), s).lean, true);
  outside.write('go');
  // The target stalls once the 2 MiB window and the kernel's socket buffers are full: far short of 64 MiB.
  await until(() => sent > 0 && performance.now() - progressAt > 500, 20_000, 'the target to stall for 0.5 s');
  t.ok(sent < total / 2, `the target stalled after ${sent} of ${total} bytes`);
  t.ok(accepted.writableLength <= 2 * 1024 * 1024 + accepted.writableHighWaterMark, `the linked socket holds ${accepted.writableLength} bytes: at most the window and its own buffer`);
  outside.resume();
  t.ok((await readN(outside, total)).equals(data), 'every byte, in order');
});

for (const kind of ['lean', 'stream'] as const) {
  t.test(`openPort – ${kind === 'lean' ? 'ssh2 as pinned' : 'over the stream API'}: a sender that writes within room() and waits on whenRoom() gets every byte through, in order`, async (t) => {
    const { session: s, client } = await embeddedSession(t);
    const echo = await startEchoFor(t);
    const channel = await forwardOut(client, echo.port);
    // An own `push` is what a channel already taken looks like: openPort falls back to the stream API.
    if (kind === 'stream') Object.defineProperty(channel, 'push', { value: channel.push, writable: true, configurable: true });
    const port = openPort(channel, s, 1);
    t.teardown(() => port.detach());
    const data = randomBytes(6 * 1024 * 1024); // past the 2 MiB window, and past the stream's 2 MiB high-water mark
    const back: Buffer[] = [];
    let got = 0;
    const all = new Promise<void>((resolve) =>
      port.receive((chunk) => {
        back.push(Buffer.from(chunk));
        if ((got += chunk.length) >= data.length) resolve();
        return true;
      }),
    );
    let at = 0;
    let waits = 0;
    const send = () => {
      while (at < data.length) {
        const room = port.room();
        if (room === 0) {
          waits++;
          return port.whenRoom(send);
        }
        const piece = data.subarray(at, at + Math.min(room, 16 * 1024));
        port.write(piece);
        queued ||= channel.writableLength > 0;
        at += piece.length;
      }
    };
    let queued = false;
    send();
    await deadline(all, 20_000, 'the echo of 6 MiB');
    t.ok(Buffer.concat(back).equals(data), 'every byte back, in order');
    t.ok(waits > 0, `it waited for room ${waits} times`);
    if (kind === 'lean') t.notOk(queued, "nothing written within room() waited in the channel's stream");
  });
}
