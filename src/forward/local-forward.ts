import net from 'node:net';
import { once } from 'node:events';
import { ListenError } from '../errors.js';
import type { LocalForward as LocalForwardSpec } from '../config/types.js';
import type { Logger } from '../ops/logger.js';
import type { Tunnel } from '../tunnel/tunnel.js';
import { Pump, type PumpResult } from './pump.js';

export interface LocalForwardDeps {
  tunnel: Tunnel;
  logger: Logger;
  /** How long a client that arrives while the tunnel is not ready waits for it. */
  readyTimeoutMs: number;
  channelOpenTimeoutMs: number;
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
export class LocalForward {
  readonly #server: net.Server;
  readonly #pumps = new Set<Pump>();
  readonly #pending = new Set<net.Socket>();
  readonly #name: string;

  constructor(readonly spec: LocalForwardSpec, private readonly deps: LocalForwardDeps) {
    // pauseOnConnect: nothing is read from a client until its channel is open to take it.
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
    this.#pending.add(client);
    let clientError: string | undefined;
    const onEarlyError = (err: NodeJS.ErrnoException) => (clientError = err.code ?? err.message);
    client.on('error', onEarlyError);
    log.debug('connection accepted', { event: 'accept', client: `${src.address}:${src.port}` });

    const { targetHost, targetPort } = this.spec;
    let channel;
    let session;
    try {
      session = await this.deps.tunnel.whenReady(this.deps.readyTimeoutMs);
      channel = await session.forwardOut(src, targetHost, targetPort, this.deps.channelOpenTimeoutMs);
    } catch (err) {
      this.#pending.delete(client);
      const reason = (err as { reason?: string }).reason;
      log.warn('connection failed', { event: 'conn_end', side: 'target', reason: reason ?? 'tunnel-not-ready', error: (err as Error).message, target: `${targetHost}:${targetPort}` });
      client.resetAndDestroy();
      return;
    } finally {
      client.off('error', onEarlyError);
    }
    this.#pending.delete(client);
    if (client.destroyed || clientError) {
      channel.close();
      log.debug('client left before its channel opened', { event: 'conn_end', side: 'client', error: clientError });
      return;
    }
    const started = Date.now();
    const pump = new Pump(client, channel, session, (r: PumpResult) => {
      this.#pumps.delete(pump);
      const fields = { event: 'conn_end', side: r.side, reason: r.reason, reset: r.reset, bytesUp: r.bytesUp, bytesDown: r.bytesDown, durationMs: Date.now() - started };
      if (r.reset) log.warn('connection reset', fields);
      else log.info('connection closed', fields);
    });
    this.#pumps.add(pump);
  }

  /** Stops accepting; open connections carry on. */
  stopAccepting(): void {
    if (this.#server.listening) this.#server.close();
  }

  /** Resets every open and waiting connection (shutdown). Returns how many were cut. */
  resetAll(reason: string): number {
    const cut = this.#pumps.size + this.#pending.size;
    for (const pump of [...this.#pumps]) pump.abort('local', reason);
    for (const s of this.#pending) s.resetAndDestroy();
    this.#pending.clear();
    return cut;
  }
}
