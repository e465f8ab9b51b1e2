/**
 * OpenSSH certificates (PROTOCOL.certkeys in OpenSSH's sources): parsed from their wire form,
 * and judged the way ssh and sshd judge them (role, validity interval, principals). No I/O
 * beyond reading a certificate file; no cryptography (the CA's signature is checked by the
 * adapter). sshpk parses certificates too, but it knows no security-key types and brings nine
 * dependencies; this is the one wire format sshkeep needs from it.
 */
import { WireError, WireReader, wireStrings } from './wire.js';
import { readRegularFile } from '../config/read-file.js';
import { quoted } from '../errors.js';

const CERT_SUFFIX = '-cert-v01@openssh.com';

/** The public key fields after the type name, per plain key type (RFC 4253, RFC 5656, PROTOCOL.u2f). */
const KEY_FIELDS: Record<string, string[]> = {
  'ssh-rsa': ['e', 'n'],
  'ssh-dss': ['p', 'q', 'g', 'y'],
  'ecdsa-sha2-nistp256': ['curve', 'Q'],
  'ecdsa-sha2-nistp384': ['curve', 'Q'],
  'ecdsa-sha2-nistp521': ['curve', 'Q'],
  'ssh-ed25519': ['pk'],
  'sk-ecdsa-sha2-nistp256@openssh.com': ['curve', 'Q', 'application'],
  'sk-ssh-ed25519@openssh.com': ['pk', 'application'],
};

/** A uint64 "valid before" meaning forever. */
const FOREVER = 0xffff_ffff_ffff_ffffn;

export type CertificateRole = 'user' | 'host';

export interface Certificate {
  /** The certificate's type, e.g. `ssh-ed25519-cert-v01@openssh.com`. */
  type: string;
  /** The whole certificate as sent on the wire. */
  blob: Buffer;
  /** The certified public key as a plain key blob (its type is `certifiedKeyType(type)`). */
  key: Buffer;
  serial: bigint;
  role: CertificateRole;
  keyId: string;
  /** Empty means any principal. */
  principals: string[];
  /** Seconds since the epoch: valid from `validAfter` (inclusive) to `validBefore` (exclusive). */
  validAfter: bigint;
  validBefore: bigint;
  criticalOptions: string[];
  /** The CA's public key blob. */
  caKey: Buffer;
  /** The CA's signature blob, over `signed`. */
  signature: Buffer;
  /** Every byte before the signature: what the CA signed. */
  signed: Buffer;
}

/** True for `…-cert-v01@openssh.com` key and algorithm names. */
export function isCertificateType(type: string): boolean {
  return type.endsWith(CERT_SUFFIX);
}

/** The plain key type a certificate type certifies: `sk-ssh-ed25519-cert-v01@openssh.com` → `sk-ssh-ed25519@openssh.com`. */
export function certifiedKeyType(certType: string): string {
  const plain = certType.slice(0, -CERT_SUFFIX.length);
  return plain.startsWith('sk-') ? `${plain}@openssh.com` : plain;
}

/** The certificate type for a plain key type: the inverse of certifiedKeyType. */
export function certificateTypeFor(keyType: string): string {
  return `${keyType.replace(/@openssh\.com$/, '')}${CERT_SUFFIX}`;
}

/** Parses a certificate blob; throws a WireError naming what is wrong. */
export function parseCertificate(blob: Buffer): Certificate {
  const r = new WireReader(blob);
  const type = r.text('the certificate type');
  if (!isCertificateType(type)) throw new WireError(`${quoted(type)} is not a certificate type`);
  const keyType = certifiedKeyType(type);
  const fields = KEY_FIELDS[keyType];
  if (!fields) throw new WireError(`unknown certified key type ${quoted(keyType)}`);
  r.string('the nonce');
  const keyStart = r.pos;
  for (const f of fields) r.string(`the key's ${f}`);
  const key = Buffer.concat([wireStrings(keyType), r.since(keyStart)]);
  const serial = r.uint64('the serial');
  const roleCode = r.uint32('the certificate role');
  if (roleCode !== 1 && roleCode !== 2) throw new WireError(`certificate role ${roleCode} is neither user (1) nor host (2)`);
  const keyId = r.text('the key id');
  const principals = stringList(r.string('the principals'), 'a principal').map((p) => p.toString('utf8'));
  const validAfter = r.uint64('valid after');
  const validBefore = r.uint64('valid before');
  const criticalOptions = namedPairs(r.string('the critical options'));
  namedPairs(r.string('the extensions'));
  r.string('the reserved field');
  const caKey = r.string('the signature key');
  const signed = r.since(0);
  const signature = r.string('the signature');
  if (!r.done) throw new WireError('has bytes after the signature');
  return { type, blob, key, serial, role: roleCode === 1 ? 'user' : 'host', keyId, principals, validAfter, validBefore, criticalOptions, caKey, signature, signed };
}

/** Principals from outside, for a one-line message: each escaped as `quoted` does, without the quotes. */
function principalList(cert: Certificate): string {
  return cert.principals.map((p) => quoted(p).slice(1, -1)).join(', ');
}

function stringList(buf: Buffer, what: string): Buffer[] {
  const r = new WireReader(buf);
  const out: Buffer[] = [];
  while (!r.done) out.push(r.string(what));
  return out;
}

/** Critical options and extensions: name, then a string of data. Returns the names. */
function namedPairs(buf: Buffer): string[] {
  const r = new WireReader(buf);
  const names: string[] = [];
  while (!r.done) {
    names.push(r.text('an option name'));
    r.string('an option value');
  }
  return names;
}

function timeText(seconds: bigint): string {
  if (seconds >= FOREVER) return 'forever';
  // Dates past year 275760 do not fit a JS Date.
  if (seconds > 8_640_000_000_000n) return `${seconds} s after 1970`;
  return new Date(Number(seconds) * 1000).toISOString().replace('.000Z', 'Z');
}

/** What a certificate says, for messages: type, key id, serial, validity and principals. */
export function describeCertificate(cert: Certificate): string {
  const from = cert.validAfter === 0n ? 'always' : timeText(cert.validAfter);
  const principals = cert.principals.length ? principalList(cert) : '(none)';
  return `${cert.role} certificate ${quoted(cert.keyId)} (serial ${cert.serial}, valid from ${from} to ${timeText(cert.validBefore)}, principals: ${principals})`;
}

/** Why a certificate cannot vouch for a principal: its role or validity interval, or its principals (which a server may map). */
export interface CertificateProblem {
  reason: 'role' | 'validity' | 'principal';
  text: string;
}

/**
 * Why this certificate cannot vouch for `principal` in `role` at `nowMs`, as ssh and sshd
 * judge it (sshkey_cert_check_authority), or undefined when it can. A host certificate with
 * no principals is valid for any host; a user certificate with none only where an
 * authorized_keys `cert-authority` line accepts it.
 */
export function certificateProblem(cert: Certificate, role: CertificateRole, principal: string, nowMs: number): CertificateProblem | undefined {
  if (cert.role !== role) return { reason: 'role', text: `it is a ${cert.role} certificate, not a ${role} certificate` };
  const now = BigInt(Math.floor(nowMs / 1000));
  if (now < cert.validAfter) return { reason: 'validity', text: `it is not valid before ${timeText(cert.validAfter)}` };
  if (now >= cert.validBefore) return { reason: 'validity', text: `it expired at ${timeText(cert.validBefore)}` };
  if (cert.principals.length === 0) {
    return role === 'host' ? undefined : { reason: 'principal', text: `it names no principals (sshd accepts that only through an authorized_keys cert-authority line)` };
  }
  if (!cert.principals.includes(principal)) return { reason: 'principal', text: `its principals (${principalList(cert)}) do not include ${quoted(principal)}` };
  return undefined;
}

/**
 * Reads an OpenSSH public certificate file (`type base64 [comment]`). Undefined when the
 * file does not exist; throws an Error naming the file when it is not a certificate.
 */
export function readCertificateFile(file: string): Certificate | undefined {
  let text: string;
  try {
    text = readRegularFile(file).toString('utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`certificate ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const [type = '', b64 = ''] = text.trim().split(/\s+/);
  try {
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw new WireError('expected "type base64 [comment]"');
    const cert = parseCertificate(Buffer.from(b64, 'base64'));
    if (cert.type !== type) throw new WireError(`says ${quoted(type)} but holds ${cert.type}`);
    return cert;
  } catch (err) {
    if (!(err instanceof WireError)) throw err;
    throw new Error(`certificate ${file}: not an OpenSSH certificate (${err.message})`);
  }
}
