import t from 'tap';
import { backoffDelayMs } from '../src/ssh/backoff.js';
import { remoteRetry } from '../src/tuning.js';
import { DEFAULTS } from '../src/config/defaults.js';

const policy = { baseMs: DEFAULTS.backoffBaseMs, capMs: DEFAULTS.backoffCapMs };
const almostOne = () => 0.999999;
const zero = () => 0;

t.test('backoff – the first retry (attempt 0) is immediate', async (t) => {
  t.equal(backoffDelayMs(0, policy), 0);
  t.equal(backoffDelayMs(0, policy, almostOne), 0);
  t.equal(backoffDelayMs(-3, policy, almostOne), 0, 'negative attempts are immediate too');
});

t.test('backoff – defaults are 250 ms base and 5000 ms cap', async (t) => {
  t.equal(DEFAULTS.backoffBaseMs, 250);
  t.equal(DEFAULTS.backoffCapMs, 5000);
});

t.test('backoff – with random near 1 the delay grows 250·2^(n-1) and caps at 5000', async (t) => {
  const expected = [0, 250, 500, 1000, 2000, 4000, 5000, 5000, 5000, 5000];
  for (let n = 1; n < expected.length; n++) {
    const ceiling = expected[n]!;
    const d = backoffDelayMs(n, policy, almostOne);
    t.equal(d, Math.floor(0.999999 * ceiling), `attempt ${n}: just under ${ceiling}`);
    t.ok(d < ceiling && d >= ceiling - 1, `attempt ${n}: ${d} is in [${ceiling - 1}, ${ceiling})`);
  }
  t.ok(backoffDelayMs(2, policy, almostOne) > backoffDelayMs(1, policy, almostOne), 'grows');
  t.equal(backoffDelayMs(7, policy, almostOne), backoffDelayMs(6, policy, almostOne), 'stops growing at the cap');
});

t.test('backoff – with random 0 every delay is 0 (full jitter)', async (t) => {
  for (let n = 0; n <= 100; n++) t.equal(backoffDelayMs(n, policy, zero), 0, `attempt ${n}`);
});

t.test('backoff – never exceeds the cap, always a whole number ≥ 0', async (t) => {
  const randoms = [zero, () => 0.5, () => 0.123456789, almostOne, Math.random];
  let checked = 0;
  for (const random of randoms) {
    for (let n = 0; n <= 100; n++) {
      const d = backoffDelayMs(n, policy, random);
      if (!(Number.isInteger(d) && d >= 0 && d <= DEFAULTS.backoffCapMs)) {
        t.fail(`attempt ${n}: ${d} is not an integer in [0, ${DEFAULTS.backoffCapMs}]`);
      }
      checked++;
    }
  }
  t.equal(checked, randoms.length * 101);
  t.equal(backoffDelayMs(100, policy, almostOne), 4999, 'a huge attempt count is still capped');
  t.equal(backoffDelayMs(1e9, policy, almostOne), 4999, 'no Infinity/NaN for absurd attempt counts');
});

t.test('backoff – base and cap can be passed in', async (t) => {
  t.equal(backoffDelayMs(1, { baseMs: 100, capMs: 1000 }, () => 0.5), 50);
  t.equal(backoffDelayMs(3, { baseMs: 100, capMs: 1000 }, () => 0.5), 200);
  t.equal(backoffDelayMs(10, { baseMs: 100, capMs: 1000 }, () => 0.5), 500);
  t.equal(backoffDelayMs(4, policy, () => 0.5), 1000, 'default base 250: 0.5 · 2000');
});

t.test('remote retry – a refused -R is asked again every 500 ms for 30 s, then doubling up to 30 s', async (t) => {
  t.same([1, 2, 60].map(remoteRetry), [500, 500, 500], 'the first 60 attempts: every 500 ms');
  t.same([61, 62, 63, 64, 65].map(remoteRetry), [1000, 2000, 4000, 8000, 16000], 'then doubling');
  t.same([66, 100, 10_000].map(remoteRetry), [30_000, 30_000, 30_000], 'capped at 30 s');
});
