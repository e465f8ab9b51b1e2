import { ConfigError } from '../errors.js';
import { DEFAULTS } from './defaults.js';
import { parsePort } from './forward-spec.js';

/** `[host:]port`, `[::1]:port`; host defaults to loopback. */
export function parseHostPort(text: string, what: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]:|([^:]*):)?(\d+)$/.exec(text.trim());
  if (!m) throw new ConfigError(`${what}: "${text}" must be [host:]port, e.g. 9090 or 0.0.0.0:9090.`);
  return { host: m[1] ?? (m[2] || DEFAULTS.bindAddress), port: parsePort(m[3]!, what, true) };
}
