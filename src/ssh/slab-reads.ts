import type net from 'node:net';

const SLAB_BYTES = 64 * 1024;
/** Below this much room left in a slab, the next read gets a new one (a read takes at most what it is offered). */
const MIN_READ_BYTES = 16 * 1024;

/**
 * net.connect's `onread` for the SSH socket: each read lands in the next free part of a 64 KiB
 * slab and is handed on as a `'data'` event (what ssh2 listens to). That skips the socket's
 * Readable layer, and the 64 KiB buffer Node takes and trims into a new ArrayBuffer for every
 * read: 6 % of the instructions of a small request and its reply. A part of a slab is never
 * offered twice: ssh2 decrypts in place and hands payloads on as views of the read, which may
 * wait in a client's write queue; a slab's memory goes back with the last view of it. Pausing
 * still works (net.Socket stops reading a paused `onread` socket).
 */
export function slabReads(sock: () => net.Socket): net.OnReadOpts {
  let slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
  let used = 0;
  return {
    buffer: () => {
      if (SLAB_BYTES - used < MIN_READ_BYTES) {
        slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
        used = 0;
      }
      return slab.subarray(used);
    },
    callback: (n, buf) => {
      used += n;
      sock().emit('data', (buf as Buffer).subarray(0, n));
      return true;
    },
  };
}
