import net from 'node:net';
import { ConfigError } from '../errors.js';
import { DEFAULTS } from './defaults.js';
import type { AddressFamily, DynamicForwardSpec, Endpoint, LocalForwardSpec, RemoteForwardSpec } from './types.js';

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

const isPath = (part: string) => part.includes('/');

/** `[bind_address:]port` or a Unix socket path, for the side that listens. */
function listenSide(parts: string[], flag: string, spec: string, defaultBind: string): { listen: Endpoint; bindExplicit: boolean; bindEverywhere?: boolean } {
  if (parts.length === 1 && isPath(parts[0]!)) return { listen: { kind: 'unix', path: parts[0]! }, bindExplicit: true };
  const [bind, port] = parts.length === 2 ? (parts as [string, string]) : [undefined, parts[0]!];
  // OpenSSH treats `*` and an empty address as "all interfaces": the server's wildcard for -R, both families' here (bindAs).
  const all = bind === '*' || bind === '';
  const everywhere = all && flag !== '-R';
  const host = bind === undefined ? defaultBind : all ? (everywhere ? '0.0.0.0' : '') : bind;
  const listen: Endpoint = { kind: 'tcp', host, port: parsePort(port, `${flag} ${spec}: listen port`, true) };
  return everywhere ? { listen, bindExplicit: true, bindEverywhere: true } : { listen, bindExplicit: bind !== undefined };
}

/** `host:hostport` or a Unix socket path, for the side that is connected to. */
function targetSide(parts: string[], flag: string, spec: string): Endpoint {
  if (parts.length === 1) return { kind: 'unix', path: parts[0]! };
  return { kind: 'tcp', host: parts[0]!, port: parsePort(parts[1]!, `${flag} ${spec}: target port`, false) };
}

/**
 * The listen and target sides of `-L`/`-R` specs, as OpenSSH splits them: a part with a
 * `/` is a Unix socket path and stands for an address and port.
 */
function parseTwoSided(spec: string, flag: '-L' | '-R', usage: string, defaultBind: string) {
  const parts = splitSpec(spec.trim());
  if (!parts || parts.length < 2 || parts.length > 4 || parts.some((p, i) => p === '' && i > 0)) throw new ConfigError(usage);
  const targetIsPath = isPath(parts[parts.length - 1]!);
  const targetLength = targetIsPath ? 1 : 2;
  const listenParts = parts.slice(0, parts.length - targetLength);
  // An empty part may only be the bind address (`:8080:db:5432`, every interface).
  const listenOk = (listenParts.length === 1 && parts[0] !== '') || (listenParts.length === 2 && !isPath(listenParts[0]!) && !isPath(listenParts[1]!));
  if (!listenOk || (!targetIsPath && isPath(parts[parts.length - 2]!))) throw new ConfigError(usage);
  return { ...listenSide(listenParts, flag, spec, defaultBind), target: targetSide(parts.slice(listenParts.length), flag, spec) };
}

/** The longest Unix socket path the kernel takes (sun_path, less its NUL); a longer one was cut short silently. */
const MAX_SOCKET_PATH_BYTES = process.platform === 'darwin' ? 103 : 107;

/** A socket path sshkeep binds or connects to here must fit in sun_path. */
function checkLocalPath(e: Endpoint, flag: string, spec: string): void {
  if (e.kind !== 'unix') return;
  const bytes = Buffer.byteLength(e.path);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw new ConfigError(`${flag} ${spec}: the socket path is ${bytes} bytes long; a Unix socket path is at most ${MAX_SOCKET_PATH_BYTES} bytes here (the kernel's limit): use a shorter one.`);
  }
}

/** Parses `-L [bind_address:]port:host:hostport`, with Unix socket paths for either side. */
export function parseLocalForward(spec: string): LocalForwardSpec {
  const usage =
    `-L ${spec}: expected [bind_address:]port:host:hostport, e.g. 15432:db.internal:5432 or [::1]:8080:db:5432; ` +
    'a Unix socket path may stand for either side (/tmp/db.sock:db:5432, 8080:/run/app.sock).';
  const sides = parseTwoSided(spec, '-L', usage, DEFAULTS.bindAddress);
  checkLocalPath(sides.listen, '-L', spec);
  return { type: 'local', ...sides, spec };
}

/**
 * Parses `-R [bind_address:]port:host:hostport`, with Unix socket paths for either side, and
 * `-R [bind_address:]port` alone: remote dynamic forwarding (SOCKS), as OpenSSH 7.6 reads it.
 */
export function parseRemoteForward(spec: string): RemoteForwardSpec {
  const usage =
    `-R ${spec}: expected [bind_address:]port:host:hostport, e.g. 8080:localhost:3000 or 0:localhost:3000 (the server picks the port), ` +
    'or [bind_address:]port for a SOCKS proxy on the server; a Unix socket path may stand for either side of the first form.';
  const parts = splitSpec(spec.trim());
  // OpenSSH asks for "localhost" when no bind address is given (sshd's GatewayPorts decides).
  if (parts && (parts.length === 1 || parts.length === 2) && !parts.some(isPath) && parts.at(-1) !== '') {
    return { type: 'remote', listen: listenSide(parts, '-R', spec, 'localhost').listen, target: undefined, spec };
  }
  const { listen, target } = parseTwoSided(spec, '-R', usage, 'localhost');
  checkLocalPath(target, '-R', spec);
  return { type: 'remote', listen, target, spec };
}

/** Parses `-D [bind_address:]port`. */
export function parseDynamicForward(spec: string): DynamicForwardSpec {
  const parts = splitSpec(spec.trim());
  if (!parts || parts.length < 1 || parts.length > 2 || parts.some((p, i) => (p === '' && !(i === 0 && parts.length === 2)) || isPath(p))) {
    throw new ConfigError(`-D ${spec}: expected [bind_address:]port, e.g. 1080 or 127.0.0.1:1080.`);
  }
  return { type: 'dynamic', ...listenSide(parts, '-D', spec, DEFAULTS.bindAddress), spec };
}

/**
 * Where a -L or -D listens, as OpenSSH binds it: every interface for a bind address written `*` or empty,
 * or not written with GatewayPorts (-g): 0.0.0.0 and ::; without -g, the loopback, which for
 * `localhost` (written out or not) is both 127.0.0.1 and ::1, as OpenSSH binds every address
 * localhost has: a client that tries ::1 first is not refused. -4 or -6 make it the one address
 * of that family. (An IPv6 listener is IPv6 only, as OpenSSH's: see LocalForward.)
 */
export function bindAs<F extends LocalForwardSpec | DynamicForwardSpec>(f: F, family: AddressFamily, gatewayPorts: boolean): F {
  if (f.listen.kind !== 'tcp') return f;
  const v6 = family === 'inet6';
  const everywhere = f.bindEverywhere === true || (!f.bindExplicit && gatewayPorts);
  const localhost = !everywhere && (!f.bindExplicit || f.listen.host.toLowerCase() === 'localhost');
  let host = f.listen.host;
  if (localhost) host = v6 ? '::1' : '127.0.0.1';
  else if (everywhere) host = v6 ? '::' : '0.0.0.0';
  const bound = host === f.listen.host ? f : { ...f, listen: { ...f.listen, host } };
  if (family !== 'any' || !(localhost || everywhere)) return bound;
  return { ...bound, alsoListenOn: [localhost ? '::1' : '::'] };
}

/** `host:port`, `[v6]:port` or the socket path, for logs and forward names. */
export function formatEndpoint(e: Endpoint): string {
  if (e.kind === 'unix') return e.path;
  const host = e.host === '' ? '*' : e.host.includes(':') ? `[${e.host}]` : e.host;
  return `${host}:${e.port}`;
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

/** `listen->target`, the name of a forward in logs and metrics labels. */
export function forwardName(f: LocalForwardSpec | DynamicForwardSpec | RemoteForwardSpec): string {
  const listen = formatEndpoint(f.listen);
  switch (f.type) {
    case 'local':
      return `${listen}->${formatEndpoint(f.target)}`;
    case 'dynamic':
      return `${listen}->socks`;
    case 'remote':
      return `remote:${listen}->${f.target ? formatEndpoint(f.target) : 'socks'}`;
  }
}

/** True for a listener only this host can reach: a loopback address or a Unix socket. */
export function isLocalOnly(listen: Endpoint): boolean {
  return listen.kind === 'unix' || isLoopbackAddress(listen.host);
}
