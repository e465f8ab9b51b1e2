import net from 'node:net';
import { ConfigError } from '../errors.js';
import { DEFAULTS } from './defaults.js';
import type { LocalForward } from './types.js';

/**
 * Splits an OpenSSH forward spec on colons, keeping `[ipv6]` groups whole
 * and dropping their brackets (`[::1]:8080:db:5432` → `::1`, `8080`, `db`, `5432`).
 */
function splitSpec(spec: string): string[] | null {
  const parts: string[] = [];
  let rest = spec;
  while (rest.length > 0) {
    if (rest.startsWith('[')) {
      const close = rest.indexOf(']');
      if (close < 0) return null;
      parts.push(rest.slice(1, close));
      rest = rest.slice(close + 1);
      if (rest.length > 0 && !rest.startsWith(':')) return null;
      rest = rest.slice(1);
      if (rest.length === 0) parts.push('');
    } else {
      const colon = rest.indexOf(':');
      if (colon < 0) {
        parts.push(rest);
        rest = '';
      } else {
        parts.push(rest.slice(0, colon));
        rest = rest.slice(colon + 1);
        if (rest.length === 0) parts.push('');
      }
    }
  }
  return parts;
}

export function parsePort(text: string, what: string, allowZero: boolean): number {
  const n = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(n >= (allowZero ? 0 : 1) && n <= 65535)) {
    throw new ConfigError(`${what}: "${text}" is not a port number (${allowZero ? 0 : 1}-65535).`);
  }
  return n;
}

/** Parses `-L [bind_address:]port:host:hostport`. */
export function parseLocalForward(spec: string): LocalForward {
  const usage = `-L ${spec}: expected [bind_address:]port:host:hostport, e.g. 15432:db.internal:5432 or [::1]:8080:db:5432.`;
  const parts = splitSpec(spec.trim());
  if (!parts || (parts.length !== 3 && parts.length !== 4) || parts.some((p) => p === '')) {
    throw new ConfigError(usage);
  }
  const bindExplicit = parts.length === 4;
  const [bindAddress, port, host, hostPort] = bindExplicit
    ? (parts as [string, string, string, string])
    : [DEFAULTS.bindAddress, ...(parts as [string, string, string])];
  return {
    // OpenSSH treats `*` and `0.0.0.0`-style wildcards as "all interfaces".
    bindAddress: bindAddress === '*' ? '0.0.0.0' : bindAddress,
    bindPort: parsePort(port, `-L ${spec}: listen port`, true),
    bindExplicit,
    targetHost: host,
    targetPort: parsePort(hostPort, `-L ${spec}: target port`, false),
    spec,
  };
}

const LOOPBACK = new net.BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');
LOOPBACK.addSubnet('::ffff:127.0.0.0', 104, 'ipv6');

/** True for addresses that only this host can reach. */
export function isLoopbackAddress(address: string): boolean {
  if (address.toLowerCase() === 'localhost') return true;
  const family = net.isIP(address);
  return family !== 0 && LOOPBACK.check(address, family === 4 ? 'ipv4' : 'ipv6');
}
