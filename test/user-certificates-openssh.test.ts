/**
 * User certificates against the real OpenSSH sshd (issue 16): sshd trusts a user CA made here
 * with ssh-keygen and has no authorized_keys (AuthorizedKeysFile none), so only a certificate
 * lets the user in. From a file beside the key, from CertificateFile, from ssh-agent; expired,
 * wrong principal and revoked certificates refused at the first connect with exit 3.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { EXIT, exitCodeOf } from '../src/errors.js';
import { deadline, expectEcho, startEchoFor, until } from './fixtures/net.js';
import { newCa, newKey, signUser, type Ca } from './fixtures/ssh-ca.js';
import { runCli } from './fixtures/cli.js';
import { loginArgs } from './fixtures/login.js';
import { requireSshd, sshdInput, sshdLogin, startSshd, type Sshd } from './fixtures/sshd.js';
import { tempDir } from './fixtures/tmp.js';
import { startSshkeep } from './fixtures/tunnel.js';
import { startAgent } from './fixtures/ssh-agent.js';
import type { TunnelInput } from '../src/config/resolve.js';

const READY_MS = 10_000;

/** sshd that trusts a new user CA and nothing else; the user's name is the fixture's. */
async function certOnlySshd(t: Test, extra: { revokedKeys?: string } = {}): Promise<{ sshd: Sshd; ca: Ca; dir: string }> {
  const dir = tempDir(t);
  const ca = newCa(dir, 'user_ca');
  const sshd = await startSshd(t, { userCa: `${ca.key}.pub`, authorizedKeys: false, ...extra });
  return { sshd, ca, dir };
}

/** sshkeep forwarding to an echo server, with the agent at `authSock` if given; returns its first connect's outcome. */
async function connectWith(t: Test, sshd: Sshd, input: Partial<TunnelInput>, authSock?: string) {
  const echo = await startEchoFor(t);
  const tunnel = sshdInput(sshd, { localForwards: [`0:127.0.0.1:${echo.port}`], ...input });
  // The fixture's input keeps agents out (IdentitiesOnly=yes).
  if (authSock) tunnel.options = tunnel.options!.filter((o) => o !== 'IdentitiesOnly=yes');
  const started = await startSshkeep(t, tunnel, {}, { localUser: sshd.user, authSock });
  const ready = await deadline(started.app.ready().then(() => null, (err: Error) => err), READY_MS, `first connect\n${sshd.logs()}`);
  return { ...started, ready };
}

t.test('user certificates', { skip: !requireSshd(t) && 'no sshd' }, async (t) => {
  // RSA key generation is slow: one key serves both RSA tests.
  const rsaKey = newKey(tempDir(t), 'id_rsa', 'rsa');

  t.test('user certificates – <identity>-cert.pub beside the key is offered and signed with the key; the key alone would be refused', async (t) => {
    const { sshd, ca, dir } = await certOnlySshd(t);
    const key = newKey(dir, 'id_ed25519');
    signUser(ca, key, { principals: [sshd.user], validity: '-5m:+1h' });
    const { ready, bound, logs } = await connectWith(t, sshd, { identityFiles: [key] });
    t.equal(ready, null, `connected\n${sshd.logs()}`);
    await expectEcho(t, bound[0]!.port, 'echo through the certificate-authenticated tunnel');
    t.match(sshd.logs(), /Accepted certificate ID "sshkeep-test-user"/, 'sshd accepted the certificate');
    t.notOk(logs.lines.some((l) => /certificate/i.test(String(l.msg)) && l.level === 'error'));
  });

  t.test('user certificates – -o CertificateFile names a certificate kept elsewhere; an RSA key signs with SHA-2', async (t) => {
    const { sshd, ca, dir } = await certOnlySshd(t);
    const cert = signUser(ca, rsaKey, { principals: [sshd.user] }, path.join(dir, 'issued.cert'));
    const { ready } = await connectWith(t, sshd, { identityFiles: [rsaKey], options: [`CertificateFile=${cert}`] });
    t.equal(ready, null, `connected\n${sshd.logs()}`);
    t.match(sshd.logs(), /Accepted publickey for .*: RSA-CERT/, 'an RSA certificate');
  });

  t.test('user certificates – an expired certificate is exit 3 at the first connect, naming its validity and principals', async (t) => {
    const { sshd, ca, dir } = await certOnlySshd(t);
    const key = newKey(dir, 'id_ed25519');
    signUser(ca, key, { principals: [sshd.user], validity: '20200101:20200102', id: 'old-one' });
    const { ready } = await connectWith(t, sshd, { identityFiles: [key] });
    t.equal(exitCodeOf(ready), EXIT.hostKeyOrAuth, 'exit 3');
    t.match(ready?.message, /Certificate .*id_ed25519-cert\.pub was not offered: it expired at 2020-01-02T00:00:00Z; it is a user certificate "old-one" \(serial 1, valid from 2020-01-01T00:00:00Z to 2020-01-02T00:00:00Z, principals: /);
    t.notOk(/Accepted/.test(sshd.logs()));
  });

  t.test('user certificates – the command: an expired certificate is exit 3 with one paragraph on stderr', async (t) => {
    const { sshd, ca, dir } = await certOnlySshd(t);
    const key = newKey(dir, 'id_ed25519');
    signUser(ca, key, { principals: [sshd.user], validity: '20200101:20200102', id: 'old-one' });
    const run = await runCli([...loginArgs({ ...sshdLogin(sshd), identity: key }), '-L', '0:127.0.0.1:9']);
    t.equal(run.code, EXIT.hostKeyOrAuth, `exit 3\n${run.stderr}`);
    const fatal = run.stderr.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.event === 'fatal');
    t.match(fatal?.msg, /certificate "old-one" \(serial 1, valid from 2020-01-01T00:00:00Z to 2020-01-02T00:00:00Z, principals: /, 'the error line names it');
    t.notMatch(run.stderr, /\n\s+at /, 'no stack trace');
  });

  t.test('user certificates – a certificate not yet valid is refused the same way', async (t) => {
    const { sshd, ca, dir } = await certOnlySshd(t);
    const key = newKey(dir, 'id_ed25519');
    signUser(ca, key, { principals: [sshd.user], validity: '+1d:+2d' });
    const { ready } = await connectWith(t, sshd, { identityFiles: [key] });
    t.equal(exitCodeOf(ready), EXIT.hostKeyOrAuth);
    t.match(ready?.message, /it is not valid before \d{4}-\d\d-\d\dT/);
  });

  t.test('user certificates – a wrong principal is offered (the server may map principals) and its refusal names them', async (t) => {
    const { sshd, ca, dir } = await certOnlySshd(t);
    const key = newKey(dir, 'id_ed25519');
    signUser(ca, key, { principals: ['someone-else', 'ops'] });
    const { ready } = await connectWith(t, sshd, { identityFiles: [key] });
    t.equal(exitCodeOf(ready), EXIT.hostKeyOrAuth);
    t.match(ready?.message, new RegExp(`Tried: certificate .*id_ed25519-cert\\.pub.*its principals \\(someone-else, ops\\) do not include "${sshd.user}"`));
  });

  t.test('user certificates – a certificate sshd lists in RevokedKeys is refused (exit 3)', async (t) => {
    const dir = tempDir(t);
    const key = newKey(dir, 'id_ed25519');
    const revoked = path.join(dir, 'revoked_keys');
    fs.copyFileSync(`${key}.pub`, revoked);
    const ca = newCa(dir, 'user_ca');
    const sshd = await startSshd(t, { userCa: `${ca.key}.pub`, authorizedKeys: false, revokedKeys: revoked });
    signUser(ca, key, { principals: [sshd.user] });
    const { ready } = await connectWith(t, sshd, { identityFiles: [key] });
    t.equal(exitCodeOf(ready), EXIT.hostKeyOrAuth);
    t.match(sshd.logs(), /revoked/i, 'sshd refused it as revoked');
  });

  t.test('user certificates – a renewed certificate on disk is read again at the reconnect, without a restart', async (t) => {
    const { sshd, ca, dir } = await certOnlySshd(t);
    const key = newKey(dir, 'id_ed25519');
    signUser(ca, key, { principals: [sshd.user], serial: 1 });
    const { ready, app } = await connectWith(t, sshd, { identityFiles: [key] });
    t.equal(ready, null, 'first connect with serial 1');
    t.match(sshd.logs(), /serial 1\)/);
    signUser(ca, key, { principals: [sshd.user], serial: 2 });
    await sshd.restart();
    await until(() => /serial 2\)/.test(sshd.logs()), READY_MS, `a reconnect with serial 2\n${sshd.logs()}`);
    await until(() => app.report().state === 'ready', READY_MS, 'ready again');
    t.pass('reconnected with the renewed certificate');
  });

  t.test('user certificates – a certificate held by ssh-agent (ssh-add of a key with its certificate) is offered and signed by the agent', async (t) => {
    const { sshd, ca, dir } = await certOnlySshd(t);
    const key = newKey(dir, 'id_ed25519');
    signUser(ca, key, { principals: [sshd.user] });
    const authSock = await startAgent(t, dir);
    execFileSync('ssh-add', [key], { env: { ...process.env, SSH_AUTH_SOCK: authSock }, stdio: 'ignore' });
    fs.rmSync(key);
    fs.rmSync(`${key}-cert.pub`);
    const { ready } = await connectWith(t, sshd, { identityFiles: [] }, authSock);
    t.equal(ready, null, `connected through the agent's certificate\n${sshd.logs()}`);
    t.match(sshd.logs(), /Accepted certificate ID "sshkeep-test-user"/);
  });

  t.test('user certificates – plain keys in ssh-agent still work through sshkeep\'s agent client: RSA signs with SHA-2', async (t) => {
    const sshd = await startSshd(t);
    fs.copyFileSync(`${rsaKey}.pub`, path.join(sshd.dir, 'authorized_keys'));
    const authSock = await startAgent(t, tempDir(t));
    execFileSync('ssh-add', [rsaKey], { env: { ...process.env, SSH_AUTH_SOCK: authSock }, stdio: 'ignore' });
    const { ready } = await connectWith(t, sshd, { identityFiles: [] }, authSock);
    t.equal(ready, null, `connected\n${sshd.logs()}`);
    t.match(sshd.logs(), /Accepted publickey for .*: RSA SHA256:/, 'sshd (which refuses SHA-1 RSA signatures) accepted it');
  });

  t.test('user certificates – CertificateFile whose key only the agent holds is offered, signed by the agent', async (t) => {
    const { sshd, ca, dir } = await certOnlySshd(t);
    const key = newKey(dir, 'id_ed25519');
    const cert = signUser(ca, key, { principals: [sshd.user] }, path.join(dir, 'issued.cert'));
    const authSock = await startAgent(t, dir);
    execFileSync('ssh-add', [key], { env: { ...process.env, SSH_AUTH_SOCK: authSock }, stdio: 'ignore' });
    fs.rmSync(key);
    const { ready } = await connectWith(t, sshd, { identityFiles: [], options: [`CertificateFile=${cert}`] }, authSock);
    t.equal(ready, null, `connected\n${sshd.logs()}`);
  });

  t.test('user certificates – a CertificateFile for other principals whose key only the agent holds: its refusal notes them once', async (t) => {
    const { sshd, ca, dir } = await certOnlySshd(t);
    const key = newKey(dir, 'id_ed25519');
    const cert = signUser(ca, key, { principals: ['someone-else'], id: 'elsewhere' }, path.join(dir, 'issued.cert'));
    const authSock = await startAgent(t, dir);
    execFileSync('ssh-add', [key], { env: { ...process.env, SSH_AUTH_SOCK: authSock }, stdio: 'ignore' });
    fs.rmSync(key);
    const { ready } = await connectWith(t, sshd, { identityFiles: [], options: [`CertificateFile=${cert}`] }, authSock);
    t.equal(exitCodeOf(ready), EXIT.hostKeyOrAuth);
    const notes = ready?.message.match(/Certificate "elsewhere" was offered although its principals \(someone-else\)/g) ?? [];
    t.equal(notes.length, 1, `noted once\n${ready?.message}`);
  });
});
