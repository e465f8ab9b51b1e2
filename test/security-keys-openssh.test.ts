/**
 * Security keys through ssh-agent, against the real OpenSSH sshd (issue 16). No FIDO device
 * here: a stand-in agent signs the way a security key does, over a key whose public half sshd
 * knows as an sk key, so that sshd's own verification decides; sshkeep must pass the identity
 * and the signature (with its flags and counter) through unchanged. A security key in a file
 * is refused with a clear message.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { EXIT, exitCodeOf } from '../src/errors.js';
import { fingerprintSha256 } from '../src/ssh/known-hosts.js';
import { wireStrings } from '../src/ssh/wire.js';
import { deadline } from './fixtures/net.js';
import { startSkAgent, type SkType } from './fixtures/sk-agent.js';
import { requireSshd, sshdInput, startSshd } from './fixtures/sshd.js';
import { tempDir } from './fixtures/tmp.js';
import { startSshkeep } from './fixtures/tunnel.js';

t.test('security keys', { skip: !requireSshd(t) && 'no sshd' }, async (t) => {
  for (const type of ['sk-ssh-ed25519@openssh.com', 'sk-ecdsa-sha2-nistp256@openssh.com'] as SkType[]) {
    t.test(`security keys – ${type} in ssh-agent is offered and its signature passed through; sshd verifies it`, async (t) => {
      const dir = tempDir(t);
      const agent = await startSkAgent(t, dir, type);
      const sshd = await startSshd(t);
      fs.writeFileSync(path.join(sshd.dir, 'authorized_keys'), `${agent.publicLine}\n`);
      const input = sshdInput(sshd, { identityFiles: [], localForwards: ['0:127.0.0.1:9'] });
      input.options = input.options!.filter((o) => o !== 'IdentitiesOnly=yes');
      const { app } = await startSshkeep(t, input, {}, { localUser: sshd.user, authSock: agent.socket });
      const failed = await deadline(app.ready().then(() => null, (err: Error) => err), 10_000, 'first connect');
      t.equal(failed, null, `connected${failed ? `: ${failed.message}\n${sshd.logs()}` : ''}`);
      t.equal(agent.signatures.length, 1, 'one signature asked of the agent');
      t.match(sshd.logs(), new RegExp(`Accepted publickey for \\S+ from .* ${type.startsWith('sk-ssh') ? 'ED25519-SK' : 'ECDSA-SK'} ${fingerprintSha256(agent.blob).replace(/[+/]/g, '\\$&')}`), 'sshd accepted the security key itself');
    });
  }

  t.test('security keys – a security key in an identity file is exit 2, saying to add it to ssh-agent', async (t) => {
    const dir = tempDir(t);
    const sshd = await startSshd(t);
    const file = path.join(dir, 'id_ed25519_sk');
    const pub = wireStrings('sk-ssh-ed25519@openssh.com', Buffer.alloc(32, 1), 'ssh:');
    const body = Buffer.concat([Buffer.from('openssh-key-v1\0'), wireStrings('none', 'none', ''), Buffer.from([0, 0, 0, 1]), wireStrings(pub, Buffer.alloc(16))]);
    fs.writeFileSync(file, `-----BEGIN OPENSSH PRIVATE KEY-----\n${body.toString('base64')}\n-----END OPENSSH PRIVATE KEY-----\n`, { mode: 0o600 });
    const err = await startSshkeep(t, sshdInput(sshd, { identityFiles: [file], localForwards: ['0:127.0.0.1:9'] })).then(() => null, (e: Error) => e);
    t.equal(exitCodeOf(err), EXIT.usage);
    t.match(err?.message, /is a security key \(sk-ssh-ed25519@openssh\.com\): signing with it needs OpenSSH's FIDO middleware, which sshkeep does not have\. Add it to ssh-agent \(ssh-add .*id_ed25519_sk\)/);
  });
});
