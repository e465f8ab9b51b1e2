import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { HostConfig } from '../config/types.js';
import { ConnectError } from '../errors.js';
import type { Logger } from '../log.js';
import type { AuthPlan } from './auth.js';
import type { HostKeyPolicy } from './host-key.js';
import { proxyCommandStream } from './proxy-command.js';
import { dial, type SshSession } from './adapter.js';
import { socketReads } from '../socket-reads.js';

/** One SSH server on the way: a jump host, or the destination last. */
export interface Hop {
  host: HostConfig;
  auth: AuthPlan;
  hostKeys: HostKeyPolicy;
  /** Reused across attempts so a password typed once serves every reconnect. */
  secretCache: { password?: string };
}

export interface RouteOptions {
  /** Idle time before TCP keepalive probes start on the first hop's socket. */
  tcpKeepaliveMs: number;
  signal: AbortSignal;
  logger: Logger;
  /** How long each hop's server gets to answer our CLOSE of a channel; undefined: for ever. */
  channelCloseTimeoutMs?: number;
}

/** net.connect's `family` for AddressFamily (-4, -6); 0 lets the resolver choose. */
const FAMILY = { any: 0, inet: 4, inet6: 6 } as const;

/** A TCP socket to the first hop, tuned for a tunnel. */
function tcpSocket(host: HostConfig, keepaliveMs: number): net.Socket {
  const sock: net.Socket = net.connect({ host: host.hostName, port: host.port, family: FAMILY[host.addressFamily], onread: socketReads(() => sock) });
  sock.setNoDelay(true);
  // A second line of defence behind the heartbeat, for links that die with data in flight.
  sock.setKeepAlive(true, Math.max(1000, keepaliveMs));
  return sock;
}

/**
 * Connects through every hop in turn: the first over TCP (or its ProxyCommand), each next
 * one over a direct-tcpip channel of the one before, each authenticated and host-key-checked
 * on its own. The last hop's session is returned; it closes when any hop under it closes.
 */
export async function dialRoute(hops: Hop[], options: RouteOptions): Promise<SshSession> {
  const sessions: SshSession[] = [];
  try {
    for (const [i, hop] of hops.entries()) {
      const { host } = hop;
      const target = `${host.hostName}:${host.port}`;
      let sock: Duplex;
      if (i === 0) {
        sock = host.proxyCommand ? proxyCommandStream(host.proxyCommand, options.logger) : tcpSocket(host, options.tcpKeepaliveMs);
      } else {
        const prev = sessions[i - 1]!;
        try {
          sock = await prev.openChannel({ kind: 'tcp', host: host.hostName, port: host.port }, { address: '127.0.0.1', port: 0 }, host.connectTimeoutMs);
        } catch (err) {
          throw new ConnectError(`Jump host ${prev.description} could not reach ${target}: ${(err as Error).message}`);
        }
      }
      const last = i === hops.length - 1;
      sessions.push(
        await dial(
          {
            target,
            sock,
            connectTimeoutMs: host.connectTimeoutMs,
            auth: hop.auth,
            hostKeys: hop.hostKeys,
            secretCache: hop.secretCache,
            compression: host.compression,
            algorithms: host.algorithms,
            signal: options.signal,
            channelCloseTimeoutMs: options.channelCloseTimeoutMs,
          },
          last ? [...sessions] : [],
        ),
      );
    }
  } catch (err) {
    for (const s of sessions) s.destroy();
    throw err;
  }
  return sessions[sessions.length - 1]!;
}
