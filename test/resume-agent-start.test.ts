import t from 'tap';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { once } from 'node:events';
import { agentScript, agentStdin, newSession, parameterLine, parseAgentLine } from '../src/resume/bootstrap.js';
import { agentDir, agentPids, bootstrap, ping, startAgent } from './fixtures/resume-agent.js';
import { alive, signalAll } from './fixtures/proc.js';
import { until } from './fixtures/net.js';
import { tempDir } from './fixtures/tmp.js';

/** Runs the bootstrap for a new session with this environment; kills whatever it started at teardown. */
async function tryStart(env: NodeJS.ProcessEnv, session = newSession()) {
  t.teardown(() => signalAll(agentPids(session), 'SIGKILL'));
  return bootstrap(agentStdin({ session, graceMs: 30_000 }), env);
}

t.test('the parameter line and the agent line', async (t) => {
  const { version, text } = agentScript();
  t.match(version, /^[0-9a-f]{12}$/);
  t.ok(text.endsWith('\n__END__\n'), 'the script ends where the parameter line begins');
  t.equal(parameterLine({ session: '0123456789abcdef', graceMs: 300_000 }, 'abcdefabcdef'), '{"session":"0123456789abcdef","graceMs":300000,"version":"abcdefabcdef"}\n');
  t.throws(() => parameterLine({ session: 'not hex', graceMs: 1 }), RangeError);
  t.match(newSession(), /^[0-9a-f]{16}$/);
  t.same(parseAgentLine('sshkeep-agent: ready /run/user/1000/sshkeep/a.sock'), { type: 'ready', socketPath: '/run/user/1000/sshkeep/a.sock' });
  t.same(parseAgentLine('sshkeep-agent: error directory /x is group- or world-writable'), { type: 'error', reason: 'directory', text: '/x is group- or world-writable' });
  t.same(parseAgentLine('This account is restricted'), { type: 'other', line: 'This account is restricted' });
  t.same(parseAgentLine('sshkeep-agent: ready'), { type: 'other', line: 'sshkeep-agent: ready' });
});

t.test('a directory others may write to is refused with an error line', async (t) => {
  const runtimeDir = tempDir(t, 'sshkeep-agent-');
  fs.mkdirSync(agentDir(runtimeDir));
  fs.chmodSync(agentDir(runtimeDir), 0o777);
  const result = await tryStart({ ...process.env, XDG_RUNTIME_DIR: runtimeDir });
  t.match(result.line, { type: 'error', reason: 'directory', text: /sshkeep is group- or world-writable \(mode 0777\)/ });
  t.equal(result.code, 1);
  t.same(fs.readdirSync(agentDir(runtimeDir)), [], 'no socket made');
});

t.test('without XDG_RUNTIME_DIR, the directory is ~/.cache/sshkeep, made 0700', async (t) => {
  const home = tempDir(t, 'sshkeep-home-');
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home };
  delete env.XDG_RUNTIME_DIR;
  const result = await tryStart(env);
  t.match(result.line, { type: 'ready', socketPath: new RegExp(`^${home}/\\.cache/sshkeep/agent-`) });
  t.equal(fs.statSync(path.join(home, '.cache', 'sshkeep')).mode & 0o777, 0o700);
});

t.test('a parameter line the agent does not understand is a version error', async (t) => {
  const bad = await bootstrap(`${agentScript().text}{"session":"x"}\n`, { ...process.env, XDG_RUNTIME_DIR: tempDir(t, 'sshkeep-agent-') });
  t.match(bad.line, { type: 'error', reason: 'version', text: /parameter line not understood/ });
});

t.test('a second bootstrap of a running session says ready with the same socket', async (t) => {
  const agent = await startAgent(t);
  const [pid] = agent.pids();
  const again = await bootstrap(agentStdin({ session: agent.session, graceMs: 30_000 }), agent.env);
  t.same(again.line, { type: 'ready', socketPath: agent.socketPath });
  t.same(agent.pids(), [pid], 'no second agent');
});

t.test('a stale socket file (its agent killed) is replaced', async (t) => {
  const agent = await startAgent(t);
  const pids = agent.pids();
  signalAll(pids, 'SIGKILL');
  await until(() => pids.every((pid) => !alive(pid)), 5000, 'the agent to die');
  const probe = () => new Promise<string>((resolve) => net.connect(agent.socketPath).once('connect', () => resolve('listening')).once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? '')));
  t.equal(await probe(), 'ECONNREFUSED', 'the file is left, nobody listens');
  const again = await bootstrap(agentStdin({ session: agent.session, graceMs: 30_000 }), agent.env);
  t.same(again.line, { type: 'ready', socketPath: agent.socketPath });
  t.equal((await ping(agent)).streams, 0, 'a new agent answers');
});

t.test('SIGTERM (pkill -f sshkeep-agent): the agent exits and removes its socket', async (t) => {
  const agent = await startAgent(t);
  const c = await agent.channel();
  const pids = agent.pids();
  signalAll(pids, 'SIGTERM');
  await once(c.socket, 'close');
  t.notOk(fs.existsSync(agent.socketPath), 'socket removed');
});

/** Debian's perl-base is Essential: the agent may use no module outside it. */
t.test('every module the agent uses is in perl-base', async (t) => {
  let files: string[];
  try {
    files = execFileSync('dpkg', ['-L', 'perl-base'], { encoding: 'utf8' }).split('\n');
  } catch (err) {
    if (process.env.CI === 'true') t.fail(`dpkg -L perl-base failed: ${(err as Error).message}`);
    else t.pass('perl-base modules', { skip: 'no dpkg here' });
    return;
  }
  const modules = [...new Set([...agentScript().text.matchAll(/^use ([\w:]+)/gm)].map((m) => m[1]!))];
  t.ok(modules.includes('Socket') && modules.includes('POSIX'), `found the agent's modules: ${modules.join(' ')}`);
  for (const module of modules) {
    const file = `/${module.replaceAll('::', '/')}.pm`;
    t.ok(files.some((f) => f.endsWith(file)), `${module} is in perl-base`);
  }
});

t.test('no perl: the bootstrap says no-interpreter and exits 127', async (t) => {
  const bin = tempDir(t, 'sshkeep-bin-');
  fs.symlinkSync(execFileSync('sh', ['-c', 'command -v sh'], { encoding: 'utf8' }).trim(), path.join(bin, 'sh'));
  const result = await tryStart({ ...process.env, PATH: bin, XDG_RUNTIME_DIR: tempDir(t, 'sshkeep-agent-') });
  t.same(result.line, { type: 'error', reason: 'no-interpreter', text: '' });
  t.equal(result.code, 127);
});

/** The agent's u64 codec, both ways: 'Q>' on a 64-bit perl, two 32-bit halves in a double elsewhere. */
t.test('offsets: the 32-bit fallback encodes and decodes as Q> does, up to 2^53-1', async (t) => {
  const text = agentScript().text;
  const codec = /^my \$QUADS = .*\n^sub u64 .*\n^sub read_u64 .*$/m.exec(text)?.[0];
  if (!codec) return void t.fail('the u64 codec lines are not where this test looks for them');
  const values = [0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 40 + 12345, 2 ** 53 - 1];
  for (const quads of ['1', '0']) {
    const program = `${codec.replace(/^my \$QUADS = .*$/m, `my $QUADS = ${quads};`)}
      for my $n (${values.join(', ')}) { my $b = u64($n); printf "%s %s\\n", unpack('H*', $b), read_u64($b) }`;
    const lines = execFileSync('perl', ['-e', program], { encoding: 'utf8' }).trim().split('\n');
    const expected = values.map((n) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64BE(BigInt(n));
      return `${b.toString('hex')} ${n}`;
    });
    t.same(lines, expected, quads === '1' ? "with 'Q>'" : 'with two 32-bit halves');
  }
});
