/**
 * Run by `npm test` when tap fails: each failing test file's `not ok` lines and their
 * diagnostics, from tap's saved results, so that the last lines of a CI log name what failed.
 *
 *   node --import @tapjs/typescript/import scripts/test-failures.ts [--since SECONDS] [DIR]
 *
 * DIR defaults to .tap/test-results; --since (seconds since the epoch, when tap started) leaves
 * out the results earlier runs left there.
 */
import { parseArgs } from 'node:util';
import { failureReport } from './lib/tap-failures.js';
import { intOption, parseCommandLine } from './lib/options.js';

const USAGE = 'usage: node --import @tapjs/typescript/import scripts/test-failures.ts [--since SECONDS] [DIR]\n';
const { dir, since } = parseCommandLine('test-failures', USAGE, (args) => {
  const { values, positionals } = parseArgs({ args, options: { since: { type: 'string', default: '0' } }, allowPositionals: true });
  if (positionals.length > 1) throw new Error(`one directory at most, got ${positionals.length}`);
  return { dir: positionals[0] ?? '.tap/test-results', since: intOption('since', values.since, 0) };
});
// A second's leeway: the start time comes from date(1), in whole seconds.
process.stdout.write(`${failureReport(dir, (since - 1) * 1000).lines.join('\n')}\n`);
