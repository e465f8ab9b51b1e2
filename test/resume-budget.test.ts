/**
 * --resume-buffer-total reached by many streams at once, each paused by its own full buffer, by
 * the total, or by both, while a slow target holds the acks back: every stream is woken when
 * room frees up, and finishes with each of its bytes delivered once, in order.
 */
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import t from 'tap';
import { requireSshd, sshdInput } from './fixtures/sshd.js';
import { connect, deadline, listenFor, outcome, until } from './fixtures/net.js';
import { startSshkeep } from './fixtures/tunnel.js';
import { agentChecked, resumeSshd } from './fixtures/resume.js';
import { ReplayBudget } from '../src/resume/stream.js';

const STREAMS = 8;
const BYTES_EACH = 2 * 1024 * 1024;
/** The slow target takes one read, then nothing for this long. */
const READ_PAUSE_MS = 5;

/** The process cap, with the most it ever held and how often a stream waited on it: the test must have reached it to mean anything. */
class WatchedBudget extends ReplayBudget {
  peakBytes = 0;
  waits = 0;
  override add(n: number): void {
    super.add(n);
    this.peakBytes = Math.max(this.peakBytes, this.usedBytes);
  }
  override whenRoom(wake: () => void): void {
    this.waits++;
    super.whenRoom(wake);
  }
}

/** A target that reads slowly and keeps, per connection that sent anything, the sha256 and length of what came. */
function slowSink() {
  const got: { sha256: string; bytes: number; ended: boolean }[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const server = net.createServer((s) => {
    s.on('error', () => {});
    const hash = createHash('sha256');
    const seen = { sha256: '', bytes: 0, ended: false };
    s.on('data', (c: Buffer) => {
      if (seen.bytes === 0) got.push(seen); // the policy check's connection sends nothing
      hash.update(c);
      seen.bytes += c.length;
      s.pause();
      const timer = setTimeout(() => {
        timers.delete(timer);
        s.resume();
      }, READ_PAUSE_MS);
      timers.add(timer);
    });
    s.on('end', () => {
      seen.sha256 = hash.digest('hex');
      seen.ended = true;
      s.end();
    });
  });
  return { server, got, stop: () => timers.forEach((timer) => clearTimeout(timer)) };
}

async function main(): Promise<void> {
  if (!requireSshd(t)) return;

  // Reads of up to 64 KiB against a 32 KiB --resume-buffer: each read fills a stream's own buffer
  // while the total is full too; its own ack then empties its buffer with the total still full
  // (the stall this pins: 6 of 8 streams stopped at 64 KiB). Against 256 KiB, streams also stop
  // on the total alone.
  for (const [ownBuffer, total] of [['32KiB', 128 * 1024], ['256KiB', 512 * 1024]] as const) {
    t.test(`resume budget – ${STREAMS} streams past --resume-buffer-total ${total / 1024}KiB (--resume-buffer ${ownBuffer}), slow target: every stream completes, byte for byte`, async (t) => {
      const { sshd } = await resumeSshd(t);
      const sink = slowSink();
      t.teardown(sink.stop);
      const port = await listenFor(t, sink.server);
      const budget = new WatchedBudget(total);
      const input = sshdInput(sshd, { localForwards: [`0:127.0.0.1:${port}`], keepaliveInterval: '1s', resume: 'yes', resumeBuffer: ownBuffer });
      const { app, bound } = await startSshkeep(t, input, { replayBudget: budget });
      await deadline(app.ready(), 10_000, 'tunnel ready');
      await agentChecked(app);
      const socks = await Promise.all(Array.from({ length: STREAMS }, () => connect(bound[0]!.port)));
      t.teardown(() => socks.forEach((s) => s.destroy()));
      // Each stream through the agent before it sends: its bytes fill the replay buffer as it reads, not the hold.
      await until(() => app.report().resume!.resumable === STREAMS, 10_000, 'every stream through the agent');
      const ends = socks.map((s) => outcome(s));
      const sent = socks.map((s) => {
        const data = randomBytes(BYTES_EACH); // each stream's own bytes: a mix-up between streams changes a hash
        s.end(data);
        return createHash('sha256').update(data).digest('hex');
      });
      // A stalled stream never ends: wait for all, then say which fell short.
      await until(() => sink.got.filter((g) => g.ended).length === STREAMS, 30_000, 'every stream to reach the target').catch(() => {});
      t.ok(budget.peakBytes >= total, `the total was reached (${budget.peakBytes} bytes held at most)`);
      t.ok(budget.waits > 0, `streams waited on the total (${budget.waits} times)`);
      t.same(sink.got.map((g) => g.bytes), Array(STREAMS).fill(BYTES_EACH), 'every byte of every stream reached the target');
      t.same(sink.got.map((g) => g.sha256).sort(), [...sent].sort(), 'each stream with its own sha256');
      const results = await deadline(Promise.all(ends), 10_000, 'every client to finish');
      t.same(results.map((r) => ({ ended: r.ended, errorCode: r.errorCode })), Array(STREAMS).fill({ ended: true, errorCode: undefined }), 'every client ends cleanly');
      await until(() => budget.usedBytes === 0, 5000, 'the total back to nothing');
    });
  }
}

void main();
