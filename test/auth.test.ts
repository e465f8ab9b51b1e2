import t, { type Test } from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, execFileSync } from 'node:child_process';
import ssh2 from 'ssh2';
import { connect, deadline, listenFor, roundTrip, startEchoFor } from './fixtures/net.js';
import { nextState } from './fixtures/status.js';
import { inputFor, makeKeys, startServer, startSshkeep, type Keys } from './fixtures/tunnel.js';
import { cliArgs, expectCleanStop, expectForwardWorks, logIs, runCli, spawnCliFor } from './fixtures/cli.js';
import { ed25519Pair } from '../src/demo/keygen.js';
import { loadIdentities, newKeyMemory } from '../src/ssh/identities.js';
import { AuthError, ConfigError } from '../src/errors.js';
import { silentLogger, type Logger } from '../src/log.js';
import { resolveTunnel } from '../src/config/resolve.js';
import { Sshkeep } from '../src/sshkeep.js';
import type { Prompter } from '../src/ssh/prompter.js';

const noPrompt = { passphrase: undefined, prompter: undefined };

function writeEncryptedKey(keys: Keys, passphrase: string): string {
  const pair = ed25519Pair({ passphrase, cipher: 'aes256-ctr', rounds: 1 }); // 1 KDF round: fast tests
  const file = path.join(keys.dir, 'id_encrypted');
  fs.writeFileSync(file, pair.private, { mode: 0o600 });
  fs.writeFileSync(`${file}.pub`, pair.public);
  return file;
}

t.test('identities – an encrypted key opens with SSHKEEP_PASSPHRASE', async (t) => {
  const keys = makeKeys(t);
  const file = writeEncryptedKey(keys, 'correct horse');
  const { identities: ids } = await loadIdentities([file], true, { passphrase: 'correct horse', prompter: undefined }, silentLogger);
  t.equal(ids.length, 1);
  t.ok(ids[0]!.key.isPrivateKey());
});

t.test('identities – a wrong passphrase on an explicit key is an AuthError naming the file', async (t) => {
  const keys = makeKeys(t);
  const file = writeEncryptedKey(keys, 'correct horse');
  await t.rejects(loadIdentities([file], true, { passphrase: 'wrong', prompter: undefined }, silentLogger), AuthError);
  await t.rejects(loadIdentities([file], true, noPrompt, silentLogger), /SSHKEEP_PASSPHRASE/);
});

t.test('identities – the passphrase is asked on the prompter, up to three times', async (t) => {
  const keys = makeKeys(t);
  const file = writeEncryptedKey(keys, 'pw');
  const answers = ['nope', 'pw'];
  const asked: string[] = [];
  const prompter: Prompter = { ask: async (q) => (asked.push(q), answers.shift() ?? '') };
  const { identities: ids } = await loadIdentities([file], true, { passphrase: undefined, prompter }, silentLogger);
  t.equal(ids.length, 1);
  t.equal(asked.length, 2, 'asked again after a wrong answer');
  t.match(asked[0], file, 'the question names the key');
});

t.test('identities – missing identity files are skipped, as ssh skips them: a given one is warned of once per tunnel and reported', async (t) => {
  const keys = makeKeys(t);
  const missing = path.join(keys.dir, 'nope');
  const warned: string[] = [];
  const logger: Logger = { ...silentLogger, warn: (message) => void warned.push(message) };
  const defaults = await loadIdentities([missing, keys.identity], false, noPrompt, logger);
  t.same([defaults.identities.map((id) => id.file), defaults.missing], [[keys.identity], []], 'a default one: skipped silently');
  t.same(warned, []);
  const memory = newKeyMemory();
  const given = await loadIdentities([missing, keys.identity], true, { ...noPrompt, memory }, logger);
  t.same(given.missing, [missing], 'a given one is reported, for the authentication error');
  t.same(given.identities.map((id) => id.file), [keys.identity], 'and the next key is still read');
  t.same(warned, [`Identity file ${missing} not accessible: No such file or directory. Skipped; the other keys and ssh-agent are tried.`], "ssh's warning for -i");
  await loadIdentities([missing], true, { ...noPrompt, memory }, logger);
  t.equal(warned.length, 1, 'not warned again at the next read (a reconnect)');
  const encrypted = writeEncryptedKey(keys, 'pw');
  t.same(await loadIdentities([encrypted], false, noPrompt, silentLogger), { identities: [], missing: [] }, 'an encrypted default key with no way to open it is skipped');
});

t.test('identities – a public key given as identity names an ssh-agent key, whatever its mode (OpenSSH)', async (t) => {
  const keys = makeKeys(t);
  const pub = path.join(keys.dir, 'id.pub');
  fs.writeFileSync(pub, keys.publicKey, { mode: 0o644 });
  const [id, ...more] = (await loadIdentities([pub], true, noPrompt, silentLogger)).identities;
  t.equal(more.length, 0);
  t.match(id, { file: pub, agentKey: true });
  t.equal(`${id!.key.type} ${id!.key.getPublicSSH().toString('base64')}`, keys.publicKey.trim().split(' ').slice(0, 2).join(' '), 'the public key it holds');
});

t.test('identities – PEM (RSA) keys from ssh-keygen -m PEM load', async (t) => {
  const keys = makeKeys(t);
  const file = path.join(keys.dir, 'id_rsa_pem');
  execFileSync('ssh-keygen', ['-q', '-t', 'rsa', '-b', '2048', '-m', 'PEM', '-N', '', '-f', file]);
  t.match(fs.readFileSync(file, 'utf8'), /BEGIN RSA PRIVATE KEY/);
  const { identities: ids } = await loadIdentities([file], true, noPrompt, silentLogger);
  t.equal(ids[0]?.key.type, 'ssh-rsa');
});

t.test('auth – an encrypted key authenticates end to end', async (t) => {
  const keys = makeKeys(t);
  const file = writeEncryptedKey(keys, 'pw');
  const server = await startServer(t, keys, { authorizedKeys: [fs.readFileSync(`${file}.pub`, 'utf8')] });
  const echo = await startEchoFor(t);
  const input = { ...inputFor(server, keys, [`0:127.0.0.1:${echo.port}`]), identityFiles: [file] };
  const { app, bound } = await startSshkeep(t, input, { passphrase: 'pw' });
  await deadline(app.ready(), 5000, 'ready');
  t.equal((await roundTrip(await connect(bound[0]!.port), 'x')).toString(), 'x');
});

t.test('auth – password asked once through the prompter, reused after a reconnect, never logged', async (t) => {
  const keys = makeKeys(t);
  const secret = 'hunter2-very-secret';
  const server = await startServer(t, keys, { authorizedKeys: [], password: { username: 'tester', password: secret } });
  let asked = 0;
  const prompter: Prompter = { ask: async () => (asked++, secret) };
  const input = { ...inputFor(server, keys, ['0:127.0.0.1:9']), identityFiles: [] };
  const { app, logs } = await startSshkeep(t, input, { prompter });
  await deadline(app.ready(), 5000, 'ready');
  server.dropConnections();
  await nextState(app.connection, 'ready', 10_000);
  t.equal(asked, 1, 'asked once');
  t.notMatch(JSON.stringify(logs.lines), secret, 'the password appears in no log line');
});

/** An ssh-agent of the test's own holding `keys`' identity; its socket. */
async function agentWith(t: Test, keys: Keys): Promise<string> {
  const sock = path.join(keys.dir, 'agent.sock');
  const agent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
  t.teardown(() => agent.kill());
  await deadline(
    new Promise<void>((resolve) => {
      const poll = () => (fs.existsSync(sock) ? resolve() : setTimeout(poll, 20));
      poll();
    }),
    5000,
    'ssh-agent socket',
  );
  execFileSync('ssh-add', ['-q', keys.identity], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: 'ignore' });
  return sock;
}

t.test('auth – keys from ssh-agent (SSH_AUTH_SOCK) are used when no -i is given', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const sock = await agentWith(t, keys);
  // No -i and an empty HOME: the only credential is the agent's key.
  const input = inputFor(server, keys, ['0:127.0.0.1:9']);
  input.identityFiles = [];
  input.options = input.options!.filter((o) => o !== 'IdentitiesOnly=yes');
  const { app, logs } = await startSshkeep(t, input, {}, { authSock: sock });
  await deadline(app.ready(), 5000, 'ready through the agent');
  t.equal(app.connection.state, 'ready');
  t.equal(logs.find('identity').length, 0, 'no identity file was loaded');
});

t.test('auth – IdentitiesOnly with a public key file: the ssh-agent key it names signs, the others are not offered (1Password, Secretive)', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const sock = await agentWith(t, keys);
  const pub = path.join(keys.dir, 'id_agent.pub');
  fs.writeFileSync(pub, keys.publicKey, { mode: 0o644 });
  const { app } = await startSshkeep(t, { ...inputFor(server, keys, ['0:127.0.0.1:9']), identityFiles: [pub] }, {}, { authSock: sock });
  await deadline(app.ready(), 5000, 'ready with the agent key the public key file names');

  const other = path.join(keys.dir, 'other.pub');
  fs.writeFileSync(other, ed25519Pair().public, { mode: 0o644 });
  const config = resolveTunnel({ ...inputFor(server, keys, ['0:127.0.0.1:9']), identityFiles: [other] }, { home: keys.dir, localUser: 'tester', authSock: sock });
  const refused = new Sshkeep(config, { logger: silentLogger });
  t.teardown(() => refused.stop());
  await refused.start();
  await t.rejects(deadline(refused.ready(), 5000, 'refused'), AuthError, "IdentitiesOnly: the agent's key is not offered for another key's name");
});

t.test('auth – rejected credentials on the first connect are fatal (AuthError)', async (t) => {
  const keys = makeKeys(t);
  const other = makeKeys(t);
  const server = await startServer(t, other);
  const kh = fs.readFileSync(other.knownHosts);
  fs.writeFileSync(keys.knownHosts, kh);
  const { app } = await startSshkeep(t, inputFor(server, keys, ['0:127.0.0.1:9']));
  const err = await deadline(app.ready().catch((e: unknown) => e), 5000, 'auth failure');
  t.type(err, AuthError);
  t.match((err as Error).message, keys.identity, 'says which key was tried');
  t.equal(app.connection.state, 'closed');
});

t.test('identities – a key others can read is refused with OpenSSH\'s reason, unless insecure permissions are allowed', async (t) => {
  const keys = makeKeys(t);
  fs.chmodSync(keys.identity, 0o644);
  const err = await loadIdentities([keys.identity], true, noPrompt, silentLogger).catch((e: unknown) => e);
  t.type(err, ConfigError, 'an explicit key: exit 2');
  t.match((err as Error).message, /Permissions 0644 for '.*' are too open/);
  t.match((err as Error).message, /--insecure-key-permissions/, 'names the option that allows it');
  t.same((await loadIdentities([keys.identity], false, noPrompt, silentLogger)).identities, [], 'a default key is skipped');
  const { identities: ids } = await loadIdentities([keys.identity], true, { ...noPrompt, insecurePermissions: true }, silentLogger);
  t.equal(ids.length, 1, 'accepted with --insecure-key-permissions');
  fs.chmodSync(keys.identity, 0o600);
  t.equal((await loadIdentities([keys.identity], true, noPrompt, silentLogger)).identities.length, 1, '0600 is fine');
});

t.test("auth – keyboard-interactive: the server's instructions go to the prompter's say(), never to the process's stderr", async (t) => {
  const keys = makeKeys(t);
  const host = ed25519Pair();
  const server = new ssh2.Server({ hostKeys: [host.private] }, (client) => {
    client.on('error', () => {});
    client.on('authentication', (ctx) => {
      if (ctx.method !== 'keyboard-interactive') return ctx.reject(['keyboard-interactive']);
      ctx.prompt([{ prompt: 'Code: ', echo: false }], 'Login', 'SERVER INSTRUCTIONS\u001b[31m', (answers) => (answers[0] === '42' ? ctx.accept() : ctx.reject()));
    });
  });
  const port = await listenFor(t, server);
  fs.writeFileSync(keys.knownHosts, `[127.0.0.1]:${port} ${host.public}\n`);
  const said: string[] = [];
  const asked: string[] = [];
  const prompter: Prompter = { ask: async (q) => (asked.push(q), '42'), say: (text) => said.push(text) };
  const written: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: never[]) => (written.push(String(chunk)), write(chunk, ...rest))) as typeof process.stderr.write;
  t.teardown(() => void (process.stderr.write = write));
  const { app } = await startSshkeep(t, { ...inputFor({ port }, keys, ['0:127.0.0.1:9']), identityFiles: [] }, { prompter });
  await deadline(app.ready(), 5000, 'ready after keyboard-interactive');
  t.strictSame(said, ['SERVER INSTRUCTIONS[31m'], 'the instructions, escape sequences removed');
  t.strictSame(asked, ['Code: '], 'only the server\'s prompt: no password asked of a server that takes none');
  t.notOk(written.some((w) => w.includes('SERVER INSTRUCTIONS')), 'nothing written to stderr behind the app');
});

t.test('auth – an -i file that does not exist is skipped with ssh\'s warning: the next key logs in; alone, exit 3 naming it', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const missing = path.join(keys.dir, 'no_such_key');
  const cli = spawnCliFor(t, cliArgs(server.port, keys, `0:127.0.0.1:${echo.port}`, ['-i', missing]));
  const warning = await cli.waitForLog(logIs('identity'), 10_000, 'the warning');
  t.match(warning, { level: 'warn', file: missing, msg: /not accessible: No such file or directory/ }, 'warned of, as ssh warns of a missing -i');
  await expectForwardWorks(t, cli, 'with the -i key that exists');
  await expectCleanStop(t, cli);

  const alone = cliArgs(server.port, keys, `0:127.0.0.1:${echo.port}`).map((a) => (a === keys.identity ? missing : a));
  const res = await runCli(alone);
  t.equal(res.code, 3, `exit 3, as a rejected login; stderr:\n${res.stderr}`);
  t.match(res.stderr, new RegExp(`was rejected\\..* Identity file ${missing} does not exist\\.`), 'the error names the missing file');
  t.notMatch(res.stderr, /\n\s+at /, 'no stack trace');
});
