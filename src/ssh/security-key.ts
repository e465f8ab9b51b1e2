/**
 * Security keys (FIDO, `sk-…@openssh.com`). Signing with one needs OpenSSH's FIDO middleware
 * (libfido2), which sshkeep does not have: in a file it is refused with a clear message; held
 * by ssh-agent (which does the signing with the device), it is offered like any agent key.
 */
import { WireReader } from './wire.js';

const OPENSSH_PRIVATE = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/;
const MAGIC = Buffer.from('openssh-key-v1\0', 'latin1');

/**
 * The `sk-` key type of an OpenSSH private key file, or undefined for any other key or format.
 * The public key is stored unencrypted, so this works for an encrypted file too.
 */
export function securityKeyType(data: Buffer): string | undefined {
  const m = OPENSSH_PRIVATE.exec(data.toString('latin1'));
  if (!m) return undefined;
  const raw = Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
  if (!raw.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  try {
    const r = new WireReader(raw.subarray(MAGIC.length));
    r.string('the cipher');
    r.string('the KDF');
    r.string('the KDF options');
    if (r.uint32('the key count') < 1) return undefined;
    const type = new WireReader(r.string('the public key')).text('the key type');
    return type.startsWith('sk-') ? type : undefined;
  } catch {
    return undefined; // not readable here: ssh2's parser gives the error
  }
}

/** Why a security key in `file` cannot be used, and what to do instead. */
export function securityKeyMessage(file: string, type: string): string {
  return `Identity file ${file} is a security key (${type}): signing with it needs OpenSSH's FIDO middleware, which sshkeep does not have. Add it to ssh-agent (ssh-add ${file}) and sshkeep uses it through the agent.`;
}
