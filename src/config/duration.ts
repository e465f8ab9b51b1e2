import { ConfigError } from '../errors.js';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Node runs a longer timer after 1 ms (TimeoutOverflowWarning): a keepalive every 1 ms, a hold that ends at once. */
const MAX_MS = 2 ** 31 - 1;

/**
 * Parses `500ms`, `2s`, `1m`, `1h`, or a bare number meaning seconds (OpenSSH's unit).
 * `what` names the option in the error message.
 */
export function parseDuration(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/i.exec(text);
  if (!m) {
    throw new ConfigError(
      `${what}: "${text}" is not a duration; use a number of seconds or a value like 500ms, 2s, 1m.`,
    );
  }
  const ms = Math.round(Number(m[1]) * UNIT_MS[(m[2] ?? 's').toLowerCase()]!);
  if (ms > MAX_MS) {
    throw new ConfigError(`${what}: "${text}" is too long: at most 596h (24 days), the longest a timer can wait.`);
  }
  return ms;
}

/** The shortest exact spelling parseDuration reads back: `15s`, `500ms`, `1m`; 0 as `0`. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0';
  for (const [unit, size] of [['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

/**
 * The shortest heartbeat sshkeep takes (interval or probe deadline): shorter ones declare a
 * healthy link dead between two probes and redial it again and again (79 connections in 10 s at 1 ms).
 */
export const MIN_HEARTBEAT_MS = 100;

/** A heartbeat's interval: 0 (no periodic probes) or at least MIN_HEARTBEAT_MS. */
export function parseHeartbeatInterval(text: string, what: string): number {
  const ms = parseDuration(text, what);
  if (ms !== 0 && ms < MIN_HEARTBEAT_MS) throw new ConfigError(`${what}: "${text}" is too short: 0 (probe only on demand) or at least ${MIN_HEARTBEAT_MS}ms.`);
  return ms;
}

/** A heartbeat probe's deadline: at least MIN_HEARTBEAT_MS. */
export function parseHeartbeatTimeout(text: string, what: string): number {
  const ms = parseDuration(text, what);
  if (ms < MIN_HEARTBEAT_MS) throw new ConfigError(`${what}: "${text}" is too short: at least ${MIN_HEARTBEAT_MS}ms.`);
  return ms;
}

/** A duration that must be more than 0 (a deadline). */
export function parsePositiveDuration(text: string, what: string): number {
  const ms = parseDuration(text, what);
  if (ms <= 0) throw new ConfigError(`${what}: must be more than 0.`);
  return ms;
}
