import path from 'node:path';
import t, { type Test } from 'tap';
import { resolveTunnel, type ResolveEnv, type TunnelInput } from '../src/config/resolve.js';
import type { Endpoint, TunnelConfig } from '../src/config/types.js';
import { ConfigError } from '../src/errors.js';

const AUTH_SOCK = '/run/user/1000/agent.sock';

const tcp = (host: string, port: number): Endpoint => ({ kind: 'tcp', host, port });

function envFor(home: string, over: Partial<ResolveEnv> = {}): ResolveEnv {
  return { home, localUser: 'me', authSock: AUTH_SOCK, ...over };
}

/** `~/x` in an expectation stands for the test's home directory, recursively through arrays. */
function withHome(value: unknown, home: string): unknown {
  if (typeof value === 'string') return value === '~' ? home : value.startsWith('~/') ? path.join(home, value.slice(2)) : value;
  if (Array.isArray(value)) return value.map((v) => withHome(v, home));
  return value;
}

/**
 * Resolves `input` for destination `prod` (unless given) with `config` written to an explicit
 * -F file (no config file at all when `config` is undefined). The home directory is the testdir.
 */
function resolveIn(
  t: Test,
  input: Partial<TunnelInput>,
  config?: string,
  env: Partial<ResolveEnv> = {},
  warn?: (message: string) => void,
): { cfg: TunnelConfig; home: string } {
  const home = t.testdir(config === undefined ? {} : { ssh_config: config });
  const cfg = resolveTunnel(
    { destination: 'prod', configFile: config === undefined ? 'none' : path.join(home, 'ssh_config'), ...input },
    envFor(home, env),
    warn,
  );
  return { cfg, home };
}

interface Case {
  name: string;
  field: keyof TunnelConfig;
  input?: Partial<TunnelInput>;
  config?: string;
  env?: Partial<ResolveEnv>;
  want: unknown;
}

const cases: Case[] = [
  // Port
  { name: 'Port defaults to 22', field: 'port', want: 22 },
  { name: 'Port from ssh_config', field: 'port', config: 'Host prod\n  Port 2200\n', want: 2200 },
  { name: '-o Port beats ssh_config', field: 'port', input: { options: ['Port=2300'] }, config: 'Host prod\n  Port 2200\n', want: 2300 },
  { name: '-p beats -o Port and ssh_config', field: 'port', input: { port: '2400', options: ['Port=2300'] }, config: 'Host prod\n  Port 2200\n', want: 2400 },
  { name: 'ssh:// port beats ssh_config', field: 'port', input: { destination: 'ssh://prod:2222' }, config: 'Host prod\n  Port 2200\n', want: 2222 },
  { name: '-p beats the ssh:// port', field: 'port', input: { destination: 'ssh://prod:2222', port: '2400' }, want: 2400 },

  // User
  { name: 'User defaults to the local user', field: 'user', want: 'me' },
  { name: 'User from ssh_config', field: 'user', config: 'Host prod\n  User cfguser\n', want: 'cfguser' },
  { name: '-o User beats ssh_config', field: 'user', input: { options: ['User=ouser'] }, config: 'Host prod\n  User cfguser\n', want: 'ouser' },
  { name: 'user@ beats ssh_config', field: 'user', input: { destination: 'atuser@prod' }, config: 'Host prod\n  User cfguser\n', want: 'atuser' },
  { name: '-l beats user@, -o User and ssh_config', field: 'user', input: { destination: 'atuser@prod', user: 'luser', options: ['User=ouser'] }, config: 'Host prod\n  User cfguser\n', want: 'luser' },
  { name: 'ssh://user@host gives the user', field: 'user', input: { destination: 'ssh://uriuser@prod:2222' }, want: 'uriuser' },

  // HostName
  { name: 'HostName defaults to the destination', field: 'hostName', want: 'prod' },
  { name: 'HostName from ssh_config', field: 'hostName', config: 'Host prod\n  HostName 10.1.2.3\n', want: '10.1.2.3' },
  { name: '-o HostName beats ssh_config', field: 'hostName', input: { options: ['HostName=cli.example'] }, config: 'Host prod\n  HostName 10.1.2.3\n', want: 'cli.example' },
  { name: 'HostName %h.example.com expands the destination', field: 'hostName', config: 'Host prod\n  HostName %h.example.com\n', want: 'prod.example.com' },
  { name: 'ssh:// host is the HostName', field: 'hostName', input: { destination: 'ssh://u@bastion.example:2222' }, want: 'bastion.example' },
  { name: 'ssh://[ipv6] loses its brackets', field: 'hostName', input: { destination: 'ssh://[::1]:2222' }, want: '::1' },
  { name: '[ipv6] and user@[ipv6] lose their brackets too', field: 'hostName', input: { destination: 'u@[::1]' }, want: '::1' },
  { name: 'a bracketed IPv6 destination is the host ssh_config matches', field: 'port', input: { destination: '[fe80::1]' }, config: 'Host fe80::1\n  Port 2200\n', want: 2200 },

  // IdentityFile
  { name: 'IdentityFile defaults to OpenSSH\'s list', field: 'identityFiles', want: ['~/.ssh/id_ed25519', '~/.ssh/id_ecdsa', '~/.ssh/id_rsa'] },
  { name: 'default identities are not explicit', field: 'identityFilesExplicit', want: false },
  {
    name: 'IdentityFile lines in ssh_config accumulate in file order',
    field: 'identityFiles',
    config: 'Host prod\n  IdentityFile ~/.ssh/cfg1\nHost *\n  IdentityFile ~/.ssh/cfg2\n',
    want: ['~/.ssh/cfg1', '~/.ssh/cfg2'],
  },
  { name: 'IdentityFile from ssh_config is explicit', field: 'identityFilesExplicit', config: 'Host prod\n  IdentityFile ~/.ssh/cfg1\n', want: true },
  {
    name: '-i comes first, then -o IdentityFile, then ssh_config',
    field: 'identityFiles',
    input: { identityFiles: ['/cli/k1', '/cli/k2'], options: ['IdentityFile=/opt/k3'] },
    config: 'Host prod\n  IdentityFile ~/.ssh/cfg1\n  IdentityFile ~/.ssh/cfg2\n',
    want: ['/cli/k1', '/cli/k2', '/opt/k3', '~/.ssh/cfg1', '~/.ssh/cfg2'],
  },
  { name: '-i alone is explicit and replaces the defaults', field: 'identityFiles', input: { identityFiles: ['/cli/k1'] }, want: ['/cli/k1'] },
  { name: '-i sets identityFilesExplicit', field: 'identityFilesExplicit', input: { identityFiles: ['/cli/k1'] }, want: true },

  // ConnectTimeout
  { name: 'ConnectTimeout defaults to 15 s', field: 'connectTimeoutMs', want: 15_000 },
  { name: 'ConnectTimeout from ssh_config is seconds', field: 'connectTimeoutMs', config: 'Host prod\n  ConnectTimeout 5\n', want: 5_000 },
  { name: '-o ConnectTimeout beats ssh_config', field: 'connectTimeoutMs', input: { options: ['ConnectTimeout=500ms'] }, config: 'Host prod\n  ConnectTimeout 5\n', want: 500 },

  // ServerAliveInterval / CountMax
  { name: 'ServerAliveInterval defaults to 15 s', field: 'keepaliveIntervalMs', want: 15_000 },
  { name: 'ServerAliveInterval from ssh_config', field: 'keepaliveIntervalMs', config: 'Host prod\n  ServerAliveInterval 30\n', want: 30_000 },
  { name: '-o ServerAliveInterval beats ssh_config', field: 'keepaliveIntervalMs', input: { options: ['ServerAliveInterval=2'] }, config: 'Host prod\n  ServerAliveInterval 30\n', want: 2_000 },
  { name: 'ServerAliveCountMax unset: one missed adaptive deadline', field: 'keepaliveCountMax', want: undefined },
  { name: 'ServerAliveCountMax from ssh_config', field: 'keepaliveCountMax', config: 'Host prod\n  ServerAliveCountMax 7\n', want: 7 },
  { name: '-o ServerAliveCountMax beats ssh_config', field: 'keepaliveCountMax', input: { options: ['ServerAliveCountMax=1'] }, config: 'Host prod\n  ServerAliveCountMax 7\n', want: 1 },

  // StrictHostKeyChecking
  { name: 'StrictHostKeyChecking defaults to yes', field: 'strictHostKeyChecking', want: 'yes' },
  { name: 'StrictHostKeyChecking accept-new from ssh_config', field: 'strictHostKeyChecking', config: 'Host prod\n  StrictHostKeyChecking accept-new\n', want: 'accept-new' },
  { name: '-o StrictHostKeyChecking=no beats ssh_config', field: 'strictHostKeyChecking', input: { options: ['StrictHostKeyChecking=no'] }, config: 'Host prod\n  StrictHostKeyChecking accept-new\n', want: 'no' },
  { name: 'StrictHostKeyChecking ask is yes (nobody to ask)', field: 'strictHostKeyChecking', input: { options: ['StrictHostKeyChecking=ask'] }, want: 'yes' },
  { name: 'StrictHostKeyChecking off is no', field: 'strictHostKeyChecking', config: 'Host prod\n  StrictHostKeyChecking off\n', want: 'no' },
  { name: 'StrictHostKeyChecking yes in ssh_config', field: 'strictHostKeyChecking', config: 'Host prod\n  StrictHostKeyChecking YES\n', want: 'yes' },

  // UserKnownHostsFile / GlobalKnownHostsFile
  { name: 'UserKnownHostsFile defaults to ~/.ssh/known_hosts', field: 'knownHostsFiles', want: ['~/.ssh/known_hosts'] },
  { name: 'GlobalKnownHostsFile defaults to /etc/ssh/ssh_known_hosts', field: 'globalKnownHostsFiles', want: ['/etc/ssh/ssh_known_hosts'] },
  { name: 'UserKnownHostsFile with several paths in ssh_config', field: 'knownHostsFiles', config: 'Host prod\n  UserKnownHostsFile ~/.ssh/kh1 /etc/kh2\n', want: ['~/.ssh/kh1', '/etc/kh2'] },
  { name: 'UserKnownHostsFile with several paths in -o', field: 'knownHostsFiles', input: { options: ['UserKnownHostsFile=/a /b'] }, config: 'Host prod\n  UserKnownHostsFile /c\n', want: ['/a', '/b'] },
  { name: 'UserKnownHostsFile none means no file', field: 'knownHostsFiles', config: 'Host prod\n  UserKnownHostsFile none\n', want: [] },
  { name: '-o UserKnownHostsFile=none beats ssh_config', field: 'knownHostsFiles', input: { options: ['UserKnownHostsFile=none'] }, config: 'Host prod\n  UserKnownHostsFile /c\n', want: [] },
  { name: 'GlobalKnownHostsFile none', field: 'globalKnownHostsFiles', input: { options: ['GlobalKnownHostsFile=none'] }, want: [] },

  // HostKeyAlias
  { name: 'HostKeyAlias defaults to unset', field: 'hostKeyAlias', want: undefined },
  { name: 'HostKeyAlias from ssh_config', field: 'hostKeyAlias', config: 'Host prod\n  HostKeyAlias prod-alias\n', want: 'prod-alias' },
  { name: '-o HostKeyAlias beats ssh_config', field: 'hostKeyAlias', input: { options: ['HostKeyAlias=cli-alias'] }, config: 'Host prod\n  HostKeyAlias prod-alias\n', want: 'cli-alias' },

  // IdentityAgent
  { name: 'IdentityAgent defaults to SSH_AUTH_SOCK from the env', field: 'agentSocket', want: AUTH_SOCK },
  { name: 'no SSH_AUTH_SOCK and no IdentityAgent means no agent', field: 'agentSocket', env: { authSock: undefined }, want: undefined },
  { name: 'IdentityAgent none disables the agent', field: 'agentSocket', config: 'Host prod\n  IdentityAgent none\n', want: undefined },
  { name: 'IdentityAgent path is ~-expanded', field: 'agentSocket', config: 'Host prod\n  IdentityAgent ~/.agent.sock\n', want: '~/.agent.sock' },
  { name: '-o IdentityAgent=SSH_AUTH_SOCK beats IdentityAgent none', field: 'agentSocket', input: { options: ['IdentityAgent=SSH_AUTH_SOCK'] }, config: 'Host prod\n  IdentityAgent none\n', want: AUTH_SOCK },
  { name: '-o IdentityAgent=none beats a configured path', field: 'agentSocket', input: { options: ['IdentityAgent=none'] }, config: 'Host prod\n  IdentityAgent /tmp/a.sock\n', want: undefined },

  // IdentitiesOnly
  { name: 'IdentitiesOnly defaults to no', field: 'identitiesOnly', want: false },
  { name: 'IdentitiesOnly yes from ssh_config', field: 'identitiesOnly', config: 'Host prod\n  IdentitiesOnly yes\n', want: true },
  { name: '-o IdentitiesOnly=no beats ssh_config', field: 'identitiesOnly', input: { options: ['IdentitiesOnly=no'] }, config: 'Host prod\n  IdentitiesOnly yes\n', want: false },

  // name
  { name: 'the tunnel is named after the destination, not HostName', field: 'name', config: 'Host prod\n  HostName 10.1.2.3\n', want: 'prod' },
];

t.test('resolve – precedence: command line > ssh_config > defaults', async (t) => {
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const { cfg, home } = resolveIn(t, c.input ?? {}, c.config, c.env);
      t.strictSame(cfg[c.field], withHome(c.want, home), `${c.field}`);
    });
  }
});

t.test('resolve – Host patterns: the first matching value wins, `Host *` fills the rest', async (t) => {
  const config = [
    'Host prod-*',
    '  User produser',
    '  Port 2201',
    'Host *',
    '  User fallback',
    '  Port 2299',
    '  ServerAliveInterval 7',
    '',
  ].join('\n');
  const { cfg: prod } = resolveIn(t, { destination: 'prod-db' }, config);
  t.equal(prod.user, 'produser');
  t.equal(prod.port, 2201);
  t.equal(prod.keepaliveIntervalMs, 7_000, 'Host * still applies to what prod-* left unset');
  const { cfg: other } = resolveIn(t, { destination: 'staging' }, config);
  t.equal(other.user, 'fallback');
  t.equal(other.port, 2299);
});

t.test('resolve – negated Host patterns exclude a host', async (t) => {
  const config = 'Host * !bastion\n  User everyone\n';
  t.equal(resolveIn(t, { destination: 'web' }, config).cfg.user, 'everyone');
  t.equal(resolveIn(t, { destination: 'bastion' }, config).cfg.user, 'me', 'the negated host gets no User');
});

t.test('resolve – ssh_config keys are case-insensitive', async (t) => {
  const { cfg } = resolveIn(t, {}, 'host prod\n  hostname lower.example\n  PORT 2022\n  user Lower\n');
  t.equal(cfg.hostName, 'lower.example');
  t.equal(cfg.port, 2022);
  t.equal(cfg.user, 'Lower');
});

t.test('resolve – %h %p %r %u %d %n %% and ~ tokens in IdentityFile', async (t) => {
  const config = [
    'Host prod',
    '  HostName real.example',
    '  User bob',
    '  Port 2222',
    '  IdentityFile ~/.ssh/%r@%h-%p-%u-%n',
    '  IdentityFile %d/keys/100%%',
    '',
  ].join('\n');
  const { cfg, home } = resolveIn(t, { identityFiles: ['~/cli-%h'] }, config);
  t.strictSame(cfg.identityFiles, [
    path.join(home, 'cli-real.example'),
    path.join(home, '.ssh/bob@real.example-2222-me-prod'),
    `${home}/keys/100%`,
  ]);
});

t.test('resolve – tokens see command-line values', async (t) => {
  const { cfg, home } = resolveIn(t, { user: 'carol', port: '2022' }, 'Host prod\n  IdentityFile ~/.ssh/%r-%p\n');
  t.strictSame(cfg.identityFiles, [path.join(home, '.ssh/carol-2022')]);
});

t.test('resolve – tokens in UserKnownHostsFile and IdentityAgent', async (t) => {
  const { cfg, home } = resolveIn(t, {}, 'Host prod\n  UserKnownHostsFile ~/kh-%h\n  IdentityAgent %d/agent-%u\n');
  t.strictSame(cfg.knownHostsFiles, [path.join(home, 'kh-prod')]);
  t.equal(cfg.agentSocket, `${home}/agent-me`);
});

t.test('resolve – an unknown % token is a ConfigError', async (t) => {
  t.throws(() => resolveIn(t, {}, 'Host prod\n  IdentityFile ~/.ssh/%z\n'), ConfigError);
  t.throws(() => resolveIn(t, {}, 'Host prod\n  IdentityFile ~/.ssh/%z\n'), /IdentityFile: unknown token %z/);
  t.throws(() => resolveIn(t, {}, 'Host prod\n  HostName %p.example\n'), /HostName: unknown token %p/);
  t.throws(() => resolveIn(t, { identityFiles: ['/k-%q'] }), /unknown token %q/);
});

t.test('resolve – LocalForward in ssh_config becomes a forward after the -L ones', async (t) => {
  const { cfg } = resolveIn(
    t,
    { localForwards: ['15432:db.internal:5432'], options: ['LocalForward=7000 h:7'] },
    'Host prod\n  LocalForward 5432 db:5432\n  LocalForward 0.0.0.0:6543   db2:5433\n',
  );
  t.strictSame(
    cfg.forwards.map((f) => [f.type, f.listen, f.bindExplicit, f.type === 'local' ? f.target : undefined]),
    [
      ['local', tcp('127.0.0.1', 15432), false, tcp('db.internal', 5432)],
      ['local', tcp('127.0.0.1', 7000), false, tcp('h', 7)],
      ['local', tcp('127.0.0.1', 5432), false, tcp('db', 5432)],
      ['local', tcp('0.0.0.0', 6543), true, tcp('db2', 5433)],
    ],
  );
  t.strictSame(cfg.remoteForwards, [], 'no -R');
});

t.test('resolve – no forwards at all is an empty list', async (t) => {
  t.strictSame(resolveIn(t, {}).cfg.forwards, []);
});

t.test('resolve – a malformed LocalForward in ssh_config is a ConfigError', async (t) => {
  t.throws(() => resolveIn(t, {}, 'Host prod\n  LocalForward 5432\n'), ConfigError);
});

t.test('resolve – ProxyJump and ProxyCommand are honoured, no longer refused', async (t) => {
  const viaConfig = resolveIn(t, {}, 'Host prod\n  ProxyJump bastion\n').cfg;
  t.strictSame(viaConfig.jumps.map((j) => [j.name, j.hostName, j.port, j.user]), [['bastion', 'bastion', 22, 'me']], 'ProxyJump in ssh_config');
  t.equal(viaConfig.hostName, 'prod', 'the destination is still prod');
  t.equal(viaConfig.proxyCommand, undefined);
  const viaOption = resolveIn(t, { options: ['ProxyJump=bastion'] }).cfg;
  t.strictSame(viaOption.jumps.map((j) => j.name), ['bastion'], '-o ProxyJump');
  t.equal(resolveIn(t, {}, 'Host prod\n  ProxyCommand nc %h %p\n').cfg.proxyCommand, 'nc prod 22', 'ProxyCommand in ssh_config, tokens expanded');
  const cmd = resolveIn(t, { options: ['ProxyCommand=ssh -W %h:%p bastion'] }).cfg;
  t.equal(cmd.proxyCommand, 'ssh -W prod:22 bastion', '-o ProxyCommand');
  t.strictSame(cmd.jumps, [], 'a ProxyCommand is no jump');
});

t.test('resolve – -o ProxyJump=none (or ProxyCommand=none) disables a configured one', async (t) => {
  const jumpNone = resolveIn(t, { options: ['ProxyJump=none'] }, 'Host prod\n  ProxyJump bastion\n').cfg;
  t.equal(jumpNone.hostName, 'prod');
  t.strictSame(jumpNone.jumps, [], 'no jump');
  const cmdNone = resolveIn(t, { options: ['ProxyCommand=none'] }, 'Host prod\n  ProxyCommand nc %h %p\n').cfg;
  t.equal(cmdNone.hostName, 'prod');
  t.equal(cmdNone.proxyCommand, undefined, 'no ProxyCommand');
  const inConfig = resolveIn(t, {}, 'Host prod\n  ProxyJump none\n').cfg;
  t.equal(inConfig.port, 22, 'ProxyJump none in ssh_config is fine');
  t.strictSame(inConfig.jumps, []);
  t.strictSame(resolveIn(t, { options: ['ProxyCommand=none'] }, 'Host prod\n  ProxyJump bastion\n').cfg.jumps, [], 'ProxyCommand=none given first also disables a ProxyJump');
});

t.test('resolve – the default ~/.ssh/config is read; a missing one is no config', async (t) => {
  const home = t.testdir({ '.ssh': { config: 'Host prod\n  User fromdefault\n  Port 2022\n' } });
  const cfg = resolveTunnel({ destination: 'prod' }, envFor(home));
  t.equal(cfg.user, 'fromdefault');
  t.equal(cfg.port, 2022);

  const emptyHome = path.join(home, 'no-such-home');
  const bare = resolveTunnel({ destination: 'prod' }, envFor(emptyHome));
  t.equal(bare.user, 'me');
  t.equal(bare.port, 22);
});

t.test('resolve – a missing explicit -F file is a ConfigError', async (t) => {
  const home = t.testdir({});
  const missing = path.join(home, 'nope');
  t.throws(() => resolveTunnel({ destination: 'prod', configFile: missing }, envFor(home)), ConfigError);
  t.throws(() => resolveTunnel({ destination: 'prod', configFile: missing }, envFor(home)), /-F .*nope.*ENOENT/);
});

t.test('resolve – -F ~/file is ~-expanded', async (t) => {
  const home = t.testdir({ alt: 'Host prod\n  User alt\n' });
  t.equal(resolveTunnel({ destination: 'prod', configFile: '~/alt' }, envFor(home)).user, 'alt');
});

t.test('resolve – -F none ignores every config file', async (t) => {
  const home = t.testdir({ '.ssh': { config: 'Host *\n  User fromdefault\n  ProxyJump bastion\n' } });
  const cfg = resolveTunnel({ destination: 'prod', configFile: 'none' }, envFor(home));
  t.equal(cfg.user, 'me');
  t.strictSame(cfg.jumps, [], 'the ProxyJump of ~/.ssh/config is not read either');
  t.equal(resolveTunnel({ destination: 'prod', configFile: 'NONE' }, envFor(home)).user, 'me', 'none is case-insensitive');
});

t.test('resolve – an ignored -o option is accepted with a warning', async (t) => {
  const warnings: string[] = [];
  const { cfg } = resolveIn(t, { options: ['BatchMode=yes', 'Port=2022', 'forwardagent no'] }, undefined, {}, (m) => warnings.push(m));
  t.equal(cfg.port, 2022);
  t.equal(warnings.length, 2, 'one warning per ignored option, none for honoured ones');
  t.match(warnings[0], /BatchMode/);
  t.match(warnings[0], /no effect/);
  t.match(warnings[1], /forwardagent/i);
});

t.test('resolve – no warning when every -o option is honoured', async (t) => {
  const warnings: string[] = [];
  resolveIn(t, { options: ['Port=2022', 'User=x'] }, undefined, {}, (m) => warnings.push(m));
  t.strictSame(warnings, []);
});

t.test('resolve – bad values are ConfigErrors', async (t) => {
  const bad: [Partial<TunnelInput>, RegExp][] = [
    [{ options: ['NoSuchOption=1'] }, /unknown option/],
    [{ port: '0' }, /^-p: "0"/],
    [{ port: 'ssh' }, /^-p: "ssh"/],
    [{ options: ['Port=70000'] }, /Port/],
    [{ options: ['ConnectTimeout=soon'] }, /ConnectTimeout/],
    [{ options: ['ServerAliveInterval=-1'] }, /ServerAliveInterval/],
    [{ options: ['ServerAliveCountMax=0'] }, /ServerAliveCountMax/],
    [{ options: ['ServerAliveCountMax=2.5'] }, /ServerAliveCountMax/],
    [{ options: ['StrictHostKeyChecking=maybe'] }, /StrictHostKeyChecking/],
    [{ options: ['IdentitiesOnly=perhaps'] }, /IdentitiesOnly/],
    [{ localForwards: ['1:2'] }, /-L 1:2/],
    // Regression: check listed it as "missing, skipped as ssh skips them: " with no name.
    [{ identityFiles: [''] }, /^-i: an empty path; give the identity \(private key\) file\.$/],
    [{ destination: '' }, /destination/],
    [{ destination: '@host' }, /destination/],
    [{ destination: 'user@' }, /destination/],
    [{ destination: 'has space' }, /destination/],
    [{ destination: 'host/path' }, /destination/],
    // Regressions: these passed check and then failed to resolve at every retry, or dialled localhost.
    [{ destination: 'h:22' }, /^destination "h:22": a destination is \[user@\]host, without a port: give -p 22 h, or ssh:\/\/h:22\.$/],
    [{ destination: 'u@h:2222' }, /give -p 2222 u@h, or ssh:\/\/u@h:2222/],
    [{ options: ['HostName=""'] }, /^-o HostName: "" is not a host name/],
    [{ options: ['HostName=a b'] }, /^-o HostName: "a b" is not a host name/],
  ];
  for (const [input, message] of bad) {
    t.throws(() => resolveIn(t, input), ConfigError, JSON.stringify(input));
    t.throws(() => resolveIn(t, input), message, JSON.stringify(input));
  }
});
