import t from 'tap';
import { ConfigError } from '../src/errors.js';
import { addOption, isOpenSshKeyword, noteUnhonoured, parseDashO, parseYesNo, unhonouredWarnings, type SshOptions, type Unhonoured } from '../src/config/ssh-options.js';

/** parseDashO without IgnoreUnknown: never null. */
const dashO = (text: string) => parseDashO(text)!;

t.test('ssh-options – Key=Value, Key Value and key = value all parse', async (t) => {
  t.strictSame(dashO('ServerAliveInterval=5'), { key: 'serveraliveinterval', name: 'ServerAliveInterval', value: '5' });
  t.strictSame(dashO('ServerAliveInterval 5'), { key: 'serveraliveinterval', name: 'ServerAliveInterval', value: '5' });
  t.strictSame(dashO('serveraliveinterval = 5'), { key: 'serveraliveinterval', name: 'ServerAliveInterval', value: '5' });
  t.strictSame(dashO('  Port=2222  '), { key: 'port', name: 'Port', value: '2222' });
  t.strictSame(dashO('Port\t2222'), { key: 'port', name: 'Port', value: '2222' });
});

t.test('ssh-options – keys are case-insensitive and come back canonical', async (t) => {
  const cases: [string, string, string][] = [
    ['HOSTNAME=h', 'hostname', 'HostName'],
    ['user=bob', 'user', 'User'],
    ['identityFILE=~/.ssh/k', 'identityfile', 'IdentityFile'],
    ['IdentitiesOnly=yes', 'identitiesonly', 'IdentitiesOnly'],
    ['identityagent=none', 'identityagent', 'IdentityAgent'],
    ['connecttimeout=3', 'connecttimeout', 'ConnectTimeout'],
    ['ServerAliveCountMax=2', 'serveralivecountmax', 'ServerAliveCountMax'],
    ['stricthostkeychecking=no', 'stricthostkeychecking', 'StrictHostKeyChecking'],
    ['userknownhostsfile=/k', 'userknownhostsfile', 'UserKnownHostsFile'],
    ['GLOBALKNOWNHOSTSFILE=none', 'globalknownhostsfile', 'GlobalKnownHostsFile'],
    ['hostkeyalias=a', 'hostkeyalias', 'HostKeyAlias'],
    ['localforward=1 h:2', 'localforward', 'LocalForward'],
    ['proxyjump=none', 'proxyjump', 'ProxyJump'],
    ['proxycommand=none', 'proxycommand', 'ProxyCommand'],
    ['addressfamily=inet', 'addressfamily', 'AddressFamily'],
    ['COMPRESSION=yes', 'compression', 'Compression'],
    ['gatewayports=yes', 'gatewayports', 'GatewayPorts'],
  ];
  for (const [text, key, name] of cases) {
    const o = dashO(text);
    t.equal(o.key, key, `${text}: key`);
    t.equal(o.name, name, `${text}: canonical name`);
  }
});

t.test('ssh-options – values keep their case and inner spaces; double quotes are stripped', async (t) => {
  t.equal(dashO('User=Alice').value, 'Alice');
  t.equal(dashO('IdentityFile="/path with/spaces key"').value, '/path with/spaces key');
  t.equal(dashO('IdentityFile = "/q"').value, '/q');
  t.equal(dashO('LocalForward=5432 db:5432').value, '5432 db:5432');
  t.equal(dashO('HostKeyAlias=a=b').value, 'a=b', 'only the first = separates');
  t.equal(dashO('User="unbalanced').value, '"unbalanced', 'an unbalanced quote is kept');
});

t.test('ssh-options – OpenSSH options with no effect are accepted with key null', async (t) => {
  for (const text of ['BatchMode=yes', 'ForwardAgent no', 'RequestTTY=no', 'LogLevel=QUIET', 'ControlMaster=auto', 'CheckHostIP=no']) {
    const o = dashO(text);
    t.equal(o.key, null, `${text}: no key`);
    t.ok(o.value.length > 0, `${text}: value kept`);
  }
  const o = dashO('BatchMode=yes');
  t.equal(o.name, 'BatchMode');
  t.equal(o.value, 'yes');
});

t.test('ssh-options – unknown keys and empty values are ConfigErrors', async (t) => {
  t.throws(() => parseDashO('NoSuchOption=1'), ConfigError);
  t.throws(() => parseDashO('NoSuchOption=1'), /unknown option "NoSuchOption": OpenSSH has no such option either/);
  t.throws(() => parseDashO('NoSuchOption=1'), /-o IgnoreUnknown=NoSuchOption before it would skip it/, 'says how to skip it');
  t.throws(() => parseDashO('NoSuchOption=1'), /ServerAliveInterval/, 'lists what is honoured');
  t.throws(() => parseDashO('NoSuchOption=1', 'Other*,!NoSuch*'), /unknown option/, 'IgnoreUnknown that does not cover it');
  t.equal(parseDashO('NoSuchOption=1', 'nosuch*'), null, 'IgnoreUnknown covers it, in any case: skipped');
  t.equal(parseDashO('BatchMode=yes', 'batchmode')?.name, 'BatchMode', 'IgnoreUnknown does not hide an option OpenSSH knows');
  for (const structure of ['Host=x', 'Match=all', 'Include=/etc/x']) {
    t.throws(() => parseDashO(structure), /belongs in an ssh_config file \(-F\), not on the command line/, structure);
  }
  for (const bad of ['', 'Port', 'Port=', 'Port =', 'Port   ', '=22', 'Port-X=1', ' = ']) {
    t.throws(() => parseDashO(bad), ConfigError, JSON.stringify(bad));
  }
  t.throws(() => parseDashO('Port='), /-o Port=: expected Key=Value/);
});

t.test('ssh-options – every keyword of OpenSSH 10 is known; older names read as the current one', async (t) => {
  for (const text of ['ConnectionAttempts=3', 'IPQoS=throughput', 'ForwardX11Trusted=no', 'EscapeChar=none', 'UseKeychain=yes', 'GSSAPITrustDNS=no', 'Protocol=2', 'WarnWeakCrypto=no', 'Tag=x']) {
    t.equal(dashO(text).key, null, `${text}: accepted, nothing to honour`);
  }
  t.strictSame(dashO('IdentityFile2=~/.ssh/k'), { key: 'identityfile', name: 'IdentityFile', value: '~/.ssh/k' });
  t.equal(dashO('PubkeyAcceptedKeyTypes=ssh-ed25519').key, 'pubkeyacceptedalgorithms');
  t.equal(dashO('IgnoreUnknown=UseKeychain').key, 'ignoreunknown');
  t.equal(dashO('RefuseConnection=yes').key, 'refuseconnection');
  t.ok(isOpenSshKeyword('ChallengeResponseAuthentication') && isOpenSshKeyword('HOSTNAME') && isOpenSshKeyword('include'));
  t.notOk(isOpenSshKeyword('HostNmae'));
  const into: Unhonoured = new Map();
  t.ok(noteUnhonoured(into, 'ChallengeResponseAuthentication', 'no', '-o '), 'an alias of an unhonoured option is one');
  t.match(unhonouredWarnings(into), [/^-o KbdInteractiveAuthentication no: not honoured/]);
});

t.test('ssh-options – addOption: first value wins for single-valued keys', async (t) => {
  const o: SshOptions = {};
  addOption(o, 'port', ['2222']);
  addOption(o, 'port', ['22']);
  addOption(o, 'user', ['alice']);
  addOption(o, 'user', ['bob']);
  addOption(o, 'userknownhostsfile', ['/a', '/b']);
  addOption(o, 'userknownhostsfile', ['/c']);
  t.strictSame(o, { port: ['2222'], user: ['alice'], userknownhostsfile: ['/a', '/b'] });
});

t.test('ssh-options – addOption: IdentityFile and LocalForward accumulate in order', async (t) => {
  const o: SshOptions = {};
  addOption(o, 'identityfile', ['/k1']);
  addOption(o, 'identityfile', ['/k2', '/k3']);
  addOption(o, 'localforward', ['1 h:2']);
  addOption(o, 'localforward', ['3 h:4']);
  t.strictSame(o, { identityfile: ['/k1', '/k2', '/k3'], localforward: ['1 h:2', '3 h:4'] });
});

t.test('ssh-options – addOption copies the values it is given', async (t) => {
  const values = ['/k1'];
  const o: SshOptions = {};
  addOption(o, 'identityfile', values);
  addOption(o, 'identityfile', ['/k2']);
  t.strictSame(values, ['/k1'], 'the caller\'s array is not mutated');
  t.strictSame(o.identityfile, ['/k1', '/k2']);
});

t.test('ssh-options – parseYesNo', async (t) => {
  for (const yes of ['yes', 'YES', 'Yes', 'true', 'TRUE']) t.equal(parseYesNo(yes, 'IdentitiesOnly'), true, yes);
  for (const no of ['no', 'NO', 'false', 'False']) t.equal(parseYesNo(no, 'IdentitiesOnly'), false, no);
  for (const bad of ['', 'y', 'n', '1', '0', 'on', 'off', 'maybe']) {
    t.throws(() => parseYesNo(bad, 'IdentitiesOnly'), ConfigError, JSON.stringify(bad));
  }
  t.throws(() => parseYesNo('maybe', 'IdentitiesOnly'), /IdentitiesOnly: "maybe" must be yes or no/);
});
