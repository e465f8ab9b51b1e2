import { HostKeyError } from '../errors.js';
import type { HostConfig, TunnelConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { certificateSignatureProblem } from './adapter.js';
import { certificateProblem, certificateTypeFor, describeCertificate, isCertificateType, parseCertificate } from './certificate.js';
import {
  appendKnownHost,
  certAuthorities,
  fingerprintSha256,
  keyTypeOf,
  knownHostName,
  knownKeyTypes,
  lookupHostKey,
  readSources,
} from './known-hosts.js';

/** OpenSSH's host key algorithm preference, which ssh2 also supports. */
const HOST_KEY_ALGORITHMS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
];

/** Host certificate algorithms, asked for first when a @cert-authority line covers the host (as OpenSSH prefers them). */
const HOST_CERT_ALGORITHMS = HOST_KEY_ALGORITHMS.filter((a) => a !== 'ssh-rsa').map(certificateTypeFor);

/** HostKeyAlgorithms' default, that `+`, `-` and `^` start from: OpenSSH's order, certificates first. */
export const DEFAULT_HOST_KEY_ALGORITHMS: readonly string[] = [...HOST_CERT_ALGORITHMS, ...HOST_KEY_ALGORITHMS];

/** known_hosts records RSA keys as `ssh-rsa` whatever signature algorithm is negotiated. */
function algorithmsFor(keyType: string): string[] {
  return keyType === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [keyType];
}

export interface HostKeyPolicy {
  /** Host key algorithms with the types known_hosts has for this host first, as OpenSSH orders them. */
  algorithms(): string[];
  /** Returns null to accept the key, or the error that refuses it. Never throws. */
  verify(key: Buffer): HostKeyError | null;
}

/** StrictHostKeyChecking over UserKnownHostsFile and GlobalKnownHostsFile. */
export function hostKeyPolicy(config: HostConfig & Pick<TunnelConfig, 'inlineKnownHosts' | 'hostKeyFingerprints'>, logger: Logger): HostKeyPolicy {
  // HostKeyAlias is the name as written, port or not, as OpenSSH reads and records it; a host name gets `[host]:port` off port 22.
  const name = config.hostKeyAlias ?? knownHostName(config.hostName, config.port);
  const files = [...config.inlineKnownHosts, ...config.knownHostsFiles, ...config.globalKnownHostsFiles];
  const where = files.length ? files.map((f) => (typeof f === 'string' ? f : f.name)).join(', ') : '(no known_hosts files configured)';

  return {
    algorithms() {
      // Given HostKeyAlgorithms is used as written, as OpenSSH does (no reordering by known_hosts).
      if (config.algorithms.hostKey) return config.algorithms.hostKey;
      let known: string[] = [];
      let certificates: string[] = [];
      try {
        const read = readSources(files);
        known = knownKeyTypes(read, [name]).flatMap(algorithmsFor);
        // Without a CA that could vouch for it, a host certificate could only be refused.
        if (config.hostKeyFingerprints.length === 0 && certAuthorities(read, [name]).length > 0) certificates = HOST_CERT_ALGORITHMS;
      } catch {
        // An unreadable file is reported by verify(); ordering is only a preference.
      }
      return [...new Set([...certificates, ...known.filter((a) => HOST_KEY_ALGORITHMS.includes(a)), ...HOST_KEY_ALGORITHMS])];
    },

    verify(key) {
      let type: string;
      let fingerprint: string;
      try {
        type = keyTypeOf(key);
        fingerprint = fingerprintSha256(key);
      } catch {
        return new HostKeyError(`The server at ${name} offered a malformed host key.`);
      }
      if (isCertificateType(type)) return verifyCertificate(key);
      const offered = `${type} key ${fingerprint}`;
      if (config.hostKeyFingerprints.length > 0) {
        if (config.hostKeyFingerprints.includes(fingerprint)) {
          logger.debug('host key matches its pin', { event: 'host_key', host: name, fingerprint });
          return null;
        }
        return new HostKeyError(
          `HOST KEY MISMATCH for ${name}: the server offered ${offered}, but --host-key-fingerprint pins ${config.hostKeyFingerprints.join(', ')}. Refusing to connect.`,
        );
      }
      let found;
      try {
        found = lookupHostKey(readSources(files), [name], key);
      } catch (err) {
        return new HostKeyError(`Cannot read known_hosts to verify ${name}: ${(err as Error).message}`);
      }
      switch (found.status) {
        case 'match':
          logger.debug('host key verified', { event: 'host_key', host: name, fingerprint, file: found.at.file, line: found.at.line });
          return null;
        case 'revoked':
          return new HostKeyError(
            `The host key offered by ${name} (${offered}) is marked @revoked in ${found.at.file}:${found.at.line}. Refusing to connect.`,
          );
        case 'mismatch':
          return new HostKeyError(
            `HOST KEY MISMATCH for ${name}: the server offered ${offered}, but ${found.at.file}:${found.at.line} records a different ${found.knownType} key. ` +
              `Someone may be intercepting the connection, or the server was re-keyed. If you know it was re-keyed, remove the old entry ` +
              `(ssh-keygen -R '${name}' -f ${found.at.file}) and connect again. A changed key is never accepted automatically.`,
          );
        case 'unknown':
          break;
      }
      if (config.strictHostKeyChecking === 'yes') {
        return new HostKeyError(
          `No host key is known for ${name} in ${where}; the server offered ${offered}. StrictHostKeyChecking=yes refuses unknown hosts. ` +
            `To trust this key on first use, pass -o StrictHostKeyChecking=accept-new (it is recorded and checked from then on), ` +
            `or add it yourself after checking the fingerprint (ssh-keyscan -p ${config.port} ${config.hostName}${config.hostKeyAlias ? ` | sed 's/^[^ ]* /${config.hostKeyAlias} /'` : ''} >> ~/.ssh/known_hosts).`,
        );
      }
      if (config.strictHostKeyChecking === 'accept-new') {
        const file = config.knownHostsFiles[0];
        if (!file) {
          return new HostKeyError(`StrictHostKeyChecking=accept-new needs a UserKnownHostsFile to record ${name} in; none is configured.`);
        }
        try {
          appendKnownHost(file, name, key);
        } catch (err) {
          return new HostKeyError(`Cannot record the host key of ${name} in ${file}: ${(err as Error).message}`);
        }
        logger.warn('recorded new host key', { event: 'host_key', host: name, fingerprint, type, file });
        return null;
      }
      logger.warn('host key NOT verified (StrictHostKeyChecking=no)', { event: 'host_key', host: name, fingerprint, type });
      return null;
    },
  };

  /**
   * A host certificate, as OpenSSH checks one: signed by a CA a @cert-authority line for this
   * host trusts, neither it, its key nor its CA @revoked, a host certificate valid now whose
   * principals include the host name (or HostKeyAlias), no critical options. Whatever
   * StrictHostKeyChecking says, a certificate is never recorded as a plain key.
   */
  function verifyCertificate(blob: Buffer): HostKeyError | null {
    let cert;
    try {
      cert = parseCertificate(blob);
    } catch (err) {
      return new HostKeyError(`The server at ${name} offered a malformed host certificate (${(err as Error).message}).`);
    }
    const ca = fingerprintSha256(cert.caKey);
    const offered = `a ${describeCertificate(cert)} for ${keyTypeOf(cert.key)} key ${fingerprintSha256(cert.key)}, signed by CA ${ca}`;
    const refuse = (why: string) => new HostKeyError(`The server at ${name} offered ${offered}; ${why}. Refusing to connect.`);
    let authorities;
    try {
      const read = readSources(files);
      for (const [what, key] of [['its host key', cert.key], ['its CA key', cert.caKey]] as const) {
        const found = lookupHostKey(read, [name], key);
        if (found.status === 'revoked') return refuse(`${what} is marked @revoked in ${found.at.file}:${found.at.line}`);
      }
      authorities = certAuthorities(read, [name]);
    } catch (err) {
      return new HostKeyError(`Cannot read known_hosts to verify ${name}: ${(err as Error).message}`);
    }
    const trusted = authorities.find((a) => a.key.equals(cert.caKey));
    if (!trusted) {
      const listed = authorities.map((a) => `${fingerprintSha256(a.key)} (${a.at.file}:${a.at.line})`).join(', ');
      return refuse(`no @cert-authority line for ${name} trusts that CA (${listed ? `trusted: ${listed}` : `none in ${where}`})`);
    }
    const principal = config.hostKeyAlias ?? config.hostName;
    const problem = certificateProblem(cert, 'host', principal, Date.now())?.text ?? certificateSignatureProblem(cert);
    if (problem) return refuse(problem);
    if (cert.criticalOptions.length) return refuse(`it has critical options sshkeep does not know (${cert.criticalOptions.join(', ')})`);
    logger.debug('host certificate verified', { event: 'host_key', host: name, ca, file: trusted.at.file, line: trusted.at.line, keyId: cert.keyId, serial: String(cert.serial) });
    return null;
  }
}
