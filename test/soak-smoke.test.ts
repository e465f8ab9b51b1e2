/**
 * scripts/soak.ts in miniature: ~20 s of mixed traffic (sha256-checked uploads and downloads, short echoes,
 * idle connections) through the sshkeep CLI, a relay and the real sshd, with a fault every 5–8 s. Not a
 * timing goal: nothing may be lost or corrupted, and every reset must belong to a fault. The seed is printed
 * (SOAK_SEED=n reruns the same fault schedule).
 */
import t from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { requireSshd } from './fixtures/sshd.js';
import { markdown } from '../scripts/soak/markdown.js';
import { DEFAULT_OPTIONS, type SoakOptions } from '../scripts/soak/options.js';
import { runSoak } from '../scripts/soak/run.js';
import { tcpPairListed } from '../scripts/soak/tcp-pair.js';
import { listen } from './fixtures/net.js';

t.test('soak smoke: 20 s of mixed traffic with a fault every 5–8 s, zero integrity failures', async (t) => {
  if (!requireSshd(t)) return;
  const seed = process.env.SOAK_SEED !== undefined ? Number(process.env.SOAK_SEED) >>> 0 : (Date.now() ^ process.pid) >>> 0;
  const opts: SoakOptions = {
    ...DEFAULT_OPTIONS,
    seed,
    durationMs: 20_000,
    faultEveryMs: [5_000, 8_000],
    bulkSize: [256 * 1024, 1024 * 1024],
    uploads: 1,
    downloads: 1,
    echoes: 2,
    idle: 4,
    drainMs: 12_000,
    // The last fault ends 3 s before the traffic does, so the drain does not wait on a fresh outage.
    quietTailMs: 3_000,
    sampleEveryMs: 2_000,
  };
  t.comment(`seed ${seed} (SOAK_SEED=${seed} to rerun this fault schedule)`);
  const r = await runSoak(opts, { progress: (l) => t.comment(l) });
  t.comment(markdown(r, `soak smoke, seed ${seed}`));

  t.strictSame(r.failures, [], 'no integrity failure (every completed stream verified, every reset in a fault window)');
  t.ok(r.pass, 'the run passes');
  t.ok(r.faults.length >= 1, `at least one fault happened (${r.faults.map((f) => f.kind).join(', ')})`);
  const completed = r.streams.upload.ok + r.streams.download.ok;
  t.ok(completed >= 1, `at least one bulk stream completed with a matching sha256 (${completed})`);
  t.equal(r.completed.matching, r.completed.total, 'every completed stream matches');
  t.ok(r.streams.echo.ok >= 1, 'short request/response connections completed');
  t.ok(r.streams.idle.started >= opts.idle, 'idle connections were opened');
  t.equal(r.sshkeepExit, 'exited with 0', 'sshkeep exits 0 on SIGTERM after the run');
  t.ok(r.resources.samples.length >= 3, `sshkeep's RSS and fds were sampled (${r.resources.samples.length})`);
});

// The soak tells a reset the Node client saw as EOF (libuv reports an RST with unread data as EOF about half of the
// time) from a real clean end through /proc/net/tcp. If that check were wrong, a truncation would pass as a reset.
t.test('soak smoke: tcpPairListed tells a reset from an orderly close, from the client\'s end event', { skip: process.platform === 'linux' ? false : 'Linux /proc only' }, async (t) => {
  let mode: 'reset' | 'fin' = 'fin';
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    if (mode === 'fin') return void s.end('bye');
    s.write(Buffer.alloc(1 << 20));
    setImmediate(() => s.resetAndDestroy());
  });
  await listen(server);
  t.teardown(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  const finish = async () => {
    const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    await once(c, 'connect');
    const local = c.localPort!;
    c.end('x');
    c.resume();
    const how = await new Promise<string>((resolve) => {
      c.on('end', () => resolve(`end, listed ${tcpPairListed(local, port)}`));
      c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
    c.destroy();
    return how;
  };
  mode = 'fin';
  t.equal(await finish(), 'end, listed true', 'an orderly close: end, and the pair is still listed');
  mode = 'reset';
  const seen = new Set<string>();
  for (let i = 0; i < 20; i++) seen.add(await finish());
  t.notOk(seen.has('end, listed true'), `a reset is never an end with the pair listed (seen: ${[...seen].join('; ')})`);
});
