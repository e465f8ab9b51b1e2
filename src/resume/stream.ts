/**
 * The byte accounting of one resumable stream, on sshkeep's side, without I/O: what was sent
 * and not yet acknowledged (the replay buffer), what was received, and when to acknowledge.
 * Offsets are those of docs/resume-protocol.md: each direction numbered from 0, its EOF one
 * number after its last byte. Numbers stay below 2^53 (8 PiB per stream), so they are plain
 * numbers here and u64 only on the wire.
 */

/** A bare ACK is due once this much was received since the last ack sent. */
export const ACK_EVERY_BYTES = 256 * 1024;
/** …or this long after receiving data, when nothing was sent since. */
export const ACK_DELAY_MS = 100;

/** Why a stream must end with a reset: the other side broke the offset contract. */
export class OffsetError extends Error {
  override name = 'OffsetError';
}

/** The replay buffer's bytes held by every stream of the process, against one cap. */
export class ReplayBudget {
  #used = 0;
  /** Streams paused by the cap alone: nothing of their own would wake them when another frees room. */
  readonly #waiting = new Set<() => void>();
  constructor(readonly capBytes: number) {}
  get usedBytes(): number {
    return this.#used;
  }
  get full(): boolean {
    return this.#used >= this.capBytes;
  }
  add(n: number): void {
    this.#used += n;
    if (n < 0 && !this.full && this.#waiting.size > 0) {
      const waiting = [...this.#waiting];
      this.#waiting.clear();
      for (const wake of waiting) wake();
    }
  }
  /** Calls `wake` once, when the budget is no longer full. */
  whenRoom(wake: () => void): void {
    this.#waiting.add(wake);
  }
}

/** What onData() makes of a DATA frame: the bytes to deliver now (none for a whole resend). */
export type Delivery = Buffer | undefined;

export class StreamState {
  /** Offset of the first byte in the replay buffer: everything below was acknowledged. */
  #acked = 0;
  /** Offset of the next byte to send. */
  #sent = 0;
  readonly #replay: Buffer[] = [];
  #replayBytes = 0;
  /** Our EOF: sent (it takes the number `#sent`), and whether the peer acknowledged it. */
  #eofSent = false;
  /** The peer's bytes received, +1 once its EOF arrived. */
  #received = 0;
  #peerEof = false;
  /** Received since the last ack we sent (in DATA or ACK). */
  #unacked = 0;
  /** Where bytesAt() last found its chunk: replay[index] starts at offset `start` (framing goes forward). */
  #cursor = { index: 0, start: 0 };

  constructor(
    /** Per-stream replay buffer limit (--resume-buffer). */
    readonly limitBytes: number,
    private readonly budget: ReplayBudget,
  ) {}

  /** What we acknowledge: the peer's bytes received (+1 after its EOF). */
  get received(): number {
    return this.#received;
  }

  get sent(): number {
    return this.#sent;
  }

  get eofSent(): boolean {
    return this.#eofSent;
  }

  /** Bytes sent and not yet acknowledged. */
  get replayBytes(): number {
    return this.#replayBytes;
  }

  /** Stop reading the client while true: this stream's buffer or the process's cap is full. */
  get full(): boolean {
    return this.#replayBytes >= this.limitBytes || this.budget.full;
  }

  /** Both directions ended and our EOF acknowledged: nothing is left to resend or receive. */
  get finished(): boolean {
    return this.#peerEof && this.#eofSent && this.#acked === this.#sent + 1;
  }

  /**
   * Calls `wake` once the process cap has room again, when that is what stops this stream (a
   * full buffer of its own is freed by its own acks).
   */
  whenBudgetRoom(wake: () => void): void {
    if (this.budget.full && this.#replayBytes < this.limitBytes) this.budget.whenRoom(wake);
  }

  /** Records bytes read from the client; returns their offset. */
  send(bytes: Buffer): number {
    if (this.#eofSent) throw new Error('stream state: data after EOF');
    const offset = this.#sent;
    this.#replay.push(bytes);
    this.#replayBytes += bytes.length;
    this.budget.add(bytes.length);
    this.#sent += bytes.length;
    return offset;
  }

  /**
   * Up to `max` bytes from `offset` (acknowledged ≤ offset < sent), within one chunk of the
   * replay buffer, uncopied: what to frame next. Found from where the last call found its
   * chunk, so framing the buffer from front to back walks it once.
   */
  bytesAt(offset: number, max: number): Buffer {
    if (offset < this.#acked || offset >= this.#sent) throw new Error(`stream state: ${offset} is not in the replay buffer [${this.#acked}, ${this.#sent})`);
    let { index, start } = this.#cursor;
    if (start > offset) ({ index, start } = { index: 0, start: this.#acked });
    while (start + this.#replay[index]!.length <= offset) start += this.#replay[index++]!.length;
    this.#cursor = { index, start };
    const chunk = this.#replay[index]!;
    return chunk.subarray(offset - start, Math.min(chunk.length, offset - start + max));
  }

  /** Records our EOF; returns its offset. */
  sendEof(): number {
    this.#eofSent = true;
    return this.#sent;
  }

  /** The ack to send now, in a DATA or a bare ACK: counts as acknowledging what came so far. */
  ack(): number {
    this.#unacked = 0;
    return this.#received;
  }

  /** Is a bare ACK due now (ACK_EVERY_BYTES received since the last)? The timer case is the caller's. */
  get ackDue(): boolean {
    return this.#unacked >= ACK_EVERY_BYTES;
  }

  /** Has anything been received since the last ack sent? */
  get owesAck(): boolean {
    return this.#unacked > 0;
  }

  /** The peer acknowledged up to `ack`: frees the replay buffer below it. */
  onAck(ack: number): void {
    const limit = this.#sent + (this.#eofSent ? 1 : 0);
    if (ack > limit) throw new OffsetError(`ack ${ack} beyond what was sent (${limit})`);
    if (ack <= this.#acked) return;
    let free = Math.min(ack, this.#sent) - this.#acked;
    this.budget.add(-free);
    this.#replayBytes -= free;
    let dropped = 0;
    while (free > 0) {
      const head = this.#replay[0]!;
      if (head.length <= free) {
        this.#replay.shift();
        dropped++;
        free -= head.length;
      } else {
        this.#replay[0] = head.subarray(free);
        free = 0;
      }
    }
    this.#acked = ack;
    // The cursor's chunk moved `dropped` places forward; the head, if it was that chunk, now starts at the ack.
    const index = this.#cursor.index - dropped;
    this.#cursor = index > 0 ? { index, start: this.#cursor.start } : { index: 0, start: Math.min(ack, this.#sent) };
  }

  /** DATA at `offset`: the part not yet received, to deliver once; a gap is an OffsetError. */
  onData(offset: number, bytes: Buffer): Delivery {
    if (this.#peerEof) throw new OffsetError('data after EOF');
    if (offset > this.#received) throw new OffsetError(`gap: data at ${offset}, ${this.#received} received`);
    const fresh = offset + bytes.length - this.#received;
    if (fresh <= 0) return undefined;
    this.#received += fresh;
    this.#unacked += fresh;
    return fresh === bytes.length ? bytes : bytes.subarray(bytes.length - fresh);
  }

  /** EOF at `offset`: true the first time (shut down writing), false for a resend. */
  onEof(offset: number): boolean {
    if (this.#peerEof) return false;
    if (offset !== this.#received) throw new OffsetError(`EOF at ${offset}, ${this.#received} received`);
    this.#peerEof = true;
    this.#received += 1;
    this.#unacked += 1;
    return true;
  }

  /**
   * The peer resumes having received `peerReceived`: what it has is acknowledged (bytesAt()
   * serves the rest from there), and whether our EOF must be sent again. Outside what the
   * replay buffer holds is an OffsetError.
   */
  resumeFrom(peerReceived: number): { eof: boolean } {
    this.onAck(peerReceived); // beyond what was sent throws; below `acked` is checked next
    if (peerReceived < this.#acked) throw new OffsetError(`peer resumes from ${peerReceived}, replay buffer starts at ${this.#acked}`);
    return { eof: this.#eofSent && peerReceived <= this.#sent };
  }

  /** Gives the replay buffer's bytes back to the process budget (the stream ended). */
  release(): void {
    this.budget.add(-this.#replayBytes);
    this.#replay.length = 0;
    this.#replayBytes = 0;
  }
}
