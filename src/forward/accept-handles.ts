import type net from 'node:net';
import { tcpClientsSupported } from './tcp-client.js';

/** What a TCP listener emits instead of 'connection', with the accepted connection's libuv handle, when something listens for it. */
export const TCP_CLIENT = 'tcpClient';

/**
 * Has `server` hand each accepted connection over as its libuv handle (a TCP_CLIENT event, for a
 * TcpClient) while something listens for those, and as a net.Socket ('connection') otherwise, or
 * where the handle is not as src/forward/tcp-client.ts knows it. Node's own accept callback
 * (net.Server's `_handle.onconnection`, Node 20) is wrapped each time the server listens.
 */
export function offerHandles(server: net.Server): void {
  server.on('listening', () => {
    const listener = (server as unknown as { _handle?: { onconnection?: unknown } })._handle;
    const accept = listener?.onconnection;
    if (!listener || typeof accept !== 'function') return;
    listener.onconnection = function (this: unknown, status: number, handle: unknown) {
      if (status !== 0 || server.listenerCount(TCP_CLIENT) === 0 || !tcpClientsSupported(handle)) return accept.call(this, status, handle);
      server.emit(TCP_CLIENT, handle);
    };
  });
}
