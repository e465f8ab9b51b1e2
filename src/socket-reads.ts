import { Buffer } from 'node:buffer';
import net from 'node:net';

const READ_BYTES = 64 * 1024;
/** Reads under this size are copied out (most of a small message's reads are a few hundred bytes). */
const COPY_BELOW = 32 * 1024;

/** Where every socket reads unless its last read filled a buffer: each read here is copied out (or lent) before its callback returns. */
const shared = Buffer.allocUnsafeSlow(READ_BYTES);
const sharedBytes = shared.buffer;

/**
 * Where a socket's reads land, and what of them is handed on: a read lands in one buffer shared by
 * every socket and is copied out (from Node's 8 KiB pool when small), unless the socket's last
 * read filled its buffer (a bulk transfer): then it reads into a buffer of its own, handed on
 * whole when the read is 32 KiB or more, and a new one is taken while reads fill it. What is
 * handed on may wait in a write queue (ssh2 decrypts in place and hands payloads on as views of
 * it), so nothing handed on is ever read into again. A waiting chunk thus keeps at most its
 * pool's 8 KiB or twice its size in memory, and a socket keeps a buffer of its own only while
 * the kernel has more for it than one read takes. A reader that copies what it keeps may be lent
 * the reads that would be copied (`copies`, `lend`): a small request's copy and allocation were
 * about 5 % of its instructions through sshkeep, and ssh2 copies the bytes into their packet anyway.
 */
export class ReadBuffers {
  #own: Buffer | undefined;
  /** #own's ArrayBuffer, read once: a Buffer's `buffer` getter is a call into V8's runtime. */
  #ownBytes: ArrayBufferLike | undefined;

  /** Where the socket's next read lands. */
  buffer(): Buffer {
    return this.#own ?? shared;
  }

  /** Would take() copy the read of `n` bytes into `read`? */
  copies(n: number, read: Uint8Array): boolean {
    return n < COPY_BELOW || read !== this.#own;
  }

  /** The read's bytes to hand on: a copy, or the socket's own buffer when a bulk read filled it. */
  take(n: number, read: Uint8Array): Buffer {
    let chunk: Buffer;
    if (this.copies(n, read)) {
      // set() from a view of the known ArrayBuffer: Buffer's copy() reads the source's `buffer`
      // and `byteOffset` back, each a generic property load in optimized code
      chunk = Buffer.allocUnsafe(n);
      chunk.set(this.#view(n, read));
    } else {
      chunk = this.#own!.subarray(0, n);
    }
    this.#next(n);
    return chunk;
  }

  /**
   * A read that take() would copy, as a plain view of where it landed instead, valid until the next
   * read of any socket: not a Buffer, whose subarray() reads `buffer` and `byteOffset` through
   * megamorphic lookups (about 450 instructions).
   */
  lend(n: number, read: Uint8Array): Uint8Array {
    const view = this.#view(n, read);
    this.#next(n);
    return view;
  }

  /** The read's n bytes as a plain view, made on the ArrayBuffer known to be under `read`. */
  #view(n: number, read: Uint8Array): Uint8Array {
    return new Uint8Array(read === shared ? sharedBytes : this.#ownBytes!, 0, n);
  }

  /** After a read of n bytes: a buffer of the socket's own while reads fill it. */
  #next(n: number): void {
    if (n === READ_BYTES) {
      this.#own = Buffer.allocUnsafeSlow(READ_BYTES);
      this.#ownBytes = this.#own.buffer;
    } else {
      this.#own = this.#ownBytes = undefined;
    }
  }
}

/**
 * `onread` for a socket (net.connect's option, or acceptedReads for an accepted one): the kernel's
 * bytes are handed on as a `'data'` event without the socket's Readable layer, or the 64 KiB buffer
 * Node takes and trims into a new ArrayBuffer for every read: a fifth of the instructions of a
 * small request and its reply. Reads land as ReadBuffers says.
 *
 * A read that arrives while the socket is paused goes into its Readable, in order, for the resume
 * to deliver: Node's deferred `read(0)` after a `resume()` restarts an onread socket's reads even
 * when it was paused again in the same tick. Otherwise bytes are not buffered for a listener to
 * come: a socket is read only while resumed, so its reader listens before it resumes it.
 */
export function socketReads(sock: () => net.Socket): net.OnReadOpts {
  const reads = new ReadBuffers();
  return {
    buffer: () => reads.buffer(),
    callback: (n, read) => {
      const chunk = reads.take(n, read);
      const socket = sock();
      if (socket.readableLength > 0 || socket.isPaused()) {
        socket.push(chunk); // behind what waits there, for the Readable to deliver; it reads on when it wants more
        return false;
      }
      socket.emit('data', chunk);
      return true; // pausing stays the socket's pause(), which stops an onread socket's reads
    },
  };
}

/** Node's keys of a socket's onread state, found once by their names; undefined where they differ. */
const ONREAD = (() => {
  const keys = Object.getOwnPropertySymbols(new net.Socket());
  const named = (name: string) => keys.find((k) => k.description === name);
  const [buffer, callback, generate] = ['kBuffer', 'kBufferCb', 'kBufferGen'].map(named);
  return buffer && callback && generate ? { buffer, callback, generate } : undefined;
})();

interface StreamHandle {
  reading?: boolean;
  useUserBuffer?: (buffer: Uint8Array) => void;
}

/**
 * Gives a socket accepted paused (pauseOnConnect) the reads of socketReads. Node 20 takes `onread`
 * only when it creates the socket, which net.Server does without it: this sets what that option
 * would have set (net.Socket's constructor and initSocketHandle, Node 20). False, and the socket
 * reads through its Readable as before, where Node's internals are not as expected or the socket
 * is already reading; test/socket-reads.test.ts fails then.
 */
export function acceptedReads(socket: net.Socket): boolean {
  const handle = (socket as unknown as { _handle?: StreamHandle | null })._handle;
  if (!ONREAD || !handle || handle.reading || typeof handle.useUserBuffer !== 'function') return false;
  const { buffer, callback } = socketReads(() => socket);
  const first = (buffer as () => Buffer)();
  const fields = socket as unknown as Record<symbol, unknown>;
  fields[ONREAD.buffer] = first;
  fields[ONREAD.callback] = callback;
  fields[ONREAD.generate] = buffer;
  handle.useUserBuffer(first);
  return true;
}
