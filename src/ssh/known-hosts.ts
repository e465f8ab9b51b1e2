/**
 * Reading and appending OpenSSH known_hosts files (sshd(8), "SSH_KNOWN_HOSTS
 * FILE FORMAT"). Only what host-key verification needs: plain, wildcard,
 * negated and hashed host patterns, and the @revoked and @cert-authority markers.
 */

import { createHash, createHmac } from 'node:crypto';
import { appendFileSync, mkdirSync, openSync, readSync, closeSync, fstatSync } from 'node:fs';
import { dirname } from 'node:path';
import { matchPatternList } from '../config/host-pattern.js';
import { readRegularFile } from '../config/read-file.js';

export interface KnownHostRef {
  file: string;
  /** 1-based. */
  line: number;
}

/** A known_hosts file by path, or known_hosts content given directly (SSHKEEP_KNOWN_HOSTS). */
/** A known_hosts text already in hand (an inline one, or a file read). */
export type KnownHostsText = { name: string; text: string };
export type KnownHostsSource = string | KnownHostsText;

export type HostKeyLookup =
  | { status: 'match'; at: KnownHostRef }
  | { status: 'mismatch'; at: KnownHostRef; knownType: string }
  | { status: 'revoked'; at: KnownHostRef }
  | { status: 'unknown'; otherTypes: string[] };

/** One usable known_hosts line whose host field matched. */
interface Entry {
  at: KnownHostRef;
  marker: 'revoked' | 'cert-authority' | undefined;
  type: string;
  blob: Buffer;
}

/** A @cert-authority line whose host patterns match: the CA key it trusts for host certificates. */
export interface CertAuthority {
  at: KnownHostRef;
  key: Buffer;
}

/**
 * The name OpenSSH writes/looks up: "host" for port 22, "[host]:port"
 * otherwise. Lower-cases host. IPv6 literals are bracketed only with a port.
 */
export function knownHostName(host: string, port: number): string {
  let name = host.toLowerCase();
  // Accept an already-bracketed IPv6 literal ("[::1]") as well as a bare one.
  if (name.startsWith('[') && name.endsWith(']')) name = name.slice(1, -1);
  return port === 22 ? name : `[${name}]:${port}`;
}

/**
 * Looks the key up in every file. Missing files are skipped silently; other
 * read errors throw. A @revoked hit wins over everything; then the first
 * matching line; then the first line of the same type with another key.
 */
export function lookupHostKey(files: KnownHostsSource[], hostNames: string[], key: Buffer): HostKeyLookup {
  const type = keyTypeOf(key);
  let match: KnownHostRef | undefined;
  let mismatch: Entry | undefined;
  for (const e of matchingEntries(files, hostNames)) {
    const same = e.blob.equals(key);
    if (e.marker === 'revoked') {
      if (same) return { status: 'revoked', at: e.at };
      continue;
    }
    if (e.marker === 'cert-authority') continue;
    if (same) match ??= e.at;
    else if (e.type === type) mismatch ??= e;
  }
  if (match) return { status: 'match', at: match };
  if (mismatch) return { status: 'mismatch', at: mismatch.at, knownType: mismatch.type };
  return { status: 'unknown', otherTypes: knownKeyTypes(files, hostNames) };
}

/**
 * Key types known for these names across files, in file order, deduplicated.
 * Revoked keys don't count: they say nothing about what the host should offer.
 */
export function knownKeyTypes(files: KnownHostsSource[], hostNames: string[]): string[] {
  const types = new Set<string>();
  for (const e of matchingEntries(files, hostNames)) if (e.marker === undefined) types.add(e.type);
  return [...types];
}

/** The @cert-authority lines for these names, in file order. */
export function certAuthorities(files: KnownHostsSource[], hostNames: string[]): CertAuthority[] {
  return [...matchingEntries(files, hostNames)].filter((e) => e.marker === 'cert-authority').map((e) => ({ at: e.at, key: e.blob }));
}

/**
 * Appends "hostName keytype base64\n" in a single write, so a concurrent
 * reader never sees half a line. Creates the directory (0700) and file (0600)
 * if missing, and starts a new line if the file doesn't end with one.
 */
export function appendKnownHost(file: string, hostName: string, key: Buffer): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const prefix = endsWithNewline(file) ? '' : '\n';
  appendFileSync(file, `${prefix}${hostName} ${keyTypeOf(key)} ${key.toString('base64')}\n`, { mode: 0o600 });
}

/** OpenSSH's "SHA256:<base64 without padding>" of the raw key blob. */
export function fingerprintSha256(key: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(key).digest('base64').replace(/=+$/, '');
}

/** The key type string at the start of an SSH key blob (uint32 length + ascii). */
export function keyTypeOf(key: Buffer): string {
  const type = blobType(key);
  if (type === undefined) throw new Error('malformed SSH public key blob');
  return type;
}

function blobType(blob: Buffer): string | undefined {
  if (blob.length < 4) return undefined;
  const len = blob.readUInt32BE(0);
  if (len === 0 || len > 64 || blob.length < 4 + len) return undefined;
  const type = blob.toString('latin1', 4, 4 + len);
  return /^[\x21-\x7e]+$/.test(type) ? type : undefined;
}

/** True for a missing or empty file, so no newline gets prefixed there. */
function endsWithNewline(file: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw err;
  }
  try {
    const size = fstatSync(fd).size;
    if (size === 0) return true;
    const last = Buffer.alloc(1);
    readSync(fd, last, 0, 1, size - 1);
    return last[0] === 0x0a;
  } finally {
    closeSync(fd);
  }
}

/**
 * The sources with every file read once (missing ones left out; other read errors throw): one
 * check that asks several questions reads each file once, and sees one version of it.
 */
export function readSources(sources: KnownHostsSource[]): KnownHostsText[] {
  const read: KnownHostsText[] = [];
  for (const source of sources) {
    if (typeof source !== 'string') read.push(source);
    else {
      try {
        read.push({ name: source, text: readRegularFile(source).toString('utf8') });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  }
  return read;
}

function* matchingEntries(sources: KnownHostsSource[], hostNames: string[]): Generator<Entry> {
  const names = hostNames.map((n) => n.toLowerCase());
  for (const { name: file, text } of readSources(sources)) {
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const e = parseLine(lines[i]!, names);
      if (e) yield { ...e, at: { file, line: i + 1 } };
    }
  }
}

/** Parses one line; undefined for comments, malformed lines, unknown markers and lines for other hosts. */
function parseLine(line: string, names: string[]): Omit<Entry, 'at'> | undefined {
  const fields = line.trim().split(/[ \t]+/);
  if (fields[0] === '' || fields[0]!.startsWith('#')) return undefined;
  let marker: Entry['marker'];
  if (fields[0]!.startsWith('@')) {
    if (fields[0] !== '@revoked' && fields[0] !== '@cert-authority') return undefined;
    marker = fields.shift()!.slice(1) as Entry['marker'];
  }
  const [hosts, type, b64] = fields;
  if (!hosts || !type || !b64 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return undefined;
  const blob = Buffer.from(b64, 'base64');
  // The type field must agree with the blob, as OpenSSH's sshkey_read checks.
  if (blobType(blob) !== type) return undefined;
  if (!names.some((n) => hostsMatch(hosts, n))) return undefined;
  return { marker, type, blob };
}

/** Matches a host field against one (lower-cased) name; a negated match vetoes the whole line. */
function hostsMatch(hosts: string, name: string): boolean {
  if (hosts.startsWith('|')) return hashedMatch(hosts, name);
  return matchPatternList(hosts.toLowerCase().split(','), name);
}

/** "|1|salt|hmac": HMAC-SHA1 keyed with the salt over the host name. */
function hashedMatch(field: string, name: string): boolean {
  const parts = field.split('|');
  if (parts.length !== 4 || parts[1] !== '1' || !parts[2] || !parts[3]) return false;
  const salt = Buffer.from(parts[2], 'base64');
  const want = Buffer.from(parts[3], 'base64');
  if (salt.length !== 20 || want.length !== 20) return false;
  return createHmac('sha1', salt).update(name).digest().equals(want);
}
