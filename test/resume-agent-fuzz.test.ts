import t from 'tap';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { FrameParser, encodeFrame, type Frame } from '../src/resume/frames.js';
import { bytes, mutate, mutation } from './fixtures/fuzz-properties.js';
import { deadline, startEchoFor } from './fixtures/net.js';
import { rssKiB } from './fixtures/proc.js';
import { AgentChannel, TESTED_INTERPRETERS, ping, startAgent } from './fixtures/resume-agent.js';

/**
 * Each agent's own frame parser (Perl, Python), fuzzed over its socket: garbage and mutated frame
 * sequences, on a fresh channel and on a stream's channel. Whatever comes in, the agent
 * answers with well-formed frames, ends the channel when told to or when the input is
 * bad (an ERROR is its last frame), and lives on with bounded memory. Seeded and small.
 */
const RUNS = { seed: 42, numRuns: 150, interruptAfterTimeLimit: 30_000, markInterruptAsFailure: true };

const offset = fc.oneof(fc.nat(70_000), fc.maxSafeNat());
const frame: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({ type: fc.constant('attach' as const), id: bytes(16).map((b) => Buffer.concat([b, Buffer.alloc(16 - b.length)])), received: offset }),
  fc.record({ type: fc.constant('data' as const), offset, ack: offset, data: bytes(200).filter((b) => b.length > 0) }),
  fc.record({ type: fc.constant('ack' as const), ack: offset }),
  fc.record({ type: fc.constant('eof' as const), offset }),
  fc.record({ type: fc.constant('reset' as const), offset, reason: fc.string({ maxLength: 20 }) }),
  fc.record({ type: fc.constant('error' as const), code: fc.integer({ min: 0, max: 255 }), message: fc.string({ maxLength: 20 }) }),
  fc.record({ type: fc.constant('accept' as const), received: offset }),
  fc.constantFrom<Frame>({ type: 'ping' }, { type: 'pong', version: 'abcdefabcdef', streams: 1 }),
);
const input = fc.oneof(
  bytes(400),
  fc.tuple(fc.array(frame, { minLength: 1, maxLength: 5 }), fc.array(mutation, { maxLength: 3 })).map(([frames, mutations]) =>
    mutate(Buffer.concat(frames.map(encodeFrame)), mutations),
  ),
);

/** An OPEN would have the agent dial whatever host the mutation wrote: such inputs are not sent. */
function dialsNowhere(bytes: Buffer): boolean {
  return !new FrameParser().push(bytes).frames.some((f) => f.type === 'open');
}

/** Sends the bytes and ends our side; checks what comes back until the agent closes the channel. */
async function exchange(c: AgentChannel, bytes: Buffer): Promise<Frame[]> {
  const frames: Frame[] = [];
  c.socket.end(bytes);
  for (;;) {
    const frame = await c.next(5000, 'the agent to answer or close');
    if (!frame) break;
    frames.push(frame);
  }
  assert.equal(c.parseError, undefined, `the agent sent a malformed frame: ${c.parseError}`);
  const error = frames.findIndex((f) => f.type === 'error');
  assert.ok(error === -1 || error === frames.length - 1, `an ERROR is the agent's last frame: ${frames.map((f) => f.type).join(' ')}`);
  return frames;
}

for (const interpreter of TESTED_INTERPRETERS) {
  t.test(`the ${interpreter} agent`, async (t) => {
    const agent = await startAgent(t, { interpreter });

    t.test('a fresh channel: any input is answered with good frames and a close', async (t) => {
      await fc.assert(
        fc.asyncProperty(input, async (bytes) => {
          fc.pre(dialsNowhere(bytes));
          await exchange(await agent.channel(), bytes);
        }),
        RUNS,
      );
      t.equal((await ping(agent)).streams, 0, 'the agent lives on, holding nothing');
    });

    t.test('a stream\'s channel: any input is answered with good frames and a close', async (t) => {
      const echo = await startEchoFor(t);
      await fc.assert(
        fc.asyncProperty(input, async (bytes) => {
          fc.pre(dialsNowhere(bytes));
          const c = await agent.channel();
          c.send({ type: 'open', id: randomBytes(16), graceMs: 0, port: echo.port, host: '127.0.0.1' });
          assert.equal((await c.next())?.type, 'accept');
          await exchange(c, bytes);
        }),
        RUNS,
      );
      // Grace 0: each stream was reset as soon as its channel closed.
      await deadline(
        (async () => {
          while ((await ping(agent)).streams > 0);
        })(),
        5000,
        'every stream to be forgotten',
      );
      const [pid] = agent.pids();
      t.ok(rssKiB(pid!) < 64 * 1024, `the agent's memory stays small: ${rssKiB(pid!)} KiB`);
    });
  });
}
