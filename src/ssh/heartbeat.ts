import { EventEmitter } from 'node:events';
import { deadlineAfterPoll } from './deadline.js';
import { RttEstimator, type ProbeDeadlineBounds } from './rtt.js';

/** What the heartbeat needs of an SSH connection, and nothing more. */
export interface HeartbeatLink {
  /** `performance.now()` when bytes last arrived from the server. */
  lastInboundAt(): number;
  /** Sends a request the server must answer (keepalive@openssh.com); `onReply` runs when it does. */
  sendProbe(onReply: () => void): void;
}

export interface HeartbeatOptions {
  /** Probe after this much inbound silence; 0 turns periodic probes off (on-demand ones still run). */
  intervalMs: number;
  /** A fixed probe deadline (--keepalive-timeout); otherwise adaptive from the measured RTT, within `adaptive`. */
  timeoutMs?: number;
  adaptive: ProbeDeadlineBounds;
  /**
   * OpenSSH's ServerAliveCountMax, when the user gave it: a probe unanswered for an interval
   * is a miss, and that many misses in a row is death. Without it one missed adaptive
   * deadline is enough to suspect the link (the connection then dials a spare; it does not cut).
   */
  countMax?: number;
  /** How long the link may stay dead, in case it recovers, before `expired` gives it up. */
  graceMs: number;
  /** A new client after this much silence from the server probes at once. */
  onDemandQuietMs: number;
}

/**
 * watching: no probe out; probing: a probe awaits its reply; dead: a probe missed its
 * deadline and nothing has arrived since (the grace period runs); stopped: final.
 */
export type HeartbeatState = 'watching' | 'probing' | 'dead' | 'stopped';

/** The only moves the heartbeat may make; anything else is a bug and throws. */
const TRANSITIONS: Record<HeartbeatState, readonly HeartbeatState[]> = {
  watching: ['probing', 'stopped'],
  probing: ['watching', 'dead', 'stopped'],
  dead: ['watching', 'stopped'],
  stopped: [],
};

/** While the link is dead, how often to look for traffic that proves it recovered. */
const RECOVERY_POLL_MS = 100;

/**
 * Liveness of one SSH connection. Any inbound traffic counts as life, so a busy link is
 * never probed and never misjudged; probes go out only after `intervalMs` of silence, or at
 * once when asked (a new client arrived, the machine woke up, the network changed).
 * Events: `dead` when a probe misses its deadline, `alive` when the link answers again,
 * `expired` when it stayed dead for the grace period (or past a last chance).
 */
export class Heartbeat extends EventEmitter<{ rtt: [ms: number]; dead: [reason: string]; alive: []; expired: [reason: string] }> {
  #state: HeartbeatState = 'watching';
  #timer: NodeJS.Timeout | undefined;
  #probe: { sentAt: number; deadline: NodeJS.Timeout; reason: string; ownReplyOnly: boolean } | undefined;
  #misses = 0;
  /** While dead: since when, why, and the timer that gives the link up. */
  #dead: { since: number; grace?: NodeJS.Timeout } | undefined;
  #lastProbeAt = 0;
  readonly rtt: RttEstimator;

  constructor(
    private readonly link: HeartbeatLink,
    private readonly options: HeartbeatOptions,
  ) {
    super();
    this.rtt = new RttEstimator(options.adaptive);
  }

  get state(): HeartbeatState {
    return this.#state;
  }

  /** The one door: every change of state goes through here. */
  #setState(to: HeartbeatState): void {
    if (to === this.#state) return;
    if (!TRANSITIONS[this.#state].includes(to)) throw new Error(`heartbeat: illegal transition ${this.#state} -> ${to}`);
    this.#state = to;
  }

  /** Starts watching; the first probe goes out at once to measure the round trip. */
  start(): void {
    this.probeNow('initial round-trip measurement');
  }

  /**
   * A new client arrived (or, `what`, another reason to want an answer now): if the server has
   * been quiet a while, probe at once, so a link that died while idle costs it a round trip, not an interval.
   */
  noteNewClient(what = 'new client'): void {
    const quiet = this.#quietForMs();
    if (quiet > this.options.onDemandQuietMs) this.probeNow(`${what} after ${Math.round(quiet)} ms of silence`);
  }

  /**
   * Sends a probe now unless one is already out or the link is dead. `ownReplyOnly`: only its
   * reply shows the link alive, not other traffic read after it went out (after a wake or a
   * network change, bytes that sat unread in the socket since before are read just after it).
   */
  probeNow(reason: string, ownReplyOnly = false): void {
    // One already out holds to the same rule: its reply still counts, bytes read after it do not.
    if (this.#probe && ownReplyOnly) this.#probe.ownReplyOnly = true;
    if (this.#state !== 'watching') return;
    clearTimeout(this.#timer);
    const sentAt = performance.now();
    this.#lastProbeAt = sentAt;
    this.#probe = { sentAt, reason, ownReplyOnly, deadline: deadlineAfterPoll(() => this.#onDeadline(sentAt), this.probeTimeoutMs()) };
    this.#setState('probing');
    this.link.sendProbe(() => this.#onReply(sentAt));
  }

  /**
   * A spare took this link's place: one more probe, and one probe deadline (not the
   * whole grace) to answer it before `expired`. A link that answers stays watched, with
   * the full grace again should it fall silent later.
   */
  lastChance(): void {
    if (this.#state !== 'dead') return;
    const sentAt = performance.now();
    this.link.sendProbe(() => this.#lateReply(sentAt));
    this.#lastProbeAt = sentAt;
    const deadline = this.probeTimeoutMs();
    this.#expireIn(deadline, `still silent ${deadline} ms after a spare took over`);
  }

  /**
   * The deadline a probe sent now gets: the fixed one if given; with ServerAliveCountMax,
   * OpenSSH's (the next interval); otherwise adaptive from the measured RTT.
   */
  probeTimeoutMs(): number {
    const { timeoutMs, countMax, intervalMs } = this.options;
    return timeoutMs ?? (countMax !== undefined && intervalMs > 0 ? intervalMs : this.rtt.timeoutMs());
  }

  stop(): void {
    clearTimeout(this.#timer);
    if (this.#probe) clearTimeout(this.#probe.deadline);
    if (this.#dead) clearTimeout(this.#dead.grace);
    this.#probe = undefined;
    this.#dead = undefined;
    this.#setState('stopped');
  }

  /** Milliseconds since anything arrived from the server. */
  #quietForMs(): number {
    return performance.now() - this.link.lastInboundAt();
  }

  #onReply(sentAt: number): void {
    if (this.#probe?.sentAt !== sentAt) return this.#lateReply(sentAt); // a reply after its deadline, or after stop()
    clearTimeout(this.#probe.deadline);
    this.#probe = undefined;
    this.#misses = 0;
    this.#setState('watching');
    const rttMs = performance.now() - sentAt;
    this.rtt.sample(rttMs);
    this.emit('rtt', rttMs);
    this.#schedule();
  }

  /**
   * A reply past its probe's deadline (or to a recovery probe) is a round trip all the same:
   * without it the deadline never grew on a link that slowed after the start, and every probe
   * made the connection suspect (1.2 s round trips against a 1 s deadline, for ever).
   */
  #lateReply(sentAt: number): void {
    if (this.#state === 'stopped') return;
    const rttMs = performance.now() - sentAt;
    if (!this.rtt.isPlausible(rttMs)) return;
    this.rtt.sample(rttMs);
    this.emit('rtt', rttMs);
  }

  #onDeadline(sentAt: number): void {
    if (this.#probe?.sentAt !== sentAt) return;
    const { reason, ownReplyOnly } = this.#probe;
    this.#probe = undefined;
    if (!ownReplyOnly && this.link.lastInboundAt() > sentAt) {
      // Traffic arrived after the probe: the reply is queued behind it. Alive.
      this.#misses = 0;
      this.#setState('watching');
      this.#schedule();
      return;
    }
    this.#misses++;
    if (this.options.countMax !== undefined && this.#misses < this.options.countMax) {
      // OpenSSH's rule: the next probe goes at once, its deadline the next interval, so
      // death comes after countMax + 1 intervals of silence.
      this.#setState('watching');
      this.probeNow(reason, ownReplyOnly);
      return;
    }
    const now = performance.now();
    const why = `no reply to ${this.#misses > 1 ? `${this.#misses} probes` : 'a probe'} (${reason}) within ${Math.round(now - sentAt)} ms`;
    this.#lastProbeAt = now; // the next recovery probe is a deadline from now
    this.#dead = { since: now };
    this.#setState('dead');
    this.#expireIn(this.options.graceMs, `${why}; still silent after the ${this.options.graceMs} ms grace period`);
    this.emit('dead', why);
    this.#schedule();
  }

  /** Gives the dead link up `ms` from now unless it answers first. */
  #expireIn(ms: number, why: string): void {
    const dead = this.#dead;
    if (!dead) return;
    clearTimeout(dead.grace);
    dead.grace = deadlineAfterPoll(() => {
      if (this.#dead !== dead) return;
      if (this.link.lastInboundAt() > dead.since) return this.#checkRecovery(); // it answered while the loop was blocked
      this.stop();
      this.emit('expired', why);
    }, ms);
  }

  #schedule(): void {
    clearTimeout(this.#timer);
    if (this.#state === 'stopped') return;
    if (this.#state === 'dead') {
      this.#timer = setTimeout(() => this.#checkRecovery(), RECOVERY_POLL_MS);
      return;
    }
    if (this.options.intervalMs <= 0) return;
    const wait = Math.max(0, this.options.intervalMs - this.#quietForMs());
    this.#timer = setTimeout(() => this.#onTimer(), wait);
  }

  #onTimer(): void {
    if (this.#quietForMs() >= this.options.intervalMs) this.probeNow(`${this.options.intervalMs} ms of silence`);
    else this.#schedule();
  }

  #checkRecovery(): void {
    const dead = this.#dead;
    if (!dead) return;
    if (this.link.lastInboundAt() > dead.since) {
      clearTimeout(dead.grace);
      this.#dead = undefined;
      this.#misses = 0;
      this.#setState('watching');
      this.emit('alive');
    } else if (performance.now() - this.#lastProbeAt >= this.probeTimeoutMs()) {
      // Keep asking: a probe lost with the outage is never answered, a new one is at once.
      const sentAt = performance.now();
      this.#lastProbeAt = sentAt;
      this.link.sendProbe(() => this.#lateReply(sentAt));
    }
    this.#schedule();
  }
}
