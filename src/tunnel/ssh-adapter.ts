/**
 * The one adapter around ssh2: a new Client per attempt, host keys verified,
 * sockets tuned, synchronous throws wrapped, and ssh2's `err.level` strings
 * translated into sshkeep's named errors here and nowhere else.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import ssh2 from 'ssh2';
import type { ClientChannel, ConnectConfig, ServerHostKeyAlgorithm } from 'ssh2';
import { AuthError, ChannelOpenError, ConnectError, HostKeyError } from '../errors.js';
import { authHandler, type AuthPlan } from './auth.js';
import type { HeartbeatLink } from './heartbeat.js';
import type { HostKeyPolicy } from './host-key.js';

export interface DialOptions {
  host: string;
  port: number;
  connectTimeoutMs: number;
  /** Idle time before TCP keepalive probes start on the SSH socket. */
  tcpKeepaliveMs: number;
  auth: AuthPlan;
  hostKeys: HostKeyPolicy;
  /** Reused across attempts so a password typed once serves every reconnect. */
  secretCache: { password?: string };
  /** Abandons the attempt (the tunnel is stopping). */
  signal?: AbortSignal;
}

/** RFC 4254 channel-open failure reason codes, by OpenSSH's names. */
const OPEN_FAILURE: Record<number, string> = {
  1: 'administratively-prohibited',
  2: 'connect-failed',
  3: 'unknown-channel-type',
  4: 'resource-shortage',
};

/**
 * One established SSH connection. `close` is its one "down" signal, emitted once.
 * It is also the heartbeat's link: it knows when the server last sent anything.
 */
export class SshSession extends EventEmitter<{ close: [reason: string] }> implements HeartbeatLink {
  #closed = false;
  #closeReason = '';
  #lastInboundAt = performance.now();
  #channels = 0;
  #endWhenIdle = false;
  /** Opens not yet answered, so they can be handed to a better connection. */
  readonly #pending = new Set<(why: string) => void>();

  constructor(private readonly client: ssh2.Client, sock: net.Socket, readonly description: string) {
    super();
    this.setMaxListeners(0); // one listener per forwarded connection
    // Any bytes from the server prove it alive; a second 'data' listener costs one call per chunk.
    sock.on('data', () => (this.#lastInboundAt = performance.now()));
    let lastError: Error | undefined;
    client.on('error', (err) => (lastError = err));
    client.on('close', () => {
      this.#closed = true;
      this.#closeReason = lastError ? describe(lastError) : 'connection closed by server';
      this.emit('close', this.#closeReason);
    });
  }

  lastInboundAt(): number {
    return this.#lastInboundAt;
  }

  /**
   * Sends keepalive@openssh.com with want-reply. ssh2 has no public call for it: this is how
   * its own keepalive does it (a callback queued for the global-request reply, then ping()).
   */
  sendProbe(onReply: () => void): void {
    if (this.#closed) return;
    const internals = this.client as unknown as { _callbacks: (() => void)[]; _protocol: { ping(): void } };
    internals._callbacks.push(onReply);
    internals._protocol.ping();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Opens a direct-tcpip channel; rejects with a ChannelOpenError after `timeoutMs`. */
  forwardOut(src: { address: string; port: number }, host: string, port: number, timeoutMs: number): Promise<ClientChannel> {
    return new Promise((resolve, reject) => {
      if (this.#closed) return reject(new ChannelOpenError(`tunnel lost: ${this.#closeReason}`, 'tunnel-lost'));
      let settled = false;
      const giveUp = (error: ChannelOpenError) => {
        settled = true;
        clearTimeout(timer);
        this.#pending.delete(abandon);
        reject(error);
      };
      const abandon = (why: string) => giveUp(new ChannelOpenError(`channel open abandoned: ${why}`, 'tunnel-lost'));
      this.#pending.add(abandon);
      const timer = setTimeout(() => giveUp(new ChannelOpenError(`channel to ${host}:${port} did not open within ${timeoutMs} ms`, 'timeout')), timeoutMs);
      const onOpen = (err: (Error & { reason?: number }) | undefined, channel: ClientChannel) => {
        clearTimeout(timer);
        this.#pending.delete(abandon);
        if (settled) {
          // The open outlived its deadline: nobody is waiting for this channel.
          if (!err) closeUnused(channel);
          return;
        }
        settled = true;
        if (!err) {
          this.#channels++;
          channel.once('close', () => {
            this.#channels--;
            if (this.#endWhenIdle && this.#channels === 0) this.end();
          });
          return resolve(channel);
        }
        // No reason code: the server never answered (the connection is going or gone), so
        // nothing reached the target and the open can be re-issued elsewhere.
        const reason = err.reason !== undefined ? (OPEN_FAILURE[err.reason] ?? `reason-${err.reason}`) : 'tunnel-lost';
        reject(new ChannelOpenError(`server could not open ${host}:${port}: ${err.message.replace(/^\(SSH\) /, '')}`, reason));
      };
      try {
        this.client.forwardOut(src.address, src.port, host, port, onOpen);
      } catch (err) {
        // ssh2 throws "Not connected" when its socket can no longer be written: this
        // connection is finished; say so now rather than when the close event comes.
        onOpen(err as Error, undefined as unknown as ClientChannel);
        this.destroy();
      }
    });
  }

  /**
   * Fails every open still waiting for an answer with reason `tunnel-lost`, so its
   * client is re-issued on another connection (nothing reached the target yet).
   * A channel that opens afterwards is closed unused.
   */
  abandonPendingOpens(why: string): void {
    for (const abandon of [...this.#pending]) abandon(why);
  }

  /** Channels open on this connection now. */
  get channels(): number {
    return this.#channels;
  }

  /** Takes no new work: ends the connection once its last channel closes (now, if none is open). */
  endWhenIdle(): void {
    this.#endWhenIdle = true;
    if (this.#channels === 0) this.end();
  }

  /** Closes the connection politely (SSH disconnect, then TCP FIN). */
  end(): void {
    try {
      this.client.end();
    } catch {
      this.client.destroy();
    }
  }

  /** Drops the connection at once. */
  destroy(): void {
    this.client.destroy();
  }
}

function describe(err: Error & { level?: string; code?: string }): string {
  return err.code ? `${err.message.replace(new RegExp(`^${err.code}:? ?`), '')} (${err.code})`.trim() : err.message;
}

/** Closes a channel nobody will read; resumed, so its 'end' and 'close' still come and it stops counting. */
export function closeUnused(channel: ClientChannel): void {
  channel.resume();
  channel.close();
}

/** Dials one SSH connection; resolves when authenticated and ready. */
export function dial(options: DialOptions): Promise<SshSession> {
  const target = `${options.host}:${options.port}`;
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    const attempts = { tried: [] as string[] };
    let hostKeyError: HostKeyError | null = null;
    let settled = false;
    const onAbort = () => fail(new ConnectError('connect abandoned: tunnel stopping'));
    const settle = () => {
      settled = true;
      options.signal?.removeEventListener('abort', onAbort);
    };
    const fail = (err: Error) => {
      if (settled) return;
      settle();
      client.destroy();
      reject(err);
    };

    if (options.signal?.aborted) return reject(new ConnectError('connect abandoned: tunnel stopping'));
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const sock = net.connect({ host: options.host, port: options.port });
    sock.setNoDelay(true);
    // A second line of defence behind the heartbeat, for links that die with data in flight.
    sock.setKeepAlive(true, Math.max(1000, options.tcpKeepaliveMs));

    client.on('ready', () => {
      if (settled) return;
      settle();
      resolve(new SshSession(client, sock, target));
    });
    client.on('error', (err: Error & { level?: string; code?: string }) => {
      if (settled) return;
      if (hostKeyError) return fail(hostKeyError);
      switch (err.level) {
        case 'client-authentication':
          return fail(
            new AuthError(
              `Authentication as "${options.auth.username}" to ${target} was rejected. Tried: ${attempts.tried.join(', ') || 'nothing (no identity file, no ssh-agent, no terminal to ask for a password)'}. ` +
                `Check the user (-l), the key (-i) and that its public key is in the server's authorized_keys.`,
            ),
          );
        case 'client-timeout':
          return fail(new ConnectError(`No SSH handshake with ${target} within ${options.connectTimeoutMs} ms (ConnectTimeout).`));
        default:
          return fail(new ConnectError(`Cannot connect to ${target}: ${describe(err)}`));
      }
    });
    client.on('close', () => fail(new ConnectError(`Connection to ${target} closed during the SSH handshake.`)));

    const config: ConnectConfig = {
      sock,
      username: options.auth.username,
      readyTimeout: options.connectTimeoutMs,
      keepaliveInterval: 0, // the Heartbeat replaces ssh2's, which counts only its own replies
      algorithms: { serverHostKey: options.hostKeys.algorithms() as ServerHostKeyAlgorithm[] },
      hostVerifier: (key: Buffer) => {
        hostKeyError = options.hostKeys.verify(key);
        return hostKeyError === null;
      },
      authHandler: authHandler(options.auth, attempts, options.secretCache),
    };
    try {
      client.connect(config);
    } catch (err) {
      sock.destroy();
      fail(new ConnectError(`Cannot connect to ${target}: ${(err as Error).message}`));
    }
  });
}
