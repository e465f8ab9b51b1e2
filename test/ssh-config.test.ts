import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import fc from 'fast-check';
import { matchPattern, matchPatternList } from '../src/config/host-pattern.js';
import { readSshConfig } from '../src/config/ssh-config.js';
import { withoutBlockingOnExec } from '../src/config/match-exec.js';
import { expandHostName } from '../src/config/tokens.js';
import { ConfigError } from '../src/errors.js';
import { openSshMatch } from './fixtures/fuzz-properties.js';
import { isOpenSshKeyword, type SshOptions } from '../src/config/ssh-options.js';
import { givenOptions, plainOptions } from './fixtures/ssh-options.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sshkeep-ssh-config-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
let seq = 0;
function configFile(text: string): string {
  const file = path.join(dir, `config-${++seq}`);
  fs.writeFileSync(file, text);
  return file;
}

t.test('host patterns – `*` any run, `?` exactly one character, the rest literal', async (t) => {
  const cases: Array<[string, string, boolean]> = [
    ['db?', 'db1', true],
    ['db?', 'db', false],
    ['db?', 'db12', false],
    ['*.example.com', 'a.example.com', true],
    ['*.example.com', 'example.com', false],
    ['10.0.0.?', '10.0.0.7', true],
    ['10.0.0.?', '10.0.0.17', false],
    ['*', '', true],
    ['?', '', false],
    ['a*b*c', 'aXbYbZc', true],
    ['a*b*c', 'aXbYbZ', false],
    ['[db]', '[db]', true],
    ['d.', 'db', false],
  ];
  for (const [pattern, name, want] of cases) t.equal(matchPattern(pattern, name), want, `${pattern} ${want ? 'matches' : 'does not match'} "${name}"`);
  t.equal(matchPattern(`${'*a'.repeat(30)}*b`, 'a'.repeat(5_000)), false, 'a pattern that would make a regular expression backtrack for ever: answered');
});

t.test('host patterns – property: the same answers as the regular-expression reference', async (t) => {
  const patterns = fc.stringMatching(/^[ab*?]{0,8}$/);
  const names = fc.stringMatching(/^[ab]{0,8}$/);
  fc.assert(fc.property(patterns, names, (p, n) => matchPattern(p, n) === openSshMatch(p, n)), { seed: 7, numRuns: 3_000 });
  t.pass('3,000 pattern/name pairs agree');
});

t.test('host pattern lists – a negated entry vetoes, whatever the order; empty entries match nothing', async (t) => {
  t.equal(matchPatternList(['*.example.com', '!db.example.com'], 'web.example.com'), true);
  t.equal(matchPatternList(['*.example.com', '!db.example.com'], 'db.example.com'), false);
  t.equal(matchPatternList(['!db.example.com', '*.example.com'], 'db.example.com'), false, 'the veto comes first');
  t.equal(matchPatternList(['!db'], 'web'), false, 'only negated entries: nothing matches');
  t.equal(matchPatternList(['', '!'], ''), false);
});

// ---------------------------------------------------------------------------------------------
// ssh_config evaluation, with OpenSSH's own as the oracle.

const sshPath = ['/usr/bin/ssh', '/usr/local/bin/ssh'].find((p) => fs.existsSync(p));
const localUser = os.userInfo().username;

/** What `ssh -G` says of port, user and hostname (it prints every option, defaults included). */
function sshG(file: string, host: string, user?: string): { port: string; user: string; hostname: string } {
  const r = spawnSync(sshPath!, ['-G', '-F', file, ...(user ? ['-l', user] : []), host], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ssh -G failed: ${r.stderr}`);
  const get = (k: string) => new RegExp(`^${k} (.*)$`, 'm').exec(r.stdout)?.[1] ?? '';
  return { port: get('port'), user: get('user'), hostname: get('hostname') };
}

/** The same three from sshkeep, with ssh's defaults where the config says nothing. */
function ours(file: string, host: string, user?: string): { port: string; user: string; hostname: string } {
  const given: SshOptions = user ? { user: [user] } : {};
  const o = plainOptions(readSshConfig(file, host, true, givenOptions(given)));
  const hostname = expandHostName(o.hostname?.[0] ?? host, host, os.homedir()).toLowerCase(); // as resolve does; ssh -G prints it lower-cased
  return { port: o.port?.[0] ?? '22', user: user ?? o.user?.[0] ?? localUser, hostname };
}

const CONFIGS: Array<{ name: string; text: string; hosts: string[]; user?: string }> = [
  { name: '`?` is exactly one character', text: 'Host db?\n  Port 1111\n', hosts: ['db', 'db1', 'db12'] },
  { name: 'first value wins across Host blocks', text: 'Host web*\n  Port 2001\n  User w\nHost *\n  Port 2002\n  User any\n', hosts: ['web1', 'other'] },
  { name: 'negated patterns on a Host line', text: 'Host *.corp !db.corp\n  Port 2003\n', hosts: ['app.corp', 'db.corp', 'corp'] },
  {
    name: 'Match host sees the HostName, originalhost the name given',
    text: 'Host alias\n  HostName real.example\nMatch host real.example\n  Port 2004\nMatch originalhost alias\n  User orig\n',
    hosts: ['alias', 'real.example', 'other'],
  },
  {
    name: 'Match final: the second pass matches Host against the HostName',
    text: 'Match final host real.example\n  Port 2005\nHost alias\n  HostName real.example\nHost real.example\n  User second-pass\n',
    hosts: ['alias', 'real.example', 'other'],
  },
  { name: 'Match with a negated criterion', text: 'Match !host db*\n  Port 2006\n', hosts: ['db1', 'web1'] },
  { name: 'Host lines are case-sensitive, Match host is not', text: 'Host db\n  Port 2010\nHost WEB\n  Port 2011\nMatch host app\n  Port 2012\n', hosts: ['DB', 'db', 'WEB', 'web', 'APP'] },
  { name: 'Match user sees the command line user', text: 'Match user admin\n  Port 2007\n', hosts: ['x'], user: 'admin' },
  { name: 'Match user with another user', text: 'Match user admin\n  Port 2007\n', hosts: ['x'], user: 'guest' },
  { name: 'Match localuser and all', text: `Match localuser ${localUser}\n  Port 2008\nMatch all\n  User everyone\n`, hosts: ['x'] },
  { name: 'HostName %h is expanded for Match host and exec', text: 'Host *\n  HostName %h.corp.example\nMatch host db.corp.example\n  Port 2013\nMatch exec "test %h = db.corp.example"\n  User e\n', hosts: ['db', 'web'] },
  { name: 'the final pass sees HostName with %h expanded', text: 'Match final\n  User f\nHost alias\n  HostName %h.example.com\nHost alias.example.com\n  Port 2014\n', hosts: ['alias', 'other'] },
  { name: 'the final pass matches Host lines against the lower-cased HostName', text: 'Host X\n  HostName Y\nMatch final\n  User f\nHost y\n  Port 2015\n', hosts: ['X', 'x'] },
  { name: '`final` asks for the final pass even when another criterion fails', text: 'Host alias\n  HostName real\nHost real\n  Port 2016\nMatch host nomatch final\n  User x\n', hosts: ['alias'] },
  { name: 'a repeated criterion must hold each time', text: 'Match host a* host *b\n  Port 2017\n', hosts: ['ab', 'xb', 'ax'] },
  { name: 'exec tokens %i %L %l %C %u', text: 'Match exec "test %i = $(id -u) && test %L = $(hostname -s) && test %l = $(hostname) && test -n %C && test %u = $(id -un)"\n  Port 2018\n', hosts: ['x'] },
  {
    name: 'Match exec with tokens; exec after a failed criterion does not run',
    text: 'Match exec "test %h = yes-host"\n  Port 2009\nMatch host nothing exec "exit 0"\n  User never\n',
    hosts: ['yes-host', 'no-host'],
  },
];

// Included files for the Include cases (absolute paths: a relative one would be under the real ~/.ssh).
const incDir = path.join(dir, 'inc.d');
fs.mkdirSync(incDir);
fs.writeFileSync(path.join(incDir, '1.conf'), 'Host a\n  Port 2019\n');
fs.writeFileSync(path.join(incDir, '2.conf'), 'Port 2020\n');
fs.writeFileSync(path.join(incDir, '.hidden.conf'), 'User hidden\n');
CONFIGS.push(
  { name: 'Include with a glob, files in order, each starting its own blocks', text: `Include ${incDir}/*.conf\nHost b\n  Port 2021\n  User b\n`, hosts: ['a', 'b', 'c'] },
  { name: 'Include inside a Host block applies only with it', text: `Host b\n  Include ${incDir}/2.conf\nHost *\n  User all\n`, hosts: ['a', 'b'] },
  { name: 'Include of a pattern that matches nothing', text: `Include ${incDir}/none-*.conf\nPort 2022\n`, hosts: ['a'] },
);

t.test('ssh_config – sshkeep reads each config as `ssh -G` does (port, user, hostname)', { skip: sshPath || process.env.CI === 'true' ? false : 'ssh (openssh-client) not installed' }, async (t) => {
  for (const c of CONFIGS) {
    const file = configFile(c.text);
    for (const host of c.hosts) t.strictSame(ours(file, host, c.user), sshG(file, host, c.user), `${c.name}: ${host}${c.user ? ` as ${c.user}` : ''}`);
  }
});

t.test('ssh_config – Match exec runs only when the criteria before it hold, with tokens expanded', async (t) => {
  const marker = path.join(dir, 'exec-ran');
  const file = configFile(`Match host nothing exec "touch ${marker}"\n  Port 1\nMatch exec "test %n = %h && test %p = 2200 && touch ${marker}-2"\n  User ran\n`);
  const o = plainOptions(readSshConfig(file, 'box', true, givenOptions({ port: ['2200'] })));
  t.notOk(fs.existsSync(marker), 'the command behind a failed criterion did not run');
  t.ok(fs.existsSync(`${marker}-2`), 'the other ran');
  t.strictSame(o, { user: ['ran'] });
});

t.test('ssh_config – Match exec that cannot run or does not finish is an error naming its line, never a guessed answer', async (t) => {
  const throwsConfig = (text: string, re: RegExp, what: string) => t.throws(() => readSshConfig(configFile(text), 'x', true), Object.assign(new ConfigError('x'), { message: re }), what);
  const slow = 'Port 7\nMatch !exec "sleep 60"\n  Port 1\n';
  const tooSlow = /line 2: Match exec "sleep 60" did not finish within 10 s, so whether the block applies is unknown \(ssh would wait for it\)/;
  // The reload's way (children, the event loop free) runs meanwhile and must say the same.
  const slowWithoutBlocking = withoutBlockingOnExec(() => readSshConfig(configFile(slow), 'x', true));
  const started = performance.now();
  throwsConfig(slow, tooSlow, 'still running after 10 s (negated: neither answer is taken)');
  t.ok(performance.now() - started < 20_000, 'the command was stopped, not waited for');
  await t.rejects(slowWithoutBlocking, Object.assign(new ConfigError('x'), { message: tooSlow }), 'the same without blocking');
  const shell = process.env.SHELL;
  process.env.SHELL = path.join(dir, 'no-such-shell');
  t.teardown(() => (shell === undefined ? delete process.env.SHELL : (process.env.SHELL = shell)));
  const noShell = 'Match exec "true"\n  Port 1\n';
  const cannotRun = /line 1: Match exec "true": cannot run the shell .*no-such-shell \(ENOENT\), as ssh cannot/;
  throwsConfig(noShell, cannotRun, 'a shell that cannot be run (ssh: match exec error)');
  await t.rejects(withoutBlockingOnExec(() => readSshConfig(configFile(noShell), 'x', true)), Object.assign(new ConfigError('x'), { message: cannotRun }), 'the same without blocking');
});

t.test('ssh_config – Match exec without blocking (a reload) reads what the blocking way reads, each command run once', async (t) => {
  const counter = path.join(dir, 'exec-count');
  fs.writeFileSync(counter, '');
  const text = `Match exec "echo >> ${counter}; test %h = box"\n  Port 2\nMatch exec "echo >> ${counter}; false"\n  User never\nMatch exec "echo >> ${counter}; true"\n  User ran\n`;
  const file = configFile(text);
  const blocking = plainOptions(readSshConfig(file, 'box', true));
  const runs = fs.readFileSync(counter, 'utf8').length;
  t.strictSame(blocking, { port: ['2'], user: ['ran'] });
  t.strictSame(plainOptions(await withoutBlockingOnExec(() => readSshConfig(file, 'box', true))), blocking, 'the same options');
  t.equal(fs.readFileSync(counter, 'utf8').length, 2 * runs, 'each command once, as the blocking way runs it');
});

t.test('ssh_config – a repeated IdentityFile or forward counts once (final pass, command line, spacing)', async (t) => {
  const file = configFile('Match final\n  Port 1\nIdentityFile ~/.ssh/a\nIdentityFile ~/.ssh/b\nLocalForward 1 h:1\nLocalForward 1  h:1\n');
  t.strictSame(plainOptions(readSshConfig(file, 'x', true, givenOptions({ identityfile: ['~/.ssh/b'] }))), { port: ['1'], identityfile: ['~/.ssh/a'], localforward: ['1 h:1'] });
});

t.test('ssh_config – what sshkeep cannot or will not evaluate is said, never guessed', async (t) => {
  const rejects = (text: string, re: RegExp, what: string) => t.throws(() => readSshConfig(configFile(text), 'x', true), Object.assign(new ConfigError('x'), { message: re }), what);
  rejects('Match hots x\n  Port 1\n', /"Match hots": unknown Match criterion/, 'a misspelt criterion (ssh: Bad Match condition)');
  rejects('Match all host x\n  Port 1\n', /"Match all" cannot be combined/, 'all with another criterion');
  rejects('Match host\n  Port 1\n', /needs an argument|Missing value/, 'a criterion without its argument');
  rejects('Match exec "true\0x"\n  Port 1\n', /a NUL byte cannot be in a command/, 'a NUL byte in an exec command');
  const loop = path.join(dir, 'loop.conf');
  fs.writeFileSync(loop, `Include ${loop}\n`);
  t.throws(() => readSshConfig(loop, 'x', true), /Include nested more than 16 deep/, 'a file that includes itself (ssh: too many recursive includes)');
  t.strictSame(plainOptions(readSshConfig(configFile('Match !localnetwork 10.0.0.0/8\n  Port 1\nMatch tagged x\n  Port 2\n'), 'x', true)), {}, 'a criterion OpenSSH knows but sshkeep cannot evaluate: the block does not apply, negated or not');
});

t.test('ssh_config – a keyword OpenSSH does not know is refused wherever it is, as ssh refuses it; IgnoreUnknown before it skips it', { skip: sshPath || process.env.CI === 'true' ? false : 'ssh (openssh-client) not installed' }, async (t) => {
  fs.writeFileSync(path.join(incDir, 'bad.inc'), 'Host *\n  HostNmae y\n');
  const noValue = /line \d+: "\w+" has no value; ssh refuses such a line too\.$/;
  const cases: Array<{ name: string; text: string; refused: boolean; given?: SshOptions; why?: RegExp }> = [
    { name: 'a misspelt keyword in the block that applies', text: 'Host x\n  HostNmae y\n', refused: true },
    { name: 'in a block that does not apply', text: 'Host other\n  HostNmae y\n', refused: true },
    { name: 'at the top, in a mixed case', text: 'hOSTnMAE y\nHost x\n  Port 1\n', refused: true },
    { name: 'in a file Included by a block that does not apply', text: `Host other\n  Include ${incDir}/bad.inc\n`, refused: true },
    { name: 'IgnoreUnknown before it', text: 'IgnoreUnknown HostNmae,Other\nHost x\n  HostNmae y\n', refused: false },
    { name: 'IgnoreUnknown with a pattern, in another case', text: 'IgnoreUnknown hostn*\nHost other\n  HOSTNMAE y\n', refused: false },
    { name: 'IgnoreUnknown after it', text: 'Host x\n  HostNmae y\nHost *\n  IgnoreUnknown HostNmae\n', refused: true },
    { name: 'IgnoreUnknown in a block that does not apply', text: 'Host other\n  IgnoreUnknown HostNmae\nHost x\n  HostNmae y\n', refused: true },
    { name: 'IgnoreUnknown from the command line', text: 'Host x\n  HostNmae y\n', refused: false, given: { ignoreunknown: ['HostNmae'] } },
    { name: 'older names OpenSSH still reads', text: 'Host x\n  IdentityFile2 ~/.ssh/k2\n  PubkeyAcceptedKeyTypes ssh-ed25519\n  ChallengeResponseAuthentication no\n  KeepAlive yes\n', refused: false },
    { name: 'a keyword alone on its line (the parser would join it to the next)', text: 'HostName\nPort 2\n', refused: true, why: noValue },
    { name: 'a keyword with only spaces after it, in a block that does not apply', text: 'Host other\n  Port   \nHost x\n  Port 3\n', refused: true, why: noValue },
    { name: 'an unknown keyword without a value, IgnoreUnknown or not', text: 'IgnoreUnknown Foo\nFoo\n', refused: true, why: noValue },
    { name: 'options that change nothing here', text: 'Host *\n  ConnectionAttempts 3\n  IPQoS throughput\n  EscapeChar none\n  ForwardX11Trusted no\n  Protocol 2\n', refused: false },
  ];
  for (const c of cases) {
    const file = configFile(c.text);
    const ssh = spawnSync(sshPath!, ['-G', '-F', file, ...(c.given ? ['-o', `IgnoreUnknown=${c.given.ignoreunknown![0]}`] : []), 'x'], { encoding: 'utf8' });
    t.equal(ssh.status !== 0, c.refused, `${c.name}: ssh -G ${c.refused ? 'refuses' : 'accepts'} it (${ssh.stderr.trim().split('\n')[0] ?? ''})`);
    const why = c.why ?? /line \d+: bad configuration option "HostNmae"\. OpenSSH refuses it too \(a misspelling\?\); IgnoreUnknown with its name, on a line before it, makes both skip it\.$/i;
    if (c.refused) t.throws(() => readSshConfig(file, 'x', true, givenOptions(c.given ?? {})), Object.assign(new ConfigError('x'), { message: why }), `${c.name}: sshkeep refuses it`);
    else t.doesNotThrow(() => readSshConfig(file, 'x', true, givenOptions(c.given ?? {})), `${c.name}: sshkeep accepts it`);
  }
  t.strictSame(plainOptions(readSshConfig(configFile('Host x\n  IdentityFile2 ~/.ssh/k2\n'), 'x', true)), { identityfile: ['~/.ssh/k2'] }, 'IdentityFile2 is an IdentityFile');
  // Every option `ssh -G` prints is one sshkeep knows, so a config this ssh reads, sshkeep reads.
  const printed = spawnSync(sshPath!, ['-G', '-F', 'none', 'x'], { encoding: 'utf8' }).stdout.split('\n').map((l) => l.split(' ')[0]!).filter(Boolean);
  t.ok(printed.length > 50, `ssh -G printed ${printed.length} options`);
  t.strictSame(printed.filter((k) => !isOpenSshKeyword(k)), [], 'none that sshkeep would refuse');
});

t.test("ssh_config – a vendor's keyword OpenSSH's own releases lack is read, as by the vendor's ssh", async (t) => {
  t.doesNotThrow(() => readSshConfig(configFile('Host *\n  UseKeychain yes\n  GSSAPITrustDNS no\n'), 'x', true), "Apple's UseKeychain, Debian's GSSAPITrustDNS");
});
