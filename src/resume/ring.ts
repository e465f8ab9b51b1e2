/**
 * Bytes kept in order in one buffer used as a ring: a resumable stream's replay buffer. Each read
 * from the client is copied in, so the read's own buffer dies young: kept until acknowledged (tens
 * of ms under load), the reads outlived scavenges and were freed only by full GCs (issue 14).
 */

/** The size a ring starts at; an empty ring larger than this is given back (idle streams hold little). */
export const RING_MIN_BYTES = 16 * 1024;

/** The most one read from a socket returns (libuv's read buffer): what a full stream may take past its limit. */
export const READ_BYTES = 64 * 1024;

const EMPTY = Buffer.alloc(0);

export class ByteRing {
  #buf = EMPTY;
  /** Where the oldest byte is in `#buf`. */
  #head = 0;
  #length = 0;

  constructor(
    /**
     * The stream's limit: its client is paused once this much is held, so the ring grows by
     * doubling up to this plus one read, then only to what is needed.
     */
    readonly limitBytes: number,
  ) {}

  /** Bytes held. */
  get length(): number {
    return this.#length;
  }

  /** Bytes allocated. */
  get capacity(): number {
    return this.#buf.length;
  }

  /** Copies `bytes` in after what is held. */
  push(bytes: Buffer): void {
    const length = this.#length + bytes.length;
    if (length > this.#buf.length) this.#grow(length);
    const tail = (this.#head + this.#length) % this.#buf.length;
    const first = bytes.copy(this.#buf, tail); // up to the ring's end
    bytes.copy(this.#buf, 0, first);
    this.#length = length;
  }

  /**
   * Up to `max` bytes from `at` bytes past the oldest (0 ≤ at < length), uncopied and not across
   * the ring's end: valid until the next push() or drop() reuses or moves them.
   */
  view(at: number, max: number): Buffer {
    const start = (this.#head + at) % this.#buf.length;
    return this.#buf.subarray(start, Math.min(start + max, start + this.#length - at, this.#buf.length));
  }

  /** Forgets the oldest `n` bytes. */
  drop(n: number): void {
    this.#length -= n;
    if (this.#length > 0) this.#head = (this.#head + n) % this.#buf.length;
    else if (this.#buf.length > RING_MIN_BYTES) this.clear();
    else this.#head = 0;
  }

  /** Forgets everything and gives the buffer back. */
  clear(): void {
    this.#buf = EMPTY;
    this.#head = 0;
    this.#length = 0;
  }

  /** A larger buffer holding at least `length` bytes, with what is held moved to its start. */
  #grow(length: number): void {
    const doubled = 2 * this.#buf.length;
    const size = Math.max(length, RING_MIN_BYTES, doubled < this.limitBytes ? doubled : this.limitBytes + READ_BYTES);
    const next = Buffer.allocUnsafeSlow(size); // its own memory: a pooled slice would keep the pool alive
    const first = this.#buf.copy(next, 0, this.#head, Math.min(this.#head + this.#length, this.#buf.length));
    this.#buf.copy(next, first, 0, this.#length - first);
    this.#buf = next;
    this.#head = 0;
  }
}
