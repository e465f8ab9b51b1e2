import fs from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import { EventEmitter, once } from 'node:events';
import { formatEndpoint, forwardName } from '../config/forward-spec.js';
import type { Endpoint, ListenForwardSpec } from '../config/types.js';
import { ListenError } from '../errors.js';
import { bindWithRetry } from '../listen-retry.js';
import { acceptedReads } from '../socket-reads.js';
import type { Logger } from '../log.js';
import type { SessionSource } from '../ssh/pool.js';
import { Hold, type Limits } from './hold.js';
import { pumpedSocketOptions } from './pump.js';
import { Pumps } from './pumps.js';
import type { ConnectionResult } from './result.js';
import { REPLY, negotiateSocks, replyForOpenFailure, socksReply, type ReplyCode, type SocksVersion } from './socks.js';
import { clearStaleSocket, listenPrivately } from './unix-socket.js';
import { resetSocket } from './reset-socket.js';
import type { AgentClient } from '../resume/agent-client.js';
import { offerHandles, TCP_CLIENT } from './accept-handles.js';
import type { LocalSocket } from '../local-socket.js';
import { TcpClient, type TcpHandle } from './tcp-client.js';

export interface LocalForwardDeps {
  /** The tunnel's SSH connection, or its pool with --connections. */
  source: SessionSource;
  logger: Logger;
  /** How long a client that arrives while no SSH connection is ready is held; 0 = not at all. */
  holdTimeoutMs: number;
  holdBufferBytes: number;
  channelOpenTimeoutMs: number;
  limits: Limits;
  /** -D: SOCKS5 username/password every client must give. */
  socksAuth?: { user: string; pass: string };
  /** --resume: streams opened through the server-side agent, resumed after a reconnect. */
  resume?: AgentClient;
  /** -D: a client that has not finished its SOCKS request by then is dropped. */
  socksTimeoutMs: number;
  /** Buffer limit, both ways, of each client socket. */
  socketHighWaterMarkBytes: number;
  /** A listen address in use is tried again for this long (another process may be freeing it); 0 = fail at once. */
  listenRetryMs: number;
  /** How often, within `listenRetryMs`. */
  listenRetryIntervalMs: number;
}

let connectionSeq = 0;

/**
 * An IPv6 address is listened on for IPv6 only, as OpenSSH does (IPV6_V6ONLY): `::` beside 0.0.0.0
 * (every interface) would otherwise take IPv4 too and collide with it, and `-6 -g` would serve IPv4.
 * An IPv4-mapped one (`::ffff:127.0.0.1`) is an IPv4 address, which an IPv6-only socket cannot bind.
 */
function listenOn(server: net.Server, port: number, host: string): void {
  server.listen({ port, host, ipv6Only: host.includes(':') && !host.toLowerCase().startsWith('::ffff:') });
}

let readsThroughReadableSaid = false;

/** Once per process: this Node's sockets are not as src/socket-reads.ts knows them (slower per message, not wrong). */
function sayReadsThroughReadable(log: Logger): void {
  if (readsThroughReadableSaid) return;
  readsThroughReadableSaid = true;
  log.debug(`clients are read through their Readable stream: node ${process.version}'s sockets lack the onread fields sshkeep sets`, { event: 'reads_readable' });
}

/** --resume's streams take a net.Socket: its forwards never take TcpClients (LocalForward's `#onTcpClient`). */
function netSocket(client: LocalSocket): net.Socket {
  if (client instanceof TcpClient) throw new Error('a TcpClient where a net.Socket is needed');
  return client as net.Socket;
}

/** How errors name a forward: its flag and the spec as written. */
function flagOf(spec: ListenForwardSpec): string {
  return `${spec.type === 'local' ? '-L' : '-D'} ${spec.spec}`;
}

function listenError(spec: ListenForwardSpec, err: NodeJS.ErrnoException): ListenError {
  const where = formatEndpoint(spec.listen);
  const host = spec.listen.kind === 'tcp' ? spec.listen.host : where;
  const why =
    err.code === 'EADDRINUSE' ? (spec.listen.kind === 'unix' ? `${where} is in use: another process listens on it` : `${where} is already in use; pick another local port or stop what holds it`)
    // libuv reports a socket path in a missing directory as EACCES.
    : err.code === 'EACCES' && spec.listen.kind === 'unix' && !fs.existsSync(path.dirname(spec.listen.path)) ? `the directory of ${where} does not exist`
    : err.code === 'EACCES' ? `permission denied to listen on ${where}${spec.listen.kind === 'tcp' ? ' (ports below 1024 need privileges)' : ''}`
    : err.code === 'EADDRNOTAVAIL' ? `${host} is not an address of this host`
    : err.code === 'ENOTFOUND' ? `bind address ${host} does not resolve`
    : `cannot listen on ${where}: ${err.message}`;
  return new ListenError(`${flagOf(spec)}: ${why}.`);
}

/** How a client that will not be forwarded is told: a reset, or for SOCKS a reply code then a close. */
type Refusal = { socks: SocksVersion; reply: ReplyCode } | undefined;

/**
 * `-L` and `-D`: a local listener (TCP or Unix socket) whose every connection becomes a
 * channel of the tunnel's SSH connection, to the spec's target or, for `-D`, to the one the client
 * names in its SOCKS request.
 */
export class LocalForward extends EventEmitter<{ result: [ConnectionResult] }> {
  /**
   * The listening sockets: the spec's address, then those it is also bound on (::1 beside
   * 127.0.0.1); a reload may hand them to the forward that replaces this one (`swapListener`).
   */
  #servers: net.Server[];
  readonly #onConnection = (s: net.Socket) => {
    if (!acceptedReads(s) && !s.destroyed) sayReadsThroughReadable(this.deps.logger);
    void this.#accept(s);
  };
  /**
   * -L and -D over TCP without --resume take their clients as TcpClients, without net.Socket's
   * stream layers (a new connection's CPU: BENCHMARKS.md, issue 17); undefined: net.Sockets.
   */
  readonly #onTcpClient: ((h: TcpHandle) => void) | undefined;
  readonly #onError = (err: Error) => this.deps.logger.error('listener error', { forward: this.#name, error: err.message });
  readonly #pumps = new Pumps((result) => this.emit('result', result));
  /** -D clients still in their SOCKS handshake. */
  readonly #handshaking = new Set<LocalSocket>();
  readonly #hold: Hold;
  #name: string;
  /** Set by stopAccepting: a bind still waiting for its address gives up rather than bind after the stop. */
  #stopped = false;

  constructor(readonly spec: ListenForwardSpec, private readonly deps: LocalForwardDeps) {
    super();
    // pauseOnConnect: a client is read only once it is held or pumped, never before its handlers are set.
    const hosts = 1 + (spec.listen.kind === 'tcp' ? (spec.alsoListenOn?.length ?? 0) : 0);
    this.#servers = Array.from({ length: hosts }, () => {
      const server = net.createServer({ ...pumpedSocketOptions(deps.socketHighWaterMarkBytes), pauseOnConnect: true }, this.#onConnection);
      if (spec.listen.kind === 'tcp') offerHandles(server);
      return server;
    });
    if (spec.listen.kind === 'tcp' && !deps.resume) {
      this.#onTcpClient = (h) => void this.#accept(new TcpClient(h, deps.socketHighWaterMarkBytes));
      for (const server of this.#servers) server.on(TCP_CLIENT, this.#onTcpClient);
    }
    this.#name = forwardName(spec);
    this.#hold = new Hold({
      source: deps.source,
      limits: deps.limits,
      holdTimeoutMs: deps.holdTimeoutMs,
      holdBufferBytes: deps.holdBufferBytes,
      channelOpenTimeoutMs: deps.channelOpenTimeoutMs,
    });
  }

  /** How logs, metrics and reports name this forward: by the port it bound, once listening (`-L 0:…`). */
  get name(): string {
    return this.#name;
  }

  /** Connections being pumped right now. */
  get active(): number {
    return this.#pumps.size;
  }

  /** Clients waiting for an SSH connection (or for their channel to open). */
  get held(): number {
    return this.#hold.size;
  }

  /** Every client this forward has open: pumped, held, or in its SOCKS handshake (what --max-connections counts). */
  get clients(): number {
    return this.#pumps.open + this.#hold.size + this.#handshaking.size;
  }

  /** `clients`, and those whose client has gone while their channel waits for the server's CLOSE (what a drain waits for). */
  get unfinished(): number {
    return this.#pumps.size + this.#hold.size + this.#handshaking.size;
  }

  /** Bytes forwarded so far, both ways, ended and live connections. */
  bytes(): { up: number; down: number } {
    return this.#pumps.bytes();
  }

  /**
   * Opens the listener, unless it took over one (`swapListener`); resolves with where it listens
   * (the bound port, for port 0). An address in use is tried again for up to `listenRetryMs`, as
   * a previous instance may still be draining; no permission or no such address would not fix
   * themselves and fail at once.
   */
  async listen(): Promise<Endpoint> {
    const first = this.#servers[0]!;
    const { listen } = this.spec;
    if (!first.listening) {
      await this.#bindWithRetry();
      first.on('error', this.#onError);
      if (listen.kind === 'tcp') await this.#bindAlso(listen.host, (first.address() as net.AddressInfo).port);
      if (this.#stopped) {
        this.stopAccepting(); // what bound after the stop closes again
        throw new ListenError(`${flagOf(this.spec)}: stopped while it was binding.`);
      }
    }
    if (listen.kind === 'unix') return listen;
    const bound: Endpoint = { kind: 'tcp', host: listen.host, port: (first.address() as net.AddressInfo).port };
    this.#name = forwardName({ ...this.spec, listen: bound });
    return bound;
  }

  /**
   * The other addresses, on the port the first one bound, as OpenSSH binds each address of
   * localhost: one it cannot bind (no IPv6 here, or the port taken there) is said and left out;
   * clients of the first address are served either way.
   */
  async #bindAlso(first: string, port: number): Promise<void> {
    const [primary, ...others] = this.#servers;
    const hosts = this.spec.alsoListenOn ?? [];
    const name = forwardName({ ...this.spec, listen: { kind: 'tcp', host: first, port } });
    this.#servers = [primary!];
    for (const [i, host] of hosts.entries()) {
      const server = others[i]!;
      try {
        listenOn(server, port, host);
        await once(server, 'listening');
        server.on('error', this.#onError);
        this.#servers.push(server);
        if (this.#stopped) server.close(); // stopped meanwhile: what stopAccepting closed stays closed
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const absent = code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT';
        const where = formatEndpoint({ kind: 'tcp', host, port });
        const fields = { event: 'listen_partial', forward: name, address: where, error: code ?? (err as Error).message };
        if (absent) this.deps.logger.debug(`${where}: no such address here; listening on ${formatEndpoint({ kind: 'tcp', host: first, port })} only`, fields);
        else this.deps.logger.warn(`cannot also listen on ${where} (${code ?? (err as Error).message}); clients of ${first} are served`, fields);
      }
    }
  }

  /** Does this forward listen where `spec` would? Then it can hand its listener over (a reload). */
  listensAt(spec: ListenForwardSpec): boolean {
    return this.#servers[0]!.listening && formatEndpoint(this.spec.listen) === formatEndpoint(spec.listen) && (this.spec.alsoListenOn ?? []).join() === (spec.alsoListenOn ?? []).join();
  }

  /**
   * Exchanges listening sockets with `other` (which must not have bound yet, or be swapping
   * back): a reload's replacement takes over the old forward's listener, which never closes,
   * so no client is refused in between. Each keeps the clients it already accepted; from this
   * turn on, new ones go to the forward now holding the listener. Swapping again undoes it.
   */
  swapListener(other: LocalForward): void {
    const each = (on: 'on' | 'off') => {
      for (const f of [this, other]) {
        for (const server of f.#servers) {
          server[on]('connection', f.#onConnection)[on]('error', f.#onError);
          if (f.#onTcpClient) server[on](TCP_CLIENT, f.#onTcpClient);
        }
      }
    };
    each('off');
    [this.#servers, other.#servers] = [other.#servers, this.#servers];
    each('on');
  }

  async #bindWithRetry(): Promise<void> {
    const { listen } = this.spec;
    let attempt = 0;
    try {
      await bindWithRetry(() => this.#bind(attempt++ === 0), { retryMs: this.deps.listenRetryMs, intervalMs: this.deps.listenRetryIntervalMs }, {
        what: formatEndpoint(listen),
        logger: this.deps.logger,
        fields: { forward: this.#name },
        stopped: () => (this.#stopped ? new ListenError(`${flagOf(this.spec)}: stopped while waiting for ${formatEndpoint(listen)} to be free.`) : undefined),
      });
    } catch (err) {
      throw err instanceof ListenError ? err : listenError(this.spec, err as NodeJS.ErrnoException);
    }
  }

  /** One attempt to listen; rejects with the socket's error. A Unix socket's holder is probed at the first only (see clearStaleSocket). */
  async #bind(first: boolean): Promise<void> {
    const { listen } = this.spec;
    if (listen.kind === 'unix') {
      await clearStaleSocket(listen.path, flagOf(this.spec), this.deps.logger, first);
      listenPrivately(this.#servers[0]!, listen.path);
    } else {
      listenOn(this.#servers[0]!, listen.port, listen.host);
    }
    await once(this.#servers[0]!, 'listening');
  }

  async #accept(client: net.Socket | TcpClient): Promise<void> {
    const conn = ++connectionSeq;
    const log = this.deps.logger.child({ forward: this.#name, conn });
    const src = { address: client.remoteAddress ?? '127.0.0.1', port: client.remotePort ?? 0 };
    client.setNoDelay(true); // Nagle + delayed ACK cost ~40 ms per new connection otherwise
    const dynamic = this.spec.type === 'dynamic';
    // -D answers a client it cannot hold in SOCKS, once it has read the request (below).
    const turnedAway = this.#overLimit() ?? (dynamic ? undefined : this.#hold.refusal());
    if (turnedAway) return this.#refuse(client, undefined, log, turnedAway.result, `client reset: ${turnedAway.message}`, { side: 'local', reason: turnedAway.result });
    const { source } = this.deps;
    source.noteNewClient();
    let target: Endpoint;
    let socks: SocksVersion | undefined;
    let early: Buffer | undefined;
    if (dynamic) {
      const request = await this.#socksRequest(client, log);
      if (!request) return;
      ({ version: socks, rest: early } = request);
      target = { kind: 'tcp', host: request.target.host, port: request.target.port };
      // Counted now, not at connect: others may have been held while this one sent its request.
      const unheld = this.#hold.refusal();
      if (unheld) {
        const reply = unheld.result === 'not_ready' ? REPLY.networkUnreachable : REPLY.generalFailure;
        return this.#refuse(client, { socks, reply }, log, unheld.result, `client refused: ${unheld.message}`, { side: 'local', reason: unheld.result, target: formatEndpoint(target) });
      }
    } else {
      target = this.spec.target;
    }
    if (log.isDebug()) log.debug('client accepted', { event: 'accept', client: `${src.address}:${src.port}`, target: formatEndpoint(target), state: source.state });
    const { resume } = this.deps;
    // --resume carries TCP targets through the agent (it dials host:port); a Unix socket target stays plain.
    const opened = resume && target.kind === 'tcp'
      ? await this.#hold.open(client, target, src, log, early, {
        open: (session, abandon) => resume.open(session, target.host, target.port, src, abandon),
        discard: (o) => resume.discard(o),
      })
      : await this.#hold.open(client, target, src, log, early);
    if (opened.ok) {
      if (socks) client.write(socksReply(socks, REPLY.succeeded));
      const { channel, session, held } = opened;
      // Without --resume an ssh2 channel; with it, what the agent client opened: a plain channel or a resumable stream.
      const opening = 'kind' in channel ? channel : ({ kind: 'plain', channel } as const);
      if (opening.kind === 'plain') return this.#pumps.start(client, opening.channel, session, held, log);
      return this.#pumps.add(client, (done) => resume!.carry(netSocket(client), opening, held, log, done), log);
    }
    if (opened.result === 'left') return;
    const fields = { target: formatEndpoint(target), heldBytes: opened.heldBytes };
    if (opened.result === 'hold_timeout') {
      const refusal = socks && { socks, reply: REPLY.networkUnreachable };
      return this.#refuse(client, refusal, log, 'hold_timeout', `client ${socks ? 'refused' : 'reset'}: ${opened.message}`, { ...fields, side: 'tunnel', reason: 'hold_timeout' });
    }
    const refusal = socks && { socks, reply: replyForOpenFailure(opened.reason) };
    this.#refuse(client, refusal, log, 'target_refused', 'client reset: the server could not open its channel', { ...fields, side: 'target', reason: opened.reason, error: opened.error });
  }

  /** --max-connections reached: why a client arriving now is turned away at once; undefined if it is let in. */
  #overLimit(): { result: ConnectionResult; message: string } | undefined {
    const { limits } = this.deps;
    if (limits.maxConnections > 0 && limits.clients() >= limits.maxConnections) {
      return { result: 'limit', message: `${limits.maxConnections} clients already open; --max-connections raises the limit` };
    }
    return undefined;
  }

  /** -D: reads the client's SOCKS request; undefined when the handshake failed (the client was answered and closed). */
  async #socksRequest(client: LocalSocket, log: Logger) {
    this.#handshaking.add(client);
    try {
      return await negotiateSocks(client, { auth: this.deps.socksAuth, timeoutMs: this.deps.socksTimeoutMs });
    } catch (err) {
      log.warn('SOCKS handshake failed', { event: 'conn_end', side: 'client', reason: 'socks_error', error: (err as Error).message });
      this.emit('result', 'socks_error');
      return undefined;
    } finally {
      this.#handshaking.delete(client);
    }
  }

  /** A client that will not be forwarded: logged, counted, and reset (a SOCKS client gets its reply, then a close). */
  #refuse(client: LocalSocket, refusal: Refusal, log: Logger, result: ConnectionResult, message: string, fields: Record<string, unknown>): void {
    log.warn(message, { event: 'conn_end', reset: !refusal, ...(refusal && { socksReply: refusal.reply }), ...fields });
    this.emit('result', result);
    if (!refusal) return resetSocket(client);
    client.on('error', () => {});
    client.write(socksReply(refusal.socks, refusal.reply));
    client.end(() => client.destroy());
  }

  /** Stops accepting; open connections carry on. */
  stopAccepting(): void {
    this.#stopped = true;
    for (const server of this.#servers) if (server.listening) server.close();
  }

  /** Resets every open and waiting connection (shutdown). Returns how many were cut. */
  resetAll(reason: string): number {
    const cut = this.clients;
    for (const client of this.#handshaking) resetSocket(client);
    this.#pumps.abortAll(reason);
    for (let n = this.#hold.cutAll(reason); n > 0; n--) this.emit('result', 'shutdown');
    return cut;
  }
}
