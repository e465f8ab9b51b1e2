import t from 'tap';
import { backoffDelayMs } from '../src/tunnel/backoff.js';
import { DEFAULTS } from '../src/config/defaults.js';

const almostOne = () => 0.999999;
const zero = () => 0;

t.test('backoff – the first retry (attempt 0) is immediate', async (t) => {
  t.equal(backoffDelayMs(0), 0);
  t.equal(backoffDelayMs(0, almostOne), 0);
  t.equal(backoffDelayMs(-3, almostOne), 0, 'negative attempts are immediate too');
});

t.test('backoff – defaults are 250 ms base and 5000 ms cap', async (t) => {
  t.equal(DEFAULTS.backoffBaseMs, 250);
  t.equal(DEFAULTS.backoffCapMs, 5000);
});

t.test('backoff – with random near 1 the delay grows 250·2^(n-1) and caps at 5000', async (t) => {
  const expected = [0, 250, 500, 1000, 2000, 4000, 5000, 5000, 5000, 5000];
  for (let n = 1; n < expected.length; n++) {
    const ceiling = expected[n]!;
    const d = backoffDelayMs(n, almostOne);
    t.equal(d, Math.floor(0.999999 * ceiling), `attempt ${n}: just under ${ceiling}`);
    t.ok(d < ceiling && d >= ceiling - 1, `attempt ${n}: ${d} is in [${ceiling - 1}, ${ceiling})`);
  }
  t.ok(backoffDelayMs(2, almostOne) > backoffDelayMs(1, almostOne), 'grows');
  t.equal(backoffDelayMs(7, almostOne), backoffDelayMs(6, almostOne), 'stops growing at the cap');
});

t.test('backoff – with random 0 every delay is 0 (full jitter)', async (t) => {
  for (let n = 0; n <= 100; n++) t.equal(backoffDelayMs(n, zero), 0, `attempt ${n}`);
});

t.test('backoff – never exceeds the cap, always a whole number ≥ 0', async (t) => {
  const randoms = [zero, () => 0.5, () => 0.123456789, almostOne, Math.random];
  let checked = 0;
  for (const random of randoms) {
    for (let n = 0; n <= 100; n++) {
      const d = backoffDelayMs(n, random);
      if (!(Number.isInteger(d) && d >= 0 && d <= DEFAULTS.backoffCapMs)) {
        t.fail(`attempt ${n}: ${d} is not an integer in [0, ${DEFAULTS.backoffCapMs}]`);
      }
      checked++;
    }
  }
  t.equal(checked, randoms.length * 101);
  t.equal(backoffDelayMs(100, almostOne), 4999, 'a huge attempt count is still capped');
  t.equal(backoffDelayMs(1e9, almostOne), 4999, 'no Infinity/NaN for absurd attempt counts');
});

t.test('backoff – base and cap can be passed in', async (t) => {
  t.equal(backoffDelayMs(1, () => 0.5, 100, 1000), 50);
  t.equal(backoffDelayMs(3, () => 0.5, 100, 1000), 200);
  t.equal(backoffDelayMs(10, () => 0.5, 100, 1000), 500);
  t.equal(backoffDelayMs(4, () => 0.5), 1000, 'default base 250: 0.5 · 2000');
});
