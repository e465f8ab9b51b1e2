/**
 * Fuzzes every parser of outside input (issue 7, "Bad input, fuzzed"): forward specs,
 * durations, sizes and counts, -o options, ssh_config, known_hosts, the config file,
 * the command line (parseCli → buildSettings), resolveTunnel, the SOCKS4/5 parser and the
 * resume protocol's frame parser.
 * The properties are those of test/parsers-fuzz.test.ts (test/fixtures/fuzz-properties.ts):
 * a valid value or a named error with a one-paragraph message, never another exception.
 *
 *   npm run fuzz -- [--runs N] [--seed S] [--only name[,name…]]
 *   node --import @tapjs/typescript/import scripts/fuzz.ts [same options]
 *
 * --runs   inputs per property (default 100000; a property that cannot do that in a few
 *          minutes has a lower default, named in the table)
 * --seed   the fast-check seed (default: random, printed, so a run can be repeated)
 * --only   properties whose parser or name contains one of the words, e.g. --only socks,parseSize
 *
 * Prints a table (property, inputs tried, valid, named errors, failures) to stdout, then
 * the first and the shrunk counterexample of each failing property; progress goes to
 * stderr. Exits 1 on any failure.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import fc from 'fast-check';
import { fuzzTargets, shrink, tally, yamlWarnings, type AnyTarget, type Tally } from '../test/fixtures/fuzz-properties.js';
import { parseCommandLine } from './lib/options.js';

const DEFAULT_RUNS = 100_000;
/** Shrinking a long SOCKS input byte by byte can take many minutes: the first failing input is printed anyway. */
const SHRINK_LIMIT_MS = 60_000;

const USAGE = 'usage: node --import @tapjs/typescript/import scripts/fuzz.ts [--runs N] [--seed S] [--only name[,name...]]\n';
const { values, runsGiven, seed } = parseCommandLine('fuzz', USAGE, (args) => {
  const { values } = parseArgs({ args, options: { runs: { type: 'string' }, seed: { type: 'string' }, only: { type: 'string' } } });
  const runsGiven = values.runs === undefined ? undefined : Number(values.runs);
  if (runsGiven !== undefined && !(Number.isSafeInteger(runsGiven) && runsGiven > 0)) throw new Error(`--runs ${values.runs}: expected a whole number above 0`);
  const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
  if (!Number.isSafeInteger(seed)) throw new Error(`--seed ${values.seed}: expected a whole number`);
  return { values, runsGiven, seed };
});

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sshkeep-fuzz-'));
const cleanup = () => fs.rmSync(dir, { recursive: true, force: true });
process.on('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));

const words = values.only?.split(',').map((w) => w.trim().toLowerCase()).filter(Boolean);
const targets = fuzzTargets(dir).filter((t) => !words || words.some((w) => t.parser.toLowerCase().includes(w) || t.name.toLowerCase().includes(w)));
if (targets.length === 0) {
  process.stderr.write(`fuzz: --only ${values.only}: no property matches; the parsers are ${[...new Set(fuzzTargets(dir).map((t) => t.parser))].join(', ')}\n`);
  process.exit(2);
}

interface Row {
  target: AnyTarget;
  runs: number;
  tally: Tally;
  ms: number;
}

const fmt = (n: number) => n.toLocaleString('en-US');
const rows: Row[] = [];
const started = performance.now();
process.stderr.write(`fuzz: seed ${seed}, ${targets.length} properties\n`);
for (const target of targets) {
  const runs = runsGiven ?? target.scriptRuns?.runs ?? DEFAULT_RUNS;
  const t0 = performance.now();
  const result = tally(target, { numRuns: runs, seed });
  const row = { target, runs, tally: result, ms: performance.now() - t0 };
  rows.push(row);
  process.stderr.write(`  ${target.name}: ${fmt(result.tried)} tried, ${fmt(result.failures)} failures, ${(row.ms / 1000).toFixed(1)} s\n`);
}
const wall = (performance.now() - started) / 1000;

// The table, as Markdown.
const header = ['property', 'inputs tried', 'valid', 'named errors', 'failures', 'time'];
const lines = rows.map(({ target, runs, tally: t, ms }) => [
  target.name + (runsGiven === undefined && target.scriptRuns ? ` (default ${fmt(runs)} runs: ${target.scriptRuns.why})` : ''),
  fmt(t.tried),
  fmt(t.valid),
  fmt(t.named),
  fmt(t.failures),
  `${(ms / 1000).toFixed(1)} s`,
]);
const total = rows.reduce((s, r) => ({ tried: s.tried + r.tally.tried, valid: s.valid + r.tally.valid, named: s.named + r.tally.named, failures: s.failures + r.tally.failures }), {
  tried: 0, valid: 0, named: 0, failures: 0,
});
lines.push(['**total**', fmt(total.tried), fmt(total.valid), fmt(total.named), fmt(total.failures), `${wall.toFixed(1)} s`]);
const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
let out = `sshkeep fuzz: seed ${seed}, ${runsGiven === undefined ? `${fmt(DEFAULT_RUNS)} inputs per property unless noted` : `${fmt(runsGiven)} inputs per property`}, node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model.trim()}\n\n`;
out += `${line(header)}\n|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|\n${lines.map(line).join('\n')}\n`;
out += '\nvalid: a value (SOCKS: a request, or waiting for more bytes); named errors: ConfigError/HostKeyError with a one-paragraph message (SOCKS: a fail step with its reply);\n';
out += 'failures: anything else (another exception, a wrong value, a message with a line break or stack).\n';
if (yamlWarnings.count > 0) out += `readConfigFile let ${fmt(yamlWarnings.count)} YAML warnings through to process.emitWarning (counted, not printed).\n`;

// Counterexamples.
const failing = rows.filter((r) => r.tally.failures > 0);
for (const { target, runs, tally: t } of failing) {
  out += `\n### ${target.name}: ${fmt(t.failures)} failure(s) in ${fmt(t.tried)}\n`;
  const first = t.first!;
  out += `first failing input: ${fc.stringify(first.input).slice(0, 500)}\n  ${first.error}\n`;
  process.stderr.write(`fuzz: shrinking ${target.name}\n`);
  const shrunk = shrink(target, { numRuns: runs, seed, timeLimitMs: SHRINK_LIMIT_MS });
  if (shrunk) {
    out += `shrunk: ${shrunk.counterexample.slice(0, 500)} after ${shrunk.shrinks} shrinks${shrunk.interrupted ? ' (time limit)' : ''}\n  ${shrunk.error}\n`;
  }
}
process.stdout.write(out);
process.stderr.write(`fuzz: ${fmt(total.tried)} inputs in ${wall.toFixed(1)} s, ${fmt(total.failures)} failure(s)\n`);
process.exitCode = total.failures > 0 ? 1 : 0;
