/**
 * A client of ssh-agent (draft-miller-ssh-agent): list identities, ask for a signature. ssh2
 * has one, but it drops every identity it cannot parse (certificates, security keys) and cuts
 * a signature down to its bare bytes (a security key's flags and counter are lost), so sshkeep
 * speaks the two requests it needs itself. Frames are built and parsed without I/O, so the
 * parsers are fuzzed like the others; `AgentClient` carries them over the agent's socket.
 */
import net from 'node:net';
import { WireError, WireReader, wireStrings } from './wire.js';

const REQUEST_IDENTITIES = 11;
const IDENTITIES_ANSWER = 12;
const SIGN_REQUEST = 13;
const SIGN_RESPONSE = 14;
const FAILURE = 5;
/** Sign flags: RSA keys sign with SHA-2 instead of SHA-1. */
export const RSA_SHA2_256 = 2;
export const RSA_SHA2_512 = 4;

/** OpenSSH's agent refuses messages over 256 KiB; nothing this client asks for comes near. */
const MAX_MESSAGE = 256 * 1024;

export interface AgentIdentity {
  /** The public key or certificate blob, as the agent holds it. */
  blob: Buffer;
  comment: string;
}

/** One request frame: uint32 length, then the message type and its body. */
function frame(type: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(1 + body.length);
  head[4] = type;
  return Buffer.concat([head, body]);
}

export function identitiesRequest(): Buffer {
  return frame(REQUEST_IDENTITIES);
}

export function signRequest(blob: Buffer, data: Buffer, flags: number): Buffer {
  const tail = Buffer.alloc(4);
  tail.writeUInt32BE(flags);
  return frame(SIGN_REQUEST, Buffer.concat([wireStrings(blob, data), tail]));
}

/** Parses an agent message (type byte and body, without the length) answering REQUEST_IDENTITIES. */
export function parseIdentities(message: Buffer): AgentIdentity[] {
  const r = new WireReader(message);
  const type = r.byte('the message type');
  if (type === FAILURE) throw new WireError('the agent refused to list its keys');
  if (type !== IDENTITIES_ANSWER) throw new WireError(`answered message ${type} to a key listing`);
  const count = r.uint32('the key count');
  const out: AgentIdentity[] = [];
  for (let i = 0; i < count; i++) out.push({ blob: r.string('a key'), comment: r.text('a key comment') });
  if (!r.done) throw new WireError('sent bytes after its key list');
  return out;
}

/** Parses the answer to SIGN_REQUEST: the whole signature blob (`string format, string signature[, extra]`). */
export function parseSignResponse(message: Buffer): Buffer {
  const r = new WireReader(message);
  const type = r.byte('the message type');
  if (type === FAILURE) throw new WireError('the agent refused to sign (a key needing confirmation or a touch that did not come?)');
  if (type !== SIGN_RESPONSE) throw new WireError(`answered message ${type} to a sign request`);
  const signature = r.string('the signature');
  if (!r.done) throw new WireError('sent bytes after the signature');
  const inner = new WireReader(signature);
  inner.text('the signature format');
  inner.string('the signature bytes'); // a security key's flags and counter may follow
  return signature;
}

/**
 * Splits a byte stream into agent messages (without their length prefix). Returns the
 * messages complete so far and the bytes left over; throws on a length past MAX_MESSAGE.
 */
export function splitMessages(buf: Buffer): { messages: Buffer[]; rest: Buffer } {
  const messages: Buffer[] = [];
  let at = 0;
  while (buf.length - at >= 4) {
    const len = buf.readUInt32BE(at);
    if (len === 0 || len > MAX_MESSAGE) throw new WireError(`sent a message of ${len} bytes`);
    if (buf.length - at - 4 < len) break;
    messages.push(buf.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  return { messages, rest: buf.subarray(at) };
}

/** Requests to the agent at `socketPath`, one connection each (as ssh2's own agent client does). */
export class AgentClient {
  constructor(
    readonly socketPath: string,
    private readonly timeoutMs: number,
  ) {}

  identities(): Promise<AgentIdentity[]> {
    return this.#ask(identitiesRequest(), parseIdentities);
  }

  /** The agent's whole signature blob. */
  sign(blob: Buffer, data: Buffer, flags: number): Promise<Buffer> {
    return this.#ask(signRequest(blob, data, flags), parseSignResponse);
  }

  /**
   * One request on a connection of its own, closed once answered or after `timeoutMs` in all:
   * an agent that trickles its answer a byte at a time is cut off too, not left holding a socket.
   */
  #ask<T>(request: Buffer, parse: (message: Buffer) => T): Promise<T> {
    return new Promise((resolve, reject) => {
      const sock = net.connect(this.socketPath);
      let pending = Buffer.alloc(0);
      const settle = () => {
        clearTimeout(timer);
        sock.removeAllListeners('end');
        sock.destroy();
      };
      const fail = (why: string) => {
        settle();
        reject(new Error(`ssh-agent at ${this.socketPath}: ${why}`));
      };
      const timer = setTimeout(() => fail(`no answer within ${this.timeoutMs} ms`), this.timeoutMs);
      sock.on('error', (err) => fail(err.message));
      sock.on('end', () => fail('closed the connection before answering'));
      sock.on('data', (chunk) => {
        try {
          const { messages } = splitMessages((pending = Buffer.concat([pending, chunk])));
          if (messages.length === 0) return;
          settle();
          resolve(parse(messages[0]!));
        } catch (err) {
          fail(err instanceof WireError ? err.message : String(err));
        }
      });
      sock.write(request);
    });
  }
}
