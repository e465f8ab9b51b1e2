/**
 * Host certificate checks without a server: the CA's signature (ed25519, ECDSA and RSA CAs, as
 * ssh-keygen -s makes them) must verify over every signed byte, and SHA-1 RSA signatures are
 * refused as OpenSSH's default CASignatureAlgorithms refuses them.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import t from 'tap';
import { silentLogger } from '../src/log.js';
import { hostKeyPolicy } from '../src/ssh/host-key.js';
import type { HostConfig } from '../src/config/types.js';
import { newKey } from './fixtures/ssh-ca.js';
import { tempDir } from './fixtures/tmp.js';

const dir = tempDir(t);
const hostKey = newKey(dir, 'host');

/** The host certificate blob ssh-keygen makes for `hostKey` with a CA of `type` (and -t `sigAlgo` when given). */
let made = 0;
function hostCertificate(type: string, sigAlgo?: string): { blob: Buffer; caLine: string } {
  const ca = newKey(dir, `ca_${++made}`, type);
  execFileSync('ssh-keygen', ['-q', '-s', ca, ...(sigAlgo ? ['-t', sigAlgo] : []), '-h', '-I', 'h', '-n', 'db.example.com', `${hostKey}.pub`], { stdio: 'ignore' });
  const blob = Buffer.from(fs.readFileSync(`${hostKey}-cert.pub`, 'utf8').split(' ')[1]!, 'base64');
  return { blob, caLine: `@cert-authority *.example.com ${fs.readFileSync(`${ca}.pub`, 'utf8').trim()}` };
}

/** The host key policy for db.example.com with `caLine` as its known_hosts. */
function policyWith(caLine: string) {
  const host = {
    name: 'db', hostName: 'db.example.com', port: 22, user: 'u', identityFiles: [], certificateFiles: [], identityFilesExplicit: false, identitiesOnly: false, agentSocket: undefined,
    connectTimeoutMs: 1000, strictHostKeyChecking: 'yes', knownHostsFiles: [], globalKnownHostsFiles: [], hostKeyAlias: undefined, proxyCommand: undefined, addressFamily: 'any', compression: false, algorithms: {},
  } satisfies HostConfig;
  return hostKeyPolicy({ ...host, inlineKnownHosts: [{ name: 'SSHKEEP_KNOWN_HOSTS', text: `${caLine}\n` }], hostKeyFingerprints: [] }, silentLogger);
}

for (const type of ['ed25519', 'ecdsa', 'rsa']) {
  t.test(`host certificate policy – a ${type} CA's signature verifies; one changed byte anywhere it signed does not`, async (t) => {
    const { blob, caLine } = hostCertificate(type);
    const policy = policyWith(caLine);
    t.equal(policy.verify(blob), null, 'the certificate as issued');
    t.ok(policy.algorithms()[0]!.endsWith('-cert-v01@openssh.com'), 'certificate algorithms asked for first under a @cert-authority line');
    // The key id 'h' sits in the signed part; make it 'i'.
    const at = blob.indexOf(Buffer.from([0, 0, 0, 1, 0x68]));
    const forged = Buffer.from(blob);
    forged[at + 4] = 0x69;
    t.match(policy.verify(forged)?.message, /its CA signature does not verify/, 'a forged certificate is refused');
  });
}

t.test('host certificate policy – an RSA CA signing with SHA-1 (ssh-rsa) is refused, as OpenSSH refuses it', async (t) => {
  const { blob, caLine } = hostCertificate('rsa', 'ssh-rsa');
  t.match(policyWith(caLine).verify(blob)?.message, /its CA signed it with ssh-rsa, which sshkeep does not accept/);
});

t.test('host certificate policy – no @cert-authority line: certificates are not asked for', async (t) => {
  const { blob } = hostCertificate('ed25519');
  const policy = policyWith('# nothing');
  t.notOk(policy.algorithms().some((a) => a.includes('-cert-')));
  t.match(policy.verify(blob)?.message, /no @cert-authority line for db\.example\.com trusts that CA \(none in SSHKEEP_KNOWN_HOSTS\)/);
});
