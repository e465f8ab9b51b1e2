/**
 * sshkeep against the real OpenSSH sshd: integrity, half-close both ways, fan-out,
 * channel-open failures and a server that dies under open streams.
 */
import t, { type Test } from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { createCipheriv, createHash } from 'node:crypto';
import { requireSshd, sshdInput, startSshd } from './fixtures/sshd.js';
import { connect, deadline, outcome, refusedPort, roundTrip, listen, startEchoFor } from './fixtures/net.js';
import { startSshkeep, type LogCapture } from './fixtures/tunnel.js';

type Line = Record<string, unknown>;

/** Waits (event-driven, bounded) for a captured log line matching `pred`. */
function logWaiter(logs: LogCapture): (pred: (l: Line) => boolean, ms: number, what: string) => Promise<Line> {
  const checks = new Set<() => void>();
  const write = logs._write.bind(logs);
  logs._write = (chunk, enc, done) =>
    write(chunk, enc, () => {
      done();
      for (const c of [...checks]) c();
    });
  return (pred, ms, what) => {
    let check!: () => void;
    const found = new Promise<Line>((resolve) => {
      check = () => {
        const hit = logs.lines.find(pred);
        if (hit) {
          checks.delete(check);
          resolve(hit);
        }
      };
      checks.add(check);
      check();
    });
    return deadline(found, ms, `${what}; logged: ${JSON.stringify(logs.lines)}`).finally(() => checks.delete(check));
  };
}

/** A deterministic pseudo-random byte stream (AES-256-CTR keystream of a seed), in 64 KiB chunks. */
function* prng(seed: string, total: number, chunk = 64 * 1024): Generator<Buffer> {
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(chunk);
  for (let left = total; left > 0; left -= chunk) {
    yield cipher.update(left >= chunk ? zeros : zeros.subarray(0, left));
  }
}

function sha256Of(chunks: Iterable<Buffer>): string {
  const h = createHash('sha256');
  for (const c of chunks) h.update(c);
  return h.digest('hex');
}

/** Writes every chunk with backpressure; the returned hash is of what was written. */
async function writeAll(sock: net.Socket, chunks: Iterable<Buffer>): Promise<string> {
  const h = createHash('sha256');
  for (const c of chunks) {
    h.update(c);
    if (!sock.write(c)) await once(sock, 'drain'); // rejects on 'error'
  }
  return h.digest('hex');
}

/** A TCP server on 127.0.0.1:0 running `handle` for each connection; closed at teardown. */
async function startTarget(t: Test, handle: (s: net.Socket) => void): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    handle(s);
  });
  await listen(server);
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return (server.address() as net.AddressInfo).port;
}

const READY_MS = 10_000;

async function main(): Promise<void> {
  if (!requireSshd(t)) return;
  // One sshd for every test that does not need its own config or kills it.
  const sshd = await startSshd(t);
  const echo = await startEchoFor(t);

  t.test('openssh interop – bytes echo through sshd', async (t) => {
    const { app, bound, logs } = await startSshkeep(t, sshdInput(sshd, { localForwards: [`0:127.0.0.1:${echo.port}`] }));
    const waitLog = logWaiter(logs);
    await deadline(app.ready(), READY_MS, `tunnel ready\n${sshd.logs()}`);
    const sock = await connect(bound[0]!.port);
    const closed = outcome(sock);
    const payload = Buffer.from('hello openssh \u00e9\u0000\xff'.repeat(50));
    const reply = await deadline(roundTrip(sock, payload), 5000, 'echo');
    t.same(reply, payload, 'echoed byte for byte');
    const end = await deadline(closed, 5000, 'client close');
    t.equal(end.hadError, false, 'closed cleanly');
    const line = await waitLog((l) => l.event === 'conn_end', 5000, 'conn_end');
    t.match(line, { side: 'client', reset: false, bytesUp: payload.length, bytesDown: payload.length });
  });

  t.test('openssh interop – 64 MiB each way concurrently, sha256 intact', async (t) => {
    const SIZE = 64 * 1024 * 1024;
    const upSeed = 'sshkeep-upload';
    const downSeed = 'sshkeep-download';
    const expectedDown = sha256Of(prng(downSeed, SIZE));

    // (a) hashes whatever it receives until EOF, then replies "<bytes> <sha256>" and ends.
    const sinkPort = await startTarget(t, (s) => {
      const h = createHash('sha256');
      let n = 0;
      s.on('data', (c: Buffer) => {
        n += c.length;
        h.update(c);
      });
      s.on('end', () => s.end(`${n} ${h.digest('hex')}`));
    });
    // (b) streams SIZE seeded pseudo-random bytes, then ends.
    const sourcePort = await startTarget(t, (s) => {
      s.resume();
      writeAll(s, prng(downSeed, SIZE)).then(
        () => s.end(),
        () => s.destroy(),
      );
    });

    const { app, bound } = await startSshkeep(
      t,
      sshdInput(sshd, { localForwards: [`0:127.0.0.1:${sinkPort}`, `0:127.0.0.1:${sourcePort}`] }),
    );
    await deadline(app.ready(), READY_MS, 'tunnel ready');

    const upload = (async () => {
      const sock = await connect(bound[0]!.port);
      const done = outcome(sock);
      const sent = await writeAll(sock, prng(upSeed, SIZE));
      sock.end();
      const end = await done;
      return { sent, end };
    })();
    const download = (async () => {
      const sock = await connect(bound[1]!.port);
      const h = createHash('sha256');
      let n = 0;
      sock.on('data', (c: Buffer) => {
        n += c.length;
        h.update(c);
      });
      const ended = once(sock, 'end');
      sock.end(); // nothing to send; the source keeps writing after our EOF
      await ended;
      return { n, hex: h.digest('hex') };
    })();

    const [up, down] = await deadline(Promise.all([upload, download]), 40_000, '64 MiB up and down');
    t.equal(up.end.errorCode, undefined, 'upload connection had no error');
    t.equal(up.end.data.toString(), `${SIZE} ${up.sent}`, 'target received every uploaded byte intact');
    t.equal(down.n, SIZE, 'received every downloaded byte');
    t.equal(down.hex, expectedDown, 'downloaded bytes intact');
  });

  t.test('openssh interop – half-close, client first: target sees EOF, reply arrives whole', async (t) => {
    const request = 'request part 1;request part 2';
    let targetGot = '';
    let replied = false;
    const port = await startTarget(t, (s) => {
      s.setEncoding('utf8');
      s.on('data', (c: string) => (targetGot += c));
      s.on('end', () => {
        // The reply is written only after EOF: it can only arrive if the half-close got through.
        replied = true;
        s.end(`reply to [${targetGot}] `.repeat(2000));
      });
    });
    const { app, bound, logs } = await startSshkeep(t, sshdInput(sshd, { localForwards: [`0:127.0.0.1:${port}`] }));
    const waitLog = logWaiter(logs);
    await deadline(app.ready(), READY_MS, 'tunnel ready');
    const sock = await connect(bound[0]!.port);
    const closed = outcome(sock);
    sock.write('request part 1;');
    sock.end('request part 2');
    const end = await deadline(closed, 5000, 'reply and close');
    t.ok(replied, 'target saw EOF');
    t.equal(targetGot, request, 'target got the whole request before EOF');
    t.equal(end.data.toString(), `reply to [${request}] `.repeat(2000), 'full reply');
    t.ok(end.ended, "client got 'end'");
    t.equal(end.errorCode, undefined, 'no error');
    const line = await waitLog((l) => l.event === 'conn_end', 5000, 'conn_end');
    t.match(line, { side: 'client', reset: false });
  });

  t.test('openssh interop – half-close, target first: client can still send after EOF', async (t) => {
    const greeting = 'hello from the target\n';
    let resolveGot!: (s: string) => void;
    const targetGot = new Promise<string>((r) => (resolveGot = r));
    const port = await startTarget(t, (s) => {
      s.end(greeting); // done writing at once, still reading
      let got = '';
      s.setEncoding('utf8');
      s.on('data', (c: string) => (got += c));
      s.on('end', () => resolveGot(got));
    });
    const { app, bound, logs } = await startSshkeep(t, sshdInput(sshd, { localForwards: [`0:127.0.0.1:${port}`] }));
    const waitLog = logWaiter(logs);
    await deadline(app.ready(), READY_MS, 'tunnel ready');
    const sock = await connect(bound[0]!.port);
    const closed = outcome(sock);
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    await deadline(once(sock, 'end'), 5000, "greeting and 'end'");
    t.equal(Buffer.concat(chunks).toString(), greeting, 'greeting received before end');
    t.ok(sock.writable, 'client can still write');

    const late = 'late data from the client '.repeat(1000);
    sock.end(late);
    t.equal(await deadline(targetGot, 5000, `target to get the late data\n${sshd.logs()}`), late, 'target got data sent after its EOF');
    const end = await deadline(closed, 5000, 'client close');
    t.equal(end.errorCode, undefined, 'no error');
    const line = await waitLog((l) => l.event === 'conn_end', 5000, 'conn_end');
    t.match(line, { side: 'target', reset: false, bytesUp: late.length });
  });

  t.test('openssh interop – 200 concurrent connections echo distinct payloads', async (t) => {
    const N = 200;
    // Opens in flight at once are one listener each on the session's superseded signal: past 10, Node
    // would print a "memory leak" warning on stderr, an unstructured line beside the JSON logs.
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    t.teardown(() => process.off('warning', onWarning));
    const { app, bound, logs } = await startSshkeep(t, sshdInput(sshd, { localForwards: [`0:127.0.0.1:${echo.port}`] }));
    const waitLog = logWaiter(logs);
    await deadline(app.ready(), READY_MS, 'tunnel ready');
    const payloads = Array.from({ length: N }, (_, i) => Buffer.concat([...prng(`conn-${i}`, 1024)]));
    const results = await deadline(
      Promise.all(payloads.map(async (p) => roundTrip(await connect(bound[0]!.port), p))),
      30_000,
      `${N} round trips`,
    );
    const wrong = results.map((r, i) => (r.equals(payloads[i]!) ? -1 : i)).filter((i) => i >= 0);
    t.same(wrong, [], 'every connection got exactly its own payload back');
    await waitLog(() => logs.find('conn_end').length >= N, 10_000, `${N} conn_end lines`);
    const ends = logs.find('conn_end');
    t.equal(ends.length, N, 'one conn_end per connection');
    t.same(ends.filter((l) => l.reset !== false || l.bytesUp !== 1024 || l.bytesDown !== 1024), [], 'all closed cleanly, 1 KiB each way');
    t.equal(app.forwards[0]!.active, 0, 'no connection left open');
    t.equal(app.connection.generation, 1, 'all over one SSH connection');
    t.same(warnings.filter((w) => w.startsWith('MaxListenersExceededWarning')), [], 'no listener warning with 200 opens in flight');
  });

  t.test('openssh interop – target refused: client reset, conn_end connect-failed, tunnel survives', async (t) => {
    const closedPort = await refusedPort();
    const { app, bound, logs } = await startSshkeep(
      t,
      sshdInput(sshd, { localForwards: [`0:127.0.0.1:${closedPort}`, `0:127.0.0.1:${echo.port}`] }),
    );
    const waitLog = logWaiter(logs);
    await deadline(app.ready(), READY_MS, 'tunnel ready');
    const generation = app.connection.generation;

    for (const attempt of [1, 2]) {
      const sock = await connect(bound[0]!.port);
      const end = await deadline(outcome(sock, { closeOnEnd: true }), 5000, `refused client ${attempt} to be closed`);
      t.equal(end.ended, false, `attempt ${attempt}: no clean 'end' (it would look like an empty reply)`);
      t.equal(end.errorCode, 'ECONNRESET', `attempt ${attempt}: client reset`);
      t.equal(end.data.length, 0, `attempt ${attempt}: no data`);
    }
    const line = await waitLog((l) => l.event === 'conn_end' && l.reason === 'connect-failed', 5000, 'conn_end connect-failed');
    t.match(line, { side: 'target', target: `127.0.0.1:${closedPort}` });
    t.equal(logs.find('conn_end').filter((l) => l.reason === 'connect-failed').length, 2, 'one conn_end per refused connection');

    const again = await connect(bound[1]!.port);
    t.equal((await deadline(roundTrip(again, 'still alive'), 5000, 'echo after refusal')).toString(), 'still alive');
    // The same listener keeps accepting too.
    const third = await connect(bound[0]!.port);
    t.equal((await deadline(outcome(third, { closeOnEnd: true }), 5000, 'third refused close')).errorCode, 'ECONNRESET', 'refused listener still serving');
    t.equal(app.connection.state, 'ready', 'tunnel still ready');
    t.equal(app.connection.generation, generation, 'same SSH connection: no reconnect');
  });

  t.test('openssh interop – AllowTcpForwarding no: client reset, administratively-prohibited', async (t) => {
    // sshd_config is first-value-wins and the fixture writes `AllowTcpForwarding yes` first, so a plain
    // `AllowTcpForwarding no` in extraConfig would be ignored; a Match block does override it.
    const denying = await startSshd(t, { extraConfig: ['Match all', '  AllowTcpForwarding no'] });
    const { app, bound, logs } = await startSshkeep(t, sshdInput(denying, { localForwards: [`0:127.0.0.1:${echo.port}`] }));
    const waitLog = logWaiter(logs);
    await deadline(app.ready(), READY_MS, `tunnel ready\n${denying.logs()}`);
    const sock = await connect(bound[0]!.port);
    const end = await deadline(outcome(sock, { closeOnEnd: true }), 5000, 'denied client to be closed');
    t.equal(end.ended, false, "no clean 'end'");
    t.equal(end.errorCode, 'ECONNRESET', 'client reset');
    const line = await waitLog((l) => l.event === 'conn_end', 5000, 'conn_end');
    t.match(line, { side: 'target', reason: 'administratively-prohibited' }, 'reason from the SSH open failure');
    t.equal(app.connection.state, 'ready', 'tunnel still ready');
  });

  t.test('openssh interop – sshd killed under open streams: clients reset, never a clean end', async (t) => {
    const doomed = await startSshd(t);
    const chunk = Buffer.alloc(64 * 1024, 'x');
    /** Writes `chunk` for as long as the socket takes it. */
    const flood = (s: net.Socket) => {
      const more = () => {
        while (!s.destroyed && s.write(chunk));
      };
      s.on('drain', more);
      more();
    };
    const MIB = 1024 * 1024;
    let sunk = 0;
    let resolveSinking!: () => void;
    const sinking = new Promise<void>((r) => (resolveSinking = r));
    const sink = await startTarget(t, (s) =>
      s.on('data', (c: Buffer) => {
        sunk += c.length;
        if (sunk >= MIB) resolveSinking();
      }),
    );
    const firehose = await startTarget(t, (s) => {
      s.resume();
      flood(s);
    });
    const { app, bound, logs } = await startSshkeep(
      t,
      sshdInput(doomed, { localForwards: [`0:127.0.0.1:${echo.port}`, `0:127.0.0.1:${sink}`, `0:127.0.0.1:${firehose}`] }),
    );
    const waitLog = logWaiter(logs);
    await deadline(app.ready(), READY_MS, 'tunnel ready');

    // Idle, proven open by one echo.
    const idle = await connect(bound[0]!.port);
    const idleEnd = outcome(idle, { closeOnEnd: true });
    const pong = new Promise<Buffer>((r) => idle.once('data', r));
    idle.write('ping');
    t.equal((await deadline(pong, 5000, 'ping echo')).toString(), 'ping');

    // Uploading, proven flowing by the target's first MiB.
    const uploader = await connect(bound[1]!.port);
    const uploadEnd = outcome(uploader, { closeOnEnd: true });
    flood(uploader);
    await deadline(sinking, 5000, 'upload flowing');

    // Downloading, proven flowing by its first MiB.
    const downloader = await connect(bound[2]!.port);
    const downloadEnd = outcome(downloader, { closeOnEnd: true });
    let received = 0;
    const flowing = new Promise<void>((r) =>
      downloader.on('data', (c: Buffer) => {
        received += c.length;
        if (received >= MIB) r();
      }),
    );
    await deadline(flowing, 5000, 'download flowing');

    await deadline(doomed.stop(), 15_000, 'sshd stop');
    const [idleOut, uploadOut, downloadOut] = await deadline(
      Promise.all([idleEnd, uploadEnd, downloadEnd]),
      5000,
      'clients to see the cut',
    );
    const diag = { conn_end: logs.find('conn_end'), state: logs.find('state') };
    t.equal(idleOut.ended, false, "idle: never a clean 'end' (a cut stream must not look complete)", diag);
    t.equal(idleOut.errorCode, 'ECONNRESET', 'idle: ECONNRESET', diag);
    t.equal(uploadOut.ended, false, "uploading: never a clean 'end'", diag);
    t.equal(uploadOut.hadError, true, 'uploading: closed with an error', diag);
    t.match(uploadOut.errorCode, /^(ECONNRESET|EPIPE)$/, 'uploading: reset (or broken pipe on its next write)', diag);
    // The downloader's own view is not asserted: on Node 20 (libuv 1.46) a reset that arrives while
    // received data is still queued surfaces as a clean 'end' (libuv's POLLHUP partial-read shortcut,
    // libuv#4997), whatever sshkeep does. What sshkeep controls is that it reset, which its log states.
    t.ok(downloadOut.ended || downloadOut.hadError, 'downloading: closed');

    await waitLog(() => logs.find('conn_end').length >= 3, 5000, 'three conn_end lines');
    const ends = logs.find('conn_end');
    t.equal(ends.length, 3, 'one conn_end per connection');
    t.same(ends.filter((l) => l.side !== 'tunnel' || l.reset !== true || !/^SSH connection lost/.test(String(l.reason))), [], 'every connection reset because the tunnel was lost');
    await waitLog((l) => l.event === 'state' && l.to === 'reconnecting', 5000, 'tunnel reconnecting');
  });
}

await main();
