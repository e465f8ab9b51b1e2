/** Probe deadline bounds: never tighter than 1 s (scheduling jitter), never looser than 10 s. */
export const MIN_PROBE_TIMEOUT_MS = 1_000;
export const MAX_PROBE_TIMEOUT_MS = 10_000;
/** Before any sample: generous enough for a slow first round trip over a congested link. */
const INITIAL_TIMEOUT_MS = 3_000;

/**
 * Smoothed round-trip time and variance as TCP computes them (RFC 6298),
 * giving an adaptive probe deadline of clamp(SRTT + 4·RTTVAR, 1 s, 10 s).
 */
export class RttEstimator {
  #srtt: number | undefined;
  #rttvar = 0;
  #last: number | undefined;

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

  timeoutMs(): number {
    if (this.#srtt === undefined) return INITIAL_TIMEOUT_MS;
    return Math.min(MAX_PROBE_TIMEOUT_MS, Math.max(MIN_PROBE_TIMEOUT_MS, Math.ceil(this.#srtt + 4 * this.#rttvar)));
  }
}
