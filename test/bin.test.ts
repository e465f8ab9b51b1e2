/**
 * The `sshkeep` command as npm links it: dist/bin/sshkeep.js, bundled by scripts/build-bin.ts from
 * tsc's output, with ssh2 left in node_modules.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { CLI_MAIN } from './fixtures/cli.js';
import { REPO_ROOT, shebangNodeArgs, untracked } from './fixtures/bin.js';
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

t.test('bin – package.json\'s bin is the bundle\'s entry, executable, with src/cli/main.ts\'s shebang', async (t) => {
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  t.equal(path.join(REPO_ROOT, pkg.bin.sshkeep!), CLI_MAIN, 'bin.sshkeep is dist/bin/sshkeep.js');
  t.equal(fs.statSync(CLI_MAIN).mode & 0o111, 0o111, 'executable by everyone');
  const firstLine = (file: string) => fs.readFileSync(file, 'utf8').split('\n', 1)[0];
  t.equal(firstLine(CLI_MAIN), firstLine(path.join(REPO_ROOT, 'src', 'cli', 'main.ts')), 'the same first line');
});

// sshkeep reaches ssh2's internals by path (src/ssh/lean-channel.ts, adapter.ts): a bundled copy
// would be another ssh2 than the one those look at, and ssh2 would load twice.
t.test('bin – ssh2 is not bundled: one copy of it, from node_modules', async (t) => {
  const dir = path.dirname(CLI_MAIN);
  const all = fs.readdirSync(dir).filter((f) => f.endsWith('.js')).map((f) => fs.readFileSync(path.join(dir, f), 'utf8')).join('\n');
  t.notMatch(all, /^\/\/ node_modules\/ssh2\//m, 'no module of ssh2 in the bundle');
  t.match(all, /^\/\/ node_modules\/winston\//m, 'the other dependencies are (esbuild marks each module with its path)');
  t.match(all, /^import \w+ from "ssh2";$/m, 'ssh2 is imported by name');
});
