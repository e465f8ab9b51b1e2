/**
 * `sshkeep check` and configuration from --config and SSHKEEP_* as a user runs them:
 * the built CLI in a child process (run `npm run build` first).
 */
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { EventEmitter, once } from 'node:events';
import t, { type Test } from 'tap';
import { runCli, type CliResult } from './fixtures/cli.js';
import { deadline, refusedPort, listenFor } from './fixtures/net.js';
import { ed25519Pair } from '../src/demo/keygen.js';
import { parseCli } from '../src/cli/program.js';
import { describeChecked } from '../src/cli/check.js';
import { buildSettings } from '../src/config/settings.js';

const STACK = /\n\s+at /;

// The children inherit process.env: no stray SSHKEEP_* from the shell running the tests.
for (const k of Object.keys(process.env)) if (k.startsWith('SSHKEEP_')) delete process.env[k];

function writeConfig(t: Test, text: string, name = 'tunnels.yaml'): string {
  const file = path.join(t.testdir({}), name);
  fs.writeFileSync(file, text);
  return file;
}

/** A listening TCP server that counts the connections made to it. */
async function watchedServer(t: Test): Promise<{ port: number; connectionsFromOthers(): Promise<number> }> {
  const remotePorts: number[] = [];
  const seen = new EventEmitter();
  const server = net.createServer((s) => {
    remotePorts.push(s.remotePort ?? -1);
    s.on('error', () => {});
    s.destroy();
    seen.emit('accepted');
  });
  await listenFor(t, server);
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    /**
     * Connections accepted from anyone but this test: our own connection goes last through
     * the same accept queue, so once it is accepted every earlier one has been too.
     */
    async connectionsFromOthers() {
      const probe = net.connect({ port, host: '127.0.0.1' });
      probe.on('error', () => {});
      await once(probe, 'connect');
      const mine = probe.localPort;
      await deadline(
        new Promise<void>((resolve) => {
          const check = () => {
            if (remotePorts.includes(mine ?? -2)) {
              seen.off('accepted', check);
              resolve();
            }
          };
          seen.on('accepted', check);
          check();
        }),
        5000,
        'the probe connection to be accepted',
      );
      probe.destroy();
      return remotePorts.filter((p) => p !== mine).length;
    },
  };
}

/** A port held open by this test: anything that tries to listen on it fails with EADDRINUSE. */
async function heldPort(t: Test): Promise<number> {
  const holder = net.createServer();
  await listenFor(t, holder);
  return (holder.address() as net.AddressInfo).port;
}

/** Exit 2 and exactly one `sshkeep: ...` line on stderr, nothing on stdout, no stack trace. */
function oneUsageLine(t: Test, res: CliResult): string {
  t.equal(res.code, 2, 'exit code 2');
  t.equal(res.stdout, '', 'nothing on stdout');
  t.notMatch(res.stderr, STACK, 'no stack trace');
  t.notMatch(res.stderr, /this is a bug/, 'not reported as a bug');
  const lines = res.stderr.split('\n').filter(Boolean);
  t.equal(lines.length, 1, `exactly one line on stderr:\n${res.stderr}`);
  t.match(lines[0] ?? '', /^sshkeep: \S/, 'starts with "sshkeep: "');
  return lines[0] ?? '';
}

t.test('cli config – check --config validates, prints every tunnel and its forwards, and connects to nothing', async (t) => {
  const watched = await watchedServer(t);
  const refused = await refusedPort();
  // Held by the test, as a forward's listen port and as the health port: a listener would fail with EADDRINUSE.
  const held = await heldPort(t);
  const heldHealth = await heldPort(t);
  const file = writeConfig(
    t,
    `# two bastions, neither dialled by check
health: 127.0.0.1:${heldHealth}
holdTimeout: 10s
tunnels:
  - name: db
    destination: alice@127.0.0.1
    port: ${watched.port}
    sshConfig: none
    local:
      - ${held}:db.internal:5432
      - 127.0.0.1:0:cache:6379
    options:
      ConnectTimeout: 1
      GlobalKnownHostsFile: none
      IdentitiesOnly: "yes"
  - name: web
    destination: bob@127.0.0.1
    sshConfig: none
    local: 0:web.internal:80
    options:
      - Port=${refused}
      - GlobalKnownHostsFile=none
`,
  );
  const res = await runCli(['check', '--config', file], { timeoutMs: 10_000 });
  t.equal(res.code, 0, `exit 0; stderr:\n${res.stderr}`);
  t.equal(res.stderr, '', 'nothing on stderr: no warnings, no logs');
  const lines = res.stdout.split('\n').filter(Boolean);
  t.match(lines[0] ?? '', /^sshkeep check: configuration OK, 2 tunnel\(s\)$/, 'the verdict and the tunnel count first');
  const db = lines.find((l) => /^\s+db: /.test(l)) ?? '';
  const web = lines.find((l) => /^\s+web: /.test(l)) ?? '';
  t.ok(db.includes(`alice@127.0.0.1:${watched.port}`), `db: user@host:port (${db})`);
  t.ok(db.includes(`127.0.0.1:${held} -> db.internal:5432`), `db: first forward (${db})`);
  t.ok(db.includes('127.0.0.1:0 -> cache:6379'), `db: second forward (${db})`);
  t.ok(web.includes(`bob@127.0.0.1:${refused}`), `web: user@host:port from options (${web})`);
  t.ok(web.includes('127.0.0.1:0 -> web.internal:80'), `web: its forward (${web})`);
  t.notOk(web.includes('db.internal'), "web does not show db's forwards");
  t.ok(lines.some((l) => l.trim() === `health: 127.0.0.1:${heldHealth}`), 'the health endpoint as configured');
  t.equal(await watched.connectionsFromOthers(), 0, 'nothing connected to the bastion');
});

t.test('cli config – check with a destination on the command line adds it to the file tunnels', async (t) => {
  const refused = await refusedPort();
  const file = writeConfig(t, `tunnels:\n  - name: db\n    destination: 127.0.0.1\n    port: ${refused}\n    sshConfig: none\n    local: [0:db:5432]\n`);
  const res = await runCli(['check', '--config', file, '-F', 'none', '-p', String(refused), '-L', '0:extra:1', 'carol@127.0.0.1'], { timeoutMs: 10_000 });
  t.equal(res.code, 0, `exit 0; stderr:\n${res.stderr}`);
  t.match(res.stdout, /configuration OK, 2 tunnel\(s\)/);
  t.match(res.stdout, new RegExp(`^\\s+db: \\S+@127\\.0\\.0\\.1:${refused}, 127\\.0\\.0\\.1:0 -> db:5432$`, 'm'));
  t.match(res.stdout, new RegExp(`^\\s+127\\.0\\.0\\.1: carol@127\\.0\\.0\\.1:${refused}, 127\\.0\\.0\\.1:0 -> extra:1$`, 'm'));
  t.match(res.stdout, /^\s+health: off$/m, 'no health endpoint unless asked');
});

t.test('cli config – check reads the keys the run would: a missing one is named, as skipped; an encrypted one is the run\'s error without a terminal, named with one', async (t) => {
  // Not t.testdir(): writeConfig() makes that directory afresh.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sshkeep-check-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const plain = path.join(dir, 'id_plain');
  const locked = path.join(dir, 'id_locked');
  fs.writeFileSync(plain, ed25519Pair().private, { mode: 0o600 });
  fs.writeFileSync(locked, ed25519Pair({ passphrase: 'secret', cipher: 'aes256-ctr', rounds: 1 }).private, { mode: 0o600 });
  const tunnel = (keys: string[]) => writeConfig(t, `tunnels:\n  - destination: u@127.0.0.1\n    sshConfig: none\n    local: [0:db:5432]\n    identityFiles: [${keys.join(', ')}]\n`);
  const noTerminal = await runCli(['check', '--config', tunnel([plain, locked])], { timeoutMs: 10_000 });
  t.equal(noTerminal.code, 3, 'no terminal to ask on (a container, CI, systemd): exit 3, as the run');
  t.match(noTerminal.stderr, new RegExp(`^sshkeep: Identity file ${locked} is encrypted and cannot be opened: set SSHKEEP_PASSPHRASE or run on a terminal to be asked\\.$`, 'm'));
  const wrong = await runCli(['check', '--config', tunnel([locked])], { timeoutMs: 10_000, env: { SSHKEEP_PASSPHRASE: 'wrong' } });
  t.equal(wrong.code, 3, 'a wrong SSHKEEP_PASSPHRASE: exit 3, as the run');
  const settings = buildSettings(parseCli(['--config', tunnel([plain, locked])], {})!, { home: dir, localUser: 'tester', authSock: undefined }, {}, () => {});
  t.match(await describeChecked(settings, undefined, true), new RegExp(`^  keys: 1 read; encrypted, its passphrase asked at start \\(or SSHKEEP_PASSPHRASE\\): ${locked}$`, 'm'), 'on a terminal: named, nothing asked');
  const opened = await runCli(['check', '--config', tunnel([locked])], { timeoutMs: 10_000, env: { SSHKEEP_PASSPHRASE: 'secret' } });
  t.match(opened.stdout, /^ {2}keys: 1 read$/m, 'SSHKEEP_PASSPHRASE opens it, as the run would');
  const missing = await runCli(['check', '--config', tunnel([path.join(dir, 'gone'), plain])], { timeoutMs: 10_000 });
  t.equal(missing.code, 0, `exit 0: the run skips it, as ssh does; stderr:\n${missing.stderr}`);
  t.match(missing.stdout, new RegExp(`^  keys: 1 read; missing, skipped as ssh skips them: ${dir}/gone$`, 'm'));
});

t.test('cli config – check opens -E\'s file as the run would, without creating it', async (t) => {
  const dir = t.testdir({});
  const base = ['check', '-F', 'none', '-L', '0:db:5432', 'u@127.0.0.1'];
  const fresh = path.join(dir, 'new.log');
  const ok = await runCli([...base, '-E', fresh], { timeoutMs: 10_000 });
  t.equal(ok.code, 0, `a writable directory: exit 0; stderr:\n${ok.stderr}`);
  t.notOk(fs.existsSync(fresh), 'the file was not created');
  const aFile = path.join(dir, 'a-file');
  fs.writeFileSync(aFile, '');
  for (const bad of [path.join(dir, 'no-such-dir', 'x.log'), path.join(aFile, 'x.log'), '']) {
    const res = await runCli([...base, '-E', bad], { timeoutMs: 10_000 });
    t.equal(res.code, 2, `-E ${JSON.stringify(bad)}: exit 2, as the run`);
    t.match(res.stderr, /^sshkeep: -E .*: cannot open the log file: .*Give a writable path/m);
  }
  // A FIFO nobody reads: opened for writing, it would wait for a reader, every signal unanswered.
  const fifo = path.join(dir, 'log.fifo');
  execFileSync('mkfifo', [fifo]);
  const run = ['-F', 'none', '-o', 'ConnectTimeout=1s', '-p', String(await refusedPort()), '-L', '0:db:5432', 'u@127.0.0.1'];
  for (const [what, args] of [['check', base], ['a run', run]] as const) {
    const res = await runCli([...args, '-E', fifo], { timeoutMs: 10_000 });
    t.equal(res.code, 2, `${what} with -E on a FIFO nobody reads: exit 2 at once`);
    t.match(res.stderr, /^sshkeep: -E .*log\.fifo: cannot open the log file: ENXIO: a FIFO that no process has open for reading\./m);
  }
});

const badFiles: [what: string, text: string, mention: RegExp][] = [
  ['an unknown tunnel key', 'tunnels:\n  - destination: h\n    local: [1:h:1]\n  - destination: h2\n    local: [1:h:1]\n    holdTimout: 5s\n', /tunnels\[1\]\.holdTimout: unknown key; expected one of .*holdTimeout/],
  ['an unknown top-level key', 'maxconnections: 5\ntunnels: []\n', /: maxconnections: unknown key; expected one of .*maxConnections/],
  ['a tunnel without local', 'tunnels:\n  - destination: h\n', /tunnels\[0\]\.local: required/],
  ['a tunnel without destination', 'tunnels:\n  - local: [1:h:1]\n', /tunnels\[0\]\.destination: required/],
  ['tunnels that is not a list', 'tunnels: h\n', /: tunnels: expected a list of tunnels/],
  ['invalid YAML', 'tunnels:\n  - destination: [h\n', /not valid YAML or JSON.*line \d+/],
  ['a malformed forward', 'tunnels:\n  - destination: h\n    sshConfig: none\n    local: [5432]\n', /tunnels\[0\]\.local: -L 5432: expected \[bind_address:\]port:host:hostport/],
];
for (const [what, text, mention] of badFiles) {
  t.test(`cli config – check with ${what}: exit 2, one line naming the file and the key`, async (t) => {
    const file = writeConfig(t, text);
    const line = oneUsageLine(t, await runCli(['check', '--config', file]));
    t.ok(line.startsWith(`sshkeep: ${file}: `), `names the file first: ${line}`);
    t.match(line.replace(file, '<file>'), mention, 'names the key and what was expected');
  });
}

t.test('cli config – check with a missing config file: exit 2 naming it', async (t) => {
  const file = path.join(t.testdir({}), 'absent.yaml');
  const line = oneUsageLine(t, await runCli(['check', '--config', file]));
  t.ok(line.includes(`--config ${file}`), `names the file: ${line}`);
  t.match(line, /ENOENT/);
});

// Regression: a FIFO named as a file blocked the process until something wrote to it (SIGTERM
// could not end it, and a reload froze the running daemon), and /dev/zero was read until memory ran out.
t.test('cli config – a FIFO or a device given as --config, -F or -i: exit 2 at once, not read', async (t) => {
  const fifo = path.join(t.testdir({}), 'fifo');
  execFileSync('mkfifo', [fifo]);
  const cases: [string, string[], RegExp][] = [
    ['--config FIFO', ['check', '--config', fifo], /--config .*fifo: cannot read it \(not a regular file\)/],
    ['--config /dev/zero', ['check', '--config', '/dev/zero'], /--config \/dev\/zero: cannot read it \(not a regular file\)/],
    ['-F FIFO', ['check', '-F', fifo, '-L', '1:h:1', 'h'], /-F .*fifo: cannot read the ssh config file \(not a regular file\)/],
    ['-i /dev/zero', ['-F', 'none', '-i', '/dev/zero', '-p', '1', '-L', '0:h:1', '127.0.0.1'], /Identity file \/dev\/zero: cannot read it \(not a regular file\)/],
  ];
  for (const [what, args, said] of cases) {
    const res = await runCli(args, { timeoutMs: 10_000 });
    t.equal(res.code, 2, `${what}: exit 2`);
    t.match(res.stderr, said, `${what}: says why`);
  }
});

t.test('cli config – check accepts JSON', async (t) => {
  const refused = await refusedPort();
  const file = writeConfig(
    t,
    JSON.stringify({ maxDrain: '1s', tunnels: [{ name: 'j', destination: 'u@127.0.0.1', port: refused, sshConfig: 'none', local: ['0:j:1'] }] }),
    'tunnels.json',
  );
  const res = await runCli(['check', '--config', file]);
  t.equal(res.code, 0, `exit 0; stderr:\n${res.stderr}`);
  t.match(res.stdout, new RegExp(`^\\s+j: u@127\\.0\\.0\\.1:${refused}, 127\\.0\\.0\\.1:0 -> j:1$`, 'm'));
});

t.test('cli config – configuration from the environment alone passes check', async (t) => {
  const refused = await refusedPort();
  const res = await runCli(['check'], {
    env: {
      SSHKEEP_DESTINATION: 'envuser@127.0.0.1',
      SSHKEEP_LOCAL: '0:db:5432,0:cache:6379',
      SSHKEEP_SSH_CONFIG: 'none',
      SSHKEEP_PORT: String(refused),
    },
  });
  t.equal(res.code, 0, `exit 0; stderr:\n${res.stderr}`);
  t.match(res.stdout, /configuration OK, 1 tunnel\(s\)/);
  t.match(res.stdout, new RegExp(`envuser@127\\.0\\.0\\.1:${refused}, 127\\.0\\.0\\.1:0 -> db:5432, 127\\.0\\.0\\.1:0 -> cache:6379`), 'both forwards from SSHKEEP_LOCAL', {
  });
});

t.test('cli config – SSHKEEP_DESTINATION with -L on the command line passes check', async (t) => {
  const refused = await refusedPort();
  const res = await runCli(['check', '-F', 'none', '-p', String(refused), '-L', '0:db:5432'], { env: { SSHKEEP_DESTINATION: 'envuser@127.0.0.1' } });
  t.equal(res.code, 0, `exit 0; stderr:\n${res.stderr}`);
  t.match(res.stdout, new RegExp(`^\\s+127\\.0\\.0\\.1: envuser@127\\.0\\.0\\.1:${refused}, 127\\.0\\.0\\.1:0 -> db:5432$`, 'm'));
});

t.test('cli config – SSHKEEP_CONFIG names the config file for check', async (t) => {
  const refused = await refusedPort();
  const file = writeConfig(t, `tunnels:\n  - name: fromenv\n    destination: 127.0.0.1\n    port: ${refused}\n    sshConfig: none\n    local: [0:db:5432]\n`);
  const res = await runCli(['check'], { env: { SSHKEEP_CONFIG: file } });
  t.equal(res.code, 0, `exit 0; stderr:\n${res.stderr}`);
  t.match(res.stdout, /^\s+fromenv: /m);
  const missing = await runCli(['check'], { env: { SSHKEEP_CONFIG: `${file}.gone` } });
  t.equal(missing.code, 2);
  t.match(missing.stderr, /^sshkeep: SSHKEEP_CONFIG \S+\.gone: cannot read it \(ENOENT\)\.$/m, 'a file that cannot be read is named by the variable that gave it');
  const sshConfig = await runCli(['check', '-L', '1:h:1', 'h'], { env: { SSHKEEP_SSH_CONFIG: `${file}.gone` } });
  t.equal(sshConfig.code, 2);
  t.match(sshConfig.stderr, /^sshkeep: SSHKEEP_SSH_CONFIG \S+\.gone: cannot read the ssh config file \(ENOENT\)\.$/m, 'and so is an ssh_config file');
});

t.test('cli config – a flag beats the environment in check', async (t) => {
  const refused = await refusedPort();
  const res = await runCli(['check', '-F', 'none', '-p', String(refused), '-L', '0:flag:1', '--health', '127.0.0.1:0', '127.0.0.1'], {
    env: { SSHKEEP_LOCAL: '0:env:1', SSHKEEP_HEALTH: 'not-a-port' },
  });
  t.equal(res.code, 0, `exit 0; stderr:\n${res.stderr}`);
  t.match(res.stdout, /-> flag:1$/m, 'the -L forward');
  t.notMatch(res.stdout, /env:1/, 'not the SSHKEEP_LOCAL one');
  t.match(res.stdout, /^\s+health: 127\.0\.0\.1:0$/m, '--health, not SSHKEEP_HEALTH');
});

t.test('cli config – secrets from the environment are not printed by check', async (t) => {
  const refused = await refusedPort();
  const secret = 'not-a-real-key-4d9e2f';
  // check reads the key, as the run would: a real one, encrypted with the secret.
  const key = ed25519Pair({ passphrase: secret, cipher: 'aes256-ctr', rounds: 1 }).private;
  const res = await runCli(['check', '-F', 'none', '-p', String(refused), '-L', '0:db:5432', '127.0.0.1'], {
    env: { SSHKEEP_IDENTITY: key, SSHKEEP_KNOWN_HOSTS: `127.0.0.1 ssh-ed25519 ${secret}`, SSHKEEP_PASSPHRASE: secret },
  });
  t.equal(res.code, 0, `exit 0; stderr:\n${res.stderr}`);
  t.match(res.stdout, /^ {2}keys: 1 read$/m, 'the key opened with SSHKEEP_PASSPHRASE');
  t.notMatch(res.stdout + res.stderr, secret, 'the secret appears nowhere');
  t.notMatch(res.stdout + res.stderr, key.split('\n')[1]!, 'nor the key');
});

t.test('cli config – --help mentions SSHKEEP_ variables and the check command', async (t) => {
  const res = await runCli(['--help']);
  t.equal(res.code, 0, 'exit 0');
  t.equal(res.stderr, '', 'nothing on stderr');
  t.match(res.stdout, /SSHKEEP_<OPTION>/, 'the naming rule');
  for (const name of ['SSHKEEP_LOCAL', 'SSHKEEP_HOLD_TIMEOUT', 'SSHKEEP_HEALTH', 'SSHKEEP_CONFIG', 'SSHKEEP_IDENTITY ', 'SSHKEEP_KNOWN_HOSTS', 'SSHKEEP_PASSPHRASE']) {
    t.ok(res.stdout.includes(name), `mentions ${name.trim()}`);
  }
  t.match(res.stdout, /sshkeep check --config FILE/, 'the check command');
  t.match(res.stdout, /precedence: flags > environment > --config file > ssh_config\s+> defaults/, 'the precedence');
  t.ok(res.stdout.includes('SSHKEEP_DESTINATION'), 'mentions SSHKEEP_DESTINATION');
});

t.test('cli config – check --help prints the help, exit 0', async (t) => {
  const res = await runCli(['check', '--help']);
  t.equal(res.code, 0, 'exit 0');
  t.match(res.stdout, /^Usage: sshkeep /, 'the usage line');
  t.match(res.stdout, /sshkeep check --config FILE/);
});
