/**
 * What the composition root hands the SSH side from DEFAULTS, so that ssh/ and forward/ read
 * no defaults themselves: the dial loop's pacing and the heartbeat's timings.
 */
import { DEFAULTS } from './config/defaults.js';
import { backoffDelayMs } from './ssh/backoff.js';
import type { ConnectionDeps } from './ssh/connection.js';
import type { HeartbeatOptions } from './ssh/heartbeat.js';

const backoff = (attempt: number): number => backoffDelayMs(attempt, { baseMs: DEFAULTS.backoffBaseMs, capMs: DEFAULTS.backoffCapMs });

/** Delay before asking again for a -R the server refused `attempt` times in a row on this connection. */
export const remoteRetry = (attempt: number): number => {
  const { remoteRetryMs, remoteRetryFastMs, remoteRetryCapMs } = DEFAULTS;
  const fast = Math.floor(remoteRetryFastMs / remoteRetryMs);
  return attempt <= fast ? remoteRetryMs : Math.min(remoteRetryCapMs, remoteRetryMs * 2 ** Math.min(attempt - fast, 30));
};

export const CONNECTION_TUNING: Pick<ConnectionDeps, 'backoff' | 'refusedBackoff' | 'heldRetryCapMs' | 'outageSummaryMs'> = {
  backoff,
  refusedBackoff: (n) => Math.min(DEFAULTS.refusedRetryMaxMs, DEFAULTS.refusedRetryMinMs * 2 ** Math.min(n - 1, 30)),
  heldRetryCapMs: DEFAULTS.heldRetryCapMs,
  outageSummaryMs: DEFAULTS.outageSummaryMs,
};

export const HEARTBEAT_TUNING: Pick<HeartbeatOptions, 'graceMs' | 'onDemandQuietMs' | 'adaptive'> = {
  graceMs: DEFAULTS.suspectGraceMs,
  onDemandQuietMs: DEFAULTS.onDemandQuietMs,
  adaptive: { minMs: DEFAULTS.probeTimeoutMinMs, maxMs: DEFAULTS.probeTimeoutMaxMs, initialMs: DEFAULTS.probeTimeoutInitialMs },
};
