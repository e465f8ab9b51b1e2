import { execFile } from 'node:child_process';
import t from 'tap';
import { untracked } from './fixtures/bin.js';
import { spawnLogged } from './fixtures/child.js';

/** What a node child sees: its NODE_OPTIONS and its pid. */
const REPORT = 'console.log(JSON.stringify({ options: process.env.NODE_OPTIONS ?? null, pid: process.pid }))';
interface Report {
  options: string | null;
  pid: number;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ report: Report; pid: number | undefined }> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { env, timeout: 20_000 }, (err, stdout) => (err ? reject(err) : resolve({ report: JSON.parse(stdout) as Report, pid: child.pid })));
  });
}

const withoutOptions = (): NodeJS.ProcessEnv => Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS'));

t.test('untracked – why: under tap a plain spawn gets tap\'s loader, even with NODE_OPTIONS taken out of its env', async (t) => {
  const { report } = await run(process.execPath, ['-e', REPORT], withoutOptions());
  t.match(report.options, /@tapjs\/processinfo/, 'tap hooked the spawn');
});

t.test('untracked – a node child runs without tap\'s loader, as the same process (its pid is the one spawn saw)', async (t) => {
  const { report, pid } = await run(...untracked(process.execPath, ['-e', REPORT]), process.env);
  t.equal(report.options, null, 'no NODE_OPTIONS at all');
  t.equal(report.pid, pid, 'env(1) exec\'d node in place: signals reach it');
});

t.test('untracked – NODE_OPTIONS the caller meant stays, without tap\'s loader', async (t) => {
  const env = { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --max-old-space-size=100` };
  const { report } = await run(...untracked(process.execPath, ['-e', REPORT], env), env);
  t.equal(report.options, '--max-old-space-size=100');
});

t.test('untracked – spawnLogged (the CLI\'s and the benchmarks\' forwarders) starts them untracked', async (t) => {
  const child = spawnLogged(process.execPath, ['-e', REPORT], { env: process.env });
  t.teardown(() => child.kill('SIGKILL'));
  const { code } = await child.exited(20_000);
  t.equal(code, 0);
  const report = JSON.parse(child.stdout()) as Report;
  t.equal(report.options, null, 'no tap loader');
  t.equal(report.pid, child.child.pid, 'the same process');
});
