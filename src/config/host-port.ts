import net from 'node:net';
import { ConfigError } from '../errors.js';
import { DEFAULTS } from './defaults.js';
import { parsePort } from './forward-spec.js';

/** `[host:]port`, `[::1]:port`; host defaults to loopback. */
export function parseHostPort(text: string, what: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]:|([^:]*):)?(\d+)$/.exec(text.trim());
  if (!m) throw new ConfigError(`${what}: "${text}" must be [host:]port, e.g. 9090 or 0.0.0.0:9090.`);
  // As in a -L spec, an empty host (`:9090`) or `*` is every interface, IPv6 and IPv4 (`::`); no host at all is loopback.
  const host = m[1] ?? (m[2] === undefined ? DEFAULTS.bindAddress : m[2] === '' || m[2] === '*' ? '::' : m[2]);
  return { host, port: parsePort(m[3]!, what, true) };
}

/** An address, or a network in CIDR notation: who may use an admin endpoint besides loopback. */
export interface AddressRange {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/**
 * `--admin-from`: comma-separated addresses and CIDR networks (`10.0.0.0/8,fd00::/8,192.0.2.7`),
 * or `any` for every address (0.0.0.0/0 and ::/0). Names are refused: what is allowed must not
 * change with DNS.
 */
export function parseAddressRanges(text: string, what: string): AddressRange[] {
  if (text.trim().toLowerCase() === 'any') return [{ address: '0.0.0.0', prefix: 0, family: 'ipv4' }, { address: '::', prefix: 0, family: 'ipv6' }];
  return text.split(',').map((part) => {
    const [address = '', prefixText, extra] = part.trim().split('/');
    const version = net.isIP(address);
    const max = version === 6 ? 128 : 32;
    const prefix = prefixText === undefined ? max : /^\d+$/.test(prefixText) ? Number(prefixText) : NaN;
    if (part.trim().toLowerCase() === 'any') throw new ConfigError(`${what}: "any" stands alone (it already allows every address); give it without others, or list the addresses.`);
    if (version === 0 || extra !== undefined || !(prefix >= 0 && prefix <= max)) {
      throw new ConfigError(`${what}: "${part.trim()}" must be an IP address or a network in CIDR notation (10.0.0.0/8, fd00::/8), comma-separated, or "any".`);
    }
    return { address, prefix, family: version === 6 ? 'ipv6' : 'ipv4' };
  });
}
