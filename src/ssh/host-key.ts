import { HostKeyError } from '../errors.js';
import type { HostConfig, TunnelConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import {
  appendKnownHost,
  fingerprintSha256,
  keyTypeOf,
  knownHostName,
  knownKeyTypes,
  lookupHostKey,
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
  const name = knownHostName(config.hostKeyAlias ?? config.hostName, config.port);
  const files = [...config.inlineKnownHosts, ...config.knownHostsFiles, ...config.globalKnownHostsFiles];
  const where = files.length ? files.map((f) => (typeof f === 'string' ? f : f.name)).join(', ') : '(no known_hosts files configured)';

  return {
    algorithms() {
      let known: string[] = [];
      try {
        known = knownKeyTypes(files, [name]).flatMap(algorithmsFor);
      } catch {
        // An unreadable file is reported by verify(); ordering is only a preference.
      }
      return [...new Set([...known.filter((a) => HOST_KEY_ALGORITHMS.includes(a)), ...HOST_KEY_ALGORITHMS])];
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
        found = lookupHostKey(files, [name], key);
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
            `or add it yourself after checking the fingerprint (ssh-keyscan -p ${config.port} ${config.hostName} >> ~/.ssh/known_hosts).`,
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
}
