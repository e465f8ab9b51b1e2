import { setTimeout as sleep } from 'node:timers/promises';
import type { LogFields, Logger } from './log.js';

export interface ListenRetry {
  /** How long an address in use is tried again (a previous instance may still be draining); 0 = fail at once. */
  retryMs: number;
  /** How often, within `retryMs`. */
  intervalMs: number;
}

export interface BindAttempts {
  /** What is bound, as the warning at the first wait names it. */
  what: string;
  logger?: Logger;
  /** More fields of that warning. */
  fields?: LogFields;
  /** Checked after each wait: an error to give up with (stopped meanwhile), else undefined. */
  stopped?: () => Error | undefined;
}

/**
 * Runs `bind` until it succeeds; an address in use (EADDRINUSE) is tried again every
 * `intervalMs` for up to `retryMs`, said once, at warn. Any other error, and the last
 * EADDRINUSE, is thrown as it came, for the caller to word.
 */
export async function bindWithRetry(bind: () => Promise<void>, retry: ListenRetry, attempts: BindAttempts): Promise<void> {
  const giveUpAt = performance.now() + retry.retryMs;
  for (let waiting = false; ; waiting = true) {
    try {
      return await bind();
    } catch (err) {
      const left = giveUpAt - performance.now();
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || left <= 0) throw err;
      if (!waiting) {
        attempts.logger?.warn(`${attempts.what} is in use: trying again for up to ${retry.retryMs} ms`, { event: 'listen_wait', retryMs: retry.retryMs, ...attempts.fields });
      }
      await sleep(Math.min(retry.intervalMs, left));
      const stop = attempts.stopped?.();
      if (stop) throw stop;
    }
  }
}
