/**
 * Slow and hostile peers, in-process against the embedded SSH server: clients that send
 * nothing are bounded by the hold and SOCKS handshake timeouts, and an error on one
 * connection (a reset at any moment, a half-close then a reset, a target that resets, a
 * client gone while its channel opens) never reaches another connection or the process.
 */
import t, { type Test } from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { connect, deadline, outcome, roundTrip, until, listen, startEchoFor } from './fixtures/net.js';
import { forwardDeps, inputFor, makeKeys, startServer, startSshkeep, LogCapture } from './fixtures/tunnel.js';
import { LocalForward } from '../src/forward/local-forward.js';
import { parseDynamicForward } from '../src/config/forward-spec.js';
import { prng } from './fixtures/prng.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Resolves at the socket's 'close', however it ends (events.once would reject on an error first). */
const closed = (s: net.Socket) => new Promise<void>((resolve) => s.once('close', () => resolve()));

// ---------------------------------------------------------------- slow clients

t.test('slow clients – held clients that send nothing are reset at --hold-timeout, not before, and nothing is left held', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const { app, bound, logs } = await startSshkeep(t, inputFor(server, keys, [`0:127.0.0.1:${echo.port}`], { holdTimeout: '1s' }));
  await deadline(app.ready(), 5000, 'the tunnel ready');
  const port = bound[0]!.port;

  server.setDown(true);
  await until(() => app.connection.state !== 'ready', 5000, 'the tunnel to notice the outage');
  const HELD = 20;
  const started = performance.now();
  const ends = await deadline(
    Promise.all(
      Array.from({ length: HELD }, async () => {
        const s = net.connect({ port, host: '127.0.0.1' }); // sends nothing, ever
        const end = await outcome(s);
        return { ...end, afterMs: performance.now() - started };
      }),
    ),
    4000,
    `${HELD} silent held clients to be reset by a 1 s hold timeout`,
  );
  t.same(ends.filter((e) => e.errorCode !== 'ECONNRESET' || e.ended).map((e) => e.errorCode ?? 'clean end'), [], 'every held client was reset, none ended cleanly');
  const first = Math.min(...ends.map((e) => e.afterMs));
  t.ok(first >= 900, `not reset before the hold timeout (first reset after ${Math.round(first)} ms)`);
  const holdTimeouts = logs.lines.filter((l) => l.event === 'conn_end' && l.reason === 'hold_timeout');
  t.equal(holdTimeouts.length, HELD, 'each logged as conn_end reason hold_timeout');
  t.ok(holdTimeouts.every((l) => l.heldBytes === 0), 'having sent nothing');
  t.equal(app.report().held, 0, 'none left held');

  server.setDown(false);
  await until(() => app.connection.state === 'ready', 11_000, 'the tunnel back');
  t.equal((await roundTrip(await connect(port), 'after')).toString(), 'after', 'the forward serves again');
});

t.test('slow clients – a SOCKS handshake that stalls is closed at its timeout: 10 s by default, or as configured', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const { app, bound, logs } = await startSshkeep(t, inputFor(server, keys, [], { dynamicForwards: ['127.0.0.1:0'] }));
  await deadline(app.ready(), 5000, 'the tunnel ready');

  // socksTimeoutMs is not reachable from TunnelInput or the CLI: a second -D forward on the
  // same tunnel, built with the dependencies Sshkeep gives its own but a 300 ms timeout.
  const SHORT = 300;
  const shortLogs = new LogCapture();
  const short = new LocalForward(parseDynamicForward('127.0.0.1:0'), forwardDeps(app, shortLogs, { socksTimeoutMs: SHORT }));
  const shortAt = await short.listen();
  t.teardown(() => {
    short.stopAccepting();
    short.resetAll('test over');
  });
  if (shortAt.kind !== 'tcp') throw new Error('expected a TCP listener');

  /** Connects, sends `bytes`, then nothing; resolves when sshkeep closes it, with when. */
  const stall = async (port: number, bytes: number[], expectReply?: number[]) => {
    const s = await connect(port);
    const started = performance.now();
    const end = outcome(s, { closeOnEnd: true });
    if (bytes.length) s.write(Buffer.from(bytes));
    const result = await end;
    if (expectReply) t.same([...result.data], expectReply, `the server answered ${JSON.stringify(bytes)} with ${JSON.stringify(expectReply)} before stalling`);
    return { ...result, afterMs: performance.now() - started };
  };

  // All at once, so the 10 s default costs 10 s once.
  const [byDefault, silent, greetingHalf, afterMethods, socks4Half] = await deadline(
    Promise.all([
      stall(bound[0]!.port, []),
      stall(shortAt.port, []),
      stall(shortAt.port, [0x05]), // a SOCKS5 greeting cut short
      stall(shortAt.port, [0x05, 0x01, 0x00], [0x05, 0x00]), // greeting done, no request ever
      stall(shortAt.port, [0x04, 0x01, 0x00, 0x50]), // half a SOCKS4 request
    ]),
    13_000,
    'every stalled SOCKS client to be closed',
  );
  for (const [what, r] of Object.entries({ silent, greetingHalf, afterMethods, socks4Half })) {
    t.ok(r.afterMs >= SHORT - 50 && r.afterMs < SHORT + 2000, `${what}: closed at the ${SHORT} ms timeout (after ${Math.round(r.afterMs)} ms)`);
  }
  t.ok(byDefault.afterMs >= 9_900, `default: not closed before 10 s (after ${Math.round(byDefault.afterMs)} ms)`);
  t.ok(byDefault.afterMs < 12_000, `default: closed at about 10 s (after ${Math.round(byDefault.afterMs)} ms)`);
  const timedOut = (l: Record<string, unknown>) => l.event === 'conn_end' && l.reason === 'socks_error' && /not complete within/.test(String(l.error));
  t.equal(shortLogs.lines.filter(timedOut).length, 4, 'each short-timeout stall logged as a SOCKS handshake timeout');
  t.equal(logs.lines.filter(timedOut).length, 1, 'the default-timeout stall logged as a SOCKS handshake timeout');
  t.equal(short.clients, 0, 'nothing left in the handshake');

  // The forward and the tunnel still serve a client that does finish its request.
  const s = await connect(shortAt.port);
  const end = outcome(s);
  s.write(Buffer.from([0x05, 0x01, 0x00]));
  s.write(Buffer.from([0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1, echo.port >> 8, echo.port & 0xff]));
  await until(() => s.bytesRead >= 2 + 10, 5000, 'the SOCKS5 success reply');
  s.end('through');
  const r = await deadline(end, 5000, 'the echo through SOCKS');
  t.equal(r.data.subarray(12).toString(), 'through', 'a complete SOCKS request is forwarded');
});

// ---------------------------------------------------------------- error isolation

/**
 * An echo target; a connection whose first bytes are "RST!" is reset by the target
 * (resetAndDestroy) instead of echoing the chunk that takes it past 256 KiB.
 */
async function startResettingEcho(t: Test) {
  let resets = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let seen = 0;
    let doomed: boolean | undefined;
    s.on('data', (c: Buffer) => {
      doomed ??= c.subarray(0, 4).toString() === 'RST!';
      seen += c.length;
      if (doomed && seen > 256 * KiB) {
        resets++;
        s.resetAndDestroy();
        return;
      }
      if (!s.write(c)) {
        s.pause();
        s.once('drain', () => s.resume());
      }
    });
    s.on('end', () => s.end());
  });
  await listen(server);
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    get resets() {
      return resets;
    },
  };
}

/**
 * A bulk echo stream: sends `size` random bytes in two halves (the second only once `gate`
 * resolves), half-closes, and hashes what comes back until the end.
 */
function bulkStream(port: number, size: number, gate: Promise<void>) {
  const data = randomBytes(size);
  const hash = createHash('sha256');
  let received = 0;
  const done = (async () => {
    const s = await connect(port);
    s.on('data', (c: Buffer) => {
      hash.update(c);
      received += c.length;
    });
    const end = outcome(s, { closeOnEnd: true });
    const write = async (from: number, to: number) => {
      for (let at = from; at < to; at += 64 * KiB) {
        if (!s.write(data.subarray(at, Math.min(to, at + 64 * KiB)))) await once(s, 'drain');
      }
    };
    await write(0, size / 2);
    await gate;
    await write(size / 2, size);
    s.end();
    const r = await end;
    return { ended: r.ended, errorCode: r.errorCode, received, sha: hash.digest('hex'), want: createHash('sha256').update(data).digest('hex') };
  })();
  return { done, received: () => received };
}

t.test('isolation – resets, half-close then reset, a resetting target and clients gone while their channel opens leave other streams and the process intact', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const target = await startResettingEcho(t);
  const { app, bound, logs } = await startSshkeep(t, inputFor(server, keys, [`0:127.0.0.1:${target.port}`]));
  await deadline(app.ready(), 5000, 'the tunnel ready');
  const port = bound[0]!.port;
  const generation = app.connection.generation;
  const session = app.connection.readySession!;
  const channels = () => app.connection.readySession?.channels;

  // Idle connections open through it all.
  const IDLE = 2;
  const idle = await Promise.all(Array.from({ length: IDLE }, () => connect(port)));
  for (const s of idle) {
    s.write('hi');
    await once(s, 'data');
  }

  // Bulk streams: half sent, then held open across every fault below.
  const BULK = 4;
  const SIZE = 4 * MiB;
  let releaseBulk!: () => void;
  const gate = new Promise<void>((r) => (releaseBulk = r));
  const bulk = Array.from({ length: BULK }, () => bulkStream(port, SIZE, gate));
  await until(() => bulk.every((b) => b.received() >= 256 * KiB), 10_000, 'every bulk stream flowing');
  await until(() => channels() === IDLE + BULK, 5000, `${IDLE + BULK} channels open`);

  const rand = prng(7);
  const payload = randomBytes(512 * KiB);

  // (a) clients reset mid-stream, at moments from before their first byte to deep into the echo.
  const clientResets = Array.from({ length: 30 }, async () => {
    const after = Math.floor(rand() * 256 * KiB); // bytes echoed before the reset; 0 = at once
    const s = await connect(port);
    const end = closed(s);
    s.on('error', () => {});
    let got = 0;
    const reset = () => !s.destroyed && s.resetAndDestroy();
    if (after === 0) reset();
    s.on('data', (c: Buffer) => {
      got += c.length;
      if (got >= after) reset();
    });
    s.write(payload);
    await end;
  });

  // (b) the target resets its connection mid-stream.
  const doomed = Buffer.concat([Buffer.from('RST!'), payload]);
  const targetResets = Array.from({ length: 5 }, async () => {
    const s = await connect(port);
    const end = outcome(s, { closeOnEnd: true });
    s.write(doomed);
    return end;
  });

  // (c) half-close, then reset while the echo comes back.
  const halfThenReset = Array.from({ length: 10 }, async () => {
    const s = await connect(port);
    const end = closed(s);
    s.on('error', () => {});
    s.end(payload);
    await once(s, 'finish');
    s.once('data', () => s.resetAndDestroy());
    await end;
  });

  // (d) gone while the channel opens: closed, or reset, as soon as connected; many times.
  const goneEarly = Array.from({ length: 200 }, (_, i) =>
    new Promise<void>((resolve) => {
      const s = net.connect({ port, host: '127.0.0.1' });
      s.on('error', () => {});
      s.on('connect', () => (i % 2 ? s.destroy() : s.resetAndDestroy()));
      s.on('close', () => resolve());
    }),
  );

  await deadline(Promise.all([...clientResets, ...halfThenReset, ...goneEarly]), 15_000, 'every faulty client to finish');
  const targetEnds = await deadline(Promise.all(targetResets), 10_000, 'every target-reset stream to finish');
  t.equal(target.resets, targetResets.length, `the target reset ${targetResets.length} connections`);
  t.comment(`target-reset streams, as their clients saw them: ${targetEnds.map((e) => `${e.data.length} B, ${e.ended ? 'clean end' : 'no end'}${e.errorCode ? `, ${e.errorCode}` : ''}`).join('; ')}`);
  // The target echoes whole chunks up to 256 KiB, then resets (dropping what it had not sent yet).
  t.ok(
    targetEnds.every((e) => e.data.length <= 256 * KiB && e.data.equals(doomed.subarray(0, e.data.length))),
    `a target-reset stream delivered a correct prefix of the echo, then ended (got ${targetEnds.map((e) => e.data.length).join(', ')} bytes)`,
  );

  // Faults over: only the open streams hold channels.
  await until(() => channels() === IDLE + BULK, 10_000, `the channel count back to the ${IDLE + BULK} open streams`).catch(() => {});
  t.equal(channels(), IDLE + BULK, `the session carries exactly the ${IDLE + BULK} open streams' channels after the faults`);
  t.equal(app.report().held, 0, 'nobody left held');

  releaseBulk();
  const results = await deadline(Promise.all(bulk.map((b) => b.done)), 20_000, 'the bulk streams to complete');
  for (const [i, r] of results.entries()) {
    t.ok(r.ended && !r.errorCode, `bulk stream ${i}: ended cleanly (${r.errorCode ?? 'no error'})`);
    t.equal(r.received, SIZE, `bulk stream ${i}: every byte came back`);
    t.equal(r.sha, r.want, `bulk stream ${i}: sha256 matches`);
  }

  await until(() => channels() === IDLE, 5000, `the channel count back to the ${IDLE} idle streams`).catch(() => {});
  t.equal(channels(), IDLE, `the session carries only the ${IDLE} idle streams' channels`);
  for (const s of idle) {
    s.write('still');
    const [echoed] = (await deadline(once(s, 'data'), 5000, 'an idle stream to echo')) as [Buffer];
    t.equal(echoed.toString(), 'still', 'an idle stream opened before the faults still echoes');
  }
  await Promise.all(
    idle.map((s) => {
      const c = closed(s);
      s.end();
      return c;
    }),
  );
  await until(() => channels() === 0, 5000, 'no channel left').catch(() => {});
  t.equal(channels(), 0, 'no channel left once every client is gone');

  t.equal(app.connection.state, 'ready', 'the tunnel stayed ready');
  t.equal(app.connection.generation, generation, 'on the same SSH connection: no fault reached it');
  t.equal(app.connection.readySession, session, 'the very same session');
  t.equal(server.connections, 1, 'the server saw no reconnect');
  t.notOk(logs.lines.some((l) => l.level === 'error'), 'nothing logged at error level');
  // Every client accounted for: accepted once, ended once.
  const total = IDLE + BULK + clientResets.length + targetResets.length + halfThenReset.length + goneEarly.length;
  const ends = logs.find('conn_end');
  t.equal(logs.find('accept').length, total, `sshkeep accepted all ${total} clients`);
  t.equal(ends.length, total, 'and logged exactly one conn_end for each');
  const tally = new Map<string, number>();
  for (const l of ends) tally.set(`${String(l.msg)} (${String(l.reason)})`, (tally.get(`${String(l.msg)} (${String(l.reason)})`) ?? 0) + 1);
  t.comment(`how they ended: ${[...tally].map(([k, v]) => `${v} × ${k}`).join('; ')}`);
  t.ok(
    ends.some((l) => /client left (while held|as its channel opened)/.test(String(l.msg))),
    'some clients left before their channel was in use (the open was abandoned, not pumped)',
  );

});

t.test('isolation – no uncaughtException handler in src hides errors', async (t) => {
  const src = fileURLToPath(new URL('../src/', import.meta.url));
  const offenders: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.[cm]?[jt]s$/.test(e.name) && /uncaughtException/.test(fs.readFileSync(p, 'utf8'))) offenders.push(path.relative(src, p));
    }
  };
  walk(src);
  t.ok(fs.existsSync(path.join(src, 'forward', 'local-forward.ts')), 'the walk looks at the real sources');
  t.same(offenders, [], 'no source file mentions uncaughtException');
});
