import net from 'node:net';
import { EventEmitter, once } from 'node:events';
import { ListenError } from '../errors.js';
import type { LocalForward as LocalForwardSpec } from '../config/types.js';
import type { Logger } from '../ops/logger.js';
import type { Tunnel } from '../tunnel/tunnel.js';
import type { ClientChannel } from 'ssh2';
import type { ChannelOpenError } from '../errors.js';
import { closeUnused, type SshSession } from '../tunnel/ssh-adapter.js';
import { HeldClient } from './held-client.js';
import { Pump, type PumpResult } from './pump.js';

export interface LocalForwardDeps {
  tunnel: Tunnel;
  logger: Logger;
  /** How long a client that arrives while no tunnel is ready is held; 0 = not at all. */
  holdTimeoutMs: number;
  holdBufferBytes: number;
  channelOpenTimeoutMs: number;
  limits: Limits;
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

/** How a client connection ended, for the connections_total metric. */
export type ConnectionResult =
  | 'ok' | 'target_refused' | 'hold_timeout' | 'reset_by_tunnel_loss' | 'limit' | 'not_ready' | 'shutdown';

function resultOf(r: PumpResult): ConnectionResult {
  if (!r.reset || r.side === 'client' || r.side === 'target') return 'ok';
  return r.side === 'tunnel' ? 'reset_by_tunnel_loss' : 'shutdown';
}

let connectionSeq = 0;

function listenError(spec: LocalForwardSpec, err: NodeJS.ErrnoException): ListenError {
  const where = `${spec.bindAddress}:${spec.bindPort}`;
  const why =
    err.code === 'EADDRINUSE' ? `${where} is already in use; pick another local port or stop what holds it`
    : err.code === 'EACCES' ? `permission denied to listen on ${where} (ports below 1024 need privileges)`
    : err.code === 'EADDRNOTAVAIL' ? `${spec.bindAddress} is not an address of this host`
    : err.code === 'ENOTFOUND' ? `bind address ${spec.bindAddress} does not resolve`
    : `cannot listen on ${where}: ${err.message}`;
  return new ListenError(`-L ${spec.spec}: ${why}.`);
}

/** `-L`: a local listener whose every connection becomes a direct-tcpip channel through the tunnel. */
export class LocalForward extends EventEmitter<{ result: [ConnectionResult] }> {
  readonly #server: net.Server;
  readonly #pumps = new Set<Pump>();
  /** Bytes of connections that have ended; live ones are read from their pumps. */
  #bytesDone = { up: 0, down: 0 };
  readonly #held = new Set<HeldClient>();
  readonly #name: string;

  constructor(readonly spec: LocalForwardSpec, private readonly deps: LocalForwardDeps) {
    super();
    // pauseOnConnect: a client is read only once it is held or pumped, never before its handlers are set.
    this.#server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => void this.#accept(s));
    this.#name = `${spec.bindAddress}:${spec.bindPort}->${spec.targetHost}:${spec.targetPort}`;
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

  /** Bytes forwarded so far, both ways, ended and live connections. */
  bytes(): { up: number; down: number } {
    let { up, down } = this.#bytesDone;
    for (const p of this.#pumps) {
      up += p.bytesUp;
      down += p.bytesDown;
    }
    return { up, down };
  }

  async listen(): Promise<net.AddressInfo> {
    this.#server.listen(this.spec.bindPort, this.spec.bindAddress);
    try {
      await once(this.#server, 'listening');
    } catch (err) {
      throw listenError(this.spec, err as NodeJS.ErrnoException);
    }
    this.#server.on('error', (err) => this.deps.logger.error('listener error', { forward: this.#name, error: err.message }));
    return this.#server.address() as net.AddressInfo;
  }

  async #accept(client: net.Socket): Promise<void> {
    const conn = ++connectionSeq;
    const log = this.deps.logger.child({ forward: this.#name, conn });
    const src = { address: client.remoteAddress ?? '127.0.0.1', port: client.remotePort ?? 0 };
    client.setNoDelay(true); // Nagle + delayed ACK cost ~40 ms per new connection otherwise
    const { tunnel, holdTimeoutMs, limits } = this.deps;
    const refuse = (result: ConnectionResult, message: string) => this.#refuse(client, log, result, message, { side: 'local', reason: result });
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
    const held = new HeldClient(client, this.deps.holdBufferBytes);
    this.#held.add(held);
    log.debug('connection accepted', { event: 'accept', client: `${src.address}:${src.port}`, state: tunnel.state });
    const opened = await this.#open(held, src, log).finally(() => this.#held.delete(held));
    if (!opened) return;
    const { session, channel } = opened;
    if (held.gone) {
      closeUnused(channel);
      log.debug('client left as its channel opened', { event: 'conn_end', side: 'client', reason: held.gone });
      return;
    }
    const started = Date.now();
    const pump = new Pump(client, channel, session, held.release(), (r: PumpResult) => {
      this.#pumps.delete(pump);
      this.#bytesDone.up += r.bytesUp;
      this.#bytesDone.down += r.bytesDown;
      this.emit('result', resultOf(r));
      const fields = { event: 'conn_end', side: r.side, reason: r.reason, reset: r.reset, bytesUp: r.bytesUp, bytesDown: r.bytesDown, durationMs: Date.now() - started };
      if (r.reset) log.warn('connection reset', fields);
      else log.info('connection closed', fields);
    });
    this.#pumps.add(pump);
  }

  /**
   * Waits for a ready tunnel and opens the channel, within the hold timeout. An open cut
   * short by the tunnel's death delivered nothing to the target, so it is re-issued on the
   * next tunnel. Resets the client and returns undefined when that cannot be done.
   */
  async #open(held: HeldClient, src: { address: string; port: number }, log: Logger): Promise<{ session: SshSession; channel: ClientChannel } | undefined> {
    const { tunnel, holdTimeoutMs, channelOpenTimeoutMs } = this.deps;
    const { targetHost, targetPort } = this.spec;
    const target = `${targetHost}:${targetPort}`;
    const giveUpAt = performance.now() + Math.max(holdTimeoutMs, 1);
    const reset = (result: ConnectionResult, message: string, fields: Record<string, unknown>) => {
      held.release();
      this.#refuse(held.socket, log, result, message, { heldBytes: held.bytes, ...fields });
    };
    for (let attempt = 1; ; attempt++) {
      let session: SshSession;
      try {
        session = await tunnel.whenReady(giveUpAt - performance.now(), held.left);
      } catch {
        if (held.gone) return undefined;
        reset('hold_timeout', `connection reset: no tunnel ready within ${holdTimeoutMs} ms; --hold-timeout raises the limit`, {
          side: 'tunnel',
          reason: 'hold_timeout',
        });
        return undefined;
      }
      if (held.gone) {
        log.debug('client left while held', { event: 'conn_end', side: 'client', reason: held.gone });
        return undefined;
      }
      try {
        return { session, channel: await session.forwardOut(src, targetHost, targetPort, channelOpenTimeoutMs) };
      } catch (err) {
        const { reason, message } = err as ChannelOpenError;
        if (reason === 'tunnel-lost' && performance.now() < giveUpAt && !held.gone) {
          log.info('re-issuing channel open on the next connection', { event: 'reopen', attempt, target });
          // The failed connection may still be the one in service for a moment (ssh2 said
          // "Not connected" before its close event): wait for the close or any state change.
          if (!session.closed && tunnel.readySession === session) {
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
        reset('target_refused', 'connection failed', { side: 'target', reason, error: message });
        return undefined;
      }
    }
  }

  /** A client that will not be forwarded: logged, counted, and reset. */
  #refuse(client: net.Socket, log: Logger, result: ConnectionResult, message: string, fields: Record<string, unknown>): void {
    log.warn(message, { event: 'conn_end', reset: true, target: `${this.spec.targetHost}:${this.spec.targetPort}`, ...fields });
    this.emit('result', result);
    client.on('error', () => {});
    client.resetAndDestroy();
  }

  /** Stops accepting; open connections carry on. */
  stopAccepting(): void {
    if (this.#server.listening) this.#server.close();
  }

  /** Resets every open and waiting connection (shutdown). Returns how many were cut. */
  resetAll(reason: string): number {
    const cut = this.#pumps.size + this.#held.size;
    for (const pump of [...this.#pumps]) pump.abort('local', reason);
    for (const held of this.#held) {
      held.cut(reason);
      this.emit('result', 'shutdown');
    }
    this.#held.clear();
    return cut;
  }
}
