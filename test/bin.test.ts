import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { CLI_MAIN } from './fixtures/cli.js';
import { shebangNodeArgs, untracked } from './fixtures/bin.js';
import { deadline } from './fixtures/net.js';

const FLAGS = ['--max-semi-space-size=1', '--single-threaded-gc', '--no-allocation-site-pretenuring'];

t.test('bin – executed as npm links it, its shebang starts node with the GC flags (1 MB young generation, GC on the main thread, no pretenuring)', async (t) => {
  t.strictSame(shebangNodeArgs(CLI_MAIN), FLAGS, 'the flags BENCHMARKS.md measured');
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}` };
  const child = spawn(...untracked(CLI_MAIN, ['demo'], env), { env, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.resume();
  await deadline(
    new Promise<void>((resolve) => child.stdout.on('data', () => /curl http/.test(out) && resolve())),
    20_000,
    `the demo's curl hint; stdout so far:\n${out}`,
  );
  const argv = fs.readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0');
  t.match(path.basename(argv[0]!), /^node/, `env(1) exec'd node (${argv[0]})`);
  t.strictSame(argv.slice(1, 1 + FLAGS.length), FLAGS, 'with the flags, before the script');
  t.equal(argv[1 + FLAGS.length], CLI_MAIN);
  child.kill('SIGINT');
  const [code] = (await deadline(once(child, 'exit'), 10_000, 'exit on SIGINT')) as [number | null];
  t.equal(code, 0, 'exit 0');
});
