/** SSH wire encoding (RFC 4251 §5): the reads and writes certificates and the agent protocol need. */

/** Input that ends early or holds a length past its end. */
export class WireError extends Error {}

/** Reads fields in order; every read throws a WireError instead of reading past the end. */
export class WireReader {
  #pos = 0;
  constructor(readonly buf: Buffer) {}

  get pos(): number {
    return this.#pos;
  }

  get done(): boolean {
    return this.#pos === this.buf.length;
  }

  #take(n: number, what: string): Buffer {
    if (this.buf.length - this.#pos < n) throw new WireError(`ends inside ${what}`);
    const out = this.buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }

  byte(what: string): number {
    return this.#take(1, what)[0]!;
  }

  uint32(what: string): number {
    return this.#take(4, what).readUInt32BE(0);
  }

  uint64(what: string): bigint {
    return this.#take(8, what).readBigUInt64BE(0);
  }

  /** A length-prefixed byte string. */
  string(what: string): Buffer {
    return this.#take(this.uint32(what), what);
  }

  /** A length-prefixed string read as text (names, comments). */
  text(what: string): string {
    return this.string(what).toString('utf8');
  }

  /** The bytes from `from` to here, as read. */
  since(from: number): Buffer {
    return this.buf.subarray(from, this.#pos);
  }
}

/** Encodes each value as an SSH string (uint32 length, then the bytes). */
export function wireStrings(...values: (Buffer | string)[]): Buffer {
  return Buffer.concat(
    values.flatMap((v) => {
      const bytes = typeof v === 'string' ? Buffer.from(v) : v;
      const len = Buffer.alloc(4);
      len.writeUInt32BE(bytes.length);
      return [len, bytes];
    }),
  );
}
