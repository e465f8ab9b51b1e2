/**
 * Every script under scripts/ answers a bad command line as sshkeep does: one line saying what is
 * wrong, then its usage, exit 2, no stack trace (issue 17: bench-resume-agent, bench-resume-frames
 * and fuzz parsed at top level and printed Node's trace). The scripts are loaded in one process
 * (fixtures/load-scripts.ts: a process each cost over a second of CPU each, mostly loading
 * TypeScript), and one of them is also run as a user runs it, for the exit code the shell sees.
 */
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, untracked } from './fixtures/bin.js';
import type { ScriptLoad } from './fixtures/load-scripts.js';

/** audit.ts takes no options: it runs `npm audit` against the registry, and its exit 2 means "could not check". */
const NO_OPTIONS = new Set(['audit.ts']);

const scripts = fs
  .readdirSync(path.join(REPO_ROOT, 'scripts'))
  .filter((f) => f.endsWith('.ts') && !NO_OPTIONS.has(f))
  .sort()
  .map((f) => path.join('scripts', f));

/**
 * Transpile only, as tap runs tests (type-checking would take seconds); run untracked by tap (no
 * process tracking or coverage): these runs test the scripts' exits, not sshkeep's code.
 */
function childEnv(): NodeJS.ProcessEnv {
  return { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' };
}

function node(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(...untracked(process.execPath, ['--import', '@tapjs/typescript/import', ...args]), { cwd: REPO_ROOT, env: childEnv(), timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}

/** What a bad option must give: `name: <what is wrong>`, then the usage, nothing on stdout. */
function checkUsageError(t: Test, script: string, r: { stdout: string; stderr: string }): void {
  const name = path.basename(script, '.ts');
  const [first = '', second = ''] = r.stderr.split('\n');
  t.match(first, new RegExp(`^${name}: .*--no-such-option`), `${script}: the first line names the script and the option`);
  t.match(second, /^usage: /, `${script}: then the usage`);
  t.notMatch(r.stderr, /^\s+at /m, `${script}: no stack trace`);
  t.equal(r.stdout, '', `${script}: nothing on stdout`);
}

// Both started at once: two cores.
const loaded = node(['test/fixtures/load-scripts.ts', JSON.stringify(['--no-such-option']), ...scripts]);
const oneRun = path.join('scripts', 'bench-resume-frames.ts');
const ran = node([oneRun, '--no-such-option']);

t.test('scripts – an unknown option: one line naming it, the usage, exit 2, no stack trace', async (t) => {
  t.ok(scripts.length >= 10, `scripts found: ${scripts.join(', ')}`);
  const r = await loaded;
  t.equal(r.code, 0, `the loader ran (${r.stderr.slice(0, 500)})`);
  const loads = new Map(
    r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as ScriptLoad)
      .map((l) => [l.script, l]),
  );
  for (const script of scripts) {
    const load = loads.get(script);
    if (!load) {
      t.fail(`${script}: not loaded (a script before it did not exit while loading)`);
      continue;
    }
    t.equal(load.threw, undefined, `${script}: its load throws nothing (Node would print the stack)`);
    t.equal(load.exit, 2, `${script}: exit 2`);
    checkUsageError(t, script, load);
  }
});

t.test('scripts – run as a user runs one: the shell sees exit 2 and the one-line error', async (t) => {
  const r = await ran;
  t.equal(r.code, 2, 'exit 2');
  checkUsageError(t, oneRun, r);
});
