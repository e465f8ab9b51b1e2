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
