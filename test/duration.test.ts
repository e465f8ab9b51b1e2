import t from 'tap';
import { parseDuration } from '../src/config/duration.js';
import { ConfigError } from '../src/errors.js';

t.test('duration – units and bare seconds', async (t) => {
  t.equal(parseDuration('500ms', 'x'), 500);
  t.equal(parseDuration('2s', 'x'), 2000);
  t.equal(parseDuration('1m', 'x'), 60_000);
  t.equal(parseDuration('1h', 'x'), 3_600_000);
  t.equal(parseDuration('15', 'x'), 15_000);
  t.equal(parseDuration('0.5', 'x'), 500);
  t.equal(parseDuration('0', 'x'), 0);
});

t.test('duration – malformed values are ConfigErrors naming the option', async (t) => {
  for (const bad of ['', 'abc', '-1', '1x', '1 s s', '1e3', 'ms', '1d']) {
    t.throws(() => parseDuration(bad, 'ConnectTimeout'), ConfigError, bad);
    t.throws(() => parseDuration(bad, 'ConnectTimeout'), /ConnectTimeout/);
  }
});

// Regression: Node runs a timer longer than 2^31 - 1 ms after 1 ms, so --keepalive-interval
// 2147484 probed every millisecond and --hold-timeout 2147484 reset held clients at once.
t.test('duration – longer than a timer can wait (2^31 - 1 ms, about 24.8 days) is refused, naming the option', async (t) => {
  t.equal(parseDuration('2147483647ms', 'x'), 2 ** 31 - 1, 'the longest is accepted');
  t.equal(parseDuration('596h', 'x'), 596 * 3_600_000);
  for (const bad of ['2147483648ms', '2147484', '597h', '999999999']) {
    t.throws(() => parseDuration(bad, '--hold-timeout'), { name: 'ConfigError', message: /^--hold-timeout: ".*" is too long: at most 596h/ }, bad);
  }
});
