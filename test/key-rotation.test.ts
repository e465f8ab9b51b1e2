/**
 * Keys and known_hosts are read again at each connect, as OpenSSH reads them per connection:
 * a rotated identity file or a re-keyed server needs no restart. A key that no longer loads
 * fails that attempt with a clear error and the tunnel keeps retrying; a passphrase typed at
 * start is reused, never asked again.
 */
import t, { type Test } from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { expectEcho, startEchoFor } from './fixtures/net.js';
import { nextState } from './fixtures/status.js';
import { inputFor, makeKeys, startSshkeep, type Keys } from './fixtures/tunnel.js';
import { Relay } from './fixtures/relay.js';
import { ed25519Pair } from '../src/demo/keygen.js';
import { startEmbeddedServer, type EmbeddedServer, type EmbeddedServerOptions } from '../src/demo/embedded-server.js';
import { loadIdentities, newKeyMemory } from '../src/ssh/identities.js';
import { AuthError } from '../src/errors.js';
import { silentLogger } from '../src/log.js';
import type { Prompter } from '../src/ssh/prompter.js';

async function serverFor(t: Test, options: EmbeddedServerOptions): Promise<EmbeddedServer> {
  const server = await startEmbeddedServer(options);
  t.teardown(() => server.close());
  return server;
}

/** Replaces `file` as key rotation tools and `ssh-keygen -R` do: a new file renamed over the old. */
function replaceFile(file: string, content: string): void {
  fs.writeFileSync(`${file}.new`, content, { mode: 0o600 });
  fs.renameSync(`${file}.new`, file);
}

/**
 * sshkeep through a relay to `before`; known_hosts trusts `before`'s host key at the relay's
 * port. `moveTo()` points the relay at `after` and cuts the SSH connection, so the next
 * connect meets the other server.
 */
async function tunnelThroughRelay(t: Test, keys: Keys, before: EmbeddedServer, after: EmbeddedServer, options: Parameters<typeof startSshkeep>[2] = {}, identityFiles = [keys.identity]) {
  const relay = await new Relay(before.port).listen();
  t.teardown(() => relay.close());
  fs.writeFileSync(keys.knownHosts, `[127.0.0.1]:${relay.port} ${before.hostPublicKey}\n`);
  const echo = await startEchoFor(t);
  const started = await startSshkeep(t, { ...inputFor(relay, keys, [`0:127.0.0.1:${echo.port}`]), identityFiles }, options);
  await started.app.ready();
  await expectEcho(t, started.bound[0]!.port, 'the tunnel to the first server');
  const moveTo = () => {
    relay.retarget(after.port);
    before.dropConnections();
  };
  return { ...started, relay, moveTo };
}

t.test('key rotation – an identity file replaced while connected is used by the next connect', async (t) => {
  const keys = makeKeys(t);
  const hostKey = ed25519Pair().private;
  const rotated = ed25519Pair();
  const before = await serverFor(t, { hostKey, authorizedKeys: [keys.publicKey] });
  const after = await serverFor(t, { hostKey, authorizedKeys: [rotated.public] }); // only the new key
  const { app, bound, logs, moveTo } = await tunnelThroughRelay(t, keys, before, after);

  replaceFile(keys.identity, rotated.private);
  const ready = nextState(app.connection, 'ready', 10_000);
  moveTo();
  await ready;
  t.equal(after.connections, 1, 'reconnected to the server that accepts only the new key');
  const changed = logs.find('identity').filter((l) => l.msg === 'identity file changed: using its new key');
  t.equal(changed.length, 1, 'one info line says the key changed');
  t.match(changed[0], { level: 'info', file: keys.identity, fingerprint: /^SHA256:/, was: /^SHA256:/ }, 'with the file and both fingerprints');
  await expectEcho(t, bound[0]!.port, 'the tunnel after the rotation');
});

t.test('key rotation – known_hosts replaced with the re-keyed server\'s key: the reconnect succeeds', async (t) => {
  const keys = makeKeys(t);
  const before = await serverFor(t, { authorizedKeys: [keys.publicKey] });
  const after = await serverFor(t, { authorizedKeys: [keys.publicKey] }); // a new host key
  const { app, bound, relay, moveTo } = await tunnelThroughRelay(t, keys, before, after);

  replaceFile(keys.knownHosts, `[127.0.0.1]:${relay.port} ${after.hostPublicKey}\n`);
  const ready = nextState(app.connection, 'ready', 10_000);
  moveTo();
  await ready;
  await expectEcho(t, bound[0]!.port, 'the tunnel to the re-keyed server');
});

t.test('key rotation – a re-keyed server that known_hosts does not know: the attempt fails with the mismatch, the tunnel retries', async (t) => {
  const keys = makeKeys(t);
  const before = await serverFor(t, { authorizedKeys: [keys.publicKey] });
  const after = await serverFor(t, { authorizedKeys: [keys.publicKey] });
  const { app, moveTo } = await tunnelThroughRelay(t, keys, before, after);

  const failed = nextState(app.connection, 'reconnecting', 10_000, (s) => /HOST KEY MISMATCH/.test(s.reason));
  moveTo();
  await failed;
  t.not(app.connection.state, 'closed', 'not fatal after the first connect: it keeps retrying');
  t.match(app.report().lastError, /HOST KEY MISMATCH/, 'the report says why');
});

t.test('key rotation – an identity file gone at a reconnect: skipped as ssh does, the failed attempt names it; back again, the next attempt connects', async (t) => {
  const keys = makeKeys(t);
  const server = await serverFor(t, { authorizedKeys: [keys.publicKey] });
  const { app, bound, logs, moveTo } = await tunnelThroughRelay(t, keys, server, server);
  const saved = fs.readFileSync(keys.identity, 'utf8');

  fs.rmSync(keys.identity);
  const failed = nextState(app.connection, 'reconnecting', 10_000, (s) => s.reason.includes('Identity file'));
  moveTo();
  const { reason } = await failed;
  t.match(reason, /^Authentication as "tester" to .* was rejected\./, 'the attempt fails at authentication');
  t.ok(reason.endsWith(` Identity file ${keys.identity} does not exist.`), `the reason names the missing file: ${reason}`);
  t.not(app.connection.state, 'closed', 'the tunnel does not give up');
  t.match(logs.find('identity').filter((l) => l.level === 'warn'), [{ file: keys.identity, msg: /not accessible: No such file or directory/ }], 'one warning names it');

  // A refusal waits the slow backoff (fail2ban); the person who restores the key asks for the dial now (SIGUSR2).
  const ready = nextState(app.connection, 'ready', 10_000);
  fs.writeFileSync(keys.identity, saved, { mode: 0o600 });
  app.reconnect('the key is back', 0);
  await ready;
  await expectEcho(t, bound[0]!.port, 'the tunnel once the key is back');
});

t.test('key rotation – a passphrase typed at start opens the rotated key at the reconnect, without asking again', async (t) => {
  const keys = makeKeys(t);
  const file = path.join(keys.dir, 'id_encrypted');
  const first = ed25519Pair({ passphrase: 'pw', cipher: 'aes256-ctr', rounds: 1 });
  const rotated = ed25519Pair({ passphrase: 'pw', cipher: 'aes256-ctr', rounds: 1 });
  fs.writeFileSync(file, first.private, { mode: 0o600 });
  const hostKey = ed25519Pair().private;
  const before = await serverFor(t, { hostKey, authorizedKeys: [first.public] });
  const after = await serverFor(t, { hostKey, authorizedKeys: [rotated.public] });
  let asked = 0;
  const prompter: Prompter = { ask: async () => (asked++, 'pw') };
  const { app, bound, moveTo } = await tunnelThroughRelay(t, keys, before, after, { prompter }, [file]);
  t.equal(asked, 1, 'asked once at start');

  replaceFile(file, rotated.private);
  const ready = nextState(app.connection, 'ready', 10_000);
  moveTo();
  await ready;
  t.equal(asked, 1, 'not asked again at the reconnect');
  await expectEcho(t, bound[0]!.port, 'the tunnel with the rotated encrypted key');
});

t.test('key rotation – a rotated key the typed passphrase no longer opens: an AuthError that says so', async (t) => {
  const keys = makeKeys(t);
  const file = path.join(keys.dir, 'id_encrypted');
  fs.writeFileSync(file, ed25519Pair({ passphrase: 'new', cipher: 'aes256-ctr', rounds: 1 }).private, { mode: 0o600 });
  const memory = newKeyMemory();
  memory.passphrases.set(file, 'old');
  await t.rejects(
    loadIdentities([file], true, { passphrase: undefined, prompter: undefined, memory }, silentLogger),
    new AuthError(`Identity file ${file} is encrypted and cannot be opened: the passphrase typed at start no longer opens it (the file changed); restart sshkeep to be asked again, or set SSHKEEP_PASSPHRASE.`),
  );
});

t.test('key rotation – unchanged bytes are not parsed (nor decrypted) again; changed bytes are', async (t) => {
  const keys = makeKeys(t);
  const file = path.join(keys.dir, 'id_encrypted');
  fs.writeFileSync(file, ed25519Pair({ passphrase: 'pw', cipher: 'aes256-ctr', rounds: 1 }).private, { mode: 0o600 });
  const memory = newKeyMemory();
  const prompter: Prompter = { ask: async () => 'pw' };
  const [first] = (await loadIdentities([file], true, { passphrase: undefined, prompter, memory }, silentLogger)).identities;
  const [again] = (await loadIdentities([file], true, { passphrase: undefined, prompter: undefined, memory }, silentLogger)).identities;
  t.equal(again!.key, first!.key, 'the same parsed key: no second decryption');
  replaceFile(file, ed25519Pair({ passphrase: 'pw', cipher: 'aes256-ctr', rounds: 1 }).private);
  const [rotated] = (await loadIdentities([file], true, { passphrase: undefined, prompter: undefined, memory }, silentLogger)).identities;
  t.not(rotated!.key, first!.key, 'a new file: parsed again');
  t.not(rotated!.key.getPublicSSH().toString('base64'), first!.key.getPublicSSH().toString('base64'), 'into the new key');
});
