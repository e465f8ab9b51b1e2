/**
 * Host certificates against the real OpenSSH sshd (issue 16): sshd presents a host certificate
 * (HostCertificate) signed by a host CA made here; known_hosts trusts CAs with @cert-authority
 * lines (plain, hashed, wildcard) instead of the host's own key.
 */
import { createHmac, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import t, { type Test } from 'tap';
import { EXIT, exitCodeOf } from '../src/errors.js';
import { fingerprintSha256 } from '../src/ssh/known-hosts.js';
import { deadline } from './fixtures/net.js';
import { newCa, type Ca } from './fixtures/ssh-ca.js';
import { requireSshd, sshdInput, startSshd, type Sshd } from './fixtures/sshd.js';
import { tempDir } from './fixtures/tmp.js';
import { startSshkeep } from './fixtures/tunnel.js';

const READY_MS = 10_000;

/** sshd with a host certificate from `ca` for `principals`; known_hosts holds `lines` only (no plain key for the host). */
async function certifiedSshd(t: Test, ca: Ca, principals: string[], validity?: string): Promise<Sshd> {
  const sshd = await startSshd(t, { hostCa: { key: ca.key, principals, validity } });
  fs.writeFileSync(sshd.knownHostsPath, '');
  return sshd;
}

async function firstConnect(t: Test, sshd: Sshd, options: string[] = []) {
  const started = await startSshkeep(t, sshdInput(sshd, { localForwards: ['0:127.0.0.1:9'], options }), {}, { localUser: sshd.user });
  const ready = await deadline(started.app.ready().then(() => null, (err: Error) => err), READY_MS, `first connect\n${sshd.logs()}`);
  return { ...started, ready };
}

const hashed = (name: string) => {
  const salt = randomBytes(20);
  return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
};

t.test('host certificates', { skip: !requireSshd(t) && 'no sshd' }, async (t) => {
  const dir = tempDir(t);
  const hostCa = newCa(dir, 'host_ca');
  const otherCa = newCa(dir, 'other_ca');

  t.test('host certificates – a certificate from a CA trusted by a hashed @cert-authority line for [host]:port is accepted', async (t) => {
    const sshd = await certifiedSshd(t, hostCa, ['127.0.0.1']);
    fs.writeFileSync(sshd.knownHostsPath, `@cert-authority ${hashed(`[127.0.0.1]:${sshd.port}`)} ${hostCa.publicKey}\n`);
    const { ready, logs } = await firstConnect(t, sshd);
    t.equal(ready, null, `connected${ready ? `: ${ready.message}` : ''}`);
    const verified = logs.find('host_key').find((l) => l.msg === 'host certificate verified');
    t.equal(verified?.ca, fingerprintSha256(Buffer.from(hostCa.publicKey.split(' ')[1]!, 'base64')), 'by the CA of the line');
  });

  t.test('host certificates – a CA no @cert-authority line trusts is refused (exit 3), naming the CA offered and those trusted', async (t) => {
    const sshd = await certifiedSshd(t, otherCa, ['127.0.0.1']);
    fs.writeFileSync(sshd.knownHostsPath, `@cert-authority * ${hostCa.publicKey}\n`);
    const { ready } = await firstConnect(t, sshd);
    t.equal(exitCodeOf(ready), EXIT.hostKeyOrAuth);
    t.match(ready?.message, /offered a host certificate "sshkeep-test-host" .* signed by CA SHA256:\S+; no @cert-authority line for \[127\.0\.0\.1\]:\d+ trusts that CA \(trusted: SHA256:\S+ \(.*known_hosts:1\)\)/);
  });

  t.test('host certificates – principals must include the host name, or HostKeyAlias when given', async (t) => {
    const sshd = await certifiedSshd(t, hostCa, ['bastion.internal']);
    fs.writeFileSync(sshd.knownHostsPath, `@cert-authority * ${hostCa.publicKey}\n`);
    const wrong = await firstConnect(t, sshd);
    t.equal(exitCodeOf(wrong.ready), EXIT.hostKeyOrAuth);
    t.match(wrong.ready?.message, /its principals \(bastion\.internal\) do not include "127\.0\.0\.1"/);
    const alias = await firstConnect(t, sshd, ['HostKeyAlias=bastion.internal']);
    t.equal(alias.ready, null, 'HostKeyAlias names the principal');
  });

  t.test('host certificates – an expired host certificate is refused with its validity', async (t) => {
    const sshd = await certifiedSshd(t, hostCa, ['127.0.0.1'], '20200101:20200102');
    fs.writeFileSync(sshd.knownHostsPath, `@cert-authority * ${hostCa.publicKey}\n`);
    const { ready } = await firstConnect(t, sshd);
    t.equal(exitCodeOf(ready), EXIT.hostKeyOrAuth);
    t.match(ready?.message, /it expired at 2020-01-02T00:00:00Z/);
  });

  t.test('host certificates – a @revoked host key or CA is refused even under a trusted CA', async (t) => {
    const sshd = await certifiedSshd(t, hostCa, ['127.0.0.1']);
    fs.writeFileSync(sshd.knownHostsPath, `@cert-authority * ${hostCa.publicKey}\n@revoked * ${sshd.hostPublicKey}\n`);
    const key = await firstConnect(t, sshd);
    t.equal(exitCodeOf(key.ready), EXIT.hostKeyOrAuth);
    t.match(key.ready?.message, /its host key is marked @revoked in .*known_hosts:2/);
    fs.writeFileSync(sshd.knownHostsPath, `@cert-authority * ${hostCa.publicKey}\n@revoked * ${hostCa.publicKey}\n`);
    const ca = await firstConnect(t, sshd);
    t.match(ca.ready?.message, /its CA key is marked @revoked in .*known_hosts:2/);
  });

  t.test('host certificates – accept-new never records a certificate: a trusted one is accepted, an untrusted one refused, known_hosts untouched', async (t) => {
    const sshd = await certifiedSshd(t, otherCa, ['127.0.0.1']);
    const lines = `@cert-authority * ${hostCa.publicKey}\n`;
    fs.writeFileSync(sshd.knownHostsPath, lines);
    const refused = await firstConnect(t, sshd, ['StrictHostKeyChecking=accept-new']);
    t.equal(exitCodeOf(refused.ready), EXIT.hostKeyOrAuth, 'refused');
    t.equal(fs.readFileSync(sshd.knownHostsPath, 'utf8'), lines, 'nothing recorded');
    fs.writeFileSync(sshd.knownHostsPath, `${lines}@cert-authority * ${otherCa.publicKey}\n`);
    const accepted = await firstConnect(t, sshd, ['StrictHostKeyChecking=accept-new']);
    t.equal(accepted.ready, null, 'accepted under its CA');
    t.equal(fs.readFileSync(sshd.knownHostsPath, 'utf8'), `${lines}@cert-authority * ${otherCa.publicKey}\n`, 'nothing recorded');
  });

  t.test('host certificates – without a @cert-authority line the plain host key is negotiated and checked as before', async (t) => {
    const sshd = await certifiedSshd(t, hostCa, ['127.0.0.1']);
    fs.writeFileSync(sshd.knownHostsPath, `[127.0.0.1]:${sshd.port} ${sshd.hostPublicKey}\n`);
    const { ready, logs } = await firstConnect(t, sshd);
    t.equal(ready, null);
    t.ok(logs.find('host_key').some((l) => l.msg === 'host key verified'), 'the plain key');
  });
});
