import { setTimeout as sleep } from 'node:timers/promises';

export interface ListenRetry {
  /** How long an address in use is tried again (a previous instance may still be draining); 0 = fail at once. */
  retryMs: number;
  /** How often, within `retryMs`. */
  intervalMs: number;
}

export interface BindAttempts {
  /** Said once, at the first wait. */
  onWait: () => void;
  /** Checked after each wait: an error to give up with (stopped meanwhile), else undefined. */
  stopped?: () => Error | undefined;
}

/**
 * Runs `bind` until it succeeds; an address in use (EADDRINUSE) is tried again every
 * `intervalMs` for up to `retryMs`. Any other error, and the last EADDRINUSE, is thrown as it
 * came, for the caller to word.
 */
export async function bindWithRetry(bind: () => Promise<void>, retry: ListenRetry, attempts: BindAttempts): Promise<void> {
  const giveUpAt = performance.now() + retry.retryMs;
  for (let waiting = false; ; waiting = true) {
    try {
      return await bind();
    } catch (err) {
      const left = giveUpAt - performance.now();
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || left <= 0) throw err;
      if (!waiting) attempts.onWait();
      await sleep(Math.min(retry.intervalMs, left));
      const stop = attempts.stopped?.();
      if (stop) throw stop;
    }
  }
}
