import { EventEmitter } from 'node:events';
import { RttEstimator } from './rtt.js';

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
  /** A fixed probe deadline (--keepalive-timeout); otherwise adaptive from the measured RTT. */
  timeoutMs?: number;
  /**
   * OpenSSH's ServerAliveCountMax, when the user gave it: a probe unanswered for an interval
   * is a miss, and that many misses in a row is death. Without it one missed adaptive
   * deadline is enough to suspect the link (the tunnel then dials a spare; it does not cut).
   */
  countMax?: number;
}

/** While the link is suspect, how often to look for traffic that proves it recovered. */
const RECOVERY_POLL_MS = 100;

/**
 * Liveness of one SSH connection. Any inbound traffic counts as life, so a
 * busy link is never probed and never misjudged; probes go out only after
 * `intervalMs` of silence, or at once when asked (a new client arrived, the
 * machine woke up, the network changed).
 */
export class Heartbeat extends EventEmitter<{ rtt: [ms: number]; dead: [reason: string]; alive: [] }> {
  #timer: NodeJS.Timeout | undefined;
  #probe: { sentAt: number; deadline: NodeJS.Timeout; reason: string } | undefined;
  #misses = 0;
  #deadSince: number | undefined;
  #lastProbeAt = 0;
  #stopped = false;

  constructor(
    private readonly link: HeartbeatLink,
    private readonly options: HeartbeatOptions,
    readonly rtt: RttEstimator = new RttEstimator(),
  ) {
    super();
  }

  get suspect(): boolean {
    return this.#deadSince !== undefined;
  }

  /** Milliseconds since anything arrived from the server. */
  quietForMs(): number {
    return performance.now() - this.link.lastInboundAt();
  }

  /** Starts watching; the first probe goes out at once to measure the round trip. */
  start(): void {
    this.probeNow('initial round-trip measurement');
  }

  /** Sends a probe now unless one is already out or the link is already suspect. */
  probeNow(reason: string): void {
    if (this.#stopped || this.#probe || this.#deadSince !== undefined) return;
    clearTimeout(this.#timer);
    const sentAt = performance.now();
    this.#lastProbeAt = sentAt;
    this.#probe = { sentAt, reason, deadline: setTimeout(() => this.#onDeadline(sentAt), this.probeTimeoutMs()) };
    this.link.sendProbe(() => this.#onReply(sentAt));
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
    this.#stopped = true;
    clearTimeout(this.#timer);
    if (this.#probe) clearTimeout(this.#probe.deadline);
    this.#probe = undefined;
  }

  #onReply(sentAt: number): void {
    if (this.#stopped || this.#probe?.sentAt !== sentAt) return; // a reply after its deadline
    clearTimeout(this.#probe.deadline);
    this.#probe = undefined;
    this.#misses = 0;
    const rttMs = performance.now() - sentAt;
    this.rtt.sample(rttMs);
    this.emit('rtt', rttMs);
    this.#schedule();
  }

  #onDeadline(sentAt: number): void {
    if (this.#stopped || this.#probe?.sentAt !== sentAt) return;
    const { reason } = this.#probe;
    this.#probe = undefined;
    if (this.link.lastInboundAt() > sentAt) {
      // Traffic arrived after the probe: the reply is queued behind it. Alive.
      this.#misses = 0;
      this.#schedule();
      return;
    }
    this.#misses++;
    if (this.options.countMax !== undefined && this.#misses < this.options.countMax) {
      // OpenSSH's rule: the next probe goes at once, its deadline the next interval, so
      // death comes after countMax + 1 intervals of silence.
      this.probeNow(reason);
      return;
    }
    this.#deadSince = performance.now();
    this.#lastProbeAt = this.#deadSince; // the next recovery probe is a deadline from now
    const waited = Math.round(performance.now() - sentAt);
    this.emit('dead', `no reply to ${this.#misses > 1 ? `${this.#misses} probes` : 'a probe'} (${reason}) within ${waited} ms`);
    this.#schedule();
  }

  #schedule(): void {
    clearTimeout(this.#timer);
    if (this.#stopped) return;
    if (this.#deadSince !== undefined) {
      this.#timer = setTimeout(() => this.#checkRecovery(), RECOVERY_POLL_MS);
      return;
    }
    if (this.options.intervalMs <= 0) return;
    const silence = this.quietForMs();
    const wait = Math.max(0, this.options.intervalMs - silence);
    this.#timer = setTimeout(() => this.#onTimer(), wait);
  }

  #onTimer(): void {
    if (this.quietForMs() >= this.options.intervalMs) this.probeNow(`${this.options.intervalMs} ms of silence`);
    else this.#schedule();
  }

  #checkRecovery(): void {
    if (this.#deadSince !== undefined && this.link.lastInboundAt() > this.#deadSince) {
      this.#deadSince = undefined;
      this.#misses = 0;
      this.emit('alive');
    } else if (performance.now() - this.#lastProbeAt >= this.probeTimeoutMs()) {
      // Keep asking: a probe lost with the outage is never answered, a new one is at once.
      this.#lastProbeAt = performance.now();
      this.link.sendProbe(() => {});
    }
    this.#schedule();
  }
}
