import fs from 'node:fs';
import type { ParsedKey } from 'ssh2';
import { AuthError, ConfigError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Prompter } from './prompter.js';
import { parseKey } from './adapter.js';
import { fingerprintSha256 } from './known-hosts.js';
import { securityKeyMessage, securityKeyType } from './security-key.js';
import { readRegularFile } from '../config/read-file.js';

export interface Identity {
  file: string;
  key: ParsedKey;
  /** A public key file (as with 1Password's or Secretive's agent): it names the ssh-agent key to sign with, and is no key itself. */
  agentKey?: boolean;
}

export interface IdentitySources {
  /** From SSHKEEP_PASSPHRASE: tried for every encrypted key before asking. */
  passphrase: string | undefined;
  /** Asks on a TTY; undefined when nobody can answer. */
  prompter: Prompter | undefined;
  /** --insecure-key-permissions: accept keys others can read. */
  insecurePermissions?: boolean;
  /** Kept between reads of the same keys (a tunnel's start and its reconnects). */
  memory?: KeyMemory;
}

/** What a tunnel keeps between reads of its keys, by file. */
export interface KeyMemory {
  /** Passphrases answered on the prompter: a rotated key under the same passphrase opens unasked. */
  passphrases: Map<string, string>;
  /**
   * Each file's bytes and the key parsed from them: unchanged bytes are not parsed again, as
   * decrypting a key (bcrypt, 16 rounds by default) blocks the event loop for 0.4-0.6 s.
   */
  parsed: Map<string, { data: Buffer; key: ParsedKey }>;
  /** Missing identity files already warned about: a file that stays missing is not warned of at every reconnect. */
  warnedMissing: Set<string>;
}

export const newKeyMemory = (): KeyMemory => ({ passphrases: new Map(), parsed: new Map(), warnedMissing: new Set() });

/** The keys read, and the given identity files that do not exist (skipped, as ssh skips them; named if authentication fails). */
export interface LoadedIdentities {
  identities: Identity[];
  missing: string[];
}

/**
 * OpenSSH's rule: a private key file we own must not be readable by group or others.
 * (A key owned by someone else, such as a root-owned Kubernetes secret mount, is not judged.)
 */
function permissionProblem(file: string): string | undefined {
  const st = fs.statSync(file);
  if (process.getuid === undefined || st.uid !== process.getuid() || (st.mode & 0o077) === 0) return undefined;
  return `Permissions 0${(st.mode & 0o777).toString(8)} for '${file}' are too open. It is required that your private key files are NOT accessible by others. This private key will be ignored`;
}

const isEncryptedError = (e: Error) => /no passphrase given/i.test(e.message);

/**
 * Loads and decrypts identity files: at start-up, with the prompter, and again before each
 * connect without it (passphrases come from SSHKEEP_PASSPHRASE or `memory`), so rotated
 * keys need no restart and nobody is asked twice. A file that does not exist is skipped, as
 * OpenSSH skips it (and warns of a given one, as ssh does of -i): the agent or the next key may
 * still log in. Default identities that cannot be decrypted are skipped too; explicit ones are
 * errors.
 */
export async function loadIdentities(
  files: (string | { name: string; data: string })[],
  explicit: boolean,
  sources: IdentitySources,
  logger: Logger,
): Promise<LoadedIdentities> {
  const identities: Identity[] = [];
  const missing: string[] = [];
  for (const source of files) {
    // Keys given as content (SSHKEEP_IDENTITY) are always explicit.
    const file = typeof source === 'string' ? source : source.name;
    let data: Buffer;
    try {
      data = typeof source === 'string' ? readRegularFile(source) : Buffer.from(source.data);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && !explicit) continue;
      if (code === 'ENOENT') {
        missing.push(file);
        warnMissing(file, sources.memory, logger);
        continue;
      }
      throw new ConfigError(`Identity file ${file}: cannot read it (${code ?? 'error'}).`);
    }
    // A public key names the agent's key to use, as in OpenSSH: no secret, so no permission to check.
    const parsed = parseKey(data);
    if (!(parsed instanceof Error) && !parsed.isPrivateKey()) {
      identities.push({ file, key: parsed, agentKey: true });
      logger.debug('identity file is a public key: its ssh-agent key is used', { event: 'identity', file, type: parsed.type });
      continue;
    }
    const tooOpen = typeof source === 'string' && !sources.insecurePermissions ? permissionProblem(source) : undefined;
    if (tooOpen) {
      if (!explicit) {
        logger.warn(`${tooOpen}.`, { event: 'identity', file });
        continue;
      }
      throw new ConfigError(`${tooOpen} (chmod 600 ${file}, or --insecure-key-permissions to accept it).`);
    }
    const known = sources.memory?.parsed.get(file);
    if (known?.data.equals(data)) {
      identities.push({ file, key: known.key });
      continue;
    }
    const skType = securityKeyType(data);
    if (skType !== undefined) {
      if (!explicit) {
        logger.warn(`${securityKeyMessage(file, skType)} Skipped.`, { event: 'identity', file });
        continue;
      }
      throw new ConfigError(securityKeyMessage(file, skType));
    }
    const key = parsed instanceof Error && isEncryptedError(parsed) ? await decrypt(file, data, sources, explicit, logger) : parsed;
    if (key === null) continue;
    if (key instanceof Error) {
      if (!explicit) {
        logger.warn('skipping unreadable default identity', { event: 'identity', file, error: key.message });
        continue;
      }
      throw new ConfigError(`Identity file ${file}: not a private key sshkeep can read (${key.message}).`);
    }
    identities.push({ file, key });
    sources.memory?.parsed.set(file, { data, key });
    // The one line that confirms a key rotation took effect.
    if (known && !known.key.getPublicSSH().equals(key.getPublicSSH())) {
      logger.info('identity file changed: using its new key', { event: 'identity', file, fingerprint: fingerprintSha256(key.getPublicSSH()), was: fingerprintSha256(known.key.getPublicSSH()) });
    }
    logger.debug('identity loaded', { event: 'identity', file, type: key.type });
  }
  return { identities, missing };
}

/** ssh's warning for a missing -i file, once per file for a tunnel: its reconnects read the keys again. */
function warnMissing(file: string, memory: KeyMemory | undefined, logger: Logger): void {
  if (memory?.warnedMissing.has(file)) return;
  memory?.warnedMissing.add(file);
  logger.warn(`Identity file ${file} not accessible: No such file or directory. Skipped; the other keys and ssh-agent are tried.`, { event: 'identity', file });
}

async function decrypt(
  file: string,
  data: Buffer,
  sources: IdentitySources,
  explicit: boolean,
  logger: Logger,
): Promise<ParsedKey | Error | null> {
  const remembered = sources.memory?.passphrases.get(file);
  for (const passphrase of [sources.passphrase, remembered]) {
    if (passphrase === undefined) continue;
    const key = parseKey(data, passphrase);
    if (!(key instanceof Error)) return key;
  }
  if (!sources.prompter) {
    if (!explicit) {
      logger.warn('skipping encrypted default identity: no TTY to ask for its passphrase and SSHKEEP_PASSPHRASE does not open it', { event: 'identity', file });
      return null;
    }
    const why =
      remembered !== undefined ? 'the passphrase typed at start no longer opens it (the file changed); restart sshkeep to be asked again, or set SSHKEEP_PASSPHRASE'
      : sources.passphrase === undefined ? 'set SSHKEEP_PASSPHRASE or run on a terminal to be asked'
      : 'SSHKEEP_PASSPHRASE is not its passphrase';
    throw new AuthError(`Identity file ${file} is encrypted and cannot be opened: ${why}.`);
  }
  for (let tries = 0; tries < 3; tries++) {
    const answer = await sources.prompter.ask(`Enter passphrase for key '${file}': `, false);
    if (answer === '') break; // OpenSSH: an empty answer skips the key
    const key = parseKey(data, answer);
    if (key instanceof Error) continue;
    sources.memory?.passphrases.set(file, answer);
    return key;
  }
  if (explicit) throw new AuthError(`Identity file ${file}: wrong passphrase.`);
  return null;
}
