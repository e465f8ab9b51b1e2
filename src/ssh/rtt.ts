/** Bounds of the adaptive probe deadline, and the deadline before any round trip was measured. */
export interface ProbeDeadlineBounds {
  minMs: number;
  maxMs: number;
  initialMs: number;
}

/**
 * Smoothed round-trip time and variance as TCP computes them (RFC 6298),
 * giving an adaptive probe deadline of clamp(SRTT + 4·RTTVAR, min, max).
 */
export class RttEstimator {
  #srtt: number | undefined;
  #rttvar = 0;
  #last: number | undefined;

  constructor(private readonly bounds: ProbeDeadlineBounds) {}

  sample(rttMs: number): void {
    this.#last = rttMs;
    if (this.#srtt === undefined) {
      this.#srtt = rttMs;
      this.#rttvar = rttMs / 2;
    } else {
      this.#rttvar = 0.75 * this.#rttvar + 0.25 * Math.abs(this.#srtt - rttMs);
      this.#srtt = 0.875 * this.#srtt + 0.125 * rttMs;
    }
  }

  /** The latest measured round trip, if any. */
  get lastMs(): number | undefined {
    return this.#last;
  }

  get smoothedMs(): number | undefined {
    return this.#srtt;
  }

  /** A round trip no longer than the deadline's ceiling; a slower one is an outage's delay, not the link's. */
  isPlausible(rttMs: number): boolean {
    return rttMs <= this.bounds.maxMs;
  }

  timeoutMs(): number {
    const { minMs, maxMs, initialMs } = this.bounds;
    if (this.#srtt === undefined) return initialMs;
    return Math.min(maxMs, Math.max(minMs, Math.ceil(this.#srtt + 4 * this.#rttvar)));
  }
}
