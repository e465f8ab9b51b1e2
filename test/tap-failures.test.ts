/**
 * scripts/test-failures.ts, run by `npm test` when tap fails: the end of a CI log names each
 * failing file with its `not ok` lines and their diagnostics, and a file cut short.
 */
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { failureReport, failures } from '../scripts/lib/tap-failures.js';

const FAILED = `TAP version 14
# Subtest: sub
    ok 1 - fine
    not ok 2 - one is two
      ---
      compare: ===
      diff: |
        -2
        +1
      ...
    1..2
not ok 1 - sub # time=22.8ms
  ---
  at:
    fileName: test/a.test.ts
  ...

1..1
`;
const PASSED = 'TAP version 14\nok 1 - good\n1..1\n# time=3ms\n';
const CUT_SHORT = 'TAP version 14\n# Subtest: long\n    ok 1 - first\n';

t.test('failures – the not ok lines with their diagnostics, nothing of what passed', async (t) => {
  t.same(failures(FAILED), [
    '    not ok 2 - one is two',
    '      compare: ===',
    '      diff: |',
    '        -2',
    '        +1',
    'not ok 1 - sub # time=22.8ms',
    '  at:',
    '    fileName: test/a.test.ts',
  ]);
  t.same(failures(PASSED), [], 'a file that passed: nothing');
  t.match(failures(CUT_SHORT), [/no plan at the top level/], 'a file without its plan (killed by the timeout) is named');
});

t.test('failures – a TODO or SKIP is not a failure; a blank line inside a diagnostic does not end it', async (t) => {
  t.same(failures('not ok 1 - later # TODO not yet\nnot ok 2 - off # SKIP no tool\n1..2\n'), []);
  t.same(failures('not ok 1 - x\n  ---\n  source: |\n    a\n\n    b\n  ...\n1..1\n'), ['not ok 1 - x', '  source: |', '    a', '', '    b']);
});

t.test('failures – a long diagnostic is cut, saying how much was left out', async (t) => {
  const long = ['not ok 1 - x', '  ---', ...Array.from({ length: 40 }, (_, i) => `  line ${i}`), '  ...', '1..1'].join('\n');
  const out = failures(long);
  t.equal(out.length, 1 + 30 + 1);
  t.equal(out.at(-1), '  (10 more lines)');
});

t.test('failureReport – each failing file by its test path, and the count', async (t) => {
  const dir = t.testdir({ test: { 'a.test.ts.tap': FAILED, 'b.test.ts.tap': PASSED, 'c.test.ts.tap': CUT_SHORT } });
  const report = failureReport(dir);
  t.equal(report.failed, 2);
  const named = report.lines.filter((l) => l.startsWith('# FAILED: ')).sort();
  t.same(named, [`# FAILED: ${path.join('test', 'a.test.ts')}`, `# FAILED: ${path.join('test', 'c.test.ts')}`]);
  t.match(report.lines.at(-1), /^# 2 test file\(s\) with failures in /);
  t.same(failureReport(path.join(dir, 'none')).lines, [`# no test results in ${path.join(dir, 'none')}: tap did not run`]);
});

t.test('failureReport – the results of earlier runs are left out; none left: tap failed otherwise', async (t) => {
  const dir = t.testdir({ test: { 'old.test.ts.tap': FAILED } });
  const old = new Date(Date.now() - 60_000);
  fs.utimesSync(path.join(dir, 'test', 'old.test.ts.tap'), old, old);
  const report = failureReport(dir, Date.now() - 10_000);
  t.equal(report.failed, 0, 'a failure left by an earlier run is not this run\'s');
  t.match(report.lines.at(-1), /no failing test in .*: tap failed otherwise/);
  t.equal(failureReport(dir).failed, 1, 'without a start time: every file');
});
