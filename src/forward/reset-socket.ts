import type net from 'node:net';

/** How long a socket that already has its FIN queued may take to flush before it is closed anyway. */
const FLUSH_LIMIT_MS = 5_000;

/**
 * Ends a connection so that the peer cannot take it for a complete one: a TCP reset. Two
 * cases cannot reset: a socket that already queued its FIN (the stream it carries is complete,
 * so it is flushed and closed; Node cannot reset it then) and a Unix socket (no RST exists;
 * it is closed).
 */
export function resetSocket(sock: net.Socket): void {
  sock.on('error', () => {});
  if (sock.destroyed) return;
  if (sock.writableEnded) {
    if (sock.writableFinished) return void sock.destroy();
    const timer = setTimeout(() => sock.destroy(), FLUSH_LIMIT_MS).unref();
    sock.once('finish', () => {
      clearTimeout(timer);
      sock.destroy();
    });
    return;
  }
  if (sock.remoteFamily === undefined) return void sock.destroy(); // a Unix socket
  sock.resetAndDestroy();
}
