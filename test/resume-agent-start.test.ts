import t from 'tap';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { INTERPRETERS, probeCommand, agentScript, newSession, parameterLine, parseAgentLine, type Interpreter } from '../src/resume/bootstrap.js';
import { TESTED_INTERPRETERS, agentDir, agentPids, binWith, bootstrap, pathForAgents, ping, startAgent } from './fixtures/resume-agent.js';
import { alive, signalAll } from './fixtures/proc.js';
import { deadline, until } from './fixtures/net.js';
import { shim } from './fixtures/shim.js';
import { tempDir } from './fixtures/tmp.js';

/** Runs the bootstrap (the probe, unless told the interpreter) for a new session; kills whatever it started at teardown. */
async function tryStart(env: NodeJS.ProcessEnv, interpreter?: Interpreter, session = newSession()) {
  t.teardown(() => signalAll(agentPids(session), 'SIGKILL'));
  return bootstrap({ ...env, PATH: env.PATH === process.env.PATH ? pathForAgents() : env.PATH }, { session, graceMs: 30_000 }, { interpreter });
}

t.test('the parameter line, the probe and the agent line', async (t) => {
  for (const language of ['perl', 'python'] as const) {
    const { version, text } = agentScript(language);
    t.match(version, /^[0-9a-f]{12}$/, `${language}: a version`);
    t.ok(text.endsWith('\n__END__\n'), `${language}: the script ends where the parameter line begins`);
  }
  t.not(agentScript('perl').version, agentScript('python').version, 'an agent of one language is never taken for the other');
  const probe = probeCommand();
  const order = ['if perl -MConfig -MErrno -MFcntl -MPOSIX -MSocket -e 1 ', 'elif python3 -I -S -c "import errno,', 'elif [ -x /usr/libexec/platform-python ] && /usr/libexec/platform-python -I -S -c "import errno,'].map((test) => probe.indexOf(test));
  t.same(order, [...order].sort((a, b) => a - b), 'the probe looks for perl, then python3, then platform-python');
  t.ok(order.every((at) => at > 0), 'it tries each, with the modules its agent uses');
  t.same(parseAgentLine('sshkeep-agent: interpreter python3'), { type: 'interpreter', interpreter: 'python3' });
  t.same(parseAgentLine('sshkeep-agent: interpreter ruby'), { type: 'other', line: 'sshkeep-agent: interpreter ruby' });
  t.equal(parameterLine({ session: '0123456789abcdef', graceMs: 300_000 }, 'abcdefabcdef'), '{"session":"0123456789abcdef","graceMs":300000,"version":"abcdefabcdef"}\n');
  t.throws(() => parameterLine({ session: 'not hex', graceMs: 1 }), RangeError);
  t.match(newSession(), /^[0-9a-f]{16}$/);
  t.same(parseAgentLine('sshkeep-agent: ready /run/user/1000/sshkeep/a.sock'), { type: 'ready', socketPath: '/run/user/1000/sshkeep/a.sock' });
  t.same(parseAgentLine('sshkeep-agent: error directory /x is group- or world-writable'), { type: 'error', reason: 'directory', text: '/x is group- or world-writable' });
  t.same(parseAgentLine('This account is restricted'), { type: 'other', line: 'This account is restricted' });
  t.same(parseAgentLine('sshkeep-agent: ready'), { type: 'other', line: 'sshkeep-agent: ready' });
});

/** What each agent does at its start, as the protocol says. */
for (const interpreter of TESTED_INTERPRETERS) {
  t.test(`the ${interpreter} agent's start`, async (t) => {
    t.test('a directory others may write to is refused with an error line', async (t) => {
      const runtimeDir = tempDir(t, 'sshkeep-agent-');
      fs.mkdirSync(agentDir(runtimeDir));
      fs.chmodSync(agentDir(runtimeDir), 0o777);
      const result = await tryStart({ ...process.env, XDG_RUNTIME_DIR: runtimeDir }, interpreter);
      t.match(result.line, { type: 'error', reason: 'directory', text: /sshkeep is group- or world-writable \(mode 0777\)/ });
      t.equal(result.code, 1);
      t.same(fs.readdirSync(agentDir(runtimeDir)), [], 'no socket made');
    });

    t.test('without XDG_RUNTIME_DIR, the directory is ~/.cache/sshkeep, made 0700', async (t) => {
      const home = tempDir(t, 'sshkeep-home-');
      const env: NodeJS.ProcessEnv = { ...process.env, HOME: home };
      delete env.XDG_RUNTIME_DIR;
      const result = await tryStart(env, interpreter);
      t.match(result.line, { type: 'ready', socketPath: new RegExp(`^${home}/\\.cache/sshkeep/agent-`) });
      t.equal(fs.statSync(path.join(home, '.cache', 'sshkeep')).mode & 0o777, 0o700);
    });

    t.test('a parameter line the agent does not understand is a version error', async (t) => {
      const session = newSession();
      const stdin = `${agentScript(INTERPRETERS[interpreter].language).text}{"session":"x"}\n`;
      const bad = await bootstrap({ ...process.env, PATH: pathForAgents(), XDG_RUNTIME_DIR: tempDir(t, 'sshkeep-agent-') }, { session, graceMs: 1 }, { interpreter, stdin });
      t.match(bad.line, { type: 'error', reason: 'version', text: /parameter line not understood/ });
    });

    t.test('a second bootstrap of a running session says ready with the same socket', async (t) => {
      const agent = await startAgent(t, { interpreter });
      const [pid] = agent.pids();
      const again = await bootstrap(agent.env, { session: agent.session, graceMs: 30_000 }, { interpreter });
      t.same(again.line, { type: 'ready', socketPath: agent.socketPath });
      t.same(agent.pids(), [pid], 'no second agent');
    });

    t.test('a stale socket file (its agent killed) is replaced', async (t) => {
      const agent = await startAgent(t, { interpreter });
      const pids = agent.pids();
      signalAll(pids, 'SIGKILL');
      await until(() => pids.every((pid) => !alive(pid)), 5000, 'the agent to die');
      const probe = () => new Promise<string>((resolve) => net.connect(agent.socketPath).once('connect', () => resolve('listening')).once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? '')));
      t.equal(await probe(), 'ECONNREFUSED', 'the file is left, nobody listens');
      const again = await bootstrap(agent.env, { session: agent.session, graceMs: 30_000 }, { interpreter });
      t.same(again.line, { type: 'ready', socketPath: agent.socketPath });
      t.equal((await ping(agent)).streams, 0, 'a new agent answers');
    });

    t.test('a channel connected as the grace runs out is served, not reset as the agent exits', async (t) => {
      const so = await shim(t, 'connect-on-timeout');
      if (!so) return;
      const pathFile = path.join(tempDir(t, 'sshkeep-late-'), 'socket-path');
      const graceMs = 2000;
      const agent = await startAgent(t, { interpreter, graceMs, env: { LD_PRELOAD: so, SSHKEEP_CONNECT_ON_TIMEOUT: pathFile } });
      fs.writeFileSync(pathFile, agent.socketPath);
      // The agent's idle wait ends with the grace; the shim connects right after it, before the agent looks at the time.
      await until(() => fs.existsSync(`${pathFile}.done`), graceMs + 5000, 'the shim to connect as the grace ran out');
      t.equal((await ping(agent)).streams, 0, 'the agent answers: it kept the late channel and serves on');
      t.equal(agent.pids().length, 1, 'one agent, still running');
    });

    t.test('SIGTERM (pkill -f sshkeep-agent): the agent exits and removes its socket', async (t) => {
      const agent = await startAgent(t, { interpreter });
      await ping(agent); // its loop runs: the channel below is accepted, not left in the backlog to be reset
      const c = await agent.channel();
      const pids = agent.pids();
      t.equal(pids.length, 1, 'the agent found by its name as soon as it said ready');
      signalAll(pids, 'SIGTERM');
      await deadline(c.closed, 5000, 'the agent to close the channel');
      t.notOk(fs.existsSync(agent.socketPath), 'socket removed');
    });
  });
}

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

/**
 * The Python agent is for servers without perl, and RHEL 8's platform-python is 3.6: every
 * module it imports (anywhere in it) is in the standard library, and it parses as 3.6 syntax.
 */
t.test('the python agent imports only the standard library and parses as Python 3.6', async (t) => {
  const check = `
import ast, sys
tree = ast.parse(sys.stdin.read().rsplit('__END__', 1)[0], feature_version=(3, 6))
names = sorted({a.name.split('.')[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
               | {n.module.split('.')[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)})
print(' '.join(names))
print(' '.join(n for n in names if n not in sys.stdlib_module_names))`;
  let out: string[];
  try {
    out = execFileSync('python3', ['-c', check], { input: agentScript('python').text, encoding: 'utf8', env: { ...process.env, PATH: pathForAgents() } }).split('\n');
  } catch (err) {
    if (process.env.CI === 'true') t.fail(`python3 (3.10 or later) could not check the agent: ${(err as Error).message}`);
    else t.pass('stdlib modules', { skip: 'no python3 3.10+ here' });
    return;
  }
  t.match(out[0], /\bselectors\b.*\bsocket\b/, `found the agent's modules: ${out[0]}`);
  t.equal(out[1], '', 'none outside the standard library');
});

t.test('perl hidden, python3 there: the probe picks python3 and its agent starts', async (t) => {
  const result = await tryStart({ ...process.env, PATH: binWith(t, ['python3']), XDG_RUNTIME_DIR: tempDir(t, 'sshkeep-agent-') });
  t.match(result.line, { type: 'ready', socketPath: new RegExp(`agent-${agentScript('python').version}-`) });
});

t.test('a perl without a module its agent uses (RHEL perl-interpreter without perl-Socket): the probe picks python3', async (t) => {
  const bin = binWith(t, ['python3']);
  // A perl that cannot load Socket, as one without the package would answer.
  fs.writeFileSync(path.join(bin, 'perl'), `#!/bin/sh\ncase " $* " in *" -MSocket "*) echo "Can't locate Socket.pm" >&2; exit 2;; esac\nexec ${execFileSync('sh', ['-c', 'command -v perl'], { encoding: 'utf8' }).trim()} "$@"\n`, { mode: 0o755 });
  const result = await tryStart({ ...process.env, PATH: bin, XDG_RUNTIME_DIR: tempDir(t, 'sshkeep-agent-') });
  t.match(result.line, { type: 'ready', socketPath: new RegExp(`agent-${agentScript('python').version}-`) });
});

t.test('neither perl nor python3: the probe says no-interpreter and exits 127', async (t) => {
  const result = await tryStart({ ...process.env, PATH: binWith(t, []), XDG_RUNTIME_DIR: tempDir(t, 'sshkeep-agent-') });
  t.same(result.line, { type: 'error', reason: 'no-interpreter', text: '' });
  t.equal(result.code, 127);
});

/** The agent's u64 codec, both ways: 'Q>' on a 64-bit perl, two 32-bit halves in a double elsewhere. */
t.test('offsets: the 32-bit fallback encodes and decodes as Q> does, up to 2^53-1', async (t) => {
  const text = agentScript('perl').text;
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
