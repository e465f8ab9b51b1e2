import net from 'node:net';
import { EventEmitter } from 'node:events';
import { formatEndpoint, forwardName } from '../config/forward-spec.js';
import type { Endpoint, RemoteForwardSpec } from '../config/types.js';
import { ListenError } from '../errors.js';
import type { Logger } from '../log.js';
import { socketReads } from '../socket-reads.js';
import { sleep } from '../ssh/backoff.js';
import type { IncomingConnection, SshSession } from '../ssh/adapter.js';
import type { SshConnection } from '../ssh/connection.js';
import { pumpedSocketOptions } from './pump.js';
import { Pumps } from './pumps.js';
import type { ConnectionResult } from './result.js';
import { resetSocket } from './reset-socket.js';
import type { HeldBytes } from './hold.js';
import { REPLY, negotiateSocks, replyForConnectError, socksReply, type SocksRequest } from './socks.js';
import { connectTcp, tcpConnectsSupported } from './tcp-connect.js';
import type { LocalSocket } from '../local-socket.js';

/** waiting: no connection to ask on; requesting: asked; bound: the server listens; retrying: refused, asking again later. */
export type RemoteForwardState = 'waiting' | 'requesting' | 'bound' | 'retrying';

/** What /readyz reports of a remote forward. */
export interface RemoteForwardReport {
  spec: string;
  /** The forward's name in logs and metrics. */
  name: string;
  state: RemoteForwardState;
  /** The port the server listens on (its choice for `-R 0:…`). */
  port: number | undefined;
  /** Why the last request was refused, while retrying. */
  error: string | undefined;
}

export interface RemoteForwardDeps {
  connection: SshConnection;
  logger: Logger;
  /** A local target that does not accept within this time is refused to the server. */
  connectTimeoutMs: number;
  /** ExitOnForwardFailure: a refusal on the first connection is fatal instead of retried. */
  exitOnFailure: boolean;
  /** The delay before asking again after refusal `attempt` (1, 2, …) on one connection. */
  retryDelay: (attempt: number) => number;
  /** Buffer limit, both ways, of each local target socket. */
  socketHighWaterMarkBytes: number;
  /** Without a target: how long a connection from the server may take to make its SOCKS request. */
  socksTimeoutMs: number;
}

/** A connection from the server has sent nothing yet when it is pumped. */
const NOTHING_HELD: HeldBytes = Object.freeze({ chunks: [], bytes: 0, ended: false }) as HeldBytes;

let connectionSeq = 0;

/** How long a new connection waits for the old one's cancel to be answered before asking for the port anyway. */
const RELEASE_WAIT_MS = 1_000;

/** `cancelled`, or RELEASE_WAIT_MS, whichever comes first (an old connection that hangs does not hold the new one up). */
function cancelledOrLate(cancelled: Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, RELEASE_WAIT_MS).unref();
    void cancelled.then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** A refusal that lasts is said at warn this often; each attempt in between at debug. */
const REFUSAL_WARN_EVERY_MS = 10 * 60_000;

/** The first refusal, with its likely causes: a socket file is never given up by waiting, unlike a port. */
function firstRefusal(listen: Endpoint): string {
  if (listen.kind === 'unix') {
    return 'the server refused the remote forward; asking again. A socket file left by an earlier session stays until removed: sshd replaces it only with StreamLocalBindUnlink yes; otherwise the server does not allow it or cannot create the file';
  }
  return 'the server refused the remote forward; asking again. After a reconnect, the dead session\'s sshd holds the port until it notices (ClientAliveInterval on the server); otherwise another process holds it or the server does not allow it';
}

/**
 * `-R`: asks every new SSH connection to listen on the server, and connects each
 * connection the server hands back to the local target. A refusal (the port still held by
 * the previous, dead session until sshd notices) is asked again every half second, then less often.
 */
export class RemoteForward extends EventEmitter<{ result: [ConnectionResult]; state: [RemoteForwardState] }> {
  readonly name: string;
  #state: RemoteForwardState = 'waiting';
  /** The connection the server listens for us on, and the port it bound. */
  #bound: { session: SshSession; port: number | undefined } | undefined;
  #error: string | undefined;
  /** Abandons the request loop of a connection that has been replaced or stopped. */
  #loop: AbortController | undefined;
  readonly #pumps = new Pumps((result) => this.emit('result', result));
  #first: { resolve(): void; reject(err: Error): void } | undefined;
  /** Settles after the first request: rejects when it was refused and ExitOnForwardFailure is set. */
  readonly firstResult: Promise<void>;

  constructor(readonly spec: RemoteForwardSpec, private readonly deps: RemoteForwardDeps) {
    super();
    this.name = forwardName(spec);
    this.firstResult = new Promise((resolve, reject) => (this.#first = { resolve, reject }));
    this.firstResult.catch(() => {}); // observed by whoever cares about ExitOnForwardFailure
  }

  get state(): RemoteForwardState {
    return this.#state;
  }

  /** The server has answered the first request (bound, or refused and asked again): a start is not declared before. */
  get answered(): boolean {
    return this.#first === undefined;
  }

  /** Connections being pumped right now (a channel waiting for the server's CLOSE included). */
  get active(): number {
    return this.#pumps.size;
  }

  /** Connections whose local socket (the target's) is still open: what --max-connections counts. */
  get open(): number {
    return this.#pumps.open;
  }

  bytes(): { up: number; down: number } {
    return this.#pumps.bytes();
  }

  report(): RemoteForwardReport {
    return { spec: this.spec.spec, name: this.name, state: this.#state, port: this.#bound?.port, error: this.#state === 'bound' ? undefined : this.#error };
  }

  /** Requests the forward on every connection the tunnel adopts from now on. */
  start(): void {
    this.deps.connection.on('session', this.#onSession);
    const ready = this.deps.connection.readySession;
    if (ready) this.#onSession(ready);
  }

  readonly #onSession = (session: SshSession): void => {
    this.#loop?.abort();
    const loop = new AbortController();
    this.#loop = loop;
    // Make-before-break: the old connection, if it is still up, lets go of the port first, and the
    // new one asks once the server has said so (both at once, the new request could lose the race).
    const old = this.#bound;
    this.#bound = undefined;
    const released = old && old.session !== session ? cancelledOrLate(old.session.unforwardIn(this.spec.listen, old.port)) : Promise.resolve();
    void released.then(() => this.#request(session, loop.signal));
  };

  #setState(to: RemoteForwardState): void {
    if (this.#state === to) return;
    this.#state = to;
    this.emit('state', to);
  }

  async #request(session: SshSession, signal: AbortSignal): Promise<void> {
    const { logger, exitOnFailure } = this.deps;
    const log = logger.child({ forward: this.name });
    let warnedAt = 0;
    for (let attempt = 1; !signal.aborted && !session.closed; attempt++) {
      this.#setState('requesting');
      try {
        const port = await session.forwardIn(this.spec.listen, (conn) => this.#incoming(session, conn));
        if (signal.aborted || session.closed) return;
        this.#bound = { session, port };
        this.#setState('bound');
        const fields = { event: 'remote_listen', forward: this.name, port, attempt };
        log.info(this.spec.listen.kind === 'tcp' && this.spec.listen.port === 0 ? `the server listens for us on port ${port}` : 'the server listens for us', fields);
        session.once('close', () => {
          if (this.#bound?.session !== session) return;
          this.#bound = undefined;
          this.#setState('waiting');
        });
        this.#first?.resolve();
        this.#first = undefined;
        return;
      } catch (err) {
        if (signal.aborted || session.closed) return;
        this.#error = (err as Error).message;
        if (this.#first && exitOnFailure) {
          this.#setState('retrying');
          this.#first.reject(new ListenError(`-R ${this.spec.spec}: the server refused to listen on ${formatEndpoint(this.spec.listen)} (${this.#error}), and ExitOnForwardFailure is set.`));
          return;
        }
        this.#first?.resolve();
        this.#first = undefined;
        this.#setState('retrying');
        const delayMs = this.deps.retryDelay(attempt);
        const fields = { event: 'remote_refused', attempt, delayMs, error: this.#error };
        // Said at the first refusal and then once in a while (every attempt is at debug): a refusal that lasts is a server's policy or another process's port, not news every 500 ms.
        if (attempt === 1 || Date.now() - warnedAt >= REFUSAL_WARN_EVERY_MS) {
          warnedAt = Date.now();
          log.warn(attempt === 1 ? firstRefusal(this.spec.listen) : `the server still refuses the remote forward (${attempt} times); asking again`, fields);
        } else {
          log.debug('the server refused the remote forward', fields);
        }
        await sleep(delayMs, signal);
      }
    }
  }

  /** A connection to the server's listener: connect the local target (without one, what its SOCKS request asks for), then pump. */
  #incoming(session: SshSession, conn: IncomingConnection): void {
    const id = ++connectionSeq;
    const log = this.deps.logger.child({ forward: this.name, conn: `r${id}` });
    const { target } = this.spec;
    if (!target) return void this.#socks(session, conn, log);
    this.#connect(session, target, conn.origin, log, (local) => this.#pumps.start(local, conn.acceptForward(), session, NOTHING_HELD, log, 'target'), () => conn.reject());
  }

  /**
   * `-R [bind_address:]port`: the connection's first bytes are a SOCKS request (no
   * authentication, as OpenSSH's), answered once the target it names accepts or refuses.
   */
  async #socks(session: SshSession, conn: IncomingConnection, log: Logger): Promise<void> {
    const channel = conn.accept();
    let request: SocksRequest;
    try {
      request = await negotiateSocks(channel, { timeoutMs: this.deps.socksTimeoutMs });
    } catch (err) {
      log.warn('SOCKS handshake failed', { event: 'conn_end', side: 'client', origin: conn.origin, reason: 'socks_error', error: (err as Error).message });
      this.emit('result', 'socks_error');
      return;
    }
    const { version, rest } = request;
    const target: Endpoint = { kind: 'tcp', ...request.target };
    this.#connect(session, target, conn.origin, log, (local) => {
      channel.write(socksReply(version, REPLY.succeeded));
      if (rest.length) local.write(rest);
      this.#pumps.start(local, channel, session, NOTHING_HELD, log, 'target');
    }, (code) => {
      channel.on('error', () => {}); // the reply may not flush before the connection goes
      channel.resume(); // paused by the handshake: its 'end', and so its 'close' and its count, wait for a reader
      channel.end(socksReply(version, replyForConnectError(code)));
    });
  }

  /**
   * Connects `target` here: `connected` with the socket, or `refused` with the error's code, logged
   * and counted. A TCP target is a TcpClient (src/forward/tcp-connect.ts) where Node's handles are
   * as it knows them; a Unix socket, or a TCP target elsewhere, a net.Socket read through onread.
   */
  #connect(session: SshSession, target: Endpoint, origin: string, log: Logger, connected: (local: LocalSocket) => void, refused: (code: string | undefined) => void): void {
    const failed = (err: NodeJS.ErrnoException) => {
      refused(err.code);
      log.warn('remote forward: the local target refused', { event: 'conn_end', side: 'target', origin, target: formatEndpoint(target), error: err.code ?? err.message });
      this.emit('result', 'target_refused');
    };
    const accepted = (local: LocalSocket & { setNoDelay(on: boolean): unknown }) => {
      local.setNoDelay(true);
      if (session.closed) return resetSocket(local);
      connected(local);
      log.debug('client from the server forwarded', { event: 'accept', origin, target: formatEndpoint(target) });
    };
    const { socketHighWaterMarkBytes, connectTimeoutMs } = this.deps;
    if (target.kind === 'tcp' && tcpConnectsSupported()) {
      return connectTcp(target.host, target.port, socketHighWaterMarkBytes, connectTimeoutMs, (err, client) => (err ? failed(err) : accepted(client!)));
    }
    const options = { ...pumpedSocketOptions(socketHighWaterMarkBytes), onread: socketReads(() => local) };
    const local: net.Socket = target.kind === 'tcp' ? net.connect({ host: target.host, port: target.port, ...options }) : net.connect({ path: target.path, ...options });
    const timer = setTimeout(() => local.destroy(Object.assign(new Error(`the local target did not accept within ${connectTimeoutMs} ms`), { code: 'ETIMEDOUT' })), connectTimeoutMs);
    local.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      failed(err);
    });
    local.once('connect', () => {
      clearTimeout(timer);
      local.removeAllListeners('error');
      accepted(local);
    });
  }

  /** Stops asking and cancels the forward on the server (best effort); open connections carry on. */
  stopAccepting(): void {
    this.deps.connection.off('session', this.#onSession);
    this.#loop?.abort();
    if (this.#bound) void this.#bound.session.unforwardIn(this.spec.listen, this.#bound.port);
    this.#bound = undefined;
    this.#setState('waiting');
  }

  /** Resets every open connection (shutdown). Returns how many were cut. */
  resetAll(reason: string): number {
    return this.#pumps.abortAll(reason);
  }
}
