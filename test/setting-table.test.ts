import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import YAML from 'yaml';
import { parseCli } from '../src/cli/program.js';
import { SCHEMA_FILE, configSchema, schemaText, withFlagReference } from '../src/config/generated.js';
import { SETTING_NAMES, envName, helpLine, longFlag, settingOf } from '../src/config/setting-table.js';
import { buildSettings, type Settings } from '../src/config/settings.js';
import { DEFAULTS } from '../src/config/defaults.js';
import { formatDuration, parseDuration } from '../src/config/duration.js';
import { formatSize, parseSize } from '../src/config/size.js';
import { configError } from './fixtures/errors.js';
import { REPO_ROOT } from './fixtures/cli.js';

const read = (file: string) => fs.readFileSync(path.join(REPO_ROOT, file), 'utf8');

/** The committed README and docs pages, where config and environment examples are shown. */
const DOCS = ['README.md', ...fs.readdirSync(path.join(REPO_ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

// commander reads SSHKEEP_* from process.env itself: none may leak in from the runner.
const saved = Object.entries(process.env).filter(([k]) => k.startsWith('SSHKEEP_'));
for (const [k] of saved) delete process.env[k];
t.teardown(() => {
  for (const [k, v] of saved) process.env[k] = v;
});

t.test('setting-table – the committed JSON Schema is what the table makes (npm run generate)', async (t) => {
  t.equal(read(SCHEMA_FILE), schemaText());
});

t.test("setting-table – README's flag reference is what the table makes (npm run generate)", async (t) => {
  const readme = read('README.md');
  t.equal(readme, withFlagReference(readme));
  for (const name of SETTING_NAMES.filter((n) => settingOf(n).flags)) t.ok(readme.includes(helpLine(name).split(' (default')[0]!.replace(/\|/g, '\\|')), `${name} is in the README`);
});

t.test('setting-table – every key of the config examples in README and docs is in the schema', async (t) => {
  const schema = configSchema() as { properties: Record<string, unknown>; $defs: { tunnel: { properties: Record<string, unknown> } } };
  let checked = 0;
  for (const doc of DOCS) {
    for (const [, block] of read(doc).matchAll(/```ya?ml\n([\s\S]*?)```/g)) {
      const config = YAML.parse(block!) as Record<string, unknown> | null;
      if (!config || typeof config !== 'object' || !('tunnels' in config)) continue; // a Kubernetes manifest, not a config
      checked++;
      for (const key of Object.keys(config)) t.ok(Object.hasOwn(schema.properties, key), `${doc}: top-level ${key}`);
      for (const tunnel of config.tunnels as Record<string, unknown>[]) {
        for (const key of Object.keys(tunnel)) t.ok(Object.hasOwn(schema.$defs.tunnel.properties, key), `${doc}: tunnel key ${key}`);
      }
    }
  }
  t.ok(checked >= 1, `at least one config example checked (${checked})`);
});

t.test('setting-table – every SSHKEEP_ variable the docs name is one sshkeep reads', async (t) => {
  const known = new Set([...SETTING_NAMES.map(envName), 'SSHKEEP_IDENTITY', 'SSHKEEP_KNOWN_HOSTS', 'SSHKEEP_PASSPHRASE']);
  const named = new Set(DOCS.flatMap((doc) => [...read(doc).matchAll(/\bSSHKEEP_[A-Z_]*[A-Z]\b/g)].map((m) => m[0])));
  t.ok(named.size >= 5, `the docs name variables (${named.size})`);
  for (const name of named) t.ok(known.has(name), `${name} is read by sshkeep`);
});

t.test('setting-table – --help shows each flag with its help line and default', async (t) => {
  let help = '';
  t.equal(parseCli(['--help'], {}, (s) => (help += s)), null, 'help printed');
  const flat = help.replace(/\s+/g, ' ');
  for (const name of SETTING_NAMES) {
    const s = settingOf(name);
    if (!s.flags) continue;
    t.ok(flat.includes(s.flags), `${s.flags} listed`);
    t.ok(flat.includes(helpLine(name)), `${s.flags}: ${helpLine(name)}`);
  }
  t.match(flat, /--hold-timeout <duration> hold clients .* \(default: 30s\)/, 'a default rendered from DEFAULTS');
});

t.test('setting-table – a flag or its variable lands on the setting of that name', async (t) => {
  for (const name of SETTING_NAMES) {
    const s = settingOf(name);
    if (!s.flags || s.shape === 'switch') continue;
    const flag = longFlag(name);
    // -M takes only 0 (autossh's "monitoring off").
    const value = s.choices?.[0] ?? (name === 'monitorPort' ? '0' : '1');
    t.same(parseCli([flag, value], {}, () => {})?.[name], [{ value, source: s.flags.startsWith('--') ? flag : s.flags.slice(0, 2) }], flag);
  }
});

t.test('setting-table – each default shown reads back as its value in DEFAULTS', async (t) => {
  const expected: Partial<Record<(typeof SETTING_NAMES)[number], unknown>> = {
    keepaliveInterval: DEFAULTS.keepaliveIntervalMs,
    holdTimeout: DEFAULTS.holdTimeoutMs,
    holdBuffer: DEFAULTS.holdBufferBytes,
    connections: DEFAULTS.connections,
    resumeGrace: DEFAULTS.resumeGraceMs,
    resumeBuffer: DEFAULTS.resumeBufferBytes,
    resumeBufferTotal: DEFAULTS.resumeBufferTotalBytes,
    maxHeld: DEFAULTS.maxHeld,
    maxConnections: DEFAULTS.maxConnections,
    minDrain: DEFAULTS.minDrainMs,
    maxDrain: DEFAULTS.maxDrainMs,
    logLevel: DEFAULTS.logLevel,
  };
  for (const name of SETTING_NAMES) {
    const s = settingOf(name);
    if (s.default === undefined || !s.parse) continue;
    t.ok(name in expected, `${name}: its default is checked here`);
    t.equal(s.parse({ value: s.default, source: name }), expected[name], `${name}: ${s.default}`);
  }
  t.equal(Object.keys(expected).length, SETTING_NAMES.filter((n) => settingOf(n).default !== undefined && settingOf(n).parse).length, 'every expected default is shown');
});

t.test('setting-table – durations and sizes are shown in their shortest exact spelling', async (t) => {
  const durations: [number, string][] = [[0, '0'], [500, '500ms'], [1500, '1500ms'], [15_000, '15s'], [90_000, '90s'], [120_000, '2m'], [3_600_000, '1h']];
  for (const [ms, text] of durations) {
    t.equal(formatDuration(ms), text);
    t.equal(parseDuration(text, 'x'), ms, `${text} reads back`);
  }
  const sizes: [number, string][] = [[0, '0'], [1, '1'], [1024, '1KiB'], [1536, '1536'], [1024 ** 2, '1MiB'], [3 * 1024 ** 3, '3GiB']];
  for (const [bytes, text] of sizes) {
    t.equal(formatSize(bytes), text);
    t.equal(parseSize(text, 'x'), bytes, `${text} reads back`);
  }
});

/** A home and a config file for one case; nothing reads the user's own ssh_config. */
function sandbox(t: Test, files: Record<string, string>): { dir: string; build: (argv: string[]) => unknown } {
  const dir = t.testdir({ home: {}, ...files });
  const env = { home: path.join(dir, 'home'), localUser: 'tester', authSock: undefined };
  return { dir, build: (argv) => buildSettings(parseCli(argv, process.env, () => {})!, env, {}, () => {}) };
}

const TUNNEL = ['-L', '0:127.0.0.1:1', 'tester@127.0.0.1'];
const FILE_TUNNEL = '  - destination: tester@127.0.0.1\n    sshConfig: none\n    local: [0:127.0.0.1:1]\n';

t.test('setting-table – a bad value names its source: a flag', async (t) => {
  const { build } = sandbox(t, {});
  t.match(configError(t, () => build(['-F', 'none', '--hold-timeout', 'soon', ...TUNNEL]), 'flag'), /^--hold-timeout: "soon" is not a duration/);
});

t.test('setting-table – a replay buffer of 0 bytes is refused: it would pause resumable clients for good', async (t) => {
  const { build } = sandbox(t, {});
  t.match(configError(t, () => build(['-F', 'none', '--resume', '--resume-buffer', '0', ...TUNNEL]), 'per stream'), /^--resume-buffer: "0" must be more than 0/);
  t.match(configError(t, () => build(['-F', 'none', '--resume', '--resume-buffer-total', '0KiB', ...TUNNEL]), 'in total'), /^--resume-buffer-total: "0KiB" must be more than 0/);
  t.equal((build(['-F', 'none', '--hold-buffer', '0', ...TUNNEL]) as Settings).tunnels[0]!.holdBufferBytes, 0, '--hold-buffer 0 stays allowed: a held client is not read');
  // Regression: it rounded to 0 bytes, a buffer that holds nothing, without a word.
  t.match(configError(t, () => build(['-F', 'none', '--hold-buffer', '0.1', ...TUNNEL]), 'a fraction of a byte'), /^--hold-buffer: "0\.1" is not a whole number of bytes\.$/);
  t.equal((build(['-F', 'none', '--hold-buffer', '1.5KiB', ...TUNNEL]) as Settings).tunnels[0]!.holdBufferBytes, 1536, 'a fraction of a KiB is taken to the byte');
});

t.test('setting-table – a bad value names its source: a variable', async (t) => {
  const { build } = sandbox(t, {});
  process.env.SSHKEEP_HOLD_TIMEOUT = 'soon';
  t.teardown(() => delete process.env.SSHKEEP_HOLD_TIMEOUT);
  t.match(configError(t, () => build(['-F', 'none', ...TUNNEL]), 'variable'), /^SSHKEEP_HOLD_TIMEOUT: "soon" is not a duration/);
  delete process.env.SSHKEEP_HOLD_TIMEOUT;
  process.env.SSHKEEP_LOCAL = '1:2';
  t.teardown(() => delete process.env.SSHKEEP_LOCAL);
  t.match(configError(t, () => build(['-F', 'none', 'tester@127.0.0.1']), 'forward'), /^SSHKEEP_LOCAL: -L 1:2: expected/);
});

t.test('setting-table – a bad value names its source: the file, top level and per tunnel', async (t) => {
  const { dir, build } = sandbox(t, {
    'top.yaml': `maxDrain: soon\ntunnels:\n${FILE_TUNNEL}`,
    'tunnel.yaml': `tunnels:\n${FILE_TUNNEL}${FILE_TUNNEL}    connections: 99\n`,
  });
  const top = path.join(dir, 'top.yaml');
  t.equal(configError(t, () => build(['--config', top]), 'top'), `${top}: maxDrain: "soon" is not a duration; use a number of seconds or a value like 500ms, 2s, 1m.`);
  const tunnel = path.join(dir, 'tunnel.yaml');
  t.equal(configError(t, () => build(['--config', tunnel]), 'tunnel'), `${tunnel}: tunnels[1].connections: "99" must be a whole number from 1 to 16.`);
});

t.test("setting-table – a file tunnel's own bad value is named once, by its key", async (t) => {
  const { dir, build } = sandbox(t, {
    'port.yaml': `tunnels:\n${FILE_TUNNEL}    port: ssh\n`,
    'option.yaml': `tunnels:\n${FILE_TUNNEL}    options: { ConnectTimeout: never }\n`,
    'jump.yaml': `tunnels:\n${FILE_TUNNEL}    jump: hop:0\n`,
    'spec.yaml': 'tunnels:\n  - destination: h\n    sshConfig: none\n    local: [abc]\n',
  });
  const file = (name: string) => path.join(dir, name);
  t.match(configError(t, () => build(['--config', file('port.yaml')]), 'port'), new RegExp(`^${file('port.yaml')}: tunnels\\[0\\]\\.port: "ssh" is not a port number`));
  t.match(configError(t, () => build(['--config', file('option.yaml')]), 'option'), new RegExp(`^${file('option.yaml')}: tunnels\\[0\\]\\.options: -o ConnectTimeout: "never"`));
  t.match(configError(t, () => build(['--config', file('jump.yaml')]), 'jump'), new RegExp(`^${file('jump.yaml')}: tunnels\\[0\\]\\.jump: -J hop:0: port: "0"`));
  // A forward spec names itself (-L abc); its place in the file is said before it.
  t.match(configError(t, () => build(['--config', file('spec.yaml')]), 'spec'), new RegExp(`^${file('spec.yaml')}: tunnels\\[0\\]\\.local: -L abc: expected`));
});

t.test('setting-table – a bad value names its source: an ssh_config line and -o', async (t) => {
  const { dir, build } = sandbox(t, { ssh_config: '# keepalive\nHost prod\n  HostName 127.0.0.1\n\n  ServerAliveInterval soon\n' });
  const file = path.join(dir, 'ssh_config');
  t.match(configError(t, () => build(['-F', file, '-L', '0:127.0.0.1:1', 'prod']), 'line'), new RegExp(`^${file.replace(/[.]/g, '\\.')} line 5: ServerAliveInterval: "soon" is not a duration`));
  t.match(configError(t, () => build(['-F', 'none', '-o', 'ServerAliveInterval=soon', ...TUNNEL]), '-o'), /^-o ServerAliveInterval: "soon" is not a duration/);
});

t.test('setting-table – an Included file names its own path and line', async (t) => {
  const { dir, build } = sandbox(t, { 'extra.conf': 'Port 2222\nConnectTimeout never\n', ssh_config: '' });
  const extra = path.join(dir, 'extra.conf');
  fs.writeFileSync(path.join(dir, 'ssh_config'), `Include ${extra}\n`);
  t.match(configError(t, () => build(['-F', path.join(dir, 'ssh_config'), ...TUNNEL]), 'Include'), new RegExp(`^${extra.replace(/[.]/g, '\\.')} line 2: ConnectTimeout: "never"`));
});

t.test('settings – a switch from the environment is on only for yes/true, and a bad value names its variable', async (t) => {
  const withEnv = (value: string) => {
    const saved = process.env.SSHKEEP_ALLOW_OPEN_SOCKS;
    process.env.SSHKEEP_ALLOW_OPEN_SOCKS = value;
    try {
      return parseCli(['-L', '1:b:2', 'host'], process.env, () => {})!.allowOpenSocks;
    } finally {
      if (saved === undefined) delete process.env.SSHKEEP_ALLOW_OPEN_SOCKS;
      else process.env.SSHKEEP_ALLOW_OPEN_SOCKS = saved;
    }
  };
  t.same(withEnv('yes'), [{ value: 'yes', source: 'SSHKEEP_ALLOW_OPEN_SOCKS' }], 'yes: on');
  t.same(withEnv('true'), [{ value: 'yes', source: 'SSHKEEP_ALLOW_OPEN_SOCKS' }], 'true: on');
  t.equal(withEnv('false'), undefined, 'false: off, not on because it is set');
  t.equal(withEnv('no'), undefined, 'no: off');
  t.equal(withEnv(''), undefined, 'empty: unset');
  t.throws(() => withEnv('maybe'), { name: 'ConfigError', message: /^SSHKEEP_ALLOW_OPEN_SOCKS: "maybe" must be yes or no/ });
});
