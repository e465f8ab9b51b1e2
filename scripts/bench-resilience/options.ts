/** bench-resilience.ts's command line. */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CLI_MAIN } from '../../test/fixtures/bin.js';
import { intOption } from '../lib/options.js';

export interface Options {
  json: string | undefined;
  quick: boolean;
  reps: number;
  stopSeconds: number;
  autosshPoll: number | undefined;
  only: Set<number>;
  logDir: string | undefined;
  /** sshkeep's entry point (default dist/bin/sshkeep.js). */
  cli: string;
}

export const USAGE =
  'usage: node --import @tapjs/typescript/import scripts/bench-resilience.ts [--json FILE] [--quick]\n' +
  '         [--reps N (scenario 1 repetitions; default 3, quick 1)] [--stop-seconds S (scenario 3; default 20, quick 8)]\n' +
  '         [--autossh-poll S (AUTOSSH_POLL; default: unset = autossh default 600)] [--only 1,2,3,4,5]\n' +
  "         [--log-dir DIR (keep every tool's stderr)] [--cli PATH (sshkeep entry point; default dist/bin/sshkeep.js)]\n";

export function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: 'string' },
      quick: { type: 'boolean', default: false },
      reps: { type: 'string' },
      'stop-seconds': { type: 'string' },
      'autossh-poll': { type: 'string' },
      only: { type: 'string' },
      'log-dir': { type: 'string' },
      cli: { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
  const quick = values.quick ?? false;
  const only = new Set((values.only ?? '1,2,3,4,5').split(',').map((s) => intOption('only', s.trim(), 1)));
  return {
    json: values.json,
    quick,
    reps: values.reps !== undefined ? intOption('reps', values.reps, 1) : quick ? 1 : 3,
    stopSeconds: values['stop-seconds'] !== undefined ? intOption('stop-seconds', values['stop-seconds'], 1) : quick ? 8 : 20,
    autosshPoll: values['autossh-poll'] !== undefined ? intOption('autossh-poll', values['autossh-poll'], 1) : undefined,
    only,
    logDir: values['log-dir'],
    cli: path.resolve(values.cli ?? CLI_MAIN),
  };
}
