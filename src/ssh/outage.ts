import type { Logger } from '../log.js';
import { isFatalOnFirstConnect as needsAction } from '../errors.js';

/**
 * What a person reads of an outage: its start once (the caller's warn line), each failed
 * attempt at debug, a summary at most every `summaryEveryMs` while it lasts, and how long
 * it took when it ends. A failure a person must act on (a rotated key, a changed host key)
 * is an error line the first time its message is seen in an outage, and its summaries too.
 */
export class OutageLog {
  #since: number | undefined;
  #wasReady = false;
  #attempts = 0;
  #lastError = '';
  #summarizedAt = 0;
  readonly #loud = new Set<string>();

  constructor(
    private readonly logger: Logger,
    private readonly summaryEveryMs: number,
  ) {}

  get active(): boolean {
    return this.#since !== undefined;
  }

  /** The connection in service was lost or went silent, or a first connect failed. */
  begin(wasReady: boolean): void {
    if (this.#since !== undefined) return;
    this.#wasReady = wasReady;
    this.#since = this.#summarizedAt = Date.now();
    this.#loud.clear();
  }

  /** A dial started (the one whose failure starts an outage counts in it). */
  attempt(): void {
    this.#attempts++;
  }

  /** A dial failed; `fields` go on its line. */
  failed(err: Error, fields: Record<string, unknown>): void {
    this.#lastError = err.message;
    const loud = needsAction(err) && !this.#loud.has(err.message);
    if (loud) this.#loud.add(err.message);
    this.logger[loud ? 'error' : 'debug']('connect failed', { event: 'reconnect', ...fields, error: err.message });
    const now = Date.now();
    if (this.#since === undefined || now - this.#summarizedAt < this.summaryEveryMs) return;
    this.#summarizedAt = now;
    const secs = Math.round((now - this.#since) / 1000);
    this.logger[needsAction(err) ? 'error' : 'warn'](`still unreachable after ${secs} s, ${this.#attempts} attempts, last error: ${this.#lastError}`, {
      event: 'outage', phase: 'ongoing', outageMs: now - this.#since, attempts: this.#attempts, error: this.#lastError,
    });
  }

  /** Ready again: the outage, if any, is over: a note for the ready line ("restored after 12.4 s, 17 attempts"), with its figures. */
  end(): { note: string; outageMs: number; attempts: number } | undefined {
    const attempts = this.#attempts;
    this.#attempts = 0;
    if (this.#since === undefined) return undefined;
    const outageMs = Date.now() - this.#since;
    this.#since = undefined;
    return { note: `${this.#wasReady ? 'restored' : 'connected'} after ${(outageMs / 1000).toFixed(1)} s, ${attempts} attempt${attempts === 1 ? '' : 's'}`, outageMs, attempts };
  }
}
