import { createRequire } from 'node:module';
import { ConfigError } from '../errors.js';
import { SETTINGS, fileKey, fileSettings } from './setting-table.js';
import { readRegularFile } from './read-file.js';

/** Loaded only when a --config file is read: most runs never need a YAML parser in memory. */
const loadYaml = () => createRequire(import.meta.url)('yaml') as typeof import('yaml');

/** The file's top level: process settings, and tunnel settings as every tunnel's default. */
export type FileSettings = Partial<Record<string, string>>;

/** One tunnel: each key as written in the file, lists and `options` always present. */
export interface FileTunnel {
  /** Where in the file, for error messages: `tunnels[2]`. */
  path: string;
  destination: string;
  identityFiles: string[];
  options: string[];
  local: string[];
  remote: string[];
  dynamic: string[];
  [key: string]: string | string[] | undefined;
}

export interface ConfigFile {
  file: string;
  settings: FileSettings;
  tunnels: FileTunnel[];
}

const TOP = fileSettings('top');
const TUNNEL = fileSettings('tunnel');
const TOP_KEYS = [...TOP.map(fileKey), 'tunnels'];
const TUNNEL_KEYS = TUNNEL.map(fileKey);

type Json = unknown;

class Reader {
  constructor(private readonly file: string) {}

  fail(path: string, expected: string): never {
    throw new ConfigError(`${this.file}: ${path}: ${expected}.`);
  }

  object(value: Json, path: string, keys: string[]): Record<string, Json> {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) this.fail(path || 'top level', 'expected a mapping of keys to values');
    const obj = value as Record<string, Json>;
    for (const key of Object.keys(obj)) {
      if (!keys.includes(key)) this.fail(`${path ? `${path}.` : ''}${key}`, `unknown key; expected one of ${keys.join(', ')}`);
    }
    return obj;
  }

  /** A string or a number (durations, sizes and ports may be written either way). */
  scalar(value: Json, path: string): string | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value === 'string' || typeof value === 'number') return String(value);
    if (typeof value === 'boolean') return value ? 'yes' : 'no'; // YAML's yes/no for OpenSSH flags
    return this.fail(path, 'expected a string or a number');
  }

  list(value: Json, path: string): string[] {
    if (value === undefined || value === null) return [];
    if (typeof value === 'string') return [value];
    if (!Array.isArray(value)) this.fail(path, 'expected a list of strings');
    return value.map((v, i) => this.scalar(v, `${path}[${i}]`) ?? this.fail(`${path}[${i}]`, 'expected a string'));
  }

  /** OpenSSH options as a mapping (`ServerAliveInterval: 5`) or a list of `Key=Value`. */
  options(value: Json, path: string): string[] {
    if (value === undefined || value === null || Array.isArray(value) || typeof value === 'string') return this.list(value, path);
    if (typeof value !== 'object') this.fail(path, 'expected a mapping of OpenSSH options or a list of Key=Value');
    return Object.entries(value as Record<string, Json>).map(([k, v]) => `${k}=${this.scalar(v, `${path}.${k}`) ?? this.fail(`${path}.${k}`, 'expected a value')}`);
  }
}

/**
 * Reads `--config FILE` (YAML, or JSON, which is YAML): exit 2 naming the file and the key for
 * anything wrong; a file that cannot be read is named by where it was given (`--config`, `SSHKEEP_CONFIG`).
 */
export function readConfigFile(file: string, givenBy = '--config'): ConfigFile {
  let text: string;
  try {
    text = readRegularFile(file).toString('utf8');
  } catch (err) {
    throw new ConfigError(`${givenBy} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)}).`);
  }
  let doc: Json;
  try {
    // logLevel error: the parser's warnings (an unknown !tag) would go to process.emitWarning, outside the logs.
    doc = loadYaml().parse(text, { prettyErrors: true, uniqueKeys: true, logLevel: 'error' });
  } catch (err) {
    const first = (err as Error).message.split(/\r\n|\r|\n/)[0]!.replace(/:$/, '');
    throw new ConfigError(`${file}: not valid YAML or JSON: ${first}`);
  }
  const r = new Reader(file);
  const top = r.object(doc ?? {}, '', TOP_KEYS);
  const settings: FileSettings = {};
  for (const key of TOP.map(fileKey)) {
    const v = r.scalar(top[key], key);
    if (v !== undefined) settings[key] = v;
  }
  const rawTunnels = top.tunnels ?? [];
  if (!Array.isArray(rawTunnels)) r.fail('tunnels', 'expected a list of tunnels');
  const tunnels = (rawTunnels as Json[]).map((raw, i): FileTunnel => {
    const path = `tunnels[${i}]`;
    const t = r.object(raw, path, TUNNEL_KEYS);
    const tunnel: Record<string, string | string[] | undefined> = { path };
    for (const name of TUNNEL) {
      const key = fileKey(name);
      const where = `${path}.${key}`;
      const shape = SETTINGS[name].shape;
      if (shape === 'list') tunnel[key] = r.list(t[key], where);
      else if (shape === 'options') tunnel[key] = r.options(t[key], where);
      else if (t[key] !== undefined && t[key] !== null) tunnel[key] = r.scalar(t[key], where);
    }
    if (tunnel.destination === undefined) r.fail(`${path}.destination`, 'required: [user@]host or an ssh_config alias');
    const forwards = (['local', 'remote', 'dynamic'] as const).reduce((n, k) => n + (tunnel[k] as string[]).length, 0);
    if (forwards === 0) {
      r.fail(`${path}.local`, 'required: at least one forward (local, dynamic or remote), e.g. local: [bind_address:]port:host:hostport');
    }
    return tunnel as FileTunnel;
  });
  return { file, settings, tunnels };
}
