import fs from 'node:fs';
import net from 'node:net';
import { isMainThread } from 'node:worker_threads';
import { ListenError } from '../errors.js';
import type { Logger } from '../log.js';

/** True when something accepts connections on the socket at `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

/**
 * Makes way for a Unix listener at `path`: a socket file nobody answers on is left over
 * from a crashed run and is removed; any other file is an error, and a live socket is in use
 * (EADDRINUSE, as a TCP port would be: tried again while a previous instance drains). Only with
 * `probe` is the socket connected to: a draining sshkeep would take each probe for a client;
 * its socket file goes when it stops listening.
 */
export async function clearStaleSocket(path: string, flag: string, logger: Logger, probe = true): Promise<void> {
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(path);
  } catch {
    return; // nothing there (or not ours to see: listen() will say)
  }
  if (!stat.isSocket()) throw new ListenError(`${flag}: ${path} exists and is not a socket; sshkeep will not replace it.`);
  if (!probe || (await answers(path))) throw Object.assign(new Error(`${path} is in use`), { code: 'EADDRINUSE' });
  fs.unlinkSync(path);
  logger.info('removed a stale socket file left by an earlier run', { event: 'stale_socket', path });
}

/** Listens on a Unix socket created with mode 0600: only this user can connect. */
export function listenPrivately(server: net.Server, path: string): void {
  if (!isMainThread) {
    // A worker cannot set the umask: the mode is set once bound, leaving the socket as the umask made it until then.
    server.once('listening', () => fs.chmodSync(path, 0o600));
    server.listen(path);
    return;
  }
  // The socket's mode comes from the umask at bind time, which listen() does synchronously.
  const old = process.umask(0o177);
  try {
    server.listen(path);
  } finally {
    process.umask(old);
  }
}
