import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t, { type Test } from 'tap';
import { refusedPort, listenFor, until } from './fixtures/net.js';
import { ISOLATED, logIs, runCli, spawnCliFor, type CliResult, type LogLine } from './fixtures/cli.js';

const STACK = /\n\s+at /;

/** A valid command line but for what a test changes; nothing in it is ever dialled. */
const FWD = ['-L', '0:127.0.0.1:1'];
const DEST = 'tester@127.0.0.1';

/**
 * Exit 2 and one line on stderr mentioning `mention`, with no stack trace and nothing else:
 * `sshkeep: ...` for a person, or, found once the log is open (not a terminal here, so JSON),
 * the log's last line saying why the process ends.
 */
async function usageError(t: Test, args: string[], mention: RegExp): Promise<CliResult> {
  const res = await runCli(args);
  t.equal(res.code, 2, 'exit code 2 (usage or configuration error)');
  t.notMatch(res.stderr, STACK, 'no stack trace');
  t.notMatch(res.stderr, /this is a bug/, 'not reported as a bug');
  t.equal(res.stdout, '', 'nothing on stdout');
  const lines = res.stderr.split('\n').filter(Boolean);
  t.equal(lines.length, 1, `exactly one line on stderr:\n${res.stderr}`);
  const line = lines[0] ?? '';
  if (line.startsWith('{')) t.match(JSON.parse(line), { level: 'error', event: 'fatal', exitCode: 2 }, 'the JSON log says why it ends');
  else t.match(line, /^sshkeep: \S/, 'starts with "sshkeep: "');
  t.match(line, mention, 'says what is wrong');
  return res;
}

const badForwards: [spec: string, mention: RegExp][] = [
  // The spec as written, then (for a shape error) the expected shape, or (for a bad port) the bad value.
  ['abc', /-L abc\b.*\[bind_address:\]port:host:hostport/],
  ['1:2', /-L 1:2\b.*\[bind_address:\]port:host:hostport/],
  ['99999:h:1', /-L 99999:h:1\b.*"99999".*port/],
  ['0:h:0', /-L 0:h:0\b.*target port.*"0"/],
  ['1:h:p', /-L 1:h:p\b.*"p".*port/],
  ['[::1:80:h:1', /-L \[::1:80:h:1\b.*\[bind_address:\]port:host:hostport/],
  ['a:b:c:d:e', /-L a:b:c:d:e\b.*\[bind_address:\]port:host:hostport/],
  ['1::2', /-L 1::2\b.*\[bind_address:\]port:host:hostport/],
];
for (const [spec, mention] of badForwards) {
  t.test(`cli – malformed -L ${spec} is a usage error`, async (t) => {
    await usageError(t, [...ISOLATED, '-L', spec, DEST], mention);
  });
}

t.test('cli – -o ConnectTimeout=abc is not a duration', async (t) => {
  await usageError(t, [...ISOLATED, '-o', 'ConnectTimeout=abc', ...FWD, DEST], /ConnectTimeout\b.*"abc".*duration/);
});

t.test('cli – -o ServerAliveInterval=-1 is not a duration', async (t) => {
  await usageError(t, [...ISOLATED, '-o', 'ServerAliveInterval=-1', ...FWD, DEST], /ServerAliveInterval\b.*"-1"/);
});

// Regression: a 1 ms heartbeat declared a healthy link dead between probes: 79 SSH connections in 10 s.
t.test('cli – a heartbeat shorter than 100ms is refused: interval (0 = on demand only) and probe deadline, from flags and -o', async (t) => {
  await usageError(t, [...ISOLATED, '-o', 'ServerAliveInterval=0.001', ...FWD, DEST], /-o ServerAliveInterval: "0\.001" is too short: 0 \(probe only on demand\) or at least 100ms\./);
  await usageError(t, [...ISOLATED, '--keepalive-interval', '99ms', ...FWD, DEST], /--keepalive-interval: "99ms" is too short/);
  await usageError(t, [...ISOLATED, '--keepalive-timeout', '1ms', ...FWD, DEST], /--keepalive-timeout: "1ms" is too short: at least 100ms\./);
  const ok = await runCli(['check', ...ISOLATED, '--keepalive-interval', '0', '--keepalive-timeout', '100ms', '-o', 'ServerAliveInterval=0.1', ...FWD, DEST]);
  t.equal(ok.code, 0, `0, and 100ms exactly, are taken; stderr:\n${ok.stderr}`);
});

t.test('cli – -o ServerAliveCountMax=0 is refused', async (t) => {
  await usageError(t, [...ISOLATED, '-o', 'ServerAliveCountMax=0', ...FWD, DEST], /ServerAliveCountMax\b.*"0"/);
});

t.test('cli – an unknown flag is a usage error', async (t) => {
  await usageError(t, [...ISOLATED, '--bogus', ...FWD, DEST], /unknown option.*--bogus.*--help/);
});

t.test('cli – an unknown -o option is a usage error naming it', async (t) => {
  await usageError(t, [...ISOLATED, '-o', 'Frobnicate=yes', ...FWD, DEST], /unknown option.*Frobnicate/);
});

t.test('cli – -o StrictHostKeyChecking=maybe is refused', async (t) => {
  await usageError(t, [...ISOLATED, '-o', 'StrictHostKeyChecking=maybe', ...FWD, DEST], /StrictHostKeyChecking\b.*"maybe".*accept-new/);
});

t.test('cli – a missing destination is a usage error', async (t) => {
  await usageError(t, [...ISOLATED, ...FWD], /destination/);
});

t.test('cli – no -L at all: nothing to forward', async (t) => {
  await usageError(t, [...ISOLATED, DEST], /nothing to forward.*-L/i);
});

t.test('cli – -q and -v together contradict each other', async (t) => {
  await usageError(t, [...ISOLATED, '-q', '-v', ...FWD, DEST], /-q\b.*-v\b/);
});

t.test('cli – -p 0 is not a port', async (t) => {
  await usageError(t, [...ISOLATED, '-p', '0', ...FWD, DEST], /\bport\b.*"0"|"0".*\bport\b/i);
});

t.test('cli – -F with a file that does not exist', async (t) => {
  await usageError(t, ['-F', '/nonexistent/file', '-o', 'GlobalKnownHostsFile=none', ...FWD, DEST], /-F \/nonexistent\/file\b.*(ENOENT|no such file|does not exist)/i);
});

t.test('cli – a malformed -J hop is a usage error naming it', async (t) => {
  await usageError(t, [...ISOLATED, '-J', 'jump,', ...FWD, DEST], /ProxyJump "jump,": an empty hop/);
  await usageError(t, [...ISOLATED, '-o', 'ProxyJump=a@b@c:x', ...FWD, DEST], /-J a@b@c:x: expected \[user@\]host\[:port\]/);
});

t.test('cli – --help prints grouped sections and examples, exit 0', async (t) => {
  const res = await runCli(['--help']);
  t.equal(res.code, 0, 'exit 0');
  t.equal(res.stderr, '', 'nothing on stderr');
  t.match(res.stdout, /^Usage: sshkeep \[options\] \[user@\]host/, 'usage line first');
  for (const section of ['Forwarding:', 'SSH connection (as OpenSSH):', 'Logging:', 'Examples:']) {
    t.match(res.stdout, new RegExp(`^${section.replace(/[()]/g, '\\$&')}$`, 'm'), `section ${section}`);
  }
  // Each example is a "# what it does" comment line followed by the command line.
  const tail = res.stdout.slice(res.stdout.indexOf('Examples:')).split('\n');
  const examples = tail.filter((l, i) => /^\s+sshkeep\s/.test(l) && /^\s+# \S/.test(tail[i - 1] ?? ''));
  t.ok(examples.length >= 2, `at least two commented example command lines (found ${examples.length})`);
  t.ok(examples.some((l) => /-L \d+:[^\s]+:\d+ \S+@\S+/.test(l)), 'one example forwards to user@host');
  t.match(res.stdout, /Exit codes: 0 .* 1 .* 2 .* 3 [^]*\b4 [^]* 130 /, 'documents every exit code');
});

t.test('cli – an accepted-but-ignored -o BatchMode=yes parses, with a warning', async (t) => {
  const refused = await refusedPort();
  const cli = spawnCliFor(t, [...ISOLATED, '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=1s', '-p', String(refused), ...FWD, DEST]);
  // Parsing succeeded if it got as far as listening.
  await cli.waitForLog(logIs('listen'), 10_000, 'the listen line');
  cli.kill('SIGTERM');
  await cli.exited();
  const warning = cli.logs().find((l) => l.level === 'warn' && /BatchMode/.test(String(l.msg)));
  t.ok(warning, 'warns that BatchMode has no effect');
  t.match(String(warning?.msg), /accepted but has no effect/);
  t.notMatch(cli.stderr(), STACK, 'no stack trace');
});

t.test('cli – -E appends JSON logs to the file, not stderr; SIGHUP reopens it after a rotation and the process runs on', async (t) => {
  const dir = t.testdir({});
  const file = path.join(dir, 'sshkeep.log');
  const refused = await refusedPort();
  const cli = spawnCliFor(t, [...ISOLATED, '-E', file, '-N', '-o', 'ConnectTimeout=1s', '-p', String(refused), ...FWD, DEST]);
  const lines = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as LogLine) : []);
  await until(() => lines(file).some(logIs('listen')), 10_000, 'the listen line in the log file');
  t.equal(fs.statSync(file).mode & 0o777, 0o600, 'created 0600');
  fs.renameSync(file, `${file}.1`);
  cli.kill('SIGHUP');
  await until(() => lines(file).some(logIs('log_reopen')), 5000, 'the reopen line in a new file');
  cli.kill('SIGTERM');
  t.strictSame(await cli.exited(), { code: 0, signal: null }, 'SIGHUP did not end it; SIGTERM stops it cleanly');
  t.ok(lines(`${file}.1`).some(logIs('listen')), 'the rotated file kept what came before');
  t.ok(lines(file).some(logIs('stopped')), 'the new file has what came after');
  t.equal(cli.stderr(), '', 'nothing on stderr');
});

t.test('cli – a listening port still in use after the retry window: exit 4 naming the port, after one warning', async (t) => {
  const holder = net.createServer();
  await listenFor(t, holder);
  const port = (holder.address() as net.AddressInfo).port;
  const refused = await refusedPort();
  const started = performance.now();
  const res = await runCli([...ISOLATED, '-p', String(refused), '-L', `${port}:127.0.0.1:1`, DEST]);
  t.equal(res.code, 4, 'exit code 4 (could not listen), which the systemd unit restarts on');
  t.ok(performance.now() - started >= 4500, 'after retrying for about 5 s (the previous instance may be draining)');
  t.notMatch(res.stderr, STACK, 'no stack trace');
  t.notMatch(res.stderr, /this is a bug/, 'not reported as a bug');
  const lines = res.stderr.split('\n').filter(Boolean);
  const waits = lines.filter((l) => l.includes('"listen_wait"'));
  t.equal(waits.length, 1, 'the wait logged once');
  const why = new RegExp(`^-L ${port}:127\\.0\\.0\\.1:1: 127\\.0\\.0\\.1:${port} is already in use`);
  t.ok(lines.every((l) => l.startsWith('{')), 'a JSON log on stderr stays JSON, line for line');
  t.match(JSON.parse(lines.at(-1) ?? '{}'), { level: 'error', event: 'fatal', error: 'ListenError', exitCode: 4, msg: why }, 'then the reason, naming the -L spec and the port');

  // With -E the log file ends with it too, and stderr says it to a person.
  const file = path.join(t.testdir({}), 'sshkeep.log');
  const logged = await runCli([...ISOLATED, '-E', file, '-p', String(refused), '-L', `${port}:127.0.0.1:1`, DEST]);
  t.equal(logged.code, 4);
  t.match(JSON.parse(fs.readFileSync(file, 'utf8').trim().split('\n').at(-1)!), { event: 'fatal', exitCode: 4, msg: why }, 'the -E file says why the process ended');
  t.match(logged.stderr, new RegExp(`^sshkeep: ${why.source.slice(1)}`), 'and stderr, in one plain line');
});

t.test('cli – a --health address not on this host: exit 4, and that is the one fatal line, the last', async (t) => {
  const refused = await refusedPort();
  const res = await runCli([...ISOLATED, '-p', String(refused), '--health', '192.0.2.1:9', ...FWD, DEST]);
  t.equal(res.code, 4, 'exit code 4 (could not listen)');
  const lines = res.stderr.split('\n').filter(Boolean);
  const fatal = lines.filter((l) => l.includes('"event":"fatal"'));
  t.equal(fatal.length, 1, `one fatal line:\n${fatal.join('\n')}`);
  t.match(JSON.parse(lines.at(-1) ?? '{}'), { event: 'fatal', error: 'ListenError', exitCode: 4, msg: /^--health 192\.0\.2\.1:9: cannot listen/ }, 'the last line says why it ended');
});

t.test('cli – an identity file that is not a key is a usage error', async (t) => {
  const notAKey = path.join(t.testdir({}), 'not_a_key');
  fs.writeFileSync(notAKey, 'hello\n', { mode: 0o600 });
  await usageError(t, [...ISOLATED, '-i', notAKey, ...FWD, DEST], /[Ii]dentity file .*not_a_key\b.*private key/);
});

t.test('cli – --version and -V print the version from package.json, exit 0', async (t) => {
  const { version } = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  for (const flag of ['--version', '-V']) {
    const res = await runCli([flag]);
    t.equal(res.code, 0, `${flag}: exit 0`);
    t.equal(res.stdout, `sshkeep ${version}\n`, `${flag}: "sshkeep ${version}"`);
    t.equal(res.stderr, '', `${flag}: nothing on stderr`);
  }
});

// Regression: a misspelt variable (SSHKEEP_HOLD_TIMOUT=5s) was ignored without a word.
t.test('cli – an SSHKEEP_* variable sshkeep does not read is warned about, naming the nearest it does', async (t) => {
  const res = await runCli(['check', '-F', 'none', '-L', '1:h:1', 'h'], { env: { SSHKEEP_HOLD_TIMOUT: '5s', SSHKEEP_WHATEVER: '1', SSHKEEP_HOLD_TIMEOUT: '5s' } });
  t.equal(res.code, 0, 'a warning, not an error');
  t.match(res.stderr, /^sshkeep: warning: SSHKEEP_HOLD_TIMOUT is not a variable sshkeep reads \(did you mean SSHKEEP_HOLD_TIMEOUT\?\); it is ignored\.$/m);
  t.match(res.stderr, /^sshkeep: warning: SSHKEEP_WHATEVER is not a variable sshkeep reads; it is ignored\.$/m);
  t.notMatch(res.stderr, /SSHKEEP_HOLD_TIMEOUT is not/, 'a variable it reads is not warned about');
});
