import net from 'node:net';
import { EventEmitter, once } from 'node:events';
import type { ClientChannel } from 'ssh2';
import { DEFAULTS } from '../config/defaults.js';
import { formatEndpoint, forwardName } from '../config/forward-spec.js';
import type { Endpoint, ListenForwardSpec } from '../config/types.js';
import { ListenError, type ChannelOpenError } from '../errors.js';
import type { Logger } from '../ops/logger.js';
import type { SessionSource } from '../tunnel/pool.js';
import { closeUnused, type SshSession } from '../tunnel/ssh-adapter.js';
import { HeldClient } from './held-client.js';
import { PUMPED_SOCKET_OPTIONS } from './pump.js';
import { Pumps } from './pumps.js';
import type { ConnectionResult } from './result.js';
import { REPLY, negotiateSocks, replyForOpenFailure, socksReply, type ReplyCode, type SocksVersion } from './socks.js';
import { clearStaleSocket, listenPrivately } from './unix-socket.js';
import { resetSocket } from './reset-socket.js';

export interface LocalForwardDeps {
  /** The tunnel, or the pool of connections with --connections. */
  tunnel: SessionSource;
  logger: Logger;
  /** How long a client that arrives while no tunnel is ready is held; 0 = not at all. */
  holdTimeoutMs: number;
  holdBufferBytes: number;
  channelOpenTimeoutMs: number;
  limits: Limits;
  /** -D: SOCKS5 username/password every client must give. */
  socksAuth?: { user: string; pass: string };
  /** -D: a client that has not finished its SOCKS request by then is dropped. */
  socksTimeoutMs?: number;
}

/** Process-wide limits, shared by every forward of every tunnel. */
export interface Limits {
  /** --max-connections: clients forwarded or held at once; 0 = unlimited. */
  maxConnections: number;
  /** --max-held: clients held at once. */
  maxHeld: number;
  /** Clients forwarded or held right now, process-wide. */
  connections(): number;
  /** Clients held right now, process-wide. */
  held(): number;
}

let connectionSeq = 0;

function listenError(spec: ListenForwardSpec, err: NodeJS.ErrnoException): ListenError {
  const where = formatEndpoint(spec.listen);
  const host = spec.listen.kind === 'tcp' ? spec.listen.host : where;
  const why =
    err.code === 'EADDRINUSE' ? `${where} is already in use; pick another local port or stop what holds it`
    : err.code === 'EACCES' ? `permission denied to listen on ${where}${spec.listen.kind === 'tcp' ? ' (ports below 1024 need privileges)' : ''}`
    : err.code === 'EADDRNOTAVAIL' ? `${host} is not an address of this host`
    : err.code === 'ENOTFOUND' ? `bind address ${host} does not resolve`
    : `cannot listen on ${where}: ${err.message}`;
  return new ListenError(`${spec.type === 'local' ? '-L' : '-D'} ${spec.spec}: ${why}.`);
}

/** How a client that will not be forwarded is told: a reset, or for SOCKS a reply code then a close. */
type Refusal = { socks: SocksVersion; reply: ReplyCode } | undefined;

/**
 * `-L` and `-D`: a local listener (TCP or Unix socket) whose every connection becomes a
 * channel through the tunnel, to the spec's target or, for `-D`, to the one the client
 * names in its SOCKS request.
 */
export class LocalForward extends EventEmitter<{ result: [ConnectionResult] }> {
  readonly #server: net.Server;
  readonly #pumps = new Pumps((result) => this.emit('result', result));
  /** -D clients still in their SOCKS handshake. */
  readonly #handshaking = new Set<net.Socket>();
  readonly #held = new Set<HeldClient>();
  readonly #name: string;

  constructor(readonly spec: ListenForwardSpec, private readonly deps: LocalForwardDeps) {
    super();
    // pauseOnConnect: a client is read only once it is held or pumped, never before its handlers are set.
    this.#server = net.createServer({ ...PUMPED_SOCKET_OPTIONS, pauseOnConnect: true }, (s) => void this.#accept(s));
    this.#name = forwardName(spec);
  }

  get name(): string {
    return this.#name;
  }

  /** Connections being pumped right now. */
  get active(): number {
    return this.#pumps.size;
  }

  /** Connections waiting for a tunnel (or for their channel to open). */
  get held(): number {
    return this.#held.size;
  }

  /** Every client this forward has open: pumped, held, or in its SOCKS handshake. */
  get connections(): number {
    return this.#pumps.size + this.#held.size + this.#handshaking.size;
  }

  /** Bytes forwarded so far, both ways, ended and live connections. */
  bytes(): { up: number; down: number } {
    return this.#pumps.bytes();
  }

  /** Opens the listener; resolves with where it listens (the bound port, for port 0). */
  async listen(): Promise<Endpoint> {
    const { listen } = this.spec;
    const flag = `${this.spec.type === 'local' ? '-L' : '-D'} ${this.spec.spec}`;
    try {
      if (listen.kind === 'unix') {
        await clearStaleSocket(listen.path, flag, this.deps.logger);
        listenPrivately(this.#server, listen.path);
      } else {
        this.#server.listen(listen.port, listen.host);
      }
      await once(this.#server, 'listening');
    } catch (err) {
      throw err instanceof ListenError ? err : listenError(this.spec, err as NodeJS.ErrnoException);
    }
    this.#server.on('error', (err) => this.deps.logger.error('listener error', { forward: this.#name, error: err.message }));
    if (listen.kind === 'unix') return listen;
    return { kind: 'tcp', host: listen.host, port: (this.#server.address() as net.AddressInfo).port };
  }

  async #accept(client: net.Socket): Promise<void> {
    const conn = ++connectionSeq;
    const log = this.deps.logger.child({ forward: this.#name, conn });
    const src = { address: client.remoteAddress ?? '127.0.0.1', port: client.remotePort ?? 0 };
    client.setNoDelay(true); // Nagle + delayed ACK cost ~40 ms per new connection otherwise
    const { tunnel, holdTimeoutMs, limits } = this.deps;
    const refuse = (result: ConnectionResult, message: string) => this.#refuse(client, undefined, log, result, message, { side: 'local', reason: result });
    if (limits.maxConnections > 0 && limits.connections() >= limits.maxConnections) {
      return refuse('limit', `connection reset: ${limits.maxConnections} connections already open; --max-connections raises the limit`);
    }
    if (tunnel.state !== 'ready') {
      if (holdTimeoutMs === 0) return refuse('not_ready', 'connection reset: no tunnel ready and --hold-timeout is 0');
      if (limits.held() >= limits.maxHeld) {
        return refuse('limit', `connection reset: ${limits.maxHeld} connections already held; --max-held raises the limit`);
      }
    }
    tunnel.noteNewClient();
    let target: Endpoint;
    let socks: SocksVersion | undefined;
    let early: Buffer | undefined;
    if (this.spec.type === 'dynamic') {
      const request = await this.#socksRequest(client, log);
      if (!request) return;
      ({ version: socks, rest: early } = request);
      target = { kind: 'tcp', host: request.target.host, port: request.target.port };
    } else {
      target = this.spec.target;
    }
    const held = new HeldClient(client, this.deps.holdBufferBytes, early);
    this.#held.add(held);
    log.debug('connection accepted', { event: 'accept', client: `${src.address}:${src.port}`, target: formatEndpoint(target), state: tunnel.state });
    const opened = await this.#open(held, target, socks, src, log).finally(() => this.#held.delete(held));
    if (!opened) return;
    const { session, channel } = opened;
    if (held.gone) {
      closeUnused(channel);
      log.debug('client left as its channel opened', { event: 'conn_end', side: 'client', reason: held.gone });
      return;
    }
    if (socks) client.write(socksReply(socks, REPLY.succeeded));
    this.#pumps.start(client, channel, session, held.release(), log);
  }

  /** -D: reads the client's SOCKS request; undefined when the handshake failed (the client was answered and closed). */
  async #socksRequest(client: net.Socket, log: Logger) {
    this.#handshaking.add(client);
    try {
      return await negotiateSocks(client, { auth: this.deps.socksAuth, timeoutMs: this.deps.socksTimeoutMs ?? DEFAULTS.socksHandshakeTimeoutMs });
    } catch (err) {
      log.warn('SOCKS handshake failed', { event: 'conn_end', side: 'client', reason: 'socks_error', error: (err as Error).message });
      this.emit('result', 'socks_error');
      return undefined;
    } finally {
      this.#handshaking.delete(client);
    }
  }

  /**
   * Waits for a ready tunnel and opens the channel, within the hold timeout. An open cut
   * short by the tunnel's death delivered nothing to the target, so it is re-issued on the
   * next tunnel. Resets the client and returns undefined when that cannot be done.
   */
  async #open(
    held: HeldClient,
    target: Endpoint,
    socks: SocksVersion | undefined,
    src: { address: string; port: number },
    log: Logger,
  ): Promise<{ session: SshSession; channel: ClientChannel } | undefined> {
    const { tunnel, holdTimeoutMs, channelOpenTimeoutMs } = this.deps;
    const where = formatEndpoint(target);
    const giveUpAt = performance.now() + Math.max(holdTimeoutMs, 1);
    const reset = (result: ConnectionResult, message: string, fields: Record<string, unknown>, reply: ReplyCode) => {
      held.release();
      this.#refuse(held.socket, socks && { socks, reply }, log, result, message, { target: where, heldBytes: held.bytes, ...fields });
    };
    for (let attempt = 1; ; attempt++) {
      let session: SshSession;
      try {
        session = await tunnel.whenReady(giveUpAt - performance.now(), held.left);
      } catch {
        if (held.gone) return undefined;
        reset(
          'hold_timeout',
          `connection ${socks ? 'refused' : 'reset'}: no tunnel ready within ${holdTimeoutMs} ms; --hold-timeout raises the limit`,
          { side: 'tunnel', reason: 'hold_timeout' },
          REPLY.networkUnreachable,
        );
        return undefined;
      }
      if (held.gone) {
        log.debug('client left while held', { event: 'conn_end', side: 'client', reason: held.gone });
        return undefined;
      }
      try {
        return { session, channel: await session.openChannel(target, src, channelOpenTimeoutMs) };
      } catch (err) {
        const { reason, message } = err as ChannelOpenError;
        if (reason === 'tunnel-lost' && performance.now() < giveUpAt && !held.gone) {
          log.info('re-issuing channel open on the next connection', { event: 'reopen', attempt, target: where });
          // The failed connection may still be the one in service for a moment (ssh2 said
          // "Not connected" before its close event): wait for the close or any state change.
          if (!session.closed && tunnel.serves(session)) {
            await new Promise<void>((resolve) => {
              const done = () => {
                session.off('close', done);
                tunnel.off('status', done);
                resolve();
              };
              session.once('close', done);
              tunnel.once('status', done);
            });
          }
          continue;
        }
        reset('target_refused', 'connection failed', { side: 'target', reason, error: message }, replyForOpenFailure(reason));
        return undefined;
      }
    }
  }

  /** A client that will not be forwarded: logged, counted, and reset (a SOCKS client gets its reply, then a close). */
  #refuse(client: net.Socket, refusal: Refusal, log: Logger, result: ConnectionResult, message: string, fields: Record<string, unknown>): void {
    log.warn(message, { event: 'conn_end', reset: !refusal, ...(refusal && { socksReply: refusal.reply }), ...fields });
    this.emit('result', result);
    if (!refusal) return resetSocket(client);
    client.on('error', () => {});
    client.end(socksReply(refusal.socks, refusal.reply), () => client.destroy());
  }

  /** Stops accepting; open connections carry on. */
  stopAccepting(): void {
    if (this.#server.listening) this.#server.close();
  }

  /** Resets every open and waiting connection (shutdown). Returns how many were cut. */
  resetAll(reason: string): number {
    const cut = this.connections;
    for (const client of this.#handshaking) resetSocket(client);
    this.#pumps.abortAll(reason);
    for (const held of this.#held) {
      held.cut(reason);
      this.emit('result', 'shutdown');
    }
    this.#held.clear();
    return cut;
  }
}
