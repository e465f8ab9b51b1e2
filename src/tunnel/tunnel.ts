import { EventEmitter } from 'node:events';
import { ConnectError, isFatalOnFirstConnect } from '../errors.js';
import type { Logger } from '../ops/logger.js';
import { backoffDelayMs } from './backoff.js';
import type { SshSession } from './ssh-adapter.js';

export type TunnelState = 'idle' | 'connecting' | 'ready' | 'reconnecting' | 'closed';

/** The only moves the tunnel may make; anything else is a bug and throws. */
const TRANSITIONS: Record<TunnelState, readonly TunnelState[]> = {
  idle: ['connecting', 'closed'],
  connecting: ['ready', 'reconnecting', 'closed'],
  ready: ['reconnecting', 'closed'],
  reconnecting: ['connecting', 'closed'],
  closed: [],
};

export interface TunnelStatus {
  type: 'state';
  from: TunnelState;
  to: TunnelState;
  reason: string;
  generation: number;
}

/** A connection that stayed up this long resets the backoff. */
const STABLE_AFTER_MS = 10_000;

export interface TunnelDeps {
  /** Dials one SSH connection (a new ssh2 Client each time); `signal` abandons it. */
  dial(signal: AbortSignal): Promise<SshSession>;
  logger: Logger;
  backoff?: (attempt: number) => number;
}

/**
 * The managed SSH connection: one state machine, one dial loop, a generation
 * per connection so a superseded connection's events change nothing.
 */
export class Tunnel extends EventEmitter<{ status: [TunnelStatus]; fatal: [Error] }> {
  #state: TunnelState = 'idle';
  #session: SshSession | undefined;
  #generation = 0;
  #attempt = 0;
  #everReady = false;
  #dialing: Promise<void> | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #wakeRetry: (() => void) | undefined;
  readonly #abort = new AbortController();
  readonly #waiters = new Set<{ resolve(s: SshSession): void; reject(e: Error): void }>();

  constructor(private readonly deps: TunnelDeps) {
    super();
  }

  get state(): TunnelState {
    return this.#state;
  }

  get generation(): number {
    return this.#generation;
  }

  #setState(to: TunnelState, reason: string): void {
    const from = this.#state;
    if (from === to) return;
    if (!TRANSITIONS[from].includes(to)) throw new Error(`tunnel: illegal transition ${from} -> ${to} (${reason})`);
    this.#state = to;
    const level = to === 'reconnecting' ? 'warn' : 'info';
    this.deps.logger[level](`${from} -> ${to} (${reason})`, { event: 'state', from, to, reason, generation: this.#generation });
    this.emit('status', { type: 'state', from, to, reason, generation: this.#generation });
  }

  /** Starts the dial loop; resolves on the first `ready`, rejects on a fatal first-connect error. */
  start(): Promise<void> {
    const first = this.whenReady(Number.POSITIVE_INFINITY);
    this.#ensureDialing('start');
    return first.then(() => undefined);
  }

  /** The ready session, waiting for one up to `timeoutMs`. */
  whenReady(timeoutMs: number): Promise<SshSession> {
    if (this.#state === 'ready' && this.#session) return Promise.resolve(this.#session);
    if (this.#state === 'closed') return Promise.reject(new ConnectError('tunnel is closed'));
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: (s: SshSession) => {
          clearTimeout(timer);
          this.#waiters.delete(waiter);
          resolve(s);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          this.#waiters.delete(waiter);
          reject(e);
        },
      };
      const timer = Number.isFinite(timeoutMs)
        ? setTimeout(() => waiter.reject(new ConnectError(`tunnel not ready within ${timeoutMs} ms (state ${this.#state})`)), timeoutMs)
        : undefined;
      this.#waiters.add(waiter);
    });
  }

  /** Joins the running dial loop or starts one: never two at once. */
  #ensureDialing(reason: string): void {
    if (this.#dialing || this.#state === 'closed') return;
    this.#dialing = this.#dialLoop(reason).finally(() => (this.#dialing = undefined));
  }

  async #dialLoop(reason: string): Promise<void> {
    while (this.#state !== 'closed') {
      this.#setState('connecting', this.#attempt === 0 ? reason : `attempt ${this.#attempt + 1}`);
      let session: SshSession;
      try {
        session = await this.deps.dial(this.#abort.signal);
      } catch (err) {
        if ((this.#state as TunnelState) === 'closed') return;
        const error = err as Error;
        if (!this.#everReady && isFatalOnFirstConnect(error)) {
          this.#fail(error);
          return;
        }
        // Auth and host-key failures after a good first connect are retried (keys rotate),
        // but loudly: each attempt is an error line.
        const delay = (this.deps.backoff ?? backoffDelayMs)(++this.#attempt);
        this.deps.logger.error('connect failed', { event: 'reconnect', attempt: this.#attempt, delayMs: delay, error: error.message });
        this.#setState('reconnecting', error.message);
        await this.#sleep(delay);
        continue;
      }
      if ((this.#state as TunnelState) === 'closed') {
        session.destroy();
        return;
      }
      this.#adopt(session);
      return;
    }
  }

  #adopt(session: SshSession): void {
    const generation = ++this.#generation;
    const readyAt = Date.now();
    this.#session = session;
    this.#everReady = true;
    session.once('close', (why) => {
      if (generation !== this.#generation || this.#state === 'closed') return; // superseded
      this.#session = undefined;
      if (Date.now() - readyAt >= STABLE_AFTER_MS) this.#attempt = 0;
      this.#setState('reconnecting', `connection lost: ${why}`);
      this.#ensureDialing('connection lost');
    });
    this.#setState('ready', `connected to ${session.description}`);
    for (const w of [...this.#waiters]) w.resolve(session);
  }

  #sleep(ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.#wakeRetry = resolve;
      this.#retryTimer = setTimeout(resolve, ms);
    }).finally(() => {
      clearTimeout(this.#retryTimer);
      this.#wakeRetry = undefined;
    });
  }

  #fail(err: Error): void {
    this.#setState('closed', err.message);
    for (const w of [...this.#waiters]) w.reject(err);
    this.emit('fatal', err);
  }

  /** Closes the tunnel for good: no more dialling; the session is ended. */
  async stop(reason = 'stopped'): Promise<void> {
    if (this.#state === 'closed') return;
    this.#setState('closed', reason);
    this.#abort.abort();
    this.#wakeRetry?.();
    const session = this.#session;
    this.#session = undefined;
    for (const w of [...this.#waiters]) w.reject(new ConnectError(`tunnel ${reason}`));
    if (session && !session.closed) {
      const closed = new Promise<void>((r) => session.once('close', () => r()));
      session.end();
      await Promise.race([closed, new Promise<void>((r) => setTimeout(r, 1000).unref())]);
      session.destroy();
    }
    await this.#dialing;
  }
}
