/** The backoff's two numbers, from the composition root. */
export interface BackoffPolicy {
  baseMs: number;
  capMs: number;
}

/**
 * Capped exponential backoff with full jitter: the first retry is immediate,
 * then a random delay in [0, min(cap, base·2^(n-1))), so a restored network is
 * used within seconds and many clients do not retry in step.
 */
export function backoffDelayMs(attempt: number, { baseMs, capMs }: BackoffPolicy, random: () => number = Math.random): number {
  if (attempt <= 0) return 0;
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt - 1, 30));
  return Math.floor(random() * ceiling);
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
