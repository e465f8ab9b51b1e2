import { ConfigError } from '../errors.js';

const UNIT_BYTES: Record<string, number> = {
  '': 1, b: 1,
  k: 1024, kb: 1024, kib: 1024,
  m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3,
};

/** Parses `1MiB`, `512k`, `65536` (bytes); binary units, as buffer sizes are. */
export function parseSize(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m?.[2]?.toLowerCase() ?? '';
  if (!m || !Object.hasOwn(UNIT_BYTES, unit)) {
    throw new ConfigError(`${what}: "${text}" is not a size; use bytes or a value like 512KiB, 1MiB.`);
  }
  // A fraction of a byte would round away (`0.1` to no buffer at all); of a KiB or more, to the byte.
  if (UNIT_BYTES[unit] === 1 && m[1]!.includes('.')) throw new ConfigError(`${what}: "${text}" is not a whole number of bytes.`);
  const bytes = Math.round(Number(m[1]) * UNIT_BYTES[unit]!);
  if (!Number.isSafeInteger(bytes)) throw new ConfigError(`${what}: "${text}" is too large.`);
  return bytes;
}

/** A whole number within [min, max]. */
export function parseCount(text: string, what: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = /^\s*\d+\s*$/.test(text) ? Number(text) : NaN;
  if (!(n >= min && n <= max)) throw new ConfigError(`${what}: "${text}" must be a whole number from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ''}.`);
  return n;
}

/** The shortest exact spelling parseSize reads back: `1MiB`, `512KiB`, or bytes. */
export function formatSize(bytes: number): string {
  for (const [unit, size] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) if (bytes > 0 && bytes % size === 0) return `${bytes / size}${unit}`;
  return String(bytes);
}
