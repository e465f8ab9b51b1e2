import { Buffer } from 'node:buffer';
import net from 'node:net';

const READ_BYTES = 64 * 1024;
/** Reads under this size are copied out (most of a small message's reads are a few hundred bytes). */
const COPY_BELOW = 32 * 1024;

/** Where every socket reads unless its last read filled a buffer: each read here is copied out before its callback returns. */
const shared = Buffer.allocUnsafeSlow(READ_BYTES);

/**
 * Where a socket's reads land, and what of them is handed on: a read lands in one buffer shared by
 * every socket and is copied out (from Node's 8 KiB pool when small), unless the socket's last
 * read filled its buffer (a bulk transfer): then it reads into a buffer of its own, handed on
 * whole when the read is 32 KiB or more, and a new one is taken while reads fill it. What is
 * handed on may wait in a write queue (ssh2 decrypts in place and hands payloads on as views of
 * it), so nothing handed on is ever read into again. A waiting chunk thus keeps at most its
 * pool's 8 KiB or twice its size in memory, and a socket keeps a buffer of its own only while
 * the kernel has more for it than one read takes.
 */
export function readBuffers(): { buffer: () => Buffer; take: (n: number, read: Uint8Array) => Buffer } {
  let own: Buffer | undefined;
  return {
    buffer: () => own ?? shared,
    take: (n, read) => {
      let chunk: Buffer;
      if (n < COPY_BELOW || read !== own) {
        chunk = Buffer.allocUnsafe(n);
        (read as Buffer).copy(chunk, 0, 0, n);
      } else {
        chunk = own.subarray(0, n);
      }
      own = n === READ_BYTES ? Buffer.allocUnsafeSlow(READ_BYTES) : undefined;
      return chunk;
    },
  };
}

/**
 * `onread` for a socket (net.connect's option, or acceptedReads for an accepted one): the kernel's
 * bytes are handed on as a `'data'` event without the socket's Readable layer, or the 64 KiB buffer
 * Node takes and trims into a new ArrayBuffer for every read: a fifth of the instructions of a
 * small request and its reply. Reads land as readBuffers() says.
 *
 * A read that arrives while the socket is paused goes into its Readable, in order, for the resume
 * to deliver: Node's deferred `read(0)` after a `resume()` restarts an onread socket's reads even
 * when it was paused again in the same tick. Otherwise bytes are not buffered for a listener to
 * come: a socket is read only while resumed, so its reader listens before it resumes it.
 */
export function socketReads(sock: () => net.Socket): net.OnReadOpts {
  const { buffer, take } = readBuffers();
  return {
    buffer,
    callback: (n, read) => {
      const chunk = take(n, read);
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
