import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { parseCli } from '../src/cli/program.js';
import { parseHostPort } from '../src/config/host-port.js';
import { buildSettings, type Layer, type Secrets, type Settings } from '../src/config/settings.js';
import { valuesOf } from '../src/config/sourced.js';
import type { Endpoint, TunnelConfig } from '../src/config/types.js';
import { ConfigError } from '../src/errors.js';
import { configError } from './fixtures/errors.js';

/** Names that must stay out of any case that does not set them: commander reads process.env itself. */
const saved = Object.entries(process.env).filter(([k]) => k.startsWith('SSHKEEP_'));
for (const [k] of saved) delete process.env[k];
t.teardown(() => {
  for (const [k, v] of saved) process.env[k] = v;
});

/** Sets SSHKEEP_* variables for one test only. */
function withEnv(t: Test, vars: Record<string, string> | undefined): void {
  for (const [k, v] of Object.entries(vars ?? {})) {
    const before = process.env[k];
    process.env[k] = v;
    t.teardown(() => {
      if (before === undefined) delete process.env[k];
      else process.env[k] = before;
    });
  }
}

/** One directory per test (t.testdir() recreates it on every call): config files and an empty home. */
const dirs = new WeakMap<Test, string>();
function dirOf(t: Test): string {
  let dir = dirs.get(t);
  if (dir === undefined) {
    dir = t.testdir({ home: {} });
    dirs.set(t, dir);
  }
  return dir;
}

/** A home with no ~/.ssh at all, so the user's ssh_config, keys and known_hosts never matter. */
function homeFor(t: Test): string {
  return path.join(dirOf(t), 'home');
}

function cliOf(t: Test, argv: string[]): Layer {
  const cli = parseCli(argv, process.env, () => {});
  if (cli === null) throw new Error('parseCli printed help instead of parsing');
  t.ok(cli, 'parsed');
  return cli;
}

function build(t: Test, argv: string[], secrets: Secrets = {}, warnings: string[] = []): Settings {
  return buildSettings(cliOf(t, argv), { home: homeFor(t), localUser: 'tester', authSock: undefined }, secrets, (m) => warnings.push(m));
}

/** Writes a config file into the test's directory and returns its path. */
function configFile(t: Test, content: unknown, name = 'sshkeep.yaml'): string {
  const file = path.join(dirOf(t), name);
  fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return file;
}

/** An endpoint as [host, port] or [path]. */
const ends = (e: Endpoint): (string | number)[] => (e.kind === 'tcp' ? [e.host, e.port] : [e.path]);
/** Each -L forward as [bind address, port, target host, target port] (a -D has no target). */
const forwardsOf = (c: TunnelConfig) => c.forwards.map((f) => [...ends(f.listen), ...(f.type === 'local' ? ends(f.target) : [])]);

// A command-line tunnel that never reads ssh_config.
const CLI_TUNNEL = ['--ssh-config', 'none', '-L', '0:127.0.0.1:1', 'tester@127.0.0.1'];
// The file tunnel of the precedence cases.
const FILE_TUNNEL = { name: 'ft', destination: 'tester@127.0.0.1', sshConfig: 'none', local: ['0:127.0.0.1:1'] };

interface Case {
  name: string;
  get: (s: Settings) => unknown;
  flags?: string[];
  env?: Record<string, string>;
  /** Top-level settings of a --config file. */
  top?: Record<string, unknown>;
  /** Settings of the file's one tunnel; when given, that tunnel is the one read (else the command line's). */
  tunnel?: Record<string, unknown>;
  want: unknown;
}

const hold = (s: Settings) => s.tunnels.map((c) => c.holdTimeoutMs);
const keepalive = (s: Settings) => s.tunnels.map((c) => c.keepaliveIntervalMs);
const resume = (s: Settings) => s.tunnels.map((c) => [c.resume, c.resumeGraceMs, c.resumeBufferBytes]);
const proc = (k: keyof Settings['process']) => (s: Settings) => s.process[k];

const cases: Case[] = [
  // --hold-timeout
  { name: 'holdTimeout defaults to 30s', get: hold, want: [30_000] },
  { name: 'holdTimeout from the file top level (command-line tunnel)', get: hold, top: { holdTimeout: '10s' }, want: [10_000] },
  { name: 'holdTimeout from the file top level (file tunnel)', get: hold, top: { holdTimeout: '10s' }, tunnel: {}, want: [10_000] },
  { name: 'holdTimeout as a bare YAML number is seconds', get: hold, tunnel: { holdTimeout: 2 }, want: [2_000] },
  { name: 'per-tunnel holdTimeout beats the file top level', get: hold, top: { holdTimeout: '10s' }, tunnel: { holdTimeout: '7s' }, want: [7_000] },
  { name: 'SSHKEEP_HOLD_TIMEOUT beats the file top level', get: hold, env: { SSHKEEP_HOLD_TIMEOUT: '5s' }, top: { holdTimeout: '10s' }, want: [5_000] },
  {
    name: 'SSHKEEP_HOLD_TIMEOUT beats the per-tunnel value',
    get: hold,
    env: { SSHKEEP_HOLD_TIMEOUT: '5s' },
    top: { holdTimeout: '10s' },
    tunnel: { holdTimeout: '7s' },
    want: [5_000],
  },
  { name: 'SSHKEEP_HOLD_TIMEOUT beats the default', get: hold, env: { SSHKEEP_HOLD_TIMEOUT: '0' }, want: [0] },
  {
    name: '--hold-timeout beats SSHKEEP_HOLD_TIMEOUT, per-tunnel and top level',
    get: hold,
    flags: ['--hold-timeout', '3s'],
    env: { SSHKEEP_HOLD_TIMEOUT: '5s' },
    top: { holdTimeout: '10s' },
    tunnel: { holdTimeout: '7s' },
    want: [3_000],
  },
  { name: '--hold-timeout beats the per-tunnel value', get: hold, flags: ['--hold-timeout', '500ms'], tunnel: { holdTimeout: '7s' }, want: [500] },
  { name: '--hold-timeout 0 (reset at once) beats the file', get: hold, flags: ['--hold-timeout', '0'], top: { holdTimeout: '10s' }, want: [0] },

  // --resume, --resume-grace, --resume-buffer, --resume-buffer-total
  { name: 'resume is off by default, grace 5m, 4 MiB per stream', get: resume, want: [[false, 300_000, 4 * 1024 * 1024]] },
  { name: 'SSHKEEP_RESUME and SSHKEEP_RESUME_GRACE', get: resume, env: { SSHKEEP_RESUME: 'yes', SSHKEEP_RESUME_GRACE: '90s' }, want: [[true, 90_000, 4 * 1024 * 1024]] },
  { name: 'SSHKEEP_RESUME=no beats a file that turns it on', get: resume, env: { SSHKEEP_RESUME: 'no' }, tunnel: { resume: true }, want: [[false, 300_000, 4 * 1024 * 1024]] },
  { name: 'resume per tunnel in the file, beating the top level', get: resume, top: { resume: 'no', resumeGrace: '1m' }, tunnel: { resume: 'yes', resumeBuffer: '1MiB' }, want: [[true, 60_000, 1024 * 1024]] },
  { name: '--resume --resume-grace beat the file', get: resume, flags: ['--resume', '--resume-grace', '30s'], tunnel: { resume: 'no', resumeGrace: '1m' }, want: [[true, 30_000, 4 * 1024 * 1024]] },
  { name: 'resumeBufferTotal defaults to 256 MiB', get: proc('resumeBufferTotalBytes'), want: 256 * 1024 * 1024 },
  { name: 'resumeBufferTotal from the file top level', get: proc('resumeBufferTotalBytes'), top: { resumeBufferTotal: '64MiB' }, want: 64 * 1024 * 1024 },

  // --keepalive-interval
  { name: 'keepaliveInterval defaults to 15s', get: keepalive, want: [15_000] },
  { name: 'keepaliveInterval from the file top level', get: keepalive, top: { keepaliveInterval: '20s' }, want: [20_000] },
  { name: 'per-tunnel keepaliveInterval beats the top level', get: keepalive, top: { keepaliveInterval: '20s' }, tunnel: { keepaliveInterval: '8s' }, want: [8_000] },
  {
    name: 'SSHKEEP_KEEPALIVE_INTERVAL beats the file',
    get: keepalive,
    env: { SSHKEEP_KEEPALIVE_INTERVAL: '4s' },
    top: { keepaliveInterval: '20s' },
    tunnel: { keepaliveInterval: '8s' },
    want: [4_000],
  },
  {
    name: '--keepalive-interval beats SSHKEEP_KEEPALIVE_INTERVAL and the file',
    get: keepalive,
    flags: ['--keepalive-interval', '2s'],
    env: { SSHKEEP_KEEPALIVE_INTERVAL: '4s' },
    top: { keepaliveInterval: '20s' },
    tunnel: { keepaliveInterval: '8s' },
    want: [2_000],
  },
  { name: '--keepalive-interval 0 (on demand only)', get: keepalive, flags: ['--keepalive-interval', '0'], want: [0] },
  { name: '-o ServerAliveInterval is the keepalive interval', get: keepalive, flags: ['-o', 'ServerAliveInterval=9'], want: [9_000] },
  { name: '--keepalive-interval beats -o ServerAliveInterval', get: keepalive, flags: ['--keepalive-interval', '2s', '-o', 'ServerAliveInterval=9'], want: [2_000] },

  // --max-connections
  { name: 'maxConnections defaults to 0 (unlimited)', get: proc('maxConnections'), want: 0 },
  { name: 'maxConnections from the file', get: proc('maxConnections'), top: { maxConnections: 50 }, want: 50 },
  { name: 'SSHKEEP_MAX_CONNECTIONS beats the file', get: proc('maxConnections'), env: { SSHKEEP_MAX_CONNECTIONS: '40' }, top: { maxConnections: 50 }, want: 40 },
  {
    name: '--max-connections beats SSHKEEP_MAX_CONNECTIONS and the file',
    get: proc('maxConnections'),
    flags: ['--max-connections', '30'],
    env: { SSHKEEP_MAX_CONNECTIONS: '40' },
    top: { maxConnections: 50 },
    want: 30,
  },

  // --max-held
  { name: 'maxHeld defaults to 1024', get: proc('maxHeld'), want: 1024 },
  { name: 'maxHeld from the file', get: proc('maxHeld'), top: { maxHeld: '64' }, want: 64 },
  { name: 'SSHKEEP_MAX_HELD beats the file', get: proc('maxHeld'), env: { SSHKEEP_MAX_HELD: '32' }, top: { maxHeld: '64' }, want: 32 },
  { name: '--max-held beats SSHKEEP_MAX_HELD and the file', get: proc('maxHeld'), flags: ['--max-held', '0'], env: { SSHKEEP_MAX_HELD: '32' }, top: { maxHeld: '64' }, want: 0 },

  // --health
  { name: 'health is off by default', get: proc('health'), want: undefined },
  { name: 'health 9090 from the file (a YAML number) is 127.0.0.1:9090', get: proc('health'), top: { health: 9090 }, want: { host: '127.0.0.1', port: 9090 } },
  { name: 'SSHKEEP_HEALTH beats the file', get: proc('health'), env: { SSHKEEP_HEALTH: '0.0.0.0:9091' }, top: { health: 9090 }, want: { host: '0.0.0.0', port: 9091 } },
  {
    name: '--health beats SSHKEEP_HEALTH and the file',
    get: proc('health'),
    flags: ['--health', '[::1]:9092'],
    env: { SSHKEEP_HEALTH: '0.0.0.0:9091' },
    top: { health: 9090 },
    want: { host: '::1', port: 9092 },
  },
  { name: '--health 9090 listens on 127.0.0.1', get: proc('health'), flags: ['--health', '9090'], want: { host: '127.0.0.1', port: 9090 } },
  { name: '--health 0.0.0.0:9090', get: proc('health'), flags: ['--health', '0.0.0.0:9090'], want: { host: '0.0.0.0', port: 9090 } },
  { name: '--health [::1]:9090 loses its brackets', get: proc('health'), flags: ['--health', '[::1]:9090'], want: { host: '::1', port: 9090 } },

  // --min-drain
  { name: 'minDrain defaults to 0', get: proc('minDrainMs'), want: 0 },
  { name: 'minDrain from the file', get: proc('minDrainMs'), top: { minDrain: '2s' }, want: 2_000 },
  { name: 'SSHKEEP_MIN_DRAIN beats the file', get: proc('minDrainMs'), env: { SSHKEEP_MIN_DRAIN: '3s' }, top: { minDrain: '2s' }, want: 3_000 },
  { name: '--min-drain beats SSHKEEP_MIN_DRAIN and the file', get: proc('minDrainMs'), flags: ['--min-drain', '500ms'], env: { SSHKEEP_MIN_DRAIN: '3s' }, top: { minDrain: '2s' }, want: 500 },

  // --max-drain
  { name: 'maxDrain defaults to 5s', get: proc('maxDrainMs'), want: 5_000 },
  { name: 'maxDrain from the file', get: proc('maxDrainMs'), top: { maxDrain: '10s' }, want: 10_000 },
  { name: 'SSHKEEP_MAX_DRAIN beats the file', get: proc('maxDrainMs'), env: { SSHKEEP_MAX_DRAIN: '20s' }, top: { maxDrain: '10s' }, want: 20_000 },
  { name: '--max-drain beats SSHKEEP_MAX_DRAIN and the file', get: proc('maxDrainMs'), flags: ['--max-drain', '1m'], env: { SSHKEEP_MAX_DRAIN: '20s' }, top: { maxDrain: '10s' }, want: 60_000 },

  // --log-level
  { name: 'logLevel defaults to info', get: (s) => s.logLevel, want: 'info' },
  { name: 'logLevel from the file', get: (s) => s.logLevel, top: { logLevel: 'warn' }, want: 'warn' },
  { name: 'SSHKEEP_LOG_LEVEL beats the file', get: (s) => s.logLevel, env: { SSHKEEP_LOG_LEVEL: 'debug' }, top: { logLevel: 'warn' }, want: 'debug' },
  { name: '--log-level beats SSHKEEP_LOG_LEVEL and the file', get: (s) => s.logLevel, flags: ['--log-level', 'error'], env: { SSHKEEP_LOG_LEVEL: 'debug' }, top: { logLevel: 'warn' }, want: 'error' },
  { name: '-q beats SSHKEEP_LOG_LEVEL', get: (s) => s.logLevel, flags: ['-q'], env: { SSHKEEP_LOG_LEVEL: 'debug' }, want: 'error' },
  { name: '-v beats the file', get: (s) => s.logLevel, flags: ['-v'], top: { logLevel: 'warn' }, want: 'debug' },
];

t.test('settings – precedence: flags > environment > config file (tunnel > top level) > defaults', async (t) => {
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      withEnv(t, c.env);
      const argv = [...(c.flags ?? [])];
      if (c.top !== undefined || c.tunnel !== undefined) {
        const doc: Record<string, unknown> = { ...c.top };
        if (c.tunnel !== undefined) doc.tunnels = [{ ...FILE_TUNNEL, ...c.tunnel }];
        argv.push('--config', configFile(t, doc, 'sshkeep.json'));
      }
      if (c.tunnel === undefined) argv.push(...CLI_TUNNEL);
      let got: unknown;
      let tunnels: string[] = [];
      try {
        const s = build(t, argv);
        got = c.get(s);
        tunnels = s.tunnels.map((x) => x.name);
      } catch (err) {
        t.fail(`buildSettings threw: ${String(err)}`);
        return;
      }
      t.strictSame(tunnels, c.tunnel === undefined ? ['127.0.0.1'] : ['ft'], 'the one tunnel read is the intended one');
      t.strictSame(got, c.want, c.name);
    });
  }
});

t.test('settings – a variable that wins over the config file says so once (the Docker image sets SSHKEEP_HEALTH); health off is off', async (t) => {
  withEnv(t, { SSHKEEP_HEALTH: '0.0.0.0:9090', SSHKEEP_HOLD_TIMEOUT: '7s', SSHKEEP_MAX_HELD: '5' });
  const file = configFile(t, { health: '127.0.0.1:18181', holdTimeout: '3s', maxHeld: 5, tunnels: [{ ...FILE_TUNNEL }, { ...FILE_TUNNEL, name: 'ft2', local: ['0:127.0.0.1:2'] }] });
  const warnings: string[] = [];
  const s = build(t, ['--config', file], {}, warnings);
  t.strictSame(s.process.health, { host: '0.0.0.0', port: 9090 }, 'the environment wins');
  t.equal(s.tunnels[0]!.holdTimeoutMs, 7000);
  t.strictSame(warnings.filter((w) => w.includes('wins over')), [
    `SSHKEEP_HOLD_TIMEOUT in the environment wins over ${file}: holdTimeout: the environment comes before the file; unset the variable to use the file's value.`,
    `SSHKEEP_HEALTH in the environment wins over ${file}: health: the environment comes before the file; unset the variable to use the file's value.`,
  ], 'each said once (two tunnels); the same value (maxHeld) is no news; no value is shown (it may be a secret)');
  withEnv(t, { SSHKEEP_HEALTH: 'off' });
  t.equal(build(t, ['--config', file]).process.health, undefined, 'SSHKEEP_HEALTH=off: no health server');
  t.equal(build(t, ['--health', 'OFF', ...CLI_TUNNEL]).process.health, undefined, '--health off');
});

t.test('settings – parseHostPort', async (t) => {
  t.strictSame(parseHostPort('9090', '--health'), { host: '127.0.0.1', port: 9090 });
  t.strictSame(parseHostPort(' 0.0.0.0:9090 ', '--health'), { host: '0.0.0.0', port: 9090 });
  t.strictSame(parseHostPort('[::1]:9090', '--health'), { host: '::1', port: 9090 });
  t.strictSame(parseHostPort('localhost:0', '--health'), { host: 'localhost', port: 0 });
  t.strictSame(parseHostPort(':9090', '--health'), { host: '::', port: 9090 }, 'an empty host is every interface, IPv6 and IPv4, as in -L');
  t.strictSame(parseHostPort('*:9090', '--health'), { host: '::', port: 9090 }, 'and so is *');
  for (const bad of ['', 'abc', '::1:9090', '1.2.3.4:', 'h:9090:1', '[::1]9090']) {
    t.throws(() => parseHostPort(bad, '--health'), ConfigError, JSON.stringify(bad));
    t.throws(() => parseHostPort(bad, '--health'), /^--health: .*\[host:\]port/, `${JSON.stringify(bad)} names --health and the form`);
  }
  t.throws(() => parseHostPort('70000', '--health'), /^--health: "70000" is not a port number/);
});

t.test('settings – SSHKEEP_LOCAL: a comma-separated list is several forwards', async (t) => {
  withEnv(t, { SSHKEEP_LOCAL: '5432:db:5432,6379:cache:6379' });
  const cli = cliOf(t, ['--ssh-config', 'none', 'tester@127.0.0.1']);
  t.strictSame(valuesOf(cli.local), ['5432:db:5432', '6379:cache:6379'], 'parseCli splits the list');
  let fwds: unknown;
  try {
    fwds = forwardsOf(build(t, ['--ssh-config', 'none', 'tester@127.0.0.1']).tunnels[0]!);
  } catch (err) {
    fwds = String(err);
  }
  t.strictSame(fwds, [['127.0.0.1', 5432, 'db', 5432], ['127.0.0.1', 6379, 'cache', 6379]], 'two forwards');
});

t.test('settings – SSHKEEP_LOCAL: a newline-separated list (with blank lines and CRLF) is several forwards', async (t) => {
  withEnv(t, { SSHKEEP_LOCAL: '5432:db:5432\r\n\n  [::1]:6379:cache:6379\n' });
  const cli = cliOf(t, ['--ssh-config', 'none', 'tester@127.0.0.1']);
  t.strictSame(valuesOf(cli.local), ['5432:db:5432', '[::1]:6379:cache:6379'], 'parseCli splits and trims the list');
});

t.test('settings – -L on the command line replaces SSHKEEP_LOCAL (flags beat the environment)', async (t) => {
  withEnv(t, { SSHKEEP_LOCAL: '5432:db:5432,6379:cache:6379' });
  const s = build(t, ['--ssh-config', 'none', '-L', '7000:web:80', 'tester@127.0.0.1']);
  t.strictSame(forwardsOf(s.tunnels[0]!), [['127.0.0.1', 7000, 'web', 80]]);
});

t.test('settings – SSHKEEP_OPTION with two options', async (t) => {
  withEnv(t, { SSHKEEP_OPTION: 'Port=2222,User=envuser' });
  const cli = cliOf(t, CLI_TUNNEL.slice(0, -1).concat('127.0.0.1'));
  t.strictSame(valuesOf(cli.option), ['Port=2222', 'User=envuser'], 'parseCli splits the list');
  const c = build(t, CLI_TUNNEL.slice(0, -1).concat('127.0.0.1')).tunnels[0]!;
  t.equal(c.port, 2222, 'Port from SSHKEEP_OPTION');
  t.equal(c.user, 'envuser', 'User from SSHKEEP_OPTION');
});

t.test('settings – SSHKEEP_IDENTITY_FILE with two files, newline-separated', async (t) => {
  withEnv(t, { SSHKEEP_IDENTITY_FILE: '/keys/a\n/keys/b' });
  const c = build(t, CLI_TUNNEL).tunnels[0]!;
  t.strictSame(c.identityFiles, ['/keys/a', '/keys/b']);
});

t.test('settings – SSHKEEP_DESTINATION is the destination', async (t) => {
  withEnv(t, { SSHKEEP_DESTINATION: 'envuser@env.example' });
  const s = build(t, ['--ssh-config', 'none', '-L', '0:127.0.0.1:1']);
  t.equal(s.tunnels.length, 1);
  t.equal(s.tunnels[0]!.name, 'env.example');
  t.equal(s.tunnels[0]!.hostName, 'env.example');
  t.equal(s.tunnels[0]!.user, 'envuser');
});

t.test('settings – a destination argument beats SSHKEEP_DESTINATION', async (t) => {
  withEnv(t, { SSHKEEP_DESTINATION: 'envuser@env.example' });
  const s = build(t, ['--ssh-config', 'none', '-L', '0:127.0.0.1:1', 'argv.example']);
  t.strictSame(s.tunnels.map((c) => [c.name, c.user]), [['argv.example', 'tester']]);
});

t.test('settings – SSHKEEP_CONFIG names the config file', async (t) => {
  const file = configFile(t, { tunnels: [FILE_TUNNEL] });
  withEnv(t, { SSHKEEP_CONFIG: file });
  let names: unknown;
  try {
    names = build(t, []).tunnels.map((c) => c.name);
  } catch (err) {
    names = String(err);
  }
  t.strictSame(names, ['ft']);
});

t.test('settings – an invalid SSHKEEP_LOG_LEVEL is a ConfigError naming the variable', async (t) => {
  withEnv(t, { SSHKEEP_LOG_LEVEL: 'loud' });
  let message = '';
  try {
    parseCli(CLI_TUNNEL, process.env, () => {});
  } catch (err) {
    message = err instanceof ConfigError ? err.message : `not a ConfigError: ${String(err)}`;
  }
  t.match(message, /SSHKEEP_LOG_LEVEL/, 'names the variable');
  t.match(message, /'loud'/, 'quotes the value');
});

t.test('settings – a bad --log-level is a ConfigError listing the choices, in one sentence each', async (t) => {
  let message = '';
  try {
    parseCli(['--log-level', 'loud', ...CLI_TUNNEL], process.env, () => {});
  } catch (err) {
    message = err instanceof ConfigError ? err.message : `not a ConfigError: ${String(err)}`;
  }
  t.match(message, /--log-level.*'loud'.*error, warn, info, debug/);
  t.match(message, /Run sshkeep --help for usage\.$/);
  t.notMatch(message, /\.\./, 'no doubled full stop');
});

const TWO_TUNNELS = `# two bastions
tunnels:
  - name: db
    destination: alice@db-bastion.example
    port: 2201
    sshConfig: none
    local:
      - 15432:db.internal:5432
      - 127.0.0.2:16379:cache:6379
    options:
      ServerAliveCountMax: 3
      HostName: 10.0.0.5
  - name: web
    destination: web-bastion.example
    login: bob
    sshConfig: none
    local: 8080:web.internal:80
    options:
      - Port=2202
      - IdentitiesOnly=yes
`;

t.test('settings – a config file with two tunnels gives two TunnelConfigs', async (t) => {
  const file = configFile(t, TWO_TUNNELS);
  const s = build(t, ['--config', file]);
  t.equal(s.tunnels.length, 2);
  const [db, web] = s.tunnels as [TunnelConfig, TunnelConfig];
  t.strictSame([db.name, db.hostName, db.port, db.user], ['db', '10.0.0.5', 2201, 'alice'], 'db: name, HostName from options, port, user@');
  t.equal(db.keepaliveCountMax, 3, 'db: options as a mapping');
  t.strictSame(forwardsOf(db), [['127.0.0.1', 15432, 'db.internal', 5432], ['127.0.0.2', 16379, 'cache', 6379]], 'db: two forwards');
  t.strictSame([web.name, web.hostName, web.port, web.user], ['web', 'web-bastion.example', 2202, 'bob'], 'web: name, host, Port from options, login');
  t.equal(web.identitiesOnly, true, 'web: options as a list');
  t.strictSame(forwardsOf(web), [['127.0.0.1', 8080, 'web.internal', 80]], 'web: local as one string');
  t.equal(db.identitiesOnly, false, "web's options do not leak into db");
  t.equal(web.keepaliveCountMax, undefined, "db's options do not leak into web");
});

t.test('settings – a destination on the command line adds a third tunnel', async (t) => {
  const file = configFile(t, TWO_TUNNELS);
  const s = build(t, ['--config', file, '-p', '2999', ...CLI_TUNNEL]);
  t.strictSame(s.tunnels.map((c) => c.name), ['db', 'web', '127.0.0.1']);
  const third = s.tunnels[2]!;
  t.equal(third.port, 2999, '-p applies to the command-line tunnel');
  t.strictSame(forwardsOf(third), [['127.0.0.1', 0, '127.0.0.1', 1]]);
  t.strictSame(s.tunnels.slice(0, 2).map((c) => c.port), [2201, 2202], 'the file tunnels keep their own ports');
});

t.test('settings – an unnamed file tunnel is named after its destination host', async (t) => {
  const file = configFile(t, { tunnels: [{ destination: 'u@bastion.example', sshConfig: 'none', local: ['1:h:1'] }] });
  t.strictSame(build(t, ['--config', file]).tunnels.map((c) => c.name), ['bastion.example']);
});

t.test('settings – duplicate tunnel names are a ConfigError', async (t) => {
  const tunnel = { destination: 'a.example', sshConfig: 'none', local: ['1:h:1'] };
  const named = configFile(t, { tunnels: [{ ...tunnel, name: 'same' }, { ...tunnel, destination: 'b.example', name: 'same' }] });
  t.match(configError(t, () => build(t, ['--config', named]), 'two named "same"'), /Two tunnels are named "same"/);

  const unnamed = configFile(t, { tunnels: [tunnel, { ...tunnel, destination: 'other@a.example' }] });
  t.match(configError(t, () => build(t, ['--config', unnamed]), 'two to a.example'), /Two tunnels are named "a\.example".*"name"/);

  const clash = configFile(t, { tunnels: [{ ...tunnel, name: '127.0.0.1' }] });
  t.match(configError(t, () => build(t, ['--config', clash, ...CLI_TUNNEL]), 'file vs command line'), /Two tunnels are named "127\.0\.0\.1"/);
});

const SECRET_KEY = 'SECRET-KEY-7f3a9c';
const SECRET_KH = 'SECRET-KNOWN-HOSTS-91bc2e';

t.test('settings – inline secrets go into every tunnel and nowhere else', async (t) => {
  const file = configFile(t, TWO_TUNNELS);
  const s = build(t, ['--config', file, ...CLI_TUNNEL], { identity: SECRET_KEY, knownHosts: SECRET_KH });
  t.equal(s.tunnels.length, 3);
  for (const c of s.tunnels) {
    t.strictSame(c.inlineIdentities, [{ name: 'SSHKEEP_IDENTITY', data: SECRET_KEY }], `${c.name}: the identity`);
    t.strictSame(c.inlineKnownHosts, [{ name: 'SSHKEEP_KNOWN_HOSTS', text: SECRET_KH }], `${c.name}: the known hosts`);
  }
  const rest = JSON.stringify({ ...s, tunnels: s.tunnels.map(({ inlineIdentities: _i, inlineKnownHosts: _k, ...c }) => c) });
  t.notMatch(rest, SECRET_KEY, 'the key is nowhere else');
  t.notMatch(rest, SECRET_KH, 'the known hosts are nowhere else');
  t.notMatch(JSON.stringify(s.process), /SECRET/, 'the process settings hold no secret');
});

t.test('settings – no secrets: empty inline lists', async (t) => {
  const s = build(t, CLI_TUNNEL, {});
  t.strictSame(s.tunnels[0]!.inlineIdentities, []);
  t.strictSame(s.tunnels[0]!.inlineKnownHosts, []);
});

t.test('settings – JSON is accepted as a config file', async (t) => {
  const file = configFile(
    t,
    '{"holdTimeout": "12s", "maxHeld": 7, "tunnels": [{"name": "j", "destination": "u@j.example", "sshConfig": "none", "local": ["1:h:1"], "options": {"Port": 2022}}]}',
    'sshkeep.json',
  );
  const s = build(t, ['--config', file]);
  t.strictSame(s.tunnels.map((c) => [c.name, c.user, c.hostName, c.port, c.holdTimeoutMs]), [['j', 'u', 'j.example', 2022, 12_000]]);
  t.equal(s.process.maxHeld, 7);
});

t.test('settings – an empty config file and no destination: no destination', async (t) => {
  const file = configFile(t, '');
  t.match(configError(t, () => build(t, ['--config', file]), 'empty file'), /No destination/);
});

/** A config-file error: a ConfigError whose message names the file and matches every pattern. */
function fileError(t: Test, content: string, mentions: (RegExp | string)[], opts: { argv?: string[]; name?: string } = {}): string {
  const file = configFile(t, content, opts.name);
  const full = configError(t, () => build(t, ['--config', file, ...(opts.argv ?? [])]), 'the file');
  t.ok(full.includes(file), `names the file ${file}: ${full}`);
  // The fixture directory is named after the test: match the rest of the message only.
  const message = full.replaceAll(file, '<file>');
  for (const m of mentions) {
    if (typeof m === 'string') t.ok(message.includes(m), `mentions ${m}: ${message}`);
    else t.match(message, m);
  }
  return message;
}

const TUNNEL_YAML = '  - destination: tester@127.0.0.1\n    sshConfig: none\n    local: [0:127.0.0.1:1]\n';

t.test('settings – config file: an unknown top-level key', async (t) => {
  fileError(t, `holdTimout: 5s\ntunnels:\n${TUNNEL_YAML}`, ['holdTimout', /unknown key; expected one of .*\bholdTimeout\b/]);
});

t.test('settings – config file: an unknown tunnel key names tunnels[1]', async (t) => {
  fileError(t, `tunnels:\n${TUNNEL_YAML}${TUNNEL_YAML}    holdTimout: 5s\n`, ['tunnels[1].holdTimout', /unknown key; expected one of .*\bholdTimeout\b/]);
});

t.test('settings – config file: tunnels is not a list', async (t) => {
  fileError(t, 'tunnels:\n  destination: h\n  local: [1:h:1]\n', [/: tunnels: expected a list of tunnels/]);
});

t.test('settings – config file: a tunnel that is not a mapping', async (t) => {
  fileError(t, 'tunnels:\n  - just-a-host\n', ['tunnels[0]', /expected a mapping/]);
});

t.test('settings – config file: a tunnel without destination', async (t) => {
  fileError(t, `tunnels:\n${TUNNEL_YAML}  - local: [1:h:1]\n`, ['tunnels[1].destination', /required: \[user@\]host/]);
});

t.test('settings – config file: a tunnel without local', async (t) => {
  fileError(t, 'tunnels:\n  - destination: h\n    sshConfig: none\n', ['tunnels[0].local', /required: at least one forward/]);
});

t.test('settings – config file: local that is not a list of strings', async (t) => {
  fileError(t, 'tunnels:\n  - destination: h\n    local: {db: 5432}\n', ['tunnels[0].local', /expected a list of strings/]);
  fileError(t, 'tunnels:\n  - destination: h\n    local: [[5432, db, 5432]]\n', ['tunnels[0].local[0]', /expected a string/]);
});

t.test('settings – config file: a malformed forward names the tunnel and the spec', async (t) => {
  fileError(t, 'tunnels:\n  - destination: h\n    sshConfig: none\n    local: [abc]\n', ['tunnels[0]', /-L abc: expected \[bind_address:\]port:host:hostport/]);
});

t.test('settings – config file: a bad duration in a tunnel names tunnels[0] and holdTimeout', async (t) => {
  const file = configFile(t, `tunnels:\n${TUNNEL_YAML}    holdTimeout: soon\n`);
  const full = configError(t, () => build(t, ['--config', file]), 'bad holdTimeout');
  t.ok(full.includes(file), `names the file: ${full}`);
  const message = full.replaceAll(file, '<file>');
  t.ok(message.includes('tunnels[0]'), `names tunnels[0]: ${message}`);
  t.match(message, /"soon" is not a duration/, 'says what was expected');
  t.match(message, /\bholdTimeout\b/, 'names the key as written in the file');
});

t.test('settings – config file: a bad top-level duration names the top-level key, not a tunnel', async (t) => {
  const file = configFile(t, `holdTimeout: soon\ntunnels:\n${TUNNEL_YAML}`);
  const full = configError(t, () => build(t, ['--config', file]), 'bad top-level holdTimeout');
  t.ok(full.includes(file), `names the file: ${full}`);
  const message = full.replaceAll(file, '<file>');
  t.match(message, /"soon" is not a duration/, 'says what was expected');
  t.match(message, /\bholdTimeout\b/, 'names the key');
  t.notMatch(message, /tunnels\[0\]/, 'does not blame tunnels[0]');
});

t.test('settings – a bad --hold-timeout is not blamed on the config file', async (t) => {
  const file = configFile(t, `tunnels:\n${TUNNEL_YAML}`);
  const message = configError(t, () => build(t, ['--hold-timeout', 'soon', '--config', file]), 'bad flag');
  t.match(message, /--hold-timeout: "soon" is not a duration/);
  t.notOk(message.includes(file), `does not name the file: ${message}`);
});

t.test('settings – config file: bad process settings name the file and the key', async (t) => {
  for (const [key, value] of [['maxConnections', 'lots'], ['maxHeld', '-1'], ['health', 'nowhere'], ['minDrain', 'soon'], ['maxDrain', 'soon']] as const) {
    const file = configFile(t, `${key}: ${value}\ntunnels:\n${TUNNEL_YAML}`);
    const full = configError(t, () => build(t, ['--config', file]), key);
    const message = full.replaceAll(file, '<file>');
    t.match(message, `"${value}"`, `${key}: quotes the value`);
    t.ok(full.includes(file) && new RegExp(`\\b${key}\\b`).test(message), `${key}: names the file and the key: ${full}`);
  }
  const file = configFile(t, `logLevel: loud\ntunnels:\n${TUNNEL_YAML}`);
  const message = configError(t, () => build(t, ['--config', file]), 'logLevel');
  t.ok(message.includes(`${file}: logLevel: expected error, warn, info or debug`), `logLevel names the file and the key: ${message}`);
});

t.test('settings – config file: invalid YAML names the file and the line', async (t) => {
  fileError(t, `tunnels:\n  - destination: [h\n    local: 1:h:1\n`, [/not valid YAML or JSON/, /line \d+/]);
});

t.test('settings – config file: a duplicate key is invalid', async (t) => {
  fileError(t, `holdTimeout: 1s\nholdTimeout: 2s\ntunnels:\n${TUNNEL_YAML}`, [/not valid YAML or JSON/, /unique/]);
});

t.test('settings – config file: a file that is not a mapping', async (t) => {
  const message = fileError(t, '- a\n- b\n', [/expected a mapping/]);
  t.notMatch(message, /: :/, 'no empty key path in the message');
});

t.test('settings – config file: a missing file', async (t) => {
  const file = path.join(dirOf(t), 'nope.yaml');
  const message = configError(t, () => build(t, ['--config', file]), 'missing');
  t.ok(message.includes(file), `names the file: ${message}`);
  t.match(message, /--config .*cannot read it \(ENOENT\)/);
});

t.test('settings – config file: options as a mapping accept YAML booleans', async (t) => {
  const file = configFile(t, 'tunnels:\n  - destination: h\n    sshConfig: none\n    local: [1:h:1]\n    options: {IdentitiesOnly: true}\n');
  let got: unknown;
  try {
    got = build(t, ['--config', file]).tunnels[0]!.identitiesOnly;
  } catch (err) {
    got = String(err);
  }
  t.equal(got, true, 'IdentitiesOnly: true is yes');
});

t.test("settings – a tunnel's own ServerAliveInterval beats the file's top-level keepaliveInterval", async (t) => {
  const file = configFile(t, 'keepaliveInterval: 20s\ntunnels:\n  - destination: h\n    sshConfig: none\n    local: [1:h:1]\n    options: {ServerAliveInterval: 5}\n');
  t.equal(build(t, ['--config', file]).tunnels[0]!.keepaliveIntervalMs, 5_000);
});

t.test("settings – the command line's -o ServerAliveInterval beats the file's top-level keepaliveInterval and SSHKEEP_KEEPALIVE_INTERVAL, for its tunnel", async (t) => {
  const file = configFile(t, 'keepaliveInterval: 30s\ntunnels:\n  - destination: h\n    sshConfig: none\n    local: [1:h:1]\n');
  const both = build(t, ['--config', file, '-F', 'none', '-o', 'ServerAliveInterval=5', '-L', '2:h:2', 'h2']).tunnels.map((c) => c.keepaliveIntervalMs);
  t.same(both, [30_000, 5_000], 'the file tunnel keeps the top level; the command-line tunnel has its -o');
  process.env.SSHKEEP_KEEPALIVE_INTERVAL = '4s';
  t.teardown(() => delete process.env.SSHKEEP_KEEPALIVE_INTERVAL);
  t.equal(build(t, ['-F', 'none', '-o', 'ServerAliveInterval=5', '-L', '2:h:2', 'h2']).tunnels[0]!.keepaliveIntervalMs, 5_000, 'a flag beats a variable');
  t.equal(build(t, ['-F', 'none', '--keepalive-interval', '2s', '-o', 'ServerAliveInterval=5', '-L', '2:h:2', 'h2']).tunnels[0]!.keepaliveIntervalMs, 2_000, '--keepalive-interval still beats -o');
  process.env.SSHKEEP_OPTION = 'ServerAliveInterval=5';
  t.teardown(() => delete process.env.SSHKEEP_OPTION);
  t.equal(build(t, ['-F', 'none', '-L', '2:h:2', 'h2']).tunnels[0]!.keepaliveIntervalMs, 4_000, 'between two variables, sshkeep\'s own wins, as between two flags');
});

t.test('settings – connection flags given with --config but no destination are not silently dropped', async (t) => {
  const file = configFile(t, `tunnels:\n${TUNNEL_YAML}`);
  const warnings: string[] = [];
  let message = '';
  try {
    build(t, ['--config', file, '-L', '9999:lost:9999'], {}, warnings);
  } catch (err) {
    message = String(err);
  }
  t.match(`${message}\n${warnings.join('\n')}`, /-L|--local/, 'an error or a warning about the unused -L');
});

// -R, -D, -J and --socks-auth.

const NO_SSH_CONFIG = ['--ssh-config', 'none'];

t.test('settings – a tunnel with only -R is accepted', async (t) => {
  const c = build(t, [...NO_SSH_CONFIG, '-R', '8080:localhost:3000', '-R', '/run/r.sock:/run/app.sock', 'tester@127.0.0.1']).tunnels[0]!;
  t.strictSame(c.forwards, [], 'no -L or -D');
  t.strictSame(
    c.remoteForwards.map((f) => [f.listen, f.target]),
    [
      [{ kind: 'tcp', host: 'localhost', port: 8080 }, { kind: 'tcp', host: 'localhost', port: 3000 }],
      [{ kind: 'unix', path: '/run/r.sock' }, { kind: 'unix', path: '/run/app.sock' }],
    ],
  );
});

t.test('settings – a tunnel with only a loopback -D is accepted without --socks-auth', async (t) => {
  for (const spec of ['1080', '127.0.0.1:1080', 'localhost:1080', '[::1]:1080']) {
    const c = build(t, [...NO_SSH_CONFIG, '-D', spec, 'tester@127.0.0.1']).tunnels[0]!;
    t.strictSame(c.forwards.map((f) => [f.type, f.spec]), [['dynamic', spec]], spec);
    t.equal(c.socksAuth, undefined, `${spec}: no authentication`);
  }
});

t.test('settings – -L, -D and -R together, in one tunnel', async (t) => {
  const c = build(t, [...NO_SSH_CONFIG, '-D', '1080', '-L', '5432:db:5432', '-R', '0:localhost:3000', 'tester@127.0.0.1']).tunnels[0]!;
  t.strictSame(c.forwards.map((f) => f.type), ['local', 'dynamic'], '-L first, then -D');
  t.strictSame(forwardsOf(c), [['127.0.0.1', 5432, 'db', 5432], ['127.0.0.1', 1080]]);
  t.strictSame(c.remoteForwards.map((f) => f.spec), ['0:localhost:3000']);
});

t.test('settings – nothing to forward: the error names -L, -D and -R', async (t) => {
  const message = configError(t, () => build(t, [...NO_SSH_CONFIG, 'tester@127.0.0.1']), 'no forwards');
  t.match(message, /Nothing to forward/);
  for (const flag of ['-L', '-D', '-R']) t.ok(message.includes(`${flag} [bind_address:]port`), `mentions ${flag}: ${message}`);
});

t.test('settings – a -D on a non-loopback address is refused without --socks-auth', async (t) => {
  for (const spec of ['0.0.0.0:1080', '*:1080', '[::]:1080', '10.0.0.5:1080']) {
    const message = configError(t, () => build(t, [...NO_SSH_CONFIG, '-D', spec, 'tester@127.0.0.1']), spec);
    t.ok(message.startsWith(`-D ${spec}:`), `names the spec: ${message}`);
    t.match(message, /--socks-auth/, `${spec}: points at --socks-auth`);
    t.match(message, /--allow-open-socks/, `${spec}: and at --allow-open-socks`);
  }
  // A loopback -D beside the open one does not excuse it.
  const message = configError(t, () => build(t, [...NO_SSH_CONFIG, '-D', '1080', '-D', '0.0.0.0:1081', 'tester@127.0.0.1']), 'two -D');
  t.match(message, /^-D 0\.0\.0\.0:1081:/);
});

t.test('settings – a non-loopback -D is accepted with --socks-auth or --allow-open-socks', async (t) => {
  const withAuth = build(t, [...NO_SSH_CONFIG, '-D', '0.0.0.0:1080', '--socks-auth', 'alice:s3cret', 'tester@127.0.0.1']).tunnels[0]!;
  t.strictSame(withAuth.socksAuth, { user: 'alice', pass: 's3cret' });
  t.strictSame(forwardsOf(withAuth), [['0.0.0.0', 1080]]);

  const open = build(t, [...NO_SSH_CONFIG, '-D', '*:1080', '--allow-open-socks', 'tester@127.0.0.1']).tunnels[0]!;
  t.equal(open.socksAuth, undefined, '--allow-open-socks: still no authentication');
  t.strictSame(forwardsOf(open), [['0.0.0.0', 1080]]);
});

t.test('settings – a non-loopback -L needs neither --socks-auth nor --allow-open-socks', async (t) => {
  const c = build(t, [...NO_SSH_CONFIG, '-L', '0.0.0.0:8080:web:80', 'tester@127.0.0.1']).tunnels[0]!;
  t.strictSame(forwardsOf(c), [['0.0.0.0', 8080, 'web', 80]]);
});

t.test('settings – a non-loopback DynamicForward from ssh_config is refused too', async (t) => {
  const sshConfig = path.join(dirOf(t), 'ssh_config');
  fs.writeFileSync(sshConfig, 'Host prod\n  DynamicForward 0.0.0.0:1080\n');
  const message = configError(t, () => build(t, ['-F', sshConfig, 'prod']), 'DynamicForward 0.0.0.0:1080');
  t.match(message, /0\.0\.0\.0:1080.*--socks-auth/s);
  const c = build(t, ['-F', sshConfig, '--socks-auth', 'u:p', 'prod']).tunnels[0]!;
  t.strictSame(forwardsOf(c), [['0.0.0.0', 1080]], 'accepted with --socks-auth');
});

t.test('settings – a malformed --socks-auth is a ConfigError naming the flag', async (t) => {
  for (const bad of ['nocolonXs3cr3t', ':Xs3cr3t', 'Xs3cr3t:', `u:${'Xs3cr3t'.repeat(37)}`, `${'Xs3cr3t'.repeat(37)}:p`]) {
    const message = configError(t, () => build(t, [...NO_SSH_CONFIG, '-D', '1080', '--socks-auth', bad, 'tester@127.0.0.1']), bad);
    t.match(message, /^--socks-auth: expected user:password/, bad);
    t.notOk(message.includes('Xs3cr3t'), `does not echo the credentials: ${message}`);
  }
});

t.test('settings – -J and -R, -D, --socks-auth from SSHKEEP_* variables', async (t) => {
  withEnv(t, {
    SSHKEEP_JUMP: 'ju@bastion:2201',
    SSHKEEP_REMOTE: '8080:localhost:3000,9090:localhost:4000',
    SSHKEEP_DYNAMIC: '0.0.0.0:1080',
    SSHKEEP_SOCKS_AUTH: 'envuser:envpass',
  });
  const c = build(t, [...NO_SSH_CONFIG, 'tester@127.0.0.1']).tunnels[0]!;
  t.strictSame(c.jumps.map((j) => [j.name, j.hostName, j.port, j.user]), [['bastion', 'bastion', 2201, 'ju']], 'SSHKEEP_JUMP');
  t.strictSame(c.remoteForwards.map((f) => f.spec), ['8080:localhost:3000', '9090:localhost:4000'], 'SSHKEEP_REMOTE, comma-separated');
  t.strictSame(forwardsOf(c), [['0.0.0.0', 1080]], 'SSHKEEP_DYNAMIC');
  t.strictSame(c.socksAuth, { user: 'envuser', pass: 'envpass' }, 'SSHKEEP_SOCKS_AUTH');
});

t.test('settings – -J gives the tunnel its jump hosts, first hop first', async (t) => {
  const c = build(t, [...NO_SSH_CONFIG, '-J', 'a@hop1:2201,hop2', '-L', '1:h:1', 'tester@127.0.0.1']).tunnels[0]!;
  t.strictSame(c.jumps.map((j) => [j.name, j.port, j.user]), [['hop1', 2201, 'a'], ['hop2', 22, 'tester']]);
  t.equal(c.hostName, '127.0.0.1', 'the destination is unchanged');
});

t.test('settings – config file tunnels with remote, dynamic, jump and socksAuth', async (t) => {
  const file = configFile(
    t,
    [
      'tunnels:',
      '  - name: r',
      '    destination: u@r.example',
      '    sshConfig: none',
      '    remote: [8080:localhost:3000, "0:/run/app.sock"]',
      '  - name: d',
      '    destination: d.example',
      '    sshConfig: none',
      '    dynamic: 0.0.0.0:1080',
      '    socksAuth: alice:s3cret',
      '    jump: ju@bastion:2201,hop2',
      '  - name: all',
      '    destination: all.example',
      '    sshConfig: none',
      '    local: [5432:db:5432]',
      '    dynamic: [1081]',
      '    remote: 9000:localhost:9000',
      '',
    ].join('\n'),
  );
  const s = build(t, ['--config', file]);
  const [r, d, all] = s.tunnels as [TunnelConfig, TunnelConfig, TunnelConfig];
  t.strictSame(s.tunnels.map((c) => c.name), ['r', 'd', 'all']);

  t.strictSame(r.forwards, [], 'r: remote only');
  t.strictSame(r.remoteForwards.map((f) => [f.listen, f.target]), [
    [{ kind: 'tcp', host: 'localhost', port: 8080 }, { kind: 'tcp', host: 'localhost', port: 3000 }],
    [{ kind: 'tcp', host: 'localhost', port: 0 }, { kind: 'unix', path: '/run/app.sock' }],
  ]);
  t.strictSame(r.jumps, [], 'r: no jump');

  t.strictSame(forwardsOf(d), [['0.0.0.0', 1080]], 'd: dynamic as one string');
  t.strictSame(d.socksAuth, { user: 'alice', pass: 's3cret' }, "d: the tunnel's socksAuth");
  t.strictSame(d.jumps.map((j) => [j.name, j.port, j.user]), [['bastion', 2201, 'ju'], ['hop2', 22, 'tester']], 'd: two hops');
  t.strictSame(d.remoteForwards, []);

  t.strictSame(all.forwards.map((f) => [f.type, f.spec]), [['local', '5432:db:5432'], ['dynamic', '1081']]);
  t.strictSame(all.remoteForwards.map((f) => f.spec), ['9000:localhost:9000']);
  t.equal(all.socksAuth, undefined, "d's socksAuth does not leak into all");
});

t.test('settings – a file tunnel with an open dynamic forward needs socksAuth (its own or --socks-auth)', async (t) => {
  const file = configFile(t, 'tunnels:\n  - destination: h\n    sshConfig: none\n    dynamic: [0.0.0.0:1080]\n');
  t.match(configError(t, () => build(t, ['--config', file]), 'no auth'), /-D 0\.0\.0\.0:1080:.*--socks-auth/s);
  t.strictSame(build(t, ['--config', file, '--socks-auth', 'cli:pw']).tunnels[0]!.socksAuth, { user: 'cli', pass: 'pw' }, '--socks-auth applies to file tunnels');
  t.equal(build(t, ['--config', file, '--allow-open-socks']).tunnels[0]!.socksAuth, undefined, '--allow-open-socks applies to file tunnels');

  const own = configFile(t, 'tunnels:\n  - destination: h\n    sshConfig: none\n    dynamic: [0.0.0.0:1080]\n    socksAuth: own:pw\n', 'own.yaml');
  t.strictSame(build(t, ['--config', own, '--socks-auth', 'cli:pw']).tunnels[0]!.socksAuth, { user: 'own', pass: 'pw' }, "the tunnel's own socksAuth beats --socks-auth");
});

t.test('settings – config file: malformed remote, dynamic, jump and socksAuth name the tunnel', async (t) => {
  fileError(t, 'tunnels:\n  - destination: h\n    sshConfig: none\n    remote: [8080:h]\n', ['tunnels[0]', /-R 8080:h: listen port: "h" is not a port/]);
  fileError(t, 'tunnels:\n  - destination: h\n    sshConfig: none\n    dynamic: [/x.sock]\n', ['tunnels[0]', /-D \/x\.sock: expected \[bind_address:\]port/]);
  fileError(t, 'tunnels:\n  - destination: h\n    sshConfig: none\n    local: [1:h:1]\n    jump: "a:b:c"\n', ['tunnels[0]', /-J a:b:c: expected \[user@\]host\[:port\]/]);
  fileError(t, 'tunnels:\n  - destination: h\n    sshConfig: none\n    local: [1:h:1]\n    jump: "a,,b"\n', ['tunnels[0]', /empty hop/]);
  fileError(t, 'tunnels:\n  - destination: h\n    sshConfig: none\n    dynamic: [1080]\n    socksAuth: nocolon\n', ['tunnels[0]', /expected user:password/]);
  fileError(t, 'tunnels:\n  - destination: h\n    sshConfig: none\n    remote: {a: 1}\n', ['tunnels[0].remote', /expected a list of strings/]);
  fileError(t, 'tunnels:\n  - destination: h\n    sshConfig: none\n    dynamic: [[1080]]\n', ['tunnels[0].dynamic[0]', /expected a string/]);
});

t.test('settings – -R, -D, -J, --host-key-fingerprint given with --config but no destination are refused', async (t) => {
  const file = configFile(t, `tunnels:\n${TUNNEL_YAML}`);
  const cases: [string[], RegExp][] = [
    [['-R', '8080:localhost:3000'], /^-R describes a tunnel/],
    [['-D', '1080'], /^-D describes a tunnel/],
    [['-J', 'bastion'], /^-J describes a tunnel/],
    // Regression: dropped without a word, so the file's tunnels ran unpinned while the user believed them pinned.
    [['--host-key-fingerprint', `SHA256:${'A'.repeat(43)}`], /^--host-key-fingerprint describes a tunnel/],
  ];
  for (const [flags, want] of cases) {
    t.match(configError(t, () => build(t, ['--config', file, ...flags]), flags.join(' ')), want);
  }
  process.env.SSHKEEP_LOCAL = '5432:db:5432';
  t.teardown(() => delete process.env.SSHKEEP_LOCAL);
  t.match(configError(t, () => build(t, ['--config', file]), 'SSHKEEP_LOCAL'), /^SSHKEEP_LOCAL describes a tunnel/, 'named by the variable it came from');
});

t.test('settings – two listeners on one address (forwards, --health, a wildcard and an address under it) are a configuration error, across tunnels too; port 0 never clashes', async (t) => {
  t.match(configError(t, () => build(t, ['-F', 'none', '-L', '5432:db:5432', '-D', '5432', 'h']), 'same port'), /^-L 5432:db:5432 and -D 5432 both listen on 127\.0\.0\.1:5432/);
  const file = configFile(t, 'tunnels:\n  - destination: a\n    sshConfig: none\n    local: [6000:x:1]\n  - destination: b\n    sshConfig: none\n    local: [6000:y:1]\n');
  t.match(configError(t, () => build(t, ['--config', file]), 'across tunnels'), /-L 6000:x:1 and -L 6000:y:1 both listen on 127\.0\.0\.1:6000/);
  const same = configFile(t, 'tunnels:\n  - destination: a\n    sshConfig: none\n    local: [6000:x:1]\n  - destination: b\n    sshConfig: none\n    local: [6000:x:1]\n', 'same.yaml');
  t.match(configError(t, () => build(t, ['--config', same]), 'the same spec in two tunnels'), /-L 6000:x:1 and -L 6000:x:1 both listen on 127\.0\.0\.1:6000/);
  t.doesNotThrow(() => build(t, ['-F', 'none', '-L', '0:db:5432', '-L', '0:db:5433', '-L', '127.0.0.2:5432:db:1', '-L', '5432:db:1', 'h']), 'port 0 twice, and one port on two addresses');
  // Regression: these passed check, and the run then waited 5 s and exited 4 blaming "what holds the port".
  const clashes: [string[], RegExp][] = [
    [['-L', '7000:a:1', '-L', '0.0.0.0:7000:b:2'], /^-L 7000:a:1 and -L 0\.0\.0\.0:7000:b:2 both listen on 0\.0\.0\.0:7000/],
    [['-L', '7001:a:1', '--health', '7001'], /^-L 7001:a:1 and --health 127\.0\.0\.1:7001 both listen on 127\.0\.0\.1:7001/],
    [['-L', '7002:a:1', '-L', '[::1]:7002:b:1'], /both listen on \[::1\]:7002/],
    [['-L', '[::]:7003:a:1', '-L', '7003:b:1'], /both listen on \[::1\]:7003/],
    // --health :port is dual-stack: an IPv4 forward on its port clashes too.
    [['-L', '127.0.0.1:7005:a:1', '--health', ':7005'], /^-L 127\.0\.0\.1:7005:a:1 and --health \[::\]:7005 both listen on 0\.0\.0\.0:7005/],
    [['-L', '[::1]:7006:a:1', '--health', '*:7006'], /^-L \[::1\]:7006:a:1 and --health \[::\]:7006 both listen on \[::\]:7006/],
  ];
  for (const [flags, said] of clashes) t.match(configError(t, () => build(t, ['-F', 'none', ...flags, 'h']), flags.join(' ')), said);
  t.doesNotThrow(() => build(t, ['-F', 'none', '-L', '0.0.0.0:7004:a:1', '-L', '[::]:7004:b:1', '--health', '127.0.0.1:0', 'h']), "0.0.0.0 and :: (IPv6 only) on one port; a health port 0");
});

// Regression: two -R on one port were accepted; the second retried its bind on the server for ever and the tunnel was never ready.
t.test('settings – two -R of a tunnel asking its server for one address are a configuration error; other addresses and port 0 are not', async (t) => {
  const clashes: [string[], RegExp][] = [
    [['-R', '18500:a:1', '-R', '18500:b:2'], /^-R 18500:a:1 and -R 18500:b:2 both ask the server to listen on localhost:18500; give each its own address or port\.$/],
    [['-R', '*:18501:a:1', '-R', '127.0.0.1:18501:b:2'], /^-R \*:18501:a:1 and -R 127\.0\.0\.1:18501:b:2 both ask the server/],
    [['-R', 'localhost:18502:a:1', '-R', '[::1]:18502:b:2'], /^-R localhost:18502:a:1 and -R \[::1\]:18502:b:2 both ask the server/],
    [['-R', '18503', '-R', '18503:b:2'], /^-R 18503 and -R 18503:b:2 both ask the server/],
    [['-R', '/tmp/sshkeep-r.sock:a:1', '-R', '/tmp/sshkeep-r.sock:b:2'], /both ask the server to listen on \/tmp\/sshkeep-r\.sock;/],
    [['-R', 'LOCALHOST:18506:a:1', '-R', 'localhost:18506:b:2'], /^-R LOCALHOST:18506:a:1 and -R localhost:18506:b:2 both ask the server/],
    [['-R', '0.0.0.0:18507:a:1', '-R', '127.0.0.1:18507:b:2'], /^-R 0\.0\.0\.0:18507:a:1 and -R 127\.0\.0\.1:18507:b:2 both ask the server/],
  ];
  for (const [flags, said] of clashes) t.match(configError(t, () => build(t, ['-F', 'none', ...flags, 'h']), flags.join(' ')), said);
  t.doesNotThrow(() => build(t, ['-F', 'none', '-R', '127.0.0.1:18504:a:1', '-R', '127.0.0.2:18504:b:2', '-R', '0:a:1', '-R', '0:b:2', '-L', '18500:c:3', '-R', '18500:d:4', 'h']), 'two addresses, port 0 twice, and a -L on the port a -R asks the server for');
  // sshd listens on :: for IPv6 only, as OpenSSH binds both of these.
  t.doesNotThrow(() => build(t, ['-F', 'none', '-R', '0.0.0.0:18508:a:1', '-R', '[::]:18508:b:2', '-R', '0.0.0.0:18509:a:1', '-R', '[::1]:18509:b:2', 'h']), '0.0.0.0 next to :: or ::1');
  const two = configFile(t, 'tunnels:\n  - destination: a\n    sshConfig: none\n    remote: [18505:x:1]\n  - destination: b\n    sshConfig: none\n    remote: [18505:y:1]\n', 'two.yaml');
  t.doesNotThrow(() => build(t, ['--config', two]), 'one port on two servers');
});

// Regression: the variable was split at every comma, so an algorithm list became a stray
// "-o aes256-ctr: expected Key=Value" and no list-valued option could be given this way.
t.test('settings – SSHKEEP_OPTION: a comma inside an option\'s value continues it; a comma before another Key=Value separates', async (t) => {
  process.env.SSHKEEP_OPTION = 'Ciphers=aes128-ctr,aes256-ctr,ServerAliveInterval=7\nKexAlgorithms curve25519-sha256,ecdh-sha2-nistp256';
  t.teardown(() => delete process.env.SSHKEEP_OPTION);
  const [tunnel] = build(t, ['-F', 'none', '-L', '1:h:1', 'h']).tunnels;
  t.same(tunnel!.algorithms.cipher, ['aes128-ctr', 'aes256-ctr'], 'Ciphers kept its list');
  t.same(tunnel!.algorithms.kex, ['curve25519-sha256', 'ecdh-sha2-nistp256'], '"Key value" form, after a newline');
  t.equal(tunnel!.keepaliveIntervalMs, 7000, 'the option after the list still counts');
});
