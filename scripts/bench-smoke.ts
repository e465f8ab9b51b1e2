/**
 * CI smoke benchmark: a regression guard on sshkeep's bulk throughput, as a ratio to OpenSSH's so that
 * machine speed does not matter. Starts a loopback sshd (each tool negotiates its own default cipher,
 * as a user gets it; --cipher NAME restricts sshd so both use NAME) and the bench targets, then runs sshkeep and
 * `ssh -N -L` A B A B for --rounds rounds (default 5), each a fresh process, each moving --size-mib
 * (default 64) up and then down after an unmeasured warm-up (--warm-mib, default 16). Reports, per
 * direction, the median over the rounds of the round's ratio sshkeep MB/s / ssh MB/s (the two run back
 * to back, so a load change on the machine mostly hits both), and the median MB/s of each tool.
 * It also runs 8 connections × 64-byte request/reply round trips (--small-requests each, default 300, after
 * as many unmeasured) and reports the ratio of requests/s (issue 17). test/bench-smoke.test.ts asserts
 * each ratio ≥ 0.5.
 *
 *   npm run build && node --import @tapjs/typescript/import scripts/bench-smoke.ts [--rounds 5] [--size-mib 64] [--warm-mib 16] [--small-requests 300] [--cipher NAME]
 *
 * The run is scripts/bench/smoke.ts; everything it measures with comes from scripts/bench/.
 */
import { parseArgs } from 'node:util';
import { abortSmoke, describe, runSmoke } from './bench/smoke.js';
import { runMain } from './lib/main.js';
import { intOption, parseCommandLine } from './lib/options.js';

const USAGE =
  'usage: npm run build && node --import @tapjs/typescript/import scripts/bench-smoke.ts [--rounds 5] [--size-mib 64] [--warm-mib 16]\n' +
  '         [--small-requests 300] [--cipher NAME]\n';

const options = parseCommandLine('bench-smoke', USAGE, (args) => {
  const { values } = parseArgs({
    args,
    options: {
      rounds: { type: 'string', default: '5' },
      'size-mib': { type: 'string', default: '64' },
      cipher: { type: 'string' },
      'warm-mib': { type: 'string', default: '16' },
      'small-requests': { type: 'string', default: '300' },
    },
    strict: true,
  });
  return {
    rounds: intOption('rounds', values.rounds, 1),
    sizeMiB: intOption('size-mib', values['size-mib'], 1),
    warmMiB: intOption('warm-mib', values['warm-mib'], 1),
    smallRequests: intOption('small-requests', values['small-requests'], 1),
    cipher: values.cipher,
  };
});

async function main(): Promise<void> {
  const r = await runSmoke({ ...options, log: (l) => process.stderr.write(`  ${l}\n`) });
  process.stdout.write(`${describe(r, 'upload')}\n${describe(r, 'download')}\n${describe(r, 'small')}\n(${r.seconds.toFixed(1)} s)\n`);
}

runMain('bench-smoke', main, abortSmoke);
