import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import t, { type Test } from 'tap';
import { connect, deadline, listen, startEchoFor } from './fixtures/net.js';
import { makeKeys, startServer, type Keys } from './fixtures/tunnel.js';
import { ed25519Pair } from '../src/demo/keygen.js';
import { cliArgs, logIs, portOf, spawnCliFor, startGate, type SpawnedCli, expectForwardWorks, expectCleanStop } from './fixtures/cli.js';

const STACK = /\n\s+at /;

/** "ssh-ed25519 AAAA..." of a fresh key nobody serves. */
function otherHostKey(): string {
  return ed25519Pair().public.trim();
}

/** sshkeep to the embedded server at `port`, forwarding an OS-chosen local port to `echoPort`. */
function argsFor(port: number, keys: Keys, echoPort: number, extra: string[] = [], knownHosts = keys.knownHosts): string[] {
  return cliArgs(port, keys, `0:127.0.0.1:${echoPort}`, ['-o', 'ConnectTimeout=5s', ...extra], knownHosts);
}

/** The process gives up on its own with exit 3 (host key or authentication refused). */
async function expectRefused(t: Test, cli: SpawnedCli): Promise<string> {
  const { code } = await cli.exited(15_000);
  t.equal(code, 3, 'exit 3');
  t.notMatch(cli.stderr(), STACK, 'no stack trace');
  t.notMatch(cli.stderr(), /this is a bug/, 'not reported as a bug');
  const fatal = cli.logs().find((l) => l.event === 'fatal');
  t.ok(fatal, 'logs one fatal line');
  t.equal(fatal?.level, 'error');
  return String(fatal?.msg ?? '');
}

t.test('cli – the correct host key: the forward works, and SIGTERM exits 0', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const cli = spawnCliFor(t, argsFor(server.port, keys, echo.port));
  await expectForwardWorks(t, cli);
  t.equal(echo.connections, 1, 'the target saw the one forwarded connection');
  await expectCleanStop(t, cli);
});

t.test('cli – a wrong host key: exit 3 naming the fingerprint and known_hosts line, nothing forwarded', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  // Hold the SSH handshake at a gate, so a client can be waiting on the listener when the key is refused.
  const gate = await startGate(t, server.port, { held: true });
  fs.writeFileSync(keys.knownHosts, `[127.0.0.1]:${gate.port} ${otherHostKey()}\n`);
  const cli = spawnCliFor(t, argsFor(gate.port, keys, echo.port, ['-v']));
  const listen = await cli.waitForLog(logIs('listen'), 10_000, 'the listen line');
  await gate.whenAccepted(1);

  const client = await connect(portOf(listen));
  const received: Buffer[] = [];
  client.on('data', (c: Buffer) => received.push(c));
  const clientClosed = new Promise<string | undefined>((resolve) => {
    let code: string | undefined;
    client.on('error', (e: NodeJS.ErrnoException) => (code = e.code));
    client.on('close', () => resolve(code));
  });
  client.write('must not reach the target');
  await cli.waitForLog(logIs('accept'), 10_000, 'sshkeep to accept the waiting client');
  gate.open();

  const msg = await expectRefused(t, cli);
  t.match(msg, /mismatch/i, 'says the host key does not match');
  t.ok(msg.includes(`[127.0.0.1]:${gate.port}`), 'names the host as known_hosts does');
  t.match(msg, /SHA256:[A-Za-z0-9+/]{43}/, 'names the offered key by its SHA256 fingerprint');
  t.ok(msg.includes(`${keys.knownHosts}:1`), `names the known_hosts file and line (${keys.knownHosts}:1)`);

  const closeCode = await deadline(clientClosed, 5000, 'the waiting client to be dropped');
  t.equal(closeCode, 'ECONNRESET', 'the waiting client is reset, not closed as if served');
  t.equal(Buffer.concat(received).length, 0, 'the client got no bytes');
  t.equal(server.channelsOpened, 0, 'no channel was opened');
  t.equal(echo.connections, 0, 'the target never saw a connection');
});

t.test('cli – an unknown host with default StrictHostKeyChecking: exit 3 suggesting accept-new', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  fs.writeFileSync(keys.knownHosts, '');
  const cli = spawnCliFor(t, argsFor(server.port, keys, echo.port));
  const msg = await expectRefused(t, cli);
  t.match(msg, new RegExp(`\\[127\\.0\\.0\\.1\\]:${server.port}`), 'names the unknown host');
  t.match(msg, /accept-new/, 'suggests accept-new');
  t.match(msg, /SHA256:/, 'shows the offered fingerprint');
  t.equal(fs.readFileSync(keys.knownHosts, 'utf8'), '', 'records nothing');
  t.equal(echo.connections, 0);
});

// Regression: the fatal error was watched for only once the --health port was bound, so while
// that port was still retried (up to 5 s) a refused host key waited, and was then never said:
// the run ended with exit 4, "--health …: cannot listen (already in use)".
t.test('cli – a refused host key while the --health port is still retried: exit 3 naming the key, not the port', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  fs.writeFileSync(keys.knownHosts, '');
  const holder = net.createServer();
  await listen(holder);
  t.teardown(() => holder.close());
  const taken = (holder.address() as net.AddressInfo).port;
  const cli = spawnCliFor(t, argsFor(server.port, keys, echo.port, ['--health', `127.0.0.1:${taken}`]));
  const msg = await expectRefused(t, cli);
  t.match(msg, /accept-new/, 'the host key is what is said');
  t.ok(cli.logs().some(logIs('listen_wait')), 'the health port was being retried');
  t.notOk(cli.logs().some(logIs('health')), 'the health endpoints never came up');
});

t.test('cli – accept-new records an unknown host key, and strict checking then accepts it', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const kh = path.join(keys.dir, 'new-dir', 'known_hosts'); // neither the file nor its directory exists
  const first = spawnCliFor(t, argsFor(server.port, keys, echo.port, ['-o', 'StrictHostKeyChecking=accept-new'], kh));
  await expectForwardWorks(t, first, 'on first use');
  const recorded = await first.waitForLog((l) => l.event === 'host_key' && l.msg === 'recorded new host key', 1000, 'the recorded-key warning');
  t.equal(recorded.level, 'warn', 'recording a key is a warning');
  await expectCleanStop(t, first);

  const lines = fs.readFileSync(kh, 'utf8').split('\n').filter(Boolean);
  t.equal(lines.length, 1, 'one known_hosts line');
  t.equal(lines[0], `[127.0.0.1]:${server.port} ${server.hostPublicKey}`, 'OpenSSH format, the key the server holds');

  const second = spawnCliFor(t, argsFor(server.port, keys, echo.port, [], kh));
  await expectForwardWorks(t, second, 'with the recorded key');
  await expectCleanStop(t, second);
  t.equal(fs.readFileSync(kh, 'utf8').split('\n').filter(Boolean).length, 1, 'nothing more recorded');
});

const haveKeygen = (() => {
  try {
    execFileSync('ssh-keygen', ['-?'], { stdio: 'ignore' });
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ENOENT';
  }
})();

t.test('cli – a hashed known_hosts entry is honoured', { skip: haveKeygen ? false : 'ssh-keygen not installed' }, async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys); // writes the plain line
  const echo = await startEchoFor(t);
  execFileSync('ssh-keygen', ['-H', '-f', keys.knownHosts], { stdio: 'ignore' });
  fs.rmSync(`${keys.knownHosts}.old`, { force: true });
  const text = fs.readFileSync(keys.knownHosts, 'utf8');
  t.match(text, /^\|1\|[^|]+\|[^ ]+ ssh-ed25519 /, 'the entry is hashed');
  t.notMatch(text, /127\.0\.0\.1/, 'the host name is not in the clear');
  const cli = spawnCliFor(t, argsFor(server.port, keys, echo.port));
  await expectForwardWorks(t, cli);
  await expectCleanStop(t, cli);
});

t.test("cli – ssh's throwaway idiom: -F, GlobalKnownHostsFile and UserKnownHostsFile /dev/null with StrictHostKeyChecking=no connect", async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const nulls = ['-F', '/dev/null', '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=no'];
  const cli = spawnCliFor(t, [...nulls, '-o', 'IdentitiesOnly=yes', '-o', 'ConnectTimeout=5s', '-p', String(server.port), '-i', keys.identity, '-L', `0:127.0.0.1:${echo.port}`, 'tester@127.0.0.1']);
  await expectForwardWorks(t, cli);
  t.ok(fs.statSync('/dev/null').isCharacterDevice(), 'the host key "recorded" into /dev/null left it the null device');
  await expectCleanStop(t, cli);
});

t.test('cli – StrictHostKeyChecking=no still refuses a mismatched key', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  fs.writeFileSync(keys.knownHosts, `[127.0.0.1]:${server.port} ${otherHostKey()}\n`);
  const cli = spawnCliFor(t, argsFor(server.port, keys, echo.port, ['-o', 'StrictHostKeyChecking=no']));
  const msg = await expectRefused(t, cli);
  t.match(msg, /mismatch/i, 'a mismatch, whatever StrictHostKeyChecking says');
  t.equal(server.channelsOpened, 0, 'no channel was opened');
  t.equal(echo.connections, 0);
});

t.test('cli – authentication rejected: exit 3 naming the identity file tried', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const stranger = makeKeys(t); // a key the server does not authorize
  const cli = spawnCliFor(t, argsFor(server.port, { ...keys, identity: stranger.identity }, echo.port));
  const msg = await expectRefused(t, cli);
  t.match(msg, /authentication/i, 'says authentication failed');
  t.match(msg, /\btester\b/, 'names the user');
  t.ok(msg.includes(`publickey ${stranger.identity}`), `names the identity tried (${stranger.identity})`);
  t.notOk(msg.includes(keys.identity), 'does not claim to have tried another key');
  t.equal(echo.connections, 0);
});

t.test('cli – HostKeyAlias looks the key up under the alias', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  // Only the alias is known, bare, port or not, as OpenSSH records it: connecting proves the lookup used it, not 127.0.0.1.
  fs.writeFileSync(keys.knownHosts, `myalias ${server.hostPublicKey}\n`);
  const cli = spawnCliFor(t, argsFor(server.port, keys, echo.port, ['-o', 'HostKeyAlias=myalias']));
  await expectForwardWorks(t, cli);
  await expectCleanStop(t, cli);
});

t.test('cli – accept-new with HostKeyAlias records the alias bare, as ssh does (it reads it back)', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const kh = path.join(keys.dir, 'aliased_known_hosts');
  const cli = spawnCliFor(t, argsFor(server.port, keys, echo.port, ['-o', 'StrictHostKeyChecking=accept-new', '-o', 'HostKeyAlias=myalias'], kh));
  await expectForwardWorks(t, cli);
  await expectCleanStop(t, cli);
  t.equal(fs.readFileSync(kh, 'utf8').trim(), `myalias ${server.hostPublicKey}`, 'no [alias]:port: the port is not part of an alias');
});
