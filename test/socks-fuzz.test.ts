import t from 'tap';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import type { Step } from '../src/forward/socks.js';
import { bytes, cuts, handshake, mutate, mutation, parseEveryWay, sameHost, socksInput, socksOptions } from './fixtures/fuzz-properties.js';

/**
 * Seeded, so a run is repeatable. A failure is still reported when the time
 * limit cuts its shrinking short: shrinking a 1200-byte input byte by byte can
 * take many minutes. Passing runs take about a second.
 */
const RUNS = { seed: 42, numRuns: 2000, interruptAfterTimeLimit: 30_000, markInterruptAsFailure: true };

// The arbitraries and parseEveryWay live in fixtures/fuzz-properties.ts, shared with scripts/fuzz.ts.

t.test('random bytes never throw, and give the same outcome however they are cut', async (t) => {
  // Starts that get random bytes past the first checks, into each phase; long tails too, to reach the length limits.
  fc.assert(
    fc.property(socksOptions, socksInput, cuts, (options, input, cuts) => {
      parseEveryWay(options, input, cuts);
    }),
    RUNS,
  );
  t.pass(`${RUNS.numRuns} runs`);
});

t.test('valid handshakes parse to their target however they are cut', async (t) => {
  fc.assert(
    fc.property(handshake, bytes(64), cuts, ({ options, bytes, expected }, rest, cuts) => {
      const { step } = parseEveryWay(options, Buffer.concat([bytes, rest]), cuts);
      assert.equal(step.type, 'request', step.type === 'fail' ? step.reason : step.type);
      const { request } = step as Extract<Step, { type: 'request' }>;
      assert.ok(sameHost(request.target.host, expected.target.host), `${request.target.host} is ${expected.target.host}`);
      assert.deepStrictEqual({ ...request, target: { ...request.target, host: expected.target.host } }, { ...expected, rest });
    }),
    RUNS,
  );
  t.pass(`${RUNS.numRuns} runs`);
});

t.test('mutated valid handshakes never throw, and give the same outcome however they are cut', async (t) => {
  fc.assert(
    fc.property(handshake, fc.array(mutation, { minLength: 1, maxLength: 4 }), cuts, ({ options, bytes }, mutations, cuts) => {
      parseEveryWay(options, mutate(bytes, mutations), cuts);
    }),
    RUNS,
  );
  t.pass(`${RUNS.numRuns} runs`);
});
