/**
 * The frames of the resume protocol (docs/resume-protocol.md): encoders and an
 * incremental parser without I/O, as forward/socks.ts is for SOCKS. Both ends
 * speak the same frames, so one codec serves sshkeep and the agent's tests.
 *
 * Offsets and acks are u64 on the wire and plain numbers here: 2^53 bytes
 * (9 PB) is beyond any stream, so a value above Number.MAX_SAFE_INTEGER is
 * taken as a protocol error rather than carried as a bigint everywhere.
 */

/** Frame type numbers, as on the wire. */
export const FRAME = {
  open: 1,
  attach: 2,
  accept: 3,
  data: 4,
  ack: 5,
  eof: 6,
  reset: 7,
  error: 8,
  goodbye: 9,
  ping: 10,
  pong: 11,
} as const;

export type FrameType = keyof typeof FRAME;

/** ERROR frame codes. */
export const ERROR_CODE = {
  protocol: 1,
  unknownStream: 2,
  offset: 3,
  connect: 4,
  limit: 5,
  shuttingDown: 6,
} as const;

/** The largest payload a frame may declare; more is a protocol error. */
export const MAX_PAYLOAD = 1_048_576;
/** type u8 + length u32. */
export const HEADER_BYTES = 5;
/** Stream ids are 128 random bits. */
export const ID_BYTES = 16;
/** The most bytes one DATA frame carries (its payload also holds offset and ack). */
export const MAX_DATA = MAX_PAYLOAD - 16;
/**
 * The most characters of a peer's RESET reason or ERROR message a parsed frame keeps: sshkeep
 * repeats them in its log lines and its own RESETs, which must stay a line and a frame.
 */
export const MAX_PEER_TEXT = 200;

export type Frame =
  | { type: 'open'; id: Buffer; graceMs: number; port: number; host: string }
  | { type: 'attach'; id: Buffer; received: number }
  | { type: 'accept'; received: number }
  | { type: 'data'; offset: number; ack: number; data: Buffer }
  | { type: 'ack'; ack: number }
  | { type: 'eof'; offset: number }
  | { type: 'reset'; offset: number; reason: string }
  | { type: 'error'; code: number; message: string }
  | { type: 'goodbye' }
  | { type: 'ping' }
  | { type: 'pong'; version: string; streams: number };

const TYPE_NAME = new Map<number, FrameType>(Object.entries(FRAME).map(([name, number]) => [number, name as FrameType]));

/** A peer's text cut to MAX_PEER_TEXT characters, an ellipsis marking the cut (never half a surrogate pair). */
function clipped(text: string): string {
  if (text.length <= MAX_PEER_TEXT) return text;
  let end = MAX_PEER_TEXT - 1;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${text.slice(0, end)}…`;
}

const TWO_32 = 2 ** 32;

/** As two 32-bit halves: a BigInt per offset costs more than the rest of a small frame. */
function writeU64(target: Buffer, value: number, at: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`offset ${value} is not a whole number from 0 to 2^53-1`);
  target.writeUInt32BE(Math.floor(value / TWO_32), at);
  target.writeUInt32BE(value % TWO_32, at + 4);
}

function u64(value: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  writeU64(b, value, 0);
  return b;
}

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value);
  return b;
}

function u16(value: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(value);
  return b;
}

function streamId(id: Buffer): Buffer {
  if (id.length !== ID_BYTES) throw new RangeError(`a stream id has ${ID_BYTES} bytes, not ${id.length}`);
  return id;
}

function payloadOf(frame: Frame): Buffer[] {
  switch (frame.type) {
    case 'open':
      if (frame.port < 1 || frame.port > 65535 || frame.host.length === 0) throw new RangeError(`OPEN of ${frame.host}:${frame.port}: no host or no port`);
      return [streamId(frame.id), u32(frame.graceMs), u16(frame.port), Buffer.from(frame.host)];
    case 'attach':
      return [streamId(frame.id), u64(frame.received)];
    case 'accept':
      return [u64(frame.received)];
    case 'data':
      if (frame.data.length === 0 || frame.data.length > MAX_DATA) throw new RangeError(`DATA carries 1 to ${MAX_DATA} bytes, not ${frame.data.length}`);
      return [u64(frame.offset), u64(frame.ack), frame.data];
    case 'ack':
      return [u64(frame.ack)];
    case 'eof':
      return [u64(frame.offset)];
    case 'reset':
      return [u64(frame.offset), Buffer.from(frame.reason)];
    case 'error':
      return [Buffer.from([frame.code]), Buffer.from(frame.message)];
    case 'goodbye':
    case 'ping':
      return [];
    case 'pong':
      return [Buffer.from(frame.version, 'latin1'), u32(frame.streams)];
  }
}

/** The bytes of one frame. Throws a RangeError on a value the wire cannot carry (a caller's bug, not a peer's). */
export function encodeFrame(frame: Frame): Buffer {
  const parts = payloadOf(frame);
  const length = parts.reduce((sum, p) => sum + p.length, 0);
  if (length > MAX_PAYLOAD) throw new RangeError(`a ${frame.type.toUpperCase()} payload of ${length} bytes is over ${MAX_PAYLOAD}`);
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt8(FRAME[frame.type], 0);
  header.writeUInt32BE(length, 1);
  return Buffer.concat([header, ...parts], HEADER_BYTES + length);
}

/** The bytes before a DATA frame's data: header, offset and ack. */
export const DATA_PREFIX = HEADER_BYTES + 16;

/**
 * A DATA frame written into `target` (reused by the caller: a frame per packet allocates
 * nothing); returns the frame's length. The bytes are those encodeFrame() gives.
 */
export function encodeDataInto(target: Buffer, offset: number, ack: number, data: Buffer): number {
  if (data.length === 0 || data.length > MAX_DATA) throw new RangeError(`DATA carries 1 to ${MAX_DATA} bytes, not ${data.length}`);
  target[0] = FRAME.data;
  target.writeUInt32BE(16 + data.length, 1);
  writeU64(target, offset, HEADER_BYTES);
  writeU64(target, ack, HEADER_BYTES + 8);
  target.set(data, DATA_PREFIX);
  return DATA_PREFIX + data.length;
}

/** A payload that does not fit its type: the message names what is wrong. */
class BadFrame extends Error {}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Reads a payload front to back, throwing BadFrame on anything short, over-long or out of range. */
class Reader {
  #at = 0;
  constructor(
    readonly name: string,
    readonly payload: Buffer,
  ) {}

  #take(bytes: number, what: string): Buffer {
    if (this.payload.length - this.#at < bytes) throw new BadFrame(`${this.name} payload of ${this.payload.length} bytes is too short for its ${what}`);
    const part = this.payload.subarray(this.#at, this.#at + bytes);
    this.#at += bytes;
    return part;
  }

  id(): Buffer {
    return Buffer.from(this.#take(ID_BYTES, 'stream id'));
  }

  u64(what: string): number {
    const bytes = this.#take(8, what);
    const high = bytes.readUInt32BE(0);
    // 2^53-1 has 21 bits in its high half; a BigInt only for the message of a value beyond it.
    if (high >= 2 ** 21) throw new BadFrame(`${this.name} ${what} ${bytes.readBigUInt64BE()} is beyond 2^53-1`);
    return high * TWO_32 + bytes.readUInt32BE(4);
  }

  u32(what: string): number {
    return this.#take(4, what).readUInt32BE();
  }

  u16(what: string): number {
    return this.#take(2, what).readUInt16BE();
  }

  u8(what: string): number {
    return this.#take(1, what).readUInt8();
  }

  /** The rest as bytes, raw. */
  rest(): Buffer {
    const part = this.payload.subarray(this.#at);
    this.#at = this.payload.length;
    return part;
  }

  text(what: string): string {
    try {
      return utf8.decode(this.rest());
    } catch {
      throw new BadFrame(`${this.name} ${what} is not UTF-8`);
    }
  }

  /** Every byte must have been read: a longer payload is malformed, not extensible. */
  end(): void {
    if (this.#at !== this.payload.length) throw new BadFrame(`${this.name} payload of ${this.payload.length} bytes is longer than its ${this.#at}`);
  }
}

function decodePayload(type: FrameType, payload: Buffer): Frame {
  const r = new Reader(type.toUpperCase(), payload);
  let frame: Frame;
  switch (type) {
    case 'open': {
      const id = r.id();
      const graceMs = r.u32('grace');
      const port = r.u16('port');
      const host = r.text('host');
      if (port === 0) throw new BadFrame('OPEN of port 0');
      if (host.length === 0) throw new BadFrame('OPEN with an empty host');
      frame = { type, id, graceMs, port, host };
      break;
    }
    case 'attach':
      frame = { type, id: r.id(), received: r.u64('received offset') };
      break;
    case 'accept':
      frame = { type, received: r.u64('received offset') };
      break;
    case 'data': {
      const offset = r.u64('offset');
      const ack = r.u64('ack');
      const data = r.rest(); // shares memory with the pushed chunk: no copy per DATA frame
      if (data.length === 0) throw new BadFrame('DATA without a byte');
      if (offset + data.length > Number.MAX_SAFE_INTEGER) throw new BadFrame(`DATA at ${offset} ends beyond 2^53-1`);
      frame = { type, offset, ack, data };
      break;
    }
    case 'ack':
      frame = { type, ack: r.u64('ack') };
      break;
    case 'eof':
      frame = { type, offset: r.u64('offset') };
      break;
    case 'reset':
      frame = { type, offset: r.u64('offset'), reason: clipped(r.text('reason')) };
      break;
    case 'error':
      frame = { type, code: r.u8('code'), message: clipped(r.text('message')) };
      break;
    case 'goodbye':
    case 'ping':
      frame = { type };
      break;
    case 'pong': {
      if (payload.length < 4) throw new BadFrame(`PONG payload of ${payload.length} bytes is too short for its stream count`);
      const version = payload.subarray(0, payload.length - 4);
      if (!version.every((b) => b >= 0x21 && b <= 0x7e)) throw new BadFrame('PONG version is not printable ASCII');
      frame = { type, version: version.toString('latin1'), streams: payload.readUInt32BE(payload.length - 4) };
      return frame;
    }
  }
  r.end();
  return frame;
}

export type ParseResult = { frames: Frame[]; error?: undefined } | { frames: Frame[]; error: string };

export interface FrameParserOptions {
  /**
   * DATA is handed over as its bytes arrive, in the pieces they arrived in: one wire frame may
   * come out as several DATA frames with consecutive offsets and the same ack (which mean the
   * same to a resumable stream), none of them copied, and the first before the frame's end.
   * Without it a DATA frame comes out whole, once complete (joined when it spans chunks).
   */
  dataInPieces?: boolean;
}

/**
 * Frames out of a byte stream cut anywhere. push() returns the frames that
 * completed, in order; on the first malformed frame it also returns an error
 * (the message for the ERROR 1 frame), and from then on returns that error
 * alone: the channel is to be closed. It never throws on input and never holds
 * more than one frame's header and declared payload (MAX_PAYLOAD at most).
 * A DATA frame's bytes may share memory with the pushed chunks.
 */
export class FrameParser {
  #chunks: Buffer[] = [];
  #buffered = 0;
  #error: string | undefined;
  readonly #dataInPieces: boolean;
  /** The DATA frame whose bytes are being handed over (dataInPieces): where the next piece goes. */
  #data: { offset: number; ack: number; left: number } | undefined;

  constructor(options: FrameParserOptions = {}) {
    this.#dataInPieces = options.dataInPieces ?? false;
  }

  /** Bytes received but not yet part of a complete frame. */
  get buffered(): number {
    return this.#buffered;
  }

  push(chunk: Buffer): ParseResult {
    if (this.#error !== undefined) return { frames: [], error: this.#error };
    if (chunk.length > 0) {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
    }
    const frames: Frame[] = [];
    for (;;) {
      const step = this.#next();
      if (step === undefined) return { frames };
      if (typeof step === 'string') {
        this.#error = step;
        this.#chunks = [];
        this.#buffered = 0;
        return { frames, error: step };
      }
      frames.push(step);
    }
  }

  /** The first `bytes` buffered bytes as one Buffer, without consuming them (joined, those alone, when they span chunks). */
  #peek(bytes: number): Buffer {
    if (this.#chunks[0].length >= bytes) return this.#chunks[0];
    const joined = Buffer.concat(this.#chunks, bytes);
    this.#chunks = [joined, ...this.#rest(bytes)];
    return joined;
  }

  /** The chunks after the first `bytes` buffered bytes, uncopied. */
  #rest(bytes: number): Buffer[] {
    const rest: Buffer[] = [];
    for (const chunk of this.#chunks) {
      if (bytes >= chunk.length) bytes -= chunk.length;
      else {
        rest.push(bytes > 0 ? chunk.subarray(bytes) : chunk);
        bytes = 0;
      }
    }
    return rest;
  }

  /** The next piece of the DATA frame being handed over: as much of it as the first chunk holds. */
  #dataPiece(data: { offset: number; ack: number; left: number }): Frame | undefined {
    if (this.#buffered === 0) return undefined;
    const first = this.#chunks[0];
    const piece = first.length > data.left ? first.subarray(0, data.left) : first;
    this.#consume(piece.length);
    const frame: Frame = { type: 'data', offset: data.offset, ack: data.ack, data: piece };
    data.offset += piece.length;
    data.left -= piece.length;
    if (data.left === 0) this.#data = undefined;
    return frame;
  }

  /** A DATA frame's offset and ack, once they are here; its bytes then come as pieces. */
  #startData(length: number): Frame | string | undefined {
    if (this.#buffered < DATA_PREFIX) return undefined;
    try {
      const r = new Reader('DATA', this.#peek(DATA_PREFIX).subarray(HEADER_BYTES, DATA_PREFIX));
      const offset = r.u64('offset');
      const ack = r.u64('ack');
      const left = length - 16;
      if (offset + left > Number.MAX_SAFE_INTEGER) return `DATA at ${offset} ends beyond 2^53-1`;
      this.#consume(DATA_PREFIX);
      this.#data = { offset, ack, left };
      return this.#dataPiece(this.#data);
    } catch (err) {
      if (err instanceof BadFrame) return err.message;
      throw err;
    }
  }

  #consume(bytes: number): void {
    this.#buffered -= bytes;
    while (bytes > 0) {
      const first = this.#chunks[0];
      if (first.length > bytes) {
        this.#chunks[0] = first.subarray(bytes);
        return;
      }
      bytes -= first.length;
      this.#chunks.shift();
    }
  }

  /** A frame, an error message, or undefined while the next frame is incomplete. */
  #next(): Frame | string | undefined {
    if (this.#data) return this.#dataPiece(this.#data);
    if (this.#buffered < HEADER_BYTES) return undefined;
    const header = this.#peek(HEADER_BYTES);
    const number = header.readUInt8(0);
    const length = header.readUInt32BE(1);
    const type = TYPE_NAME.get(number);
    if (type === undefined) return `unknown frame type ${number}`;
    if (length > MAX_PAYLOAD) return `${type.toUpperCase()} frame declares ${length} bytes, over the limit of ${MAX_PAYLOAD}`;
    // A DATA frame too short to carry a byte is decoded whole, for its named error.
    if (type === 'data' && this.#dataInPieces && length > 16) return this.#startData(length);
    if (this.#buffered < HEADER_BYTES + length) return undefined;
    const payload = this.#peek(HEADER_BYTES + length).subarray(HEADER_BYTES, HEADER_BYTES + length);
    try {
      return decodePayload(type, payload);
    } catch (err) {
      if (err instanceof BadFrame) return err.message;
      throw err;
    } finally {
      this.#consume(HEADER_BYTES + length);
    }
  }
}
