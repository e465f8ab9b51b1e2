import { EventEmitter, setMaxListeners } from 'node:events';
import { ConnectError, isFatalOnFirstConnect } from '../errors.js';
import type { Logger } from '../log.js';
import { sleep } from './backoff.js';
import { Heartbeat, type HeartbeatOptions } from './heartbeat.js';
import { OutageLog } from './outage.js';
import type { SshSession } from './adapter.js';

/**
 * idle → connecting → ready ⇄ suspect; lost → reconnecting → connecting …; closed is final.
 * `suspect`: the connection went silent; a spare is being dialled while it gets a grace period.
 */
export type ConnectionState = 'idle' | 'connecting' | 'ready' | 'suspect' | 'reconnecting' | 'closed';

/** The only moves the connection may make; anything else is a bug and throws. */
const TRANSITIONS: Record<ConnectionState, readonly ConnectionState[]> = {
  idle: ['connecting', 'closed'],
  connecting: ['ready', 'reconnecting', 'closed'],
  ready: ['suspect', 'reconnecting', 'closed'],
  suspect: ['ready', 'reconnecting', 'closed'],
  reconnecting: ['connecting', 'closed'],
  closed: [],
};

export interface ConnectionStatus {
  type: 'state';
  from: ConnectionState;
  to: ConnectionState;
  reason: string;
  generation: number;
}

/** A connection that stayed up this long resets the backoff (not a setting: nobody needs to tune it). */
const STABLE_AFTER_MS = 10_000;

export interface ConnectionDeps {
  /** Dials one SSH connection (a new ssh2 Client each time); `signal` abandons it. */
  dial(signal: AbortSignal): Promise<SshSession>;
  logger: Logger;
  /** The delay before retry `attempt` (1, 2, …). */
  backoff: (attempt: number) => number;
  /**
   * The least delay after the `n`th refusal in a row that needs a person (authentication, host
   * key): retrying those quickly cannot help, and a bastion's fail2ban would ban the address.
   */
  refusedBackoff: (n: number) => number;
  /**
   * While a client is held the retry delay is capped at this: a refused connect costs
   * nothing, and the held client should not wait out a long backoff once the server is back.
   */
  heldRetryCapMs: number;
  /** During an outage, a summary line at most this often. */
  outageSummaryMs: number;
  /** Liveness checking; without it only a closed connection is noticed. */
  heartbeat?: HeartbeatOptions;
  /**
   * Whether an auth or host key failure at the first connect closes the connection (the
   * default) or is retried, at the refusal's slow pace (--skip-failed-tunnels).
   */
  fatalOnFirstConnect?: boolean;
}

/** The connection in service, with what watches it. */
interface Live {
  session: SshSession;
  generation: number;
  readyAt: number;
  heartbeat: Heartbeat | undefined;
  /** Replaced, it answered its last chance: it carries its streams to their end. */
  answered: boolean;
  /** Aborted when a spare takes this connection's place: its unanswered channel opens go to the spare. */
  superseded: AbortController;
  /** Replaced on request (`reconnect`): its streams get this long once the new one is ready. */
  drainMs?: number;
}

/** A backoff sleep: ended early by aborting `controller`, once, by `timer`. */
interface Wake {
  controller: AbortController;
  startedAt: number;
  timer?: NodeJS.Timeout;
}

/**
 * The managed SSH connection: one state machine, one dial loop, a generation per
 * connection so a superseded connection's events change nothing. A connection
 * that goes silent is replaced make-before-break: a spare is dialled while the
 * old one keeps its streams, and whichever answers first wins.
 */
export class SshConnection extends EventEmitter<{ status: [ConnectionStatus]; fatal: [Error]; rtt: [ms: number]; session: [SshSession] }> {
  #state: ConnectionState = 'idle';
  #since = Date.now();
  /** Not-ready time after the first ready, closed spans plus the open one. */
  #outageMs = 0;
  #downSince: number | undefined;
  #live: Live | undefined;
  #generation = 0;
  #attempt = 0;
  /** Refusals that need a person (auth, host key), in a row. */
  #refusals = 0;
  #everReady = false;
  /** The running dial loop's abort handle: set means a loop runs (there is never a second). */
  #dialing: AbortController | undefined;
  /** The latest dial loop, awaited by stop() so nothing outlives the connection. */
  #loop: Promise<void> = Promise.resolve();
  /** Replaced connections given a last chance to answer, or finishing their streams. */
  readonly #draining = new Set<Live>();
  /** Clients held until this connection is ready: while any waits, retries come promptly. */
  #waitingClients = 0;
  /** The backoff sleep in progress, which a held client may end early. */
  #wake: Wake | undefined;
  /** The last failed dial's error: one that needs a person (auth, host key) is never hurried. */
  #lastError: Error | undefined;
  readonly #outage: OutageLog;
  /** Why the connection closed for good, when an error closed it. */
  #fatalError: Error | undefined;

  constructor(private readonly deps: ConnectionDeps) {
    super();
    this.setMaxListeners(0); // one per client waiting for a state change
    this.#outage = new OutageLog(deps.logger, deps.outageSummaryMs);
  }

  get state(): ConnectionState {
    return this.#state;
  }

  get generation(): number {
    return this.#generation;
  }

  /** The connection new clients are given right now, if the connection is ready. */
  get readySession(): SshSession | undefined {
    return this.#state === 'ready' ? this.#live?.session : undefined;
  }

  /**
   * Aborts when a spare takes `session`'s place (make-before-break): a channel open still
   * unanswered there is then re-issued on the spare. Undefined for a session not of this connection.
   */
  supersededSignal(session: SshSession): AbortSignal | undefined {
    const live = this.#live?.session === session ? this.#live : [...this.#draining].find((d) => d.session === session);
    return live?.superseded.signal;
  }

  /** Is `session` the one new clients are given right now? */
  serves(session: SshSession): boolean {
    return this.readySession === session;
  }

  /** When the connection entered its current state (ms since the epoch); an outage's retries, flipping between connecting and reconnecting, count as one. */
  get since(): number {
    return this.#since;
  }

  /** Has the connection ever been ready? */
  get everReady(): boolean {
    return this.#everReady;
  }

  /** Why the last dial failed, until a dial succeeds: what a person asks of a tunnel not ready. */
  get lastError(): string | undefined {
    return this.#lastError?.message;
  }

  /** Total time a connection that had been ready spent not ready. */
  outageMs(): number {
    return this.#outageMs + (this.#downSince === undefined ? 0 : Date.now() - this.#downSince);
  }

  /** Smoothed RTT of the connection in service, from heartbeat probes. */
  get rttMs(): number | undefined {
    return this.#live?.heartbeat?.rtt.smoothedMs;
  }

  #setState(to: ConnectionState, reason: string): void {
    const from = this.#state;
    if (from === to) return;
    if (!TRANSITIONS[from].includes(to)) throw new Error(`SSH connection: illegal transition ${from} -> ${to} (${reason})`);
    this.#state = to;
    const now = Date.now();
    const retrying = (s: ConnectionState) => s === 'connecting' || s === 'reconnecting';
    if (!(retrying(from) && retrying(to))) this.#since = now;
    if (to === 'ready' && this.#downSince !== undefined) {
      this.#outageMs += now - this.#downSince;
      this.#downSince = undefined;
    } else if (from === 'ready' && to !== 'closed') {
      this.#downSince = now;
    }
    this.#logState(from, to, reason);
    this.emit('status', { type: 'state', from, to, reason, generation: this.#generation });
  }

  /**
   * Every move is logged, at the level a person needs: the start of an outage at warn with
   * its reason, the connecting/reconnecting flapping while it lasts at debug, and its end
   * at info with how long it took.
   */
  #logState(from: ConnectionState, to: ConnectionState, reason: string): void {
    const fields = { event: 'state', from, to, reason, generation: this.#generation };
    const line = `${from} -> ${to} (${reason})`;
    if (to === 'ready') {
      const ended = this.#outage.end();
      if (!ended) return this.deps.logger.info(line, fields);
      return this.deps.logger.info(`${line}: ${ended.note}`, { ...fields, outageMs: ended.outageMs, attempts: ended.attempts });
    }
    if (to === 'closed' || from === 'idle') return this.deps.logger.info(line, fields);
    if (this.#outage.active) return this.deps.logger.debug(line, fields);
    this.#outage.begin(this.#everReady);
    this.deps.logger.warn(line, fields);
  }

  /** Starts the dial loop; resolves on the first `ready`, rejects on a fatal first-connect error or stop(). */
  start(): Promise<void> {
    const first = this.#untilReady(Number.POSITIVE_INFINITY);
    this.#ensureDialing('start');
    return first.then(() => undefined);
  }

  /**
   * The ready session, waiting for one up to `timeoutMs` (or until `signal` aborts).
   * @deprecated since 0.2: forwards hold their clients in `forward/hold.ts`, which asks the
   * connection for `readySession` on each `status` event; do the same, or await `start()`.
   */
  whenReady(timeoutMs: number, signal?: AbortSignal): Promise<SshSession> {
    return this.#untilReady(timeoutMs, signal);
  }

  #untilReady(timeoutMs: number, signal?: AbortSignal): Promise<SshSession> {
    const now = this.readySession;
    if (now) return Promise.resolve(now);
    if (this.#state === 'closed') return Promise.reject(new ConnectError('SSH connection is closed'));
    if (signal?.aborted) return Promise.reject(new ConnectError('no longer waiting'));
    return new Promise((resolve, reject) => {
      const finish = (err?: Error) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.off('status', onStatus);
        if (err) reject(err);
        else resolve(this.readySession!);
      };
      const onStatus = (s: ConnectionStatus) => {
        if (s.to === 'ready') finish();
        else if (s.to === 'closed') finish(this.#fatalError ?? new ConnectError(`SSH connection ${s.reason}`));
      };
      const onAbort = () => finish(new ConnectError('no longer waiting'));
      const timer = Number.isFinite(timeoutMs)
        ? setTimeout(() => finish(new ConnectError(`no SSH connection ready within ${timeoutMs} ms (state ${this.#state})`)), timeoutMs)
        : undefined;
      signal?.addEventListener('abort', onAbort, { once: true });
      this.on('status', onStatus);
    });
  }

  /** Probes the connection in service now (woke from sleep, network changed, …). */
  probeNow(reason: string): void {
    // Woken or moved to another network: what is read right after the probe may have waited in the socket since before.
    this.#live?.heartbeat?.probeNow(reason, true);
  }

  /** A new client arrived (or `what`): the heartbeat probes a link that has been quiet a while. */
  noteNewClient(what?: string): void {
    this.#live?.heartbeat?.noteNewClient(what);
  }

  /**
   * A client is held until this connection is ready: a backoff sleep in progress ends as
   * soon as `heldRetryCapMs` has passed since the last failure, and until `done()` the retry
   * delay stays that short. However many clients arrive, that is one dial per cap at most.
   * Returns `done`.
   */
  clientWaiting(): () => void {
    this.#waitingClients++;
    if (!this.#lastError || !isFatalOnFirstConnect(this.#lastError)) this.#hurrySleep();
    let released = false;
    return () => {
      if (!released) this.#waitingClients--;
      released = true;
    };
  }

  /**
   * Replaces the connection in service make-before-break, on request (SIGUSR2): a new one is
   * dialled while this one serves; once ready it takes new clients, and the old one closes when
   * its streams end, or after `drainMs`. If the new one cannot be made, the old one stays. Not
   * ready, the dial loop already at work is woken from its backoff sleep instead.
   */
  reconnect(reason: string, drainMs: number): void {
    if (this.#state === 'connecting' || this.#state === 'reconnecting') this.#wake?.controller.abort();
    if (this.#state !== 'ready' || !this.#live) return;
    this.#live.drainMs = drainMs;
    this.#ensureDialing(reason);
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
        // stop() may have come between the dial's end and this turn: nobody wants the session now.
        if (session && this.#state === 'closed') session.destroy();
        else if (session) this.#adopt(session);
      })
      .catch((err: Error) => {
        this.deps.logger.error('dial loop failed', { event: 'fatal', error: err.message });
        if (this.#state !== 'closed') this.#fail(err);
      });
  }

  /** Resolves with a new session, or undefined when abandoned (stopped, recovered, fatal). */
  async #dialUntilConnected(ctl: AbortController, reason: string): Promise<SshSession | undefined> {
    for (let round = 0; !ctl.signal.aborted; round++) {
      if (!this.#live) this.#setState('connecting', this.#attempt === 0 ? reason : `attempt ${this.#attempt + 1}`);
      else this.deps.logger[round === 0 ? 'info' : 'debug']('dialling a spare connection', { event: 'spare', attempt: this.#attempt + 1, reason });
      this.#outage.attempt();
      try {
        const session = await this.deps.dial(ctl.signal);
        if (!ctl.signal.aborted) return session;
        session.destroy();
        return undefined;
      } catch (err) {
        if (ctl.signal.aborted) return undefined;
        const error = err as Error;
        if (!this.#everReady && this.deps.fatalOnFirstConnect !== false && isFatalOnFirstConnect(error)) {
          this.#fail(error);
          return undefined;
        }
        if (this.#live?.drainMs !== undefined && this.#state === 'ready') {
          this.deps.logger.warn(`no new connection (${error.message}): the current one stays in service`, { event: 'reconnect_failed', error: error.message });
          this.#live.drainMs = undefined;
          return undefined;
        }
        // Auth and host-key failures after a good first connect are retried (keys rotate).
        this.#lastError = error;
        const delay = this.#retryDelayMs(error);
        if (!this.#live) this.#setState('reconnecting', error.message);
        this.#outage.failed(error, { attempt: this.#attempt, delayMs: delay });
        await this.#sleep(delay, ctl.signal);
      }
    }
    return undefined;
  }

  /**
   * The backoff's delay, capped while a client is held: a refused connect costs nothing, and
   * the held client is served soon after the server is back. Never for a failure that needs
   * a person (auth, host key): hammering would not fix it and may get the address banned.
   */
  #retryDelayMs(error: Error): number {
    const delay = this.deps.backoff(++this.#attempt);
    this.#refusals = isFatalOnFirstConnect(error) ? this.#refusals + 1 : 0;
    if (this.#refusals > 0) return Math.max(delay, this.deps.refusedBackoff(this.#refusals));
    const hurry = this.#waitingClients > 0 && !isFatalOnFirstConnect(error);
    return hurry ? Math.min(delay, this.deps.heldRetryCapMs) : delay;
  }

  /** The backoff sleep: ends early on stop(), or when a held client hurries it. */
  async #sleep(ms: number, stopped: AbortSignal): Promise<void> {
    const wake: Wake = { controller: new AbortController(), startedAt: performance.now() };
    this.#wake = wake;
    try {
      await sleep(ms, AbortSignal.any([stopped, wake.controller.signal]));
    } finally {
      clearTimeout(wake.timer);
      if (this.#wake === wake) this.#wake = undefined;
    }
  }

  /** Ends the sleep in progress `heldRetryCapMs` after it began (at once if that has passed); once per sleep. */
  #hurrySleep(): void {
    const wake = this.#wake;
    if (!wake || wake.timer) return;
    const wait = wake.startedAt + this.deps.heldRetryCapMs - performance.now();
    wake.timer = setTimeout(() => wake.controller.abort(), Math.max(0, wait));
  }

  #adopt(session: SshSession): void {
    const old = this.#live;
    if (old) this.#drain(old); // make-before-break: the spare is up, the old one still silent
    // A spare dialled while suspect can finish after the old connection was given up.
    if (this.#state === 'reconnecting') this.#setState('connecting', 'a connection dialled earlier completed');
    const superseded = new AbortController();
    // One listener per channel open in flight: a pool opening dozens at once is no leak, and Node's warning would go to stderr.
    setMaxListeners(0, superseded.signal);
    const live: Live = { session, generation: ++this.#generation, readyAt: Date.now(), heartbeat: undefined, answered: false, superseded };
    this.#live = live;
    this.#everReady = true;
    this.#lastError = undefined;
    this.#refusals = 0;
    session.once('close', (why) => this.#onClose(live, why));
    session.on('unansweredClose', (count, waitedMs) => this.#onUnansweredClose(live, count, waitedMs));
    if (this.deps.heartbeat) {
      const hb = new Heartbeat(session, this.deps.heartbeat);
      live.heartbeat = hb;
      hb.on('dead', (why) => this.#onSilent(live, why));
      hb.on('alive', () => this.#onAnswered(live));
      hb.on('expired', (why) => this.#onExpired(live, why));
      hb.on('rtt', (ms) => this.emit('rtt', ms));
      hb.start();
    }
    if (old?.drainMs !== undefined && this.#state === 'ready') {
      this.deps.logger.info(`generation ${live.generation} replaced generation ${old.generation} on request: it takes new clients`, {
        event: 'replaced', generation: live.generation, channels: old.session.channels,
      });
    }
    this.#setState('ready', old ? `generation ${live.generation} replaced silent generation ${old.generation}` : `connected to ${session.description}`);
    this.emit('session', session); // per-connection setup, such as remote forwards
  }

  /**
   * The old connection gives way to the spare, with a last chance to answer: if it does,
   * its streams carry on and it closes when they are done; if not, it is closed and its
   * streams reset. Replaced on request (`reconnect`), it needs no last chance, and its streams
   * are reset if still open after its `drainMs`.
   */
  #drain(old: Live): void {
    this.#draining.add(old);
    old.superseded.abort();
    const drainMs = old.drainMs;
    const deadline = drainMs === undefined ? undefined : setTimeout(() => this.#retire(old, `streams still open after ${drainMs} ms (--max-drain)`), drainMs);
    old.session.once('close', () => {
      clearTimeout(deadline);
      this.#draining.delete(old);
    });
    if (old.heartbeat?.state === 'dead') old.heartbeat.lastChance();
    else if (drainMs !== undefined) {
      old.answered = true; // replaced on request, not for silence: it finishes its streams
      old.session.endWhenIdle();
    } else this.#onAnswered(old); // it answered just as the spare arrived: it finishes its streams
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
    if (Date.now() - live.readyAt >= STABLE_AFTER_MS) this.#attempt = 0;
    this.#setState('reconnecting', `connection lost: ${why}`);
    this.#ensureDialing('connection lost');
  }

  /** The server left a CLOSE of ours unanswered, and the channel was closed without it: said once per connection, then at debug. */
  #onUnansweredClose(live: Live, count: number, waitedMs: number): void {
    const fields = { event: 'close_unanswered', generation: live.generation, waitedMs, count };
    if (count > 1) return this.deps.logger.debug(`the server left another channel's CLOSE unanswered (${count} so far): closed without it`, fields);
    this.deps.logger.warn(
      `the server did not answer a channel's CLOSE within ${waitedMs} ms (a broken server): the channel counts as closed without it; later ones are logged at debug`,
      fields,
    );
  }

  /** The heartbeat found a connection silent: the one in service turns suspect and a spare is dialled. */
  #onSilent(live: Live, why: string): void {
    if (this.#draining.has(live)) {
      this.deps.logger.debug('replaced connection silent: its streams wait out the grace period', {
        event: 'drain_silent', generation: live.generation, channels: live.session.channels, reason: why,
      });
      return;
    }
    if (live !== this.#live || this.#state !== 'ready') return;
    this.#setState('suspect', why);
    this.#ensureDialing('connection went silent');
  }

  /** A silent connection answered: in service, it is ready again; replaced, it finishes its streams. */
  #onAnswered(live: Live): void {
    if (this.#draining.has(live) && !live.answered) {
      live.answered = true;
      this.deps.logger.info('old connection answered: its streams carry on, it closes when they end', {
        event: 'drain', generation: live.generation, channels: live.session.channels,
      });
      live.session.endWhenIdle();
      return;
    }
    if (live !== this.#live || this.#state !== 'suspect') return;
    this.#dialing?.abort(); // the old connection answered first: the spare is not needed
    this.#dialing = undefined;
    this.#attempt = 0;
    this.#setState('ready', 'connection answered again');
  }

  /** A silent connection's grace (or last chance) ran out: it is closed; in service, the connection is dialled again. */
  #onExpired(live: Live, why: string): void {
    const inService = live === this.#live && this.#state === 'suspect';
    if (!inService && !this.#draining.has(live)) return;
    this.#retire(live, why);
    if (!inService) return;
    this.#setState('reconnecting', `connection silent: ${why}`);
    this.#ensureDialing('connection silent');
  }

  #fail(err: Error): void {
    this.#fatalError = err;
    this.#lastError = err;
    this.#setState('closed', err.message);
    this.emit('fatal', err);
  }

  /** Closes the connection for good: no more dialling; the session is ended. */
  async stop(reason = 'stopped'): Promise<void> {
    if (this.#state === 'closed') return;
    this.#setState('closed', reason);
    this.#dialing?.abort();
    this.#dialing = undefined;
    const live = this.#live;
    this.#live = undefined;
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
