import { EventEmitter } from 'node:events';
import { DEFAULTS } from '../config/defaults.js';
import { ConnectError, isFatalOnFirstConnect } from '../errors.js';
import type { Logger } from '../ops/logger.js';
import { backoffDelayMs, sleep } from './backoff.js';
import { Heartbeat, type HeartbeatOptions } from './heartbeat.js';
import type { SshSession } from './ssh-adapter.js';

/**
 * idle → connecting → ready ⇄ suspect; lost → reconnecting → connecting …; closed is final.
 * `suspect`: the connection went silent; a spare is being dialled while it gets a grace period.
 */
export type TunnelState = 'idle' | 'connecting' | 'ready' | 'suspect' | 'reconnecting' | 'closed';

/** The only moves the tunnel may make; anything else is a bug and throws. */
const TRANSITIONS: Record<TunnelState, readonly TunnelState[]> = {
  idle: ['connecting', 'closed'],
  connecting: ['ready', 'reconnecting', 'closed'],
  ready: ['suspect', 'reconnecting', 'closed'],
  suspect: ['ready', 'reconnecting', 'closed'],
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
  /** Liveness checking; without it only a closed connection is noticed. */
  heartbeat?: HeartbeatOptions;
  suspectGraceMs?: number;
}

/** The connection in service, with what watches it. */
interface Live {
  session: SshSession;
  generation: number;
  readyAt: number;
  heartbeat: Heartbeat | undefined;
}

/**
 * The managed SSH connection: one state machine, one dial loop, a generation per
 * connection so a superseded connection's events change nothing. A connection
 * that goes silent is replaced make-before-break: a spare is dialled while the
 * old one keeps its streams, and whichever answers first wins.
 */
export class Tunnel extends EventEmitter<{ status: [TunnelStatus]; fatal: [Error]; rtt: [ms: number]; session: [SshSession] }> {
  #state: TunnelState = 'idle';
  #since = Date.now();
  /** Not-ready time after the first ready, closed spans plus the open one. */
  #outageMs = 0;
  #downSince: number | undefined;
  #live: Live | undefined;
  #generation = 0;
  #attempt = 0;
  #everReady = false;
  /** The running dial loop's abort handle: set means a loop runs (there is never a second). */
  #dialing: AbortController | undefined;
  /** The latest dial loop, awaited by stop() so nothing outlives the tunnel. */
  #loop: Promise<void> = Promise.resolve();
  #graceTimer: NodeJS.Timeout | undefined;
  /** Replaced connections given a last chance to answer, or finishing their streams. */
  readonly #draining = new Set<Live>();
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

  /** The connection new clients are given right now, if the tunnel is ready. */
  get readySession(): SshSession | undefined {
    return this.#state === 'ready' ? this.#live?.session : undefined;
  }

  /** Is `session` the one new clients are given right now? */
  serves(session: SshSession): boolean {
    return this.readySession === session;
  }

  /** When the tunnel entered its current state (ms since the epoch). */
  get since(): number {
    return this.#since;
  }

  /** Has the tunnel ever been ready? */
  get everReady(): boolean {
    return this.#everReady;
  }

  /** Total time a tunnel that had been ready spent not ready. */
  outageMs(): number {
    return this.#outageMs + (this.#downSince === undefined ? 0 : Date.now() - this.#downSince);
  }

  /** Smoothed RTT of the connection in service, from heartbeat probes. */
  get rttMs(): number | undefined {
    return this.#live?.heartbeat?.rtt.smoothedMs;
  }

  #setState(to: TunnelState, reason: string): void {
    const from = this.#state;
    if (from === to) return;
    if (!TRANSITIONS[from].includes(to)) throw new Error(`tunnel: illegal transition ${from} -> ${to} (${reason})`);
    this.#state = to;
    const now = Date.now();
    this.#since = now;
    if (to === 'ready' && this.#downSince !== undefined) {
      this.#outageMs += now - this.#downSince;
      this.#downSince = undefined;
    } else if (from === 'ready' && to !== 'closed') {
      this.#downSince = now;
    }
    const level = to === 'reconnecting' || to === 'suspect' ? 'warn' : 'info';
    this.deps.logger[level](`${from} -> ${to} (${reason})`, { event: 'state', from, to, reason, generation: this.#generation });
    this.emit('status', { type: 'state', from, to, reason, generation: this.#generation });
  }

  /** Starts the dial loop; resolves on the first `ready`, rejects on a fatal first-connect error. */
  start(): Promise<void> {
    const first = this.whenReady(Number.POSITIVE_INFINITY);
    this.#ensureDialing('start');
    return first.then(() => undefined);
  }

  /** The ready session, waiting for one up to `timeoutMs` (or until `signal` aborts). Waiters are served in arrival order. */
  whenReady(timeoutMs: number, signal?: AbortSignal): Promise<SshSession> {
    if (this.#state === 'ready' && this.#live) return Promise.resolve(this.#live.session);
    if (this.#state === 'closed') return Promise.reject(new ConnectError('tunnel is closed'));
    if (signal?.aborted) return Promise.reject(new ConnectError('no longer waiting'));
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#waiters.delete(waiter);
      };
      const waiter = {
        resolve: (s: SshSession) => (done(), resolve(s)),
        reject: (e: Error) => (done(), reject(e)),
      };
      const onAbort = () => waiter.reject(new ConnectError('no longer waiting'));
      const timer = Number.isFinite(timeoutMs)
        ? setTimeout(() => waiter.reject(new ConnectError(`tunnel not ready within ${timeoutMs} ms (state ${this.#state})`)), timeoutMs)
        : undefined;
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.add(waiter);
    });
  }

  /** Probes the connection in service now (woke from sleep, network changed, …). */
  probeNow(reason: string): void {
    this.#live?.heartbeat?.probeNow(reason);
  }

  /**
   * A new client arrived: if the server has been quiet a while, probe at once, so a
   * link that died while idle costs this client about a round trip, not an interval.
   */
  noteNewClient(): void {
    const hb = this.#live?.heartbeat;
    if (!hb) return;
    const quiet = hb.quietForMs();
    if (quiet > DEFAULTS.onDemandQuietMs) hb.probeNow(`new client after ${Math.round(quiet)} ms of silence`);
  }

  /** Joins the running dial loop or starts one: never two at once. */
  #ensureDialing(reason: string): void {
    if (this.#dialing || this.#state === 'closed') return;
    const ctl = new AbortController();
    this.#dialing = ctl;
    this.#loop = this.#dialUntilConnected(ctl, reason)
      .then((session) => {
        // Cleared before adopting, so a close right after `ready` can start the next loop.
        if (this.#dialing === ctl) this.#dialing = undefined;
        if (session) this.#adopt(session);
      })
      .catch((err: Error) => {
        this.deps.logger.error('dial loop failed', { event: 'fatal', error: err.message });
        if (this.#state !== 'closed') this.#fail(err);
      });
  }

  /** Resolves with a new session, or undefined when abandoned (stopped, recovered, fatal). */
  async #dialUntilConnected(ctl: AbortController, reason: string): Promise<SshSession | undefined> {
    while (!ctl.signal.aborted) {
      if (!this.#live) this.#setState('connecting', this.#attempt === 0 ? reason : `attempt ${this.#attempt + 1}`);
      else this.deps.logger.info('dialling a spare connection', { event: 'spare', attempt: this.#attempt + 1, reason });
      try {
        const session = await this.deps.dial(ctl.signal);
        if (!ctl.signal.aborted) return session;
        session.destroy();
        return undefined;
      } catch (err) {
        if (ctl.signal.aborted) return undefined;
        const error = err as Error;
        if (!this.#everReady && isFatalOnFirstConnect(error)) {
          this.#fail(error);
          return undefined;
        }
        // Auth and host-key failures after a good first connect are retried (keys rotate),
        // but loudly: each attempt is an error line.
        const delay = (this.deps.backoff ?? backoffDelayMs)(++this.#attempt);
        this.deps.logger.error('connect failed', { event: 'reconnect', attempt: this.#attempt, delayMs: delay, error: error.message });
        if (!this.#live) this.#setState('reconnecting', error.message);
        await sleep(delay, ctl.signal);
      }
    }
    return undefined;
  }

  #adopt(session: SshSession): void {
    const old = this.#live;
    if (old) this.#drain(old); // make-before-break: the spare is up, the old one still silent
    clearTimeout(this.#graceTimer);
    // A spare dialled while suspect can finish after the old connection was given up.
    if (this.#state === 'reconnecting') this.#setState('connecting', 'a connection dialled earlier completed');
    const live: Live = { session, generation: ++this.#generation, readyAt: Date.now(), heartbeat: undefined };
    this.#live = live;
    this.#everReady = true;
    session.once('close', (why) => this.#onClose(live, why));
    if (this.deps.heartbeat) {
      const hb = new Heartbeat(session, this.deps.heartbeat);
      live.heartbeat = hb;
      hb.on('dead', (why) => this.#onSilent(live, why));
      hb.on('alive', () => this.#onRecovered(live));
      hb.on('rtt', (ms) => this.emit('rtt', ms));
      hb.start();
    }
    this.#setState('ready', old ? `generation ${live.generation} replaced silent generation ${old.generation}` : `connected to ${session.description}`);
    this.emit('session', session); // per-connection setup, such as remote forwards
    for (const w of [...this.#waiters]) w.resolve(session);
  }

  /**
   * The old connection gives way to the spare. It gets one last probe deadline: if it
   * answers, its streams carry on and it closes when they are done; if not, it is
   * closed and its streams reset.
   */
  #drain(old: Live): void {
    this.#draining.add(old);
    old.session.abandonPendingOpens(`generation ${old.generation} went silent; re-issued on the new connection`);
    const hb = old.heartbeat;
    const deadline = hb ? hb.probeTimeoutMs() : 0;
    old.session.sendProbe(() => {});
    const timer = setTimeout(() => this.#retire(old, `still silent ${deadline} ms after a spare took over`), deadline);
    hb?.once('alive', () => {
      clearTimeout(timer);
      this.#watchDraining(old, hb); // watched until its streams end
      this.deps.logger.info('old connection answered: its streams carry on, it closes when they end', {
        event: 'drain', generation: old.generation, channels: old.session.channels,
      });
      old.session.endWhenIdle();
    });
    old.session.once('close', () => {
      clearTimeout(timer);
      this.#draining.delete(old);
    });
  }

  /**
   * A replaced connection still carrying streams gets the same grace as the live one: a
   * brief silence (a server pause both connections ride out) does not cut its streams.
   */
  #watchDraining(old: Live, hb: Heartbeat): void {
    const graceMs = this.deps.suspectGraceMs ?? DEFAULTS.suspectGraceMs;
    let grace: NodeJS.Timeout | undefined;
    const onDead = (why: string) => {
      if (grace) return;
      this.deps.logger.debug('replaced connection silent: its streams wait out the grace period', {
        event: 'drain_silent', generation: old.generation, channels: old.session.channels, graceMs, reason: why,
      });
      grace = setTimeout(() => this.#retire(old, `${why}; still silent after the ${graceMs} ms grace period`), graceMs);
    };
    const onAlive = () => {
      clearTimeout(grace);
      grace = undefined;
    };
    hb.on('dead', onDead);
    hb.on('alive', onAlive);
    old.session.once('close', () => {
      clearTimeout(grace);
      hb.off('dead', onDead);
      hb.off('alive', onAlive);
    });
  }

  /** Takes a connection out of service for good; its streams are reset by its close. */
  #retire(live: Live, why: string): void {
    live.heartbeat?.stop();
    this.#draining.delete(live);
    if (this.#live === live) this.#live = undefined;
    this.deps.logger.warn('closing connection', { event: 'retire', generation: live.generation, reason: why, channels: live.session.channels });
    live.session.destroy();
  }

  #onClose(live: Live, why: string): void {
    live.heartbeat?.stop();
    if (live !== this.#live || this.#state === 'closed') return; // superseded or stopping
    this.#live = undefined;
    clearTimeout(this.#graceTimer);
    if (Date.now() - live.readyAt >= STABLE_AFTER_MS) this.#attempt = 0;
    this.#setState('reconnecting', `connection lost: ${why}`);
    this.#ensureDialing('connection lost');
  }

  #onSilent(live: Live, why: string): void {
    if (live !== this.#live || this.#state !== 'ready') return;
    this.#setState('suspect', why);
    const graceMs = this.deps.suspectGraceMs ?? DEFAULTS.suspectGraceMs;
    this.#graceTimer = setTimeout(() => {
      if (live !== this.#live || this.#state !== 'suspect') return;
      this.#retire(live, `silent for the ${graceMs} ms grace period`);
      this.#setState('reconnecting', `connection silent for ${graceMs} ms`);
      this.#ensureDialing('connection silent');
    }, graceMs);
    this.#ensureDialing('connection went silent');
  }

  #onRecovered(live: Live): void {
    if (live !== this.#live || this.#state !== 'suspect') return;
    clearTimeout(this.#graceTimer);
    this.#dialing?.abort(); // the old connection answered first: the spare is not needed
    this.#dialing = undefined;
    this.#attempt = 0;
    this.#setState('ready', 'connection answered again');
    for (const w of [...this.#waiters]) w.resolve(live.session);
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
    this.#dialing?.abort();
    this.#dialing = undefined;
    clearTimeout(this.#graceTimer);
    const live = this.#live;
    this.#live = undefined;
    for (const w of [...this.#waiters]) w.reject(new ConnectError(`tunnel ${reason}`));
    await this.#loop.catch(() => {});
    for (const old of this.#draining) this.#retire(old, reason);
    if (!live) return;
    live.heartbeat?.stop();
    if (!live.session.closed) {
      const closed = new Promise<void>((r) => live.session.once('close', () => r()));
      live.session.end();
      const timer = setTimeout(() => live.session.destroy(), 1000);
      await closed;
      clearTimeout(timer);
    }
  }
}
