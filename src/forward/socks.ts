import { createHash, timingSafeEqual } from 'node:crypto';
import type { SocketEvent } from '../local-socket.js';

export type SocksVersion = 4 | 5;

/** host: dotted IPv4, IPv6 without brackets, or a domain name (SOCKS5 ATYP 3, SOCKS4a). */
export interface SocksTarget {
  host: string;
  port: number;
}

export interface SocksRequest {
  version: SocksVersion;
  target: SocksTarget;
  /** Bytes the client sent after the request (optimistic data), to forward first. */
  rest: Buffer;
  /** SOCKS5 username if RFC 1929 auth was used, for logs. */
  user?: string;
}

/** Reply codes, SOCKS5 numbering (RFC 1928 §6). */
export const REPLY = {
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowed: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  ttlExpired: 0x06,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;

export type ReplyCode = (typeof REPLY)[keyof typeof REPLY];

/**
 * The reply bytes for a request. SOCKS5 reports bound address 0.0.0.0:0, as
 * OpenSSH does; SOCKS4 has only granted (0x5A) or rejected (0x5B).
 */
export function socksReply(version: SocksVersion, code: ReplyCode): Buffer {
  if (version === 5) return Buffer.from([5, code, 0, 1, 0, 0, 0, 0, 0, 0]);
  return Buffer.from([0, code === REPLY.succeeded ? 0x5a : 0x5b, 0, 0, 0, 0, 0, 0]);
}

const OPEN_FAILURE_REPLY = new Map<string, ReplyCode>([
  ['connect-failed', REPLY.connectionRefused],
  ['administratively-prohibited', REPLY.notAllowed],
  ['timeout', REPLY.ttlExpired],
  ['unresolvable', REPLY.hostUnreachable],
  ['host-unreachable', REPLY.hostUnreachable],
  ['tunnel-lost', REPLY.networkUnreachable],
]);

/** Maps an SSH channel-open failure reason name to the reply code the client sees. */
export function replyForOpenFailure(reason: string): ReplyCode {
  return OPEN_FAILURE_REPLY.get(reason) ?? REPLY.generalFailure;
}

const CONNECT_ERROR_REPLY = new Map<string, ReplyCode>([
  ['ECONNREFUSED', REPLY.connectionRefused],
  ['ENOTFOUND', REPLY.hostUnreachable],
  ['EAI_AGAIN', REPLY.hostUnreachable],
  ['EHOSTUNREACH', REPLY.hostUnreachable],
  ['ENETUNREACH', REPLY.networkUnreachable],
  ['ETIMEDOUT', REPLY.ttlExpired],
]);

/** Maps the error of a connect made here (-R without a target) to the reply code the client sees. */
export function replyForConnectError(code: string | undefined): ReplyCode {
  return (code !== undefined && CONNECT_ERROR_REPLY.get(code)) || REPLY.generalFailure;
}

export interface SocksOptions {
  /** RFC 1929 username/password required when set (SOCKS5 only; SOCKS4 is then refused, it has no password). */
  auth?: { user: string; pass: string };
}

export type Step =
  | { type: 'more' }
  | { type: 'write'; data: Buffer }
  | { type: 'request'; request: SocksRequest }
  | { type: 'fail'; reason: string; reply?: Buffer };

const MORE: Step = { type: 'more' };
const NO_ACCEPTABLE_METHOD = Buffer.from([5, 0xff]);
const AUTH_FAILED = Buffer.from([1, 1]);
const SOCKS4_REJECTED = socksReply(4, REPLY.generalFailure);
const SOCKS5_FAILED = socksReply(5, REPLY.generalFailure);
/** A SOCKS4 user id or SOCKS4a hostname: at most 255 bytes, then its NUL. */
const MAX_FIELD = 255;

function fail(reason: string, reply?: Buffer): Step {
  return reply ? { type: 'fail', reason, reply } : { type: 'fail', reason };
}

function hex(byte: number): string {
  return `0x${byte.toString(16).padStart(2, '0')}`;
}

function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

/** Digests have equal lengths, so the comparison time tells nothing, not even the length. */
function sameSecret(given: Buffer, expected: Buffer): boolean {
  return timingSafeEqual(sha256(given), expected);
}

/** A domain name as a client may send it: printable ASCII, no space or NUL. */
function domainName(bytes: Buffer): string | undefined {
  return bytes.every((b) => b >= 0x21 && b <= 0x7e) ? bytes.toString('latin1') : undefined;
}

function ipv6(bytes: Buffer): string {
  const groups = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2).toString(16));
  // URL writes IPv6 in the compressed RFC 5952 form ("2001:db8::1").
  return new URL(`http://[${groups.join(':')}]`).hostname.slice(1, -1);
}

/**
 * Where the NUL ending a SOCKS4 string at `start` is: undefined while it may
 * still come, -1 once more than MAX_FIELD bytes came without it.
 */
function nulAt(buf: Buffer, start: number): number | undefined {
  const at = buf.subarray(start, start + MAX_FIELD + 1).indexOf(0);
  if (at >= 0) return start + at;
  return buf.length - start > MAX_FIELD ? -1 : undefined;
}

/**
 * The server side of a SOCKS4/4a/5 CONNECT handshake, fed bytes as they
 * arrive. Pure: the caller writes what it is told to. Each feed() re-examines
 * the buffered bytes from the start of the current message, so a message
 * split anywhere parses as if whole, and a message never holds more bytes than
 * its largest legal size before it completes or fails.
 */
export class SocksParser {
  #buf = Buffer.alloc(0);
  #phase: 'greeting' | 'auth' | 'request' | 'done' = 'greeting';
  #user: string | undefined;
  readonly #auth: { user: Buffer; pass: Buffer } | undefined;

  constructor(options: SocksOptions = {}) {
    const { auth } = options;
    this.#auth = auth && {
      user: sha256(Buffer.from(auth.user)),
      pass: sha256(Buffer.from(auth.pass)),
    };
  }

  /** Bytes received but not yet consumed by a complete message. */
  get buffered(): number {
    return this.#buf.length;
  }

  feed(chunk: Buffer): Step {
    if (this.#phase === 'done') throw new Error('SocksParser.feed() called after the handshake ended');
    this.#buf = Buffer.concat([this.#buf, chunk]);
    const step = this.#phase === 'greeting' ? this.#greeting() : this.#phase === 'auth' ? this.#authenticate() : this.#request5();
    if (step.type === 'request' || step.type === 'fail') {
      this.#phase = 'done';
      this.#buf = Buffer.alloc(0);
    }
    return step;
  }

  #consume(bytes: number): void {
    this.#buf = this.#buf.subarray(bytes);
  }

  #complete(version: SocksVersion, host: string, port: number, bytes: number): Step {
    const request: SocksRequest = { version, target: { host, port }, rest: Buffer.from(this.#buf.subarray(bytes)) };
    if (this.#user !== undefined) request.user = this.#user;
    return { type: 'request', request };
  }

  /** SOCKS5 VER NMETHODS METHODS; SOCKS4 has no greeting, its request comes first. */
  #greeting(): Step {
    const b = this.#buf;
    if (b.length < 1) return MORE;
    if (b[0] === 4) return this.#request4();
    if (b[0] !== 5) return fail(`not a SOCKS client (first byte ${hex(b[0])})`);
    if (b.length < 2) return MORE;
    const count = b[1];
    if (count === 0) return fail('SOCKS5 greeting offers no authentication method', NO_ACCEPTABLE_METHOD);
    if (b.length < 2 + count) return MORE;
    const method = this.#auth ? 0x02 : 0x00;
    if (!b.subarray(2, 2 + count).includes(method)) {
      const wanted = this.#auth ? 'username/password authentication' : 'no authentication';
      return fail(`SOCKS5 client does not offer ${wanted}`, NO_ACCEPTABLE_METHOD);
    }
    this.#consume(2 + count);
    this.#phase = this.#auth ? 'auth' : 'request';
    return { type: 'write', data: Buffer.from([5, method]) };
  }

  /** RFC 1929: VER(1) ULEN UNAME PLEN PASSWD. */
  #authenticate(): Step {
    const b = this.#buf;
    if (b.length < 1) return MORE;
    if (b[0] !== 1) return fail(`SOCKS5 authentication version ${b[0]} is not 1`, AUTH_FAILED);
    if (b.length < 2) return MORE;
    const userEnd = 2 + b[1];
    if (userEnd === 2) return fail('SOCKS5 authentication with an empty username', AUTH_FAILED);
    if (b.length < userEnd + 1) return MORE;
    const passEnd = userEnd + 1 + b[userEnd];
    if (passEnd === userEnd + 1) return fail('SOCKS5 authentication with an empty password', AUTH_FAILED);
    if (b.length < passEnd) return MORE;
    const user = b.subarray(2, userEnd);
    const expected = this.#auth!; // the greeting leads here only when auth is set
    // Both compared, always: which one was wrong must not show in the timing.
    const userOk = sameSecret(user, expected.user);
    const passOk = sameSecret(b.subarray(userEnd + 1, passEnd), expected.pass);
    const name = user.toString();
    if (!(userOk && passOk)) return fail(`SOCKS5 authentication failed for user ${JSON.stringify(name)}`, AUTH_FAILED);
    this.#user = name;
    this.#consume(passEnd);
    this.#phase = 'request';
    return { type: 'write', data: Buffer.from([1, 0]) };
  }

  /** RFC 1928: VER CMD RSV ATYP DST.ADDR DST.PORT. */
  #request5(): Step {
    const b = this.#buf;
    if (b.length < 1) return MORE;
    if (b[0] !== 5) return fail(`SOCKS5 request version ${b[0]} is not 5`);
    if (b.length < 2) return MORE;
    if (b[1] !== 1) {
      return fail(`SOCKS5 command ${b[1]} is not supported (only CONNECT)`, socksReply(5, REPLY.commandNotSupported));
    }
    if (b.length < 4) return MORE;
    let host: string | undefined;
    let addrEnd: number;
    switch (b[3]) {
      case 1:
        addrEnd = 8;
        if (b.length < addrEnd) return MORE;
        host = b.subarray(4, addrEnd).join('.');
        break;
      case 4:
        addrEnd = 20;
        if (b.length < addrEnd) return MORE;
        host = ipv6(b.subarray(4, addrEnd));
        break;
      case 3:
        if (b.length < 5) return MORE;
        addrEnd = 5 + b[4];
        if (addrEnd === 5) return fail('SOCKS5 request with an empty domain name', SOCKS5_FAILED);
        if (b.length < addrEnd) return MORE;
        host = domainName(b.subarray(5, addrEnd));
        if (host === undefined) return fail('SOCKS5 domain name has a byte that is not printable ASCII', SOCKS5_FAILED);
        break;
      default:
        return fail(`SOCKS5 address type ${b[3]} is not supported`, socksReply(5, REPLY.addressTypeNotSupported));
    }
    if (b.length < addrEnd + 2) return MORE;
    const port = b.readUInt16BE(addrEnd);
    if (port === 0) return fail(`SOCKS5 request for port 0 of ${host}`, SOCKS5_FAILED);
    return this.#complete(5, host, port, addrEnd + 2);
  }

  /** VN(4) CD DSTPORT DSTIP USERID NUL, and for SOCKS4a (DSTIP 0.0.0.x, x≠0) HOSTNAME NUL. */
  #request4(): Step {
    const b = this.#buf;
    if (this.#auth) return fail('SOCKS4 has no password: --socks-auth requires SOCKS5', SOCKS4_REJECTED);
    if (b.length < 2) return MORE;
    if (b[1] !== 1) return fail(`SOCKS4 command ${b[1]} is not supported (only CONNECT)`, SOCKS4_REJECTED);
    if (b.length < 8) return MORE;
    const port = b.readUInt16BE(2);
    const userEnd = nulAt(b, 8);
    if (userEnd === undefined) return MORE;
    if (userEnd < 0) return fail(`SOCKS4 user id is longer than ${MAX_FIELD} bytes`, SOCKS4_REJECTED);
    const ip = b.subarray(4, 8);
    let host = ip.join('.');
    let end = userEnd + 1;
    if (ip[0] === 0 && ip[1] === 0 && ip[2] === 0 && ip[3] !== 0) {
      const hostEnd = nulAt(b, end);
      if (hostEnd === undefined) return MORE;
      if (hostEnd < 0) return fail(`SOCKS4a hostname is longer than ${MAX_FIELD} bytes`, SOCKS4_REJECTED);
      const name = hostEnd > end ? domainName(b.subarray(end, hostEnd)) : undefined;
      if (name === undefined) return fail('SOCKS4a hostname is empty or not printable ASCII', SOCKS4_REJECTED);
      host = name;
      end = hostEnd + 1;
    }
    if (port === 0) return fail(`SOCKS4 request for port 0 of ${host}`, SOCKS4_REJECTED);
    return this.#complete(4, host, port, end);
  }
}

export class SocksError extends Error {
  constructor(message: string, readonly reply?: Buffer) {
    super(message);
    this.name = 'SocksError';
  }
}

/** What the handshake needs of its stream: an accepted client (net.Socket or TcpClient), or an ssh2 channel. */
interface HandshakeStream {
  on(event: SocketEvent, listener: (...args: any[]) => void): unknown;
  off(event: SocketEvent, listener: (...args: any[]) => void): unknown;
  pause(): unknown;
  resume(): unknown;
  write(chunk: Buffer): boolean;
  end(cb?: () => void): unknown;
  destroy(): unknown;
}

/**
 * Does the handshake on a freshly accepted socket (-D) or channel (-R without a target).
 * Resolves with the request, leaving the stream paused with no listener of ours on it; rejects
 * with a SocksError once the stream is being closed (after the failure reply, if any).
 */
export function negotiateSocks(socket: HandshakeStream, options: SocksOptions & { timeoutMs: number }): Promise<SocksRequest> {
  const parser = new SocksParser(options);
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      let step = parser.feed(chunk);
      while (step.type === 'write') {
        socket.write(step.data);
        step = parser.feed(Buffer.alloc(0));
      }
      if (step.type === 'request') {
        socket.pause(); // before the listener goes, so no byte after the request is emitted to nobody
        stop();
        resolve(step.request);
      } else if (step.type === 'fail') {
        abort(step.reason, step.reply);
      }
    };
    const onEnd = () => abort('client closed the connection during the SOCKS handshake');
    const onError = (err: NodeJS.ErrnoException) => abort(`client error during the SOCKS handshake: ${err.code ?? err.message}`);
    const timer = setTimeout(() => abort(`SOCKS handshake not complete within ${options.timeoutMs} ms`), options.timeoutMs);

    function stop(): void {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onError);
    }

    function abort(reason: string, reply?: Buffer): void {
      stop();
      // The socket is going away: a late EPIPE or reset while the reply flushes is expected, not a crash.
      socket.on('error', () => {});
      if (reply) {
        socket.write(reply);
        socket.end(() => socket.destroy());
      } else {
        socket.destroy();
      }
      reject(new SocksError(reason, reply));
    }

    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    socket.on('error', onError);
    socket.resume(); // accepted paused (pauseOnConnect): a 'data' listener alone does not start reading
  });
}
