/**
 * resolveTunnel: jump hosts (-J, ProxyJump), ProxyCommand, the -R/-D forwards of ssh_config,
 * ExitOnForwardFailure and --socks-auth.
 */
import path from 'node:path';
import t, { type Test } from 'tap';
import { resolveTunnel, type ResolveEnv, type TunnelInput } from '../src/config/resolve.js';
import type { Endpoint, HostConfig, TunnelConfig } from '../src/config/types.js';
import { ConfigError } from '../src/errors.js';
import { configError } from './fixtures/errors.js';

const tcp = (host: string, port: number): Endpoint => ({ kind: 'tcp', host, port });

/**
 * Resolves `input` (destination `prod` unless given) with `config` as the -F file
 * (`-F none` when undefined); the home directory is the test's directory.
 */
function resolve(t: Test, input: Partial<TunnelInput>, config?: string, env: Partial<ResolveEnv> = {}): { cfg: TunnelConfig; home: string } {
  const home = t.testdir(config === undefined ? {} : { ssh_config: config });
  const cfg = resolveTunnel(
    { destination: 'prod', configFile: config === undefined ? 'none' : path.join(home, 'ssh_config'), ...input },
    { home, localUser: 'me', authSock: undefined, ...env },
  );
  return { cfg, home };
}

/** name, hostName, port, user of each hop. */
const hops = (c: TunnelConfig) => c.jumps.map((j) => [j.name, j.hostName, j.port, j.user]);

// -J and ProxyJump

t.test('resolve-jump – no ProxyJump: no jump hosts, no ProxyCommand', async (t) => {
  const { cfg } = resolve(t, {});
  t.strictSame(cfg.jumps, []);
  t.equal(cfg.proxyCommand, undefined);
});

t.test('resolve-jump – -J host: one hop with the defaults', async (t) => {
  const { cfg, home } = resolve(t, { jump: 'bastion' });
  t.equal(cfg.jumps.length, 1);
  const hop = cfg.jumps[0]!;
  t.strictSame(
    hop,
    {
      name: 'bastion',
      hostName: 'bastion',
      port: 22,
      user: 'me',
      identityFiles: ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((f) => path.join(home, '.ssh', f)),
      identityFilesExplicit: false,
      certificateFiles: [],
      identitiesOnly: false,
      agentSocket: undefined,
      connectTimeoutMs: 15_000,
      strictHostKeyChecking: 'yes',
      knownHostsFiles: [path.join(home, '.ssh/known_hosts')],
      globalKnownHostsFiles: ['/etc/ssh/ssh_known_hosts'],
      hostKeyAlias: undefined,
      proxyCommand: undefined,
      addressFamily: 'any',
      compression: false,
      algorithms: {},
    } satisfies HostConfig,
    'a full HostConfig',
  );
  t.equal(cfg.hostName, 'prod', 'the destination is still the destination');
  t.equal(cfg.proxyCommand, undefined);
});

t.test('resolve-jump – a hop uses the agent of the environment', async (t) => {
  const { cfg } = resolve(t, { jump: 'bastion' }, undefined, { authSock: '/run/agent.sock' });
  t.equal(cfg.jumps[0]!.agentSocket, '/run/agent.sock');
});

t.test('resolve-jump – -J a,b is a chain, first hop first', async (t) => {
  t.strictSame(hops(resolve(t, { jump: 'a,b' }).cfg), [['a', 'a', 22, 'me'], ['b', 'b', 22, 'me']]);
  t.strictSame(hops(resolve(t, { jump: 'a, b ,c' }).cfg).map((h) => h[0]), ['a', 'b', 'c'], 'spaces around hops are ignored');
});

t.test('resolve-jump – a hop as user@host:port, [v6]:port or ssh://', async (t) => {
  t.strictSame(hops(resolve(t, { jump: 'ju@bastion:2201' }).cfg), [['bastion', 'bastion', 2201, 'ju']]);
  t.strictSame(hops(resolve(t, { jump: 'ju@bastion' }).cfg), [['bastion', 'bastion', 22, 'ju']]);
  t.strictSame(hops(resolve(t, { jump: 'bastion:2201' }).cfg), [['bastion', 'bastion', 2201, 'me']]);
  t.strictSame(hops(resolve(t, { jump: '[::1]:2222' }).cfg), [['::1', '::1', 2222, 'me']]);
  t.strictSame(hops(resolve(t, { jump: 'u@[fe80::1]' }).cfg), [['fe80::1', 'fe80::1', 22, 'u']]);
  t.strictSame(hops(resolve(t, { jump: 'ssh://su@h.example:2200' }).cfg), [['h.example', 'h.example', 2200, 'su']]);
  t.strictSame(hops(resolve(t, { jump: 'a@h1:1,b@h2:2' }).cfg), [['h1', 'h1', 1, 'a'], ['h2', 'h2', 2, 'b']]);
});

t.test("resolve-jump – the destination's -p, -l and -o do not apply to the hops", async (t) => {
  const { cfg } = resolve(t, { jump: 'bastion', port: '2022', user: 'carol', options: ['User=ouser', 'HostName=10.9.9.9'] });
  t.strictSame([cfg.hostName, cfg.port, cfg.user], ['10.9.9.9', 2022, 'carol']);
  t.strictSame(hops(cfg), [['bastion', 'bastion', 22, 'me']]);
});

t.test('resolve-jump – malformed -J values are ConfigErrors', async (t) => {
  const bad: [string, RegExp][] = [
    ['', /empty hop/],
    ['a,', /empty hop/],
    [',a', /empty hop/],
    ['a,,b', /empty hop/],
    ['a:x', /^-J a:x: expected \[user@\]host\[:port\]/],
    ['a:b:c', /^-J a:b:c:/],
    ['@a', /^-J @a:/],
    ['a@', /^-J a@:/],
    ['a:0', /^-J a:0: port: "0"/],
    ['a:99999', /^-J a:99999: port/],
    ['[::1', /^-J \[::1:/],
    ['ok,bad:port', /^-J bad:port:/],
    // Regression: a hop with a space was taken, then looked up in DNS for ever (a destination with one is refused).
    ['a b', /^-J a b: expected \[user@\]host\[:port\]/],
    ['u v@a', /^-J u v@a: expected/],
  ];
  for (const [jump, want] of bad) t.match(configError(t, () => resolve(t, { jump }), JSON.stringify(jump)), want, JSON.stringify(jump));
});

t.test('resolve-jump – -o ProxyJump and ssh_config ProxyJump give jump hosts too', async (t) => {
  t.strictSame(hops(resolve(t, { options: ['ProxyJump=u@b1:2201,b2'] }).cfg), [['b1', 'b1', 2201, 'u'], ['b2', 'b2', 22, 'me']]);
  t.strictSame(hops(resolve(t, {}, 'Host prod\n  ProxyJump cfg-bastion\n').cfg).map((h) => h[0]), ['cfg-bastion']);
  t.strictSame(hops(resolve(t, {}, 'Host prod\n  ProxyJump a,b\n').cfg).map((h) => h[0]), ['a', 'b']);
});

t.test('resolve-jump – -J beats -o ProxyJump, which beats ssh_config', async (t) => {
  const config = 'Host prod\n  ProxyJump from-config\n';
  t.strictSame(hops(resolve(t, { jump: 'from-j', options: ['ProxyJump=from-o'] }, config).cfg).map((h) => h[0]), ['from-j']);
  t.strictSame(hops(resolve(t, { options: ['ProxyJump=from-o'] }, config).cfg).map((h) => h[0]), ['from-o']);
});

t.test('resolve-jump – -J none disables a configured ProxyJump (and ProxyCommand)', async (t) => {
  const config = 'Host prod\n  HostName prod.example\n  ProxyJump bastion\nHost other\n  ProxyCommand nc %h %p\n';
  const { cfg } = resolve(t, { jump: 'none' }, config);
  t.strictSame(cfg.jumps, [], '-J none');
  t.equal(cfg.hostName, 'prod.example', 'the rest of ssh_config still applies');
  t.strictSame(resolve(t, { jump: 'NONE' }, config).cfg.jumps, [], 'none is case-insensitive');
  t.strictSame(resolve(t, { options: ['ProxyJump=none'] }, config).cfg.jumps, [], '-o ProxyJump=none');
  const cmd = resolve(t, { destination: 'other', jump: 'none' }, config).cfg;
  t.equal(cmd.proxyCommand, undefined, '-J none also disables a configured ProxyCommand (it comes first)');
  t.strictSame(cmd.jumps, []);
});

// Per-hop ssh_config

const HOPS_CONFIG = `Host bastion
  HostName 10.0.0.1
  Port 2201
  User bu
  IdentityFile ~/.ssh/bastion_%r_%h_%n
  UserKnownHostsFile ~/kh/%n
  IdentitiesOnly yes
  StrictHostKeyChecking accept-new
  HostKeyAlias bastion-alias
  ConnectTimeout 3
  IdentityAgent ~/agent-%n.sock
Host inner
  HostName inner.internal
  User iu
Host prod
  HostName prod.internal
  User pu
  Port 2222
  IdentityFile ~/.ssh/prod_key
Host *
  ServerAliveInterval 7
`;

t.test('resolve-jump – each hop is resolved from its own ssh_config Host block', async (t) => {
  const { cfg, home } = resolve(t, { jump: 'bastion,inner' }, HOPS_CONFIG);
  const [bastion, inner] = cfg.jumps as [HostConfig, HostConfig];
  t.equal(cfg.jumps.length, 2);
  t.strictSame([bastion.name, bastion.hostName, bastion.port, bastion.user], ['bastion', '10.0.0.1', 2201, 'bu']);
  t.strictSame(bastion.identityFiles, [path.join(home, '.ssh/bastion_bu_10.0.0.1_bastion')], "IdentityFile with the hop's own tokens");
  t.equal(bastion.identityFilesExplicit, true);
  t.strictSame(bastion.knownHostsFiles, [path.join(home, 'kh/bastion')], 'UserKnownHostsFile');
  t.equal(bastion.identitiesOnly, true);
  t.equal(bastion.strictHostKeyChecking, 'accept-new');
  t.equal(bastion.hostKeyAlias, 'bastion-alias');
  t.equal(bastion.connectTimeoutMs, 3_000);
  t.equal(bastion.agentSocket, path.join(home, 'agent-bastion.sock'), 'IdentityAgent');

  t.strictSame([inner.name, inner.hostName, inner.port, inner.user], ['inner', 'inner.internal', 22, 'iu']);
  t.equal(inner.identityFilesExplicit, false, "bastion's IdentityFile does not leak into inner");
  t.equal(inner.hostKeyAlias, undefined);
  t.equal(inner.strictHostKeyChecking, 'yes');

  t.strictSame([cfg.hostName, cfg.port, cfg.user], ['prod.internal', 2222, 'pu'], 'the destination from its own block');
  t.strictSame(cfg.identityFiles, [path.join(home, '.ssh/prod_key')], "the hops' IdentityFile does not leak into the destination");
  t.equal(cfg.hostKeyAlias, undefined);
});

t.test('resolve-jump – user@host:port in the hop spec beats its ssh_config', async (t) => {
  const { cfg, home } = resolve(t, { jump: 'spec@bastion:2999' }, HOPS_CONFIG);
  t.strictSame(hops(cfg), [['bastion', '10.0.0.1', 2999, 'spec']], 'HostName still from ssh_config');
  t.strictSame(cfg.jumps[0]!.identityFiles, [path.join(home, '.ssh/bastion_spec_10.0.0.1_bastion')], '%r is the user of the spec');
});

t.test('resolve-jump – -F none: hops get nothing from ssh_config', async (t) => {
  const home = t.testdir({ '.ssh': { config: HOPS_CONFIG } });
  const cfg = resolveTunnel({ destination: 'prod', jump: 'bastion', configFile: 'none' }, { home, localUser: 'me', authSock: undefined });
  t.strictSame(hops(cfg), [['bastion', 'bastion', 22, 'me']]);
});

t.test('resolve-jump – hops are looked up in the default ~/.ssh/config', async (t) => {
  const home = t.testdir({ '.ssh': { config: HOPS_CONFIG } });
  const cfg = resolveTunnel({ destination: 'prod', jump: 'bastion' }, { home, localUser: 'me', authSock: undefined });
  t.strictSame(hops(cfg), [['bastion', '10.0.0.1', 2201, 'bu']]);
});

t.test("resolve-jump – a bad value in a hop's ssh_config is a ConfigError", async (t) => {
  t.match(configError(t, () => resolve(t, { jump: 'bastion' }, 'Host bastion\n  Port abc\n'), 'Port abc'), /ssh_config line 2: Port: "abc"/, 'names the line of the bad value');
  t.match(configError(t, () => resolve(t, { jump: 'bastion' }, 'Host bastion\n  StrictHostKeyChecking maybe\n'), 'SHKC'), /StrictHostKeyChecking/);
  t.match(configError(t, () => resolve(t, { jump: 'bastion' }, 'Host bastion\n  IdentityFile ~/%z\n'), '%z'), /unknown token %z/);
});

// Recursive ProxyJump

t.test("resolve-jump – the first hop's own ProxyJump is followed, recursively", async (t) => {
  const config = [
    'Host prod',
    '  ProxyJump inner',
    'Host inner',
    '  HostName inner.internal',
    '  ProxyJump outer',
    'Host outer',
    '  HostName outer.example',
    '  ProxyJump edge',
    'Host edge',
    '  Port 2200',
    '',
  ].join('\n');
  t.strictSame(
    hops(resolve(t, {}, config).cfg),
    [
      ['edge', 'edge', 2200, 'me'],
      ['outer', 'outer.example', 22, 'me'],
      ['inner', 'inner.internal', 22, 'me'],
    ],
    'edge, then outer, then inner, then prod',
  );
  t.strictSame(hops(resolve(t, { jump: 'inner' }, config).cfg).map((h) => h[0]), ['edge', 'outer', 'inner'], 'from -J too');
});

t.test("resolve-jump – a first hop's ProxyJump list comes before it", async (t) => {
  const config = 'Host a\n  ProxyJump x,y\n';
  t.strictSame(hops(resolve(t, { jump: 'a,b' }, config).cfg).map((h) => h[0]), ['x', 'y', 'a', 'b']);
});

t.test("resolve-jump – a later hop's own ProxyJump and ProxyCommand are ignored", async (t) => {
  const config = 'Host b\n  ProxyJump c\n  User bu\nHost d\n  ProxyCommand nc %h %p\n';
  const { cfg } = resolve(t, { jump: 'a,b,d' }, config);
  t.strictSame(hops(cfg), [['a', 'a', 22, 'me'], ['b', 'b', 22, 'bu'], ['d', 'd', 22, 'me']], 'no c; b still gets its User');
  t.equal(cfg.jumps[2]!.proxyCommand, undefined, "d's ProxyCommand is ignored: d is reached through b");
});

t.test("resolve-jump – the first hop's ProxyCommand is kept, with the hop's tokens", async (t) => {
  const config = 'Host a\n  HostName a.example\n  User au\n  Port 2201\n  ProxyCommand nc -X connect -x proxy:3128 %h %p %r %n\n';
  const { cfg } = resolve(t, { jump: 'a,b' }, config);
  t.strictSame(cfg.jumps.map((j) => j.proxyCommand), ['nc -X connect -x proxy:3128 a.example 2201 au a', undefined]);
  t.equal(cfg.proxyCommand, undefined, 'the destination has jumps, not a ProxyCommand');
});

t.test('resolve-jump – the usual "Host * !bastion" pattern is not a loop', async (t) => {
  const config = 'Host bastion\n  HostName 10.0.0.1\nHost * !bastion\n  ProxyJump bastion\n';
  t.strictSame(hops(resolve(t, {}, config).cfg), [['bastion', '10.0.0.1', 22, 'me']]);
});

// Loops

t.test('resolve-jump – a ProxyJump loop in ssh_config is a ConfigError mentioning the loop', async (t) => {
  const loops: [string, Partial<TunnelInput>, string][] = [
    ['Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n', { jump: 'a' }, 'a -> b -> a'],
    ['Host a\n  ProxyJump a\n', { jump: 'a' }, 'a -> a'],
    ['Host prod\n  ProxyJump a\nHost a\n  ProxyJump b\nHost b\n  ProxyJump c\nHost c\n  ProxyJump a\n', {}, 'prod -> a -> b -> c -> a'],
    ['Host *\n  ProxyJump bastion\n', {}, 'Host * ProxyJump bastion (bastion jumps through itself)'],
  ];
  for (const [config, input, what] of loops) {
    const message = configError(t, () => resolve(t, input, config), what);
    t.match(message, /loop/, `${what}: ${message}`);
    t.match(message, /ProxyJump/, `${what}: names ProxyJump`);
  }
});

t.test('resolve-jump – a long chain without a loop is fine', async (t) => {
  // prod -> h1 -> h2 ... -> h10: ten hops, no loop.
  const lines = ['Host prod', '  ProxyJump h1'];
  for (let i = 1; i < 10; i++) lines.push(`Host h${i}`, `  ProxyJump h${i + 1}`);
  const { cfg } = resolve(t, {}, `${lines.join('\n')}\n`);
  t.strictSame(cfg.jumps.map((j) => j.name), ['h10', 'h9', 'h8', 'h7', 'h6', 'h5', 'h4', 'h3', 'h2', 'h1']);
});

t.test('resolve-jump – a loop of later hops is no loop: their ProxyJump is ignored', async (t) => {
  const config = 'Host b\n  ProxyJump c\nHost c\n  ProxyJump b\n';
  t.strictSame(hops(resolve(t, { jump: 'a,b,c' }, config).cfg).map((h) => h[0]), ['a', 'b', 'c']);
});

// ProxyCommand

t.test('resolve-jump – ProxyCommand tokens: %h (HostName) %p %r %n %%', async (t) => {
  const config = 'Host prod\n  HostName prod.internal\n  User pu\n  Port 2222\n  ProxyCommand connect -S socks:1080 %h %p %r@%n 100%%\n';
  t.equal(resolve(t, {}, config).cfg.proxyCommand, 'connect -S socks:1080 prod.internal 2222 pu@prod 100%');
  t.equal(resolve(t, { port: '2300', user: 'lu' }, config).cfg.proxyCommand, 'connect -S socks:1080 prod.internal 2300 lu@prod 100%', '-p and -l are seen');
  t.equal(
    resolve(t, { destination: 'ssh://uu@prod:2400', options: ['ProxyCommand=ssh -W [%h]:%p gw'] }).cfg.proxyCommand,
    'ssh -W [prod]:2400 gw',
    'the ssh:// port, via -o',
  );
});

t.test('resolve-jump – an unknown token in ProxyCommand is a ConfigError', async (t) => {
  t.match(configError(t, () => resolve(t, { options: ['ProxyCommand=nc %q'] }), '%q'), /ProxyCommand: unknown token %q/);
});

t.test('resolve-jump – ProxyJump vs ProxyCommand: whichever is given first wins', async (t) => {
  const both = (first: string, second: string) => `Host prod\n  ${first}\n  ${second}\n`;
  const jump = 'ProxyJump bastion';
  const command = 'ProxyCommand nc %h %p';

  const commandFirst = resolve(t, {}, both(command, jump)).cfg;
  t.equal(commandFirst.proxyCommand, 'nc prod 22', 'ssh_config: ProxyCommand first');
  t.strictSame(commandFirst.jumps, []);

  const jumpFirst = resolve(t, {}, both(jump, command)).cfg;
  t.strictSame(jumpFirst.jumps.map((j) => j.name), ['bastion'], 'ssh_config: ProxyJump first');
  t.equal(jumpFirst.proxyCommand, undefined);

  const acrossBlocks = resolve(t, {}, `Host prod\n  ${command}\nHost *\n  ${jump}\n`).cfg;
  t.equal(acrossBlocks.proxyCommand, 'nc prod 22', 'the first matching block wins');
  t.strictSame(acrossBlocks.jumps, []);

  const oCommandFirst = resolve(t, { options: ['ProxyCommand=nc %h %p', 'ProxyJump=bastion'] }).cfg;
  t.equal(oCommandFirst.proxyCommand, 'nc prod 22', '-o: ProxyCommand first');
  t.strictSame(oCommandFirst.jumps, []);

  const oJumpFirst = resolve(t, { options: ['ProxyJump=bastion', 'ProxyCommand=nc %h %p'] }).cfg;
  t.strictSame(oJumpFirst.jumps.map((j) => j.name), ['bastion'], '-o: ProxyJump first');
  t.equal(oJumpFirst.proxyCommand, undefined);

  const jBeatsO = resolve(t, { jump: 'jhost', options: ['ProxyCommand=nc %h %p'] }).cfg;
  t.strictSame(jBeatsO.jumps.map((j) => j.name), ['jhost'], '-J comes before any -o');
  t.equal(jBeatsO.proxyCommand, undefined);

  const oBeatsConfig = resolve(t, { options: ['ProxyCommand=nc %h %p'] }, `Host prod\n  ${jump}\n`).cfg;
  t.equal(oBeatsConfig.proxyCommand, 'nc prod 22', '-o ProxyCommand beats ssh_config ProxyJump');
  t.strictSame(oBeatsConfig.jumps, []);

  const oJumpBeatsConfig = resolve(t, { options: ['ProxyJump=ojump'] }, `Host prod\n  ${command}\n`).cfg;
  t.strictSame(oJumpBeatsConfig.jumps.map((j) => j.name), ['ojump'], '-o ProxyJump beats ssh_config ProxyCommand');
  t.equal(oJumpBeatsConfig.proxyCommand, undefined);
});

t.test('resolve-jump – ProxyCommand none disables whatever comes after it', async (t) => {
  const { cfg } = resolve(t, {}, 'Host prod\n  ProxyCommand none\nHost *\n  ProxyJump bastion\n  ProxyCommand nc %h %p\n');
  t.strictSame(cfg.jumps, []);
  t.equal(cfg.proxyCommand, undefined);
});

// Forwards from ssh_config

t.test('resolve-jump – RemoteForward in ssh_config comes after -R', async (t) => {
  const { cfg } = resolve(
    t,
    { remoteForwards: ['9000:localhost:9000'], options: ['RemoteForward=7000 localhost:7'] },
    'Host prod\n  RemoteForward 8080 localhost:3000\n  RemoteForward 0.0.0.0:8443   /run/app.sock\n',
  );
  t.strictSame(
    cfg.remoteForwards.map((f) => [f.type, f.listen, f.target, f.spec]),
    [
      ['remote', tcp('localhost', 9000), tcp('localhost', 9000), '9000:localhost:9000'],
      ['remote', tcp('localhost', 7000), tcp('localhost', 7), '7000:localhost:7'],
      ['remote', tcp('localhost', 8080), tcp('localhost', 3000), '8080:localhost:3000'],
      ['remote', tcp('0.0.0.0', 8443), { kind: 'unix', path: '/run/app.sock' }, '0.0.0.0:8443:/run/app.sock'],
    ],
  );
  t.strictSame(cfg.forwards, [], 'no -L or -D');
});

t.test('resolve-jump – DynamicForward in ssh_config comes after -D; -L/LocalForward come first', async (t) => {
  const { cfg } = resolve(
    t,
    { localForwards: ['5432:db:5432'], dynamicForwards: ['1080'] },
    'Host prod\n  DynamicForward 127.0.0.2:1081\n  DynamicForward 1082\n  LocalForward /tmp/x.sock db:5432\n',
  );
  t.strictSame(
    cfg.forwards.map((f) => [f.type, f.listen, f.bindExplicit]),
    [
      ['local', tcp('127.0.0.1', 5432), false],
      ['local', { kind: 'unix', path: '/tmp/x.sock' }, true],
      ['dynamic', tcp('127.0.0.1', 1080), false],
      ['dynamic', tcp('127.0.0.2', 1081), true],
      ['dynamic', tcp('127.0.0.1', 1082), false],
    ],
  );
});

t.test('resolve-jump – malformed RemoteForward and DynamicForward are ConfigErrors', async (t) => {
  t.match(configError(t, () => resolve(t, {}, 'Host prod\n  RemoteForward 8080 h\n'), 'RemoteForward 8080 h'), /ssh_config line 2: RemoteForward: -R 8080:h:/);
  t.strictSame(resolve(t, {}, 'Host prod\n  RemoteForward 8080\n').cfg.remoteForwards.map((f) => [f.spec, f.target]), [['8080', undefined]], 'RemoteForward 8080 alone: SOCKS on the server (OpenSSH 7.6)');
  t.match(configError(t, () => resolve(t, {}, 'Host prod\n  DynamicForward /x.sock\n'), 'DynamicForward /x.sock'), /ssh_config line 2: DynamicForward: -D \/x\.sock:/);
  t.match(configError(t, () => resolve(t, { remoteForwards: ['1:h'] }), '-R 1:h'), /^-R 1:h:/);
  t.match(configError(t, () => resolve(t, { dynamicForwards: ['x'] }), '-D x'), /^-D x:/);
});

t.test('resolve-jump – forwards of the destination only, never of a hop', async (t) => {
  const config = 'Host bastion\n  LocalForward 1 h:1\n  RemoteForward 2 h:2\n  DynamicForward 3\nHost prod\n  DynamicForward 1080\n';
  const { cfg } = resolve(t, { jump: 'bastion' }, config);
  t.strictSame(cfg.forwards.map((f) => f.spec), ['1080']);
  t.strictSame(cfg.remoteForwards, []);
});

// ExitOnForwardFailure

t.test('resolve-jump – ExitOnForwardFailure', async (t) => {
  t.equal(resolve(t, {}).cfg.exitOnForwardFailure, false, 'default no');
  t.equal(resolve(t, {}, 'Host prod\n  ExitOnForwardFailure yes\n').cfg.exitOnForwardFailure, true, 'yes from ssh_config');
  t.equal(resolve(t, { options: ['ExitOnForwardFailure=yes'] }).cfg.exitOnForwardFailure, true, '-o yes');
  t.equal(resolve(t, { options: ['ExitOnForwardFailure=no'] }, 'Host prod\n  ExitOnForwardFailure yes\n').cfg.exitOnForwardFailure, false, '-o no beats ssh_config');
  t.equal(resolve(t, {}, 'Host *\n  exitonforwardfailure TRUE\n').cfg.exitOnForwardFailure, true, 'case-insensitive key and value');
  t.match(configError(t, () => resolve(t, { options: ['ExitOnForwardFailure=maybe'] }), 'maybe'), /^-o ExitOnForwardFailure: "maybe" must be yes or no/);
});

// --socks-auth

t.test('resolve-jump – --socks-auth user:pass', async (t) => {
  t.equal(resolve(t, {}).cfg.socksAuth, undefined, 'default: none');
  t.strictSame(resolve(t, { socksAuth: 'alice:s3cret' }).cfg.socksAuth, { user: 'alice', pass: 's3cret' });
  t.strictSame(resolve(t, { socksAuth: 'alice:pa:ss' }).cfg.socksAuth, { user: 'alice', pass: 'pa:ss' }, 'the first colon splits');
  t.strictSame(resolve(t, { socksAuth: 'a:b' }).cfg.socksAuth, { user: 'a', pass: 'b' }, 'one character each');
  const max = 'u'.repeat(255);
  t.strictSame(resolve(t, { socksAuth: `${max}:${max}` }).cfg.socksAuth, { user: max, pass: max }, '255 each');
});

t.test('resolve-jump – a malformed --socks-auth is a ConfigError', async (t) => {
  const bad = ['', 'nocolon', ':pass', 'user:', ':', `${'u'.repeat(256)}:p`, `u:${'p'.repeat(256)}`];
  for (const socksAuth of bad) {
    const message = configError(t, () => resolve(t, { socksAuth }), JSON.stringify(socksAuth.slice(0, 20)));
    t.match(message, /^--socks-auth: expected user:password/);
  }
});

t.test('resolve-jump – --socks-auth limits are bytes, as SOCKS5 carries them', async (t) => {
  // 200 characters, 400 bytes in UTF-8: more than SOCKS5's one-byte length field can carry.
  let threw = false;
  try {
    resolve(t, { socksAuth: `${'é'.repeat(200)}:p` });
  } catch (err) {
    threw = err instanceof ConfigError;
  }
  t.ok(threw, 'a 400-byte user is refused');
});
