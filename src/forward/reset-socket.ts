import type { LocalSocket } from '../local-socket.js';

/** How long a socket that already has its FIN queued may take to flush before it is reset anyway. */
const FLUSH_LIMIT_MS = 5_000;

/**
 * Ends a connection so that the peer cannot take it for a complete one: a TCP reset. A socket
 * whose FIN is already out carries a complete stream: it is closed. One whose FIN is queued
 * behind bytes the peer has not taken yet carries a complete stream still being written: it gets
 * `flushMs` to finish (0 when the process is stopping), then a reset, since its tail would
 * otherwise be lost behind a clean end. A Unix socket has no reset: it is closed.
 */
export function resetSocket(sock: LocalSocket, flushMs = FLUSH_LIMIT_MS): void {
  sock.on('error', () => {});
  if (sock.destroyed) return;
  if (sock.writableFinished) return void sock.destroy();
  const cut = () => void (sock.remoteFamily === undefined ? sock.destroy() : sock.resetAndDestroy());
  if (!sock.writableEnded || flushMs <= 0) return cut();
  const timer = setTimeout(cut, flushMs).unref();
  sock.once('finish', () => {
    clearTimeout(timer);
    sock.destroy();
  });
}
