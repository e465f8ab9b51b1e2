/**
 * Run by `npm test` when tap fails: each failing test file's `not ok` lines and their
 * diagnostics, from tap's saved results, so that the last lines of a CI log name what failed.
 *
 *   node --import @tapjs/typescript/import scripts/test-failures.ts [DIR]   (default .tap/test-results)
 */
import { parseArgs } from 'node:util';
import { failureReport } from './lib/tap-failures.js';
import { parseCommandLine } from './lib/options.js';

const USAGE = 'usage: node --import @tapjs/typescript/import scripts/test-failures.ts [DIR]\n';
const dir = parseCommandLine('test-failures', USAGE, (args) => {
  const { positionals } = parseArgs({ args, options: {}, allowPositionals: true });
  if (positionals.length > 1) throw new Error(`one directory at most, got ${positionals.length}`);
  return positionals[0] ?? '.tap/test-results';
});
process.stdout.write(`${failureReport(dir).lines.join('\n')}\n`);
