import type net from 'node:net';

const READ_BYTES = 64 * 1024;
/** Reads under this size are copied out (most of a small message's reads are a few hundred bytes). */
const COPY_BELOW = 32 * 1024;

/**
 * net.connect's `onread` for the SSH socket: the kernel's bytes land in one 64 KiB buffer and are
 * handed on as a `'data'` event (what ssh2 listens to). That skips the socket's Readable layer,
 * and the 64 KiB buffer Node takes and trims into a new ArrayBuffer for every read: about 5 % of the
 * instructions of a small request and its reply. ssh2 decrypts in place and hands payloads on as
 * views of what it was given, which may wait in a client's write queue, so nothing handed on is
 * ever read into again: a read under 32 KiB is copied out (from Node's 8 KiB buffer pool when
 * small), a larger one is handed on whole and the next read gets a new buffer. What a waiting
 * view keeps in memory is thus at most its pool's 8 KiB or twice its read, never a buffer shared
 * with other connections' traffic. Bytes are not buffered for a listener to come: ssh2 pauses the
 * socket before it connects and resumes it once it listens.
 */
export function socketReads(sock: () => net.Socket): net.OnReadOpts {
  let buffer = Buffer.allocUnsafeSlow(READ_BYTES);
  return {
    buffer: () => buffer,
    callback: (n, read) => {
      let chunk: Buffer;
      if (n < COPY_BELOW) {
        chunk = Buffer.allocUnsafe(n);
        (read as Buffer).copy(chunk, 0, 0, n);
      } else {
        chunk = (read as Buffer).subarray(0, n);
        buffer = Buffer.allocUnsafeSlow(READ_BYTES); // before the emit, which a listener's throw would cut short
      }
      sock().emit('data', chunk);
      return true; // pausing stays the socket's pause(), which stops an onread socket's reads
    },
  };
}
