import { ConfigError } from '../errors.js';
import { nearest } from './nearest.js';
import type { TunnelInput } from './resolve.js';
import type { Raw } from './sourced.js';

/** TunnelInput's keys that hold a list of values, and those that hold one. */
const LISTS = ['identityFiles', 'options', 'localForwards', 'remoteForwards', 'dynamicForwards'] as const;
const SCALARS = [
  'destination', 'port', 'user', 'configFile', 'jump', 'socksAuth', 'keepaliveInterval', 'keepaliveTimeout', 'holdTimeout', 'holdBuffer',
  'connections', 'resume', 'resumeGrace', 'resumeBuffer', 'hostKeyFingerprint',
] as const;
// Every key of TunnelInput is one or the other (this fails to compile otherwise).
const everyKey: Record<keyof TunnelInput, true> = Object.fromEntries([...LISTS, ...SCALARS].map((k) => [k, true])) as Record<(typeof LISTS | typeof SCALARS)[number], true>;
const KEYS = Object.keys(everyKey);

const kindOf = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : `a ${typeof v}`);

/** One value: a string, a { value, source } pair, or (from JavaScript or JSON) a number or a boolean, read as ssh would write them. */
function rawOf(v: unknown, where: string): Raw {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  const pair = v as { value?: unknown; source?: unknown } | null;
  if (typeof pair === 'object' && pair !== null && typeof pair.value === 'string' && typeof pair.source === 'string') return { value: pair.value, source: pair.source };
  throw new ConfigError(`resolveTunnel: ${where}: expected a string, got ${kindOf(v)}.`);
}

/**
 * What a JavaScript caller (or parsed JSON) hands resolveTunnel(), checked for the shape that
 * TunnelInput's type promises TypeScript callers: one clear ConfigError instead of a TypeError
 * or a value read as "undefined"; a misspelt key is refused, not ignored.
 */
export function checkTunnelInput(input: unknown): TunnelInput {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ConfigError(`resolveTunnel: expected an object with at least a destination, got ${kindOf(input)}.`);
  }
  const out: Record<string, Raw | Raw[]> = {};
  for (const [key, v] of Object.entries(input)) {
    if (v === undefined) continue;
    if ((LISTS as readonly string[]).includes(key)) {
      if (!Array.isArray(v)) throw new ConfigError(`resolveTunnel: ${key}: expected an array of strings, got ${kindOf(v)}.`);
      out[key] = v.map((x, i) => rawOf(x, `${key}[${i}]`));
    } else if ((SCALARS as readonly string[]).includes(key)) {
      out[key] = rawOf(v, key);
    } else {
      const near = nearest(key, KEYS);
      throw new ConfigError(`resolveTunnel: unknown key "${key}"${near ? ` (did you mean ${near}?)` : ''}; the keys are ${KEYS.join(', ')}.`);
    }
  }
  if (out.destination === undefined) throw new ConfigError('resolveTunnel: destination is required ([user@]host, or an ssh_config alias).');
  return out as unknown as TunnelInput;
}
