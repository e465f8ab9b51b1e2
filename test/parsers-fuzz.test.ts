import t from 'tap';
import fc from 'fast-check';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fuzzTargets, type AnyTarget } from './fixtures/fuzz-properties.js';

/**
 * Every parser that takes outside input, fuzzed (see test/fixtures/fuzz-properties.ts):
 * a valid value or a named error with a one-paragraph message, never another exception;
 * generated valid input parses to its values. Seeded and small; `npm run fuzz` runs
 * 100,000 inputs per property. SOCKS is fuzzed at length in socks-fuzz.test.ts, the resume
 * frames in resume-frames-fuzz.test.ts.
 */
const SEED = 42;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sshkeep-fuzz-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The failure as a message: the shrunk counterexample and what went wrong. */
function failure(details: fc.RunDetails<[unknown]>): string {
  if (!details.failed) return `${details.numRuns} runs`;
  if (details.counterexample === null) return `no counterexample (interrupted: ${details.interrupted}, skips: ${details.numSkips})`;
  const err = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
  return `counterexample ${fc.stringify(details.counterexample[0])} (seed ${details.seed}, path ${details.counterexamplePath}): ${err}`;
}

const targets: AnyTarget[] = fuzzTargets(dir).filter((target) => target.parser !== 'socks' && target.parser !== 'resume-frames');

for (const target of targets) {
  t.test(target.name, async (t) => {
    const run = fc.check(fc.property(target.arbitrary, (input: unknown) => void target.check(input)), { seed: SEED, numRuns: target.testRuns });
    t.notOk(run.failed, `${target.name}: ${failure(run)}`);
  });
}

t.test('every parser of outside input is covered', async (t) => {
  const parsers = new Set(fuzzTargets(dir).map((target) => target.parser));
  for (const p of ['parseLocalForward', 'parseRemoteForward', 'parseDynamicForward', 'parseDuration', 'parseSize', 'parseCount', 'parseHostPort', 'parseDashO', 'parseYesNo',
    'readSshConfig', 'known_hosts', 'readConfigFile', 'buildSettings', 'resolveTunnel', 'socks', 'resume-frames']) {
    t.ok(parsers.has(p), p);
  }
});
