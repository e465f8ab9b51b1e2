import { performance } from 'node:perf_hooks';
import type { LocalSocket } from '../local-socket.js';
import { formatEndpoint } from '../config/forward-spec.js';
import type { Endpoint } from '../config/types.js';
import type { ChannelOpenError } from '../errors.js';
import type { Logger } from '../log.js';
import type { SessionSource } from '../ssh/pool.js';
import { closeUnused, type ForwardChannel, type SshSession } from '../ssh/adapter.js';
import { resetSocket } from './reset-socket.js';
import { HEARTBEAT_TUNING } from '../tuning.js';
import { queuedDeadline } from '../ssh/deadline.js';

/** What a held client sent before its channel opened. */
export interface HeldBytes {
  chunks: Buffer[];
  bytes: number;
  /** The client half-closed while held: send EOF after the chunks. */
  ended: boolean;
}

/**
 * A client waiting for an SSH connection: its first bytes are read and kept (up to
 * `limitBytes`, then the socket is paused, not dropped), and its departure is
 * noticed, so a client that gives up while held is not forwarded.
 */
class HeldClient {
  readonly #held: HeldBytes = { chunks: [], bytes: 0, ended: false };
  #gone: string | undefined;
  readonly #onData = (chunk: Buffer) => {
    this.#held.chunks.push(chunk);
    this.#held.bytes += chunk.length;
    if (this.#held.bytes >= this.limitBytes) this.socket.pause();
  };
  readonly #onEnd = () => (this.#held.ended = true);
  /** Who waits on this client's behalf, told when it leaves (at most one at a time: Hold.#ready). */
  #onLeave: (() => void) | undefined;
  readonly #onError = (err: NodeJS.ErrnoException) => this.#leave(`client error: ${err.code ?? err.message}`);
  readonly #onClose = () => this.#leave('client closed while held');

  /** `early`: bytes already read from the client (sent right after its SOCKS request). */
  constructor(readonly socket: LocalSocket, private readonly limitBytes: number, early?: Buffer) {
    if (early?.length) this.#onData(early);
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
    // Accepted paused (pauseOnConnect): a 'data' listener alone does not start reading. A SOCKS
    // client's early bytes may already fill --hold-buffer: then it stays paused.
    if (this.#held.bytes < this.limitBytes) socket.resume();
  }

  #leave(why: string): void {
    this.#gone ??= why;
    this.#onLeave?.();
  }

  /**
   * `onLeave` is called if the client leaves while held (stop waiting on its behalf); undefined
   * stops that. A plain callback, not an AbortSignal: every client passes here.
   */
  set onLeave(onLeave: (() => void) | undefined) {
    this.#onLeave = onLeave;
  }

  /** Why the client left while held, or undefined if it is still there. */
  get gone(): string | undefined {
    return this.#gone;
  }

  get bytes(): number {
    return this.#held.bytes;
  }

  /** Resets the client (shutdown): whoever waits on its behalf stops. */
  cut(why: string): void {
    this.#leave(why);
    this.release();
    resetSocket(this.socket);
  }

  /** Stops holding: the socket is paused and handed over with what it sent so far. */
  release(): HeldBytes {
    this.socket.pause();
    this.socket.off('data', this.#onData);
    this.socket.off('end', this.#onEnd);
    this.socket.off('error', this.#onError);
    this.socket.off('close', this.#onClose);
    return this.#held;
  }
}

/** Process-wide limits, shared by every forward of every tunnel. */
export interface Limits {
  /** --max-connections: clients forwarded or held at once; 0 = unlimited. */
  maxConnections: number;
  /** --max-held: clients held at once. */
  maxHeld: number;
  /** Clients forwarded or held right now, process-wide. */
  clients(): number;
  /** Clients held right now, process-wide. */
  held(): number;
}

export interface HoldOptions {
  /** The tunnel's SSH connection, or its pool with --connections. */
  source: SessionSource;
  limits: Limits;
  /** How long a client that arrives while no connection is ready is held; 0 = not at all. */
  holdTimeoutMs: number;
  holdBufferBytes: number;
  channelOpenTimeoutMs: number;
}

/** The session an open was lost on, and when: not used again unless its server is heard from after that. */
interface Failed {
  session: SshSession;
  at: number;
}

/** How holding a client ended: its channel is open, it could not be, or the client left. */
export type HoldOutcome<C = ForwardChannel> =
  | { ok: true; session: SshSession; channel: C; held: HeldBytes }
  | { ok: false; result: 'hold_timeout'; message: string; heldBytes: number }
  | { ok: false; result: 'target_refused'; reason: string; error: string; heldBytes: number }
  | { ok: false; result: 'left' };

/**
 * How a held client's channel is opened on a ready session (by default a channel to its
 * target); `discard` closes one the client left before it could be used.
 */
export interface Opener<C> {
  open(session: SshSession, abandon: AbortSignal | undefined): Promise<C>;
  discard(channel: C): void;
}

/**
 * Holding clients until an SSH connection is ready, for -L and -D: each held client's
 * first bytes (bounded by --hold-buffer), the limits on how many (--max-held) and how long
 * (--hold-timeout), waiting for a ready connection, re-issuing an open that a lost or
 * replaced connection cut short, and cutting every held client at shutdown.
 */
export class Hold {
  readonly #clients = new Set<HeldClient>();

  constructor(private readonly options: HoldOptions) {}

  /** Clients held right now (waiting for a connection or for their channel to open). */
  get size(): number {
    return this.#clients.size;
  }

  /** Why a client arriving now cannot be held, naming the option that would allow it; undefined if it can (or need not be). */
  refusal(): { result: 'not_ready' | 'limit'; message: string } | undefined {
    const { source, holdTimeoutMs, limits } = this.options;
    if (source.state === 'ready') return undefined;
    if (holdTimeoutMs === 0) return { result: 'not_ready', message: 'no SSH connection ready and --hold-timeout is 0' };
    if (limits.held() >= limits.maxHeld) {
      return { result: 'limit', message: `${limits.maxHeld} clients already held; --max-held raises the limit` };
    }
    return undefined;
  }

  /**
   * Holds `socket` until a ready connection has opened a channel to `target`, within the hold
   * timeout. An open cut short by a lost or replaced connection delivered nothing to the
   * target, so it is re-issued on the next one. `early`: bytes already read from the client;
   * `opener`: how the channel is opened, when not as a plain channel to `target` (--resume).
   */
  open(socket: LocalSocket, target: Endpoint, src: { address: string; port: number }, log: Logger, early?: Buffer): Promise<HoldOutcome>;
  open<C>(socket: LocalSocket, target: Endpoint, src: { address: string; port: number }, log: Logger, early: Buffer | undefined, opener: Opener<C>): Promise<HoldOutcome<C>>;
  async open<C>(socket: LocalSocket, target: Endpoint, src: { address: string; port: number }, log: Logger, early?: Buffer, opener?: Opener<C>): Promise<HoldOutcome<C | ForwardChannel>> {
    const held = new HeldClient(socket, this.options.holdBufferBytes, early);
    this.#clients.add(held);
    const plain: Opener<ForwardChannel> = { open: (session, abandon) => this.#openOn(session, target, src, abandon), discard: closeUnused };
    try {
      return await this.#open<C | ForwardChannel>(held, target, log, opener ?? plain);
    } finally {
      this.#clients.delete(held);
    }
  }

  async #open<C>(held: HeldClient, target: Endpoint, log: Logger, opener: Opener<C>): Promise<HoldOutcome<C>> {
    const { holdTimeoutMs } = this.options;
    const giveUpAt = performance.now() + Math.max(holdTimeoutMs, 1);
    let failed: Failed | undefined;
    for (let attempt = 1; ; attempt++) {
      const session = await this.#ready(held, failed, giveUpAt);
      if (held.gone) {
        log.debug('client left while held', { event: 'conn_end', side: 'client', reason: held.gone });
        return { ok: false, result: 'left' };
      }
      if (!session) {
        held.release();
        return { ok: false, result: 'hold_timeout', message: `no SSH connection ready within ${holdTimeoutMs} ms; --hold-timeout raises the limit`, heldBytes: held.bytes };
      }
      // An open still unanswered when the link has gone quiet is a reason to probe it: a link that died
      // under traffic is not probed for a new client, and would cost this one the open's whole timeout.
      const cancelNudge = queuedDeadline(() => this.options.source.noteNewClient('a channel open unanswered'), HEARTBEAT_TUNING.onDemandQuietMs + 100);
      try {
        const channel = await opener.open(session, this.options.source.supersededSignal(session));
        if (held.gone) {
          opener.discard(channel);
          log.debug('client left as its channel opened', { event: 'conn_end', side: 'client', reason: held.gone });
          return { ok: false, result: 'left' };
        }
        return { ok: true, session, channel, held: held.release() };
      } catch (err) {
        // Cut while its open was out (shutdown, drain): already counted and reset by cutAll().
        if (held.gone) return { ok: false, result: 'left' };
        const { reason, message } = err as ChannelOpenError;
        if (reason === 'tunnel-lost' && performance.now() < giveUpAt) {
          log.info('re-issuing channel open on the next connection', { event: 'reopen', attempt, target: formatEndpoint(target), error: message });
          failed = { session, at: performance.now() };
          continue;
        }
        held.release();
        // Lost with the link, past the hold: the tunnel's failure, not the target's.
        if (reason === 'tunnel-lost') return { ok: false, result: 'hold_timeout', message: `no SSH connection answered within ${holdTimeoutMs} ms (${message}); --hold-timeout raises the limit`, heldBytes: held.bytes };
        return { ok: false, result: 'target_refused', reason, error: message, heldBytes: held.bytes };
      } finally {
        cancelNudge();
      }
    }
  }

  /**
   * A ready session other than `failed` (unless that one has heard from its server since: it
   * came back), waiting for one until `giveUpAt`; undefined when none came, the client left, or
   * the connection closed for good. Waiters are served in arrival order; while one waits, the
   * connection is redialled promptly.
   */
  #ready(held: HeldClient, failed: Failed | undefined, giveUpAt: number): Promise<SshSession | undefined> {
    const { source } = this.options;
    const pick = () => {
      const s = source.readySession;
      return s && !s.closed && (s !== failed?.session || s.lastInboundAt() > failed.at) ? s : undefined;
    };
    const now = pick();
    if (now || held.gone || source.state === 'closed') return Promise.resolve(now);
    return new Promise((resolve) => {
      const stopWaiting = source.clientWaiting();
      const finish = (session: SshSession | undefined) => {
        clearTimeout(timer);
        source.off('status', onStatus);
        held.onLeave = undefined;
        stopWaiting();
        resolve(session);
      };
      const onStatus = () => {
        const s = pick();
        if (s || source.state === 'closed') finish(s);
      };
      const onLeft = () => finish(undefined);
      const timer = setTimeout(onLeft, Math.max(0, giveUpAt - performance.now()));
      held.onLeave = onLeft;
      source.on('status', onStatus);
    });
  }

  /**
   * Opens the channel on `session`; abandoned (as `tunnel-lost`, to be re-issued) when a
   * spare takes the session's place while the server has not answered. A session merely
   * suspect keeps its open: it may answer yet, and its server may already be connecting.
   */
  #openOn(session: SshSession, target: Endpoint, src: { address: string; port: number }, abandon: AbortSignal | undefined): Promise<ForwardChannel> {
    return session.openForward(target, src, this.options.channelOpenTimeoutMs, abandon);
  }

  /** Resets every held client (shutdown or the end of a drain). Returns how many were cut. */
  cutAll(reason: string): number {
    const cut = this.#clients.size;
    for (const held of this.#clients) held.cut(reason);
    this.#clients.clear();
    return cut;
  }
}
