import type { Logger } from '../log.js';
import type { PumpResult } from './pump.js';

/** How a client connection ended, for the connections_total metric. */
export type ConnectionResult =
  | 'ok' | 'target_refused' | 'hold_timeout' | 'reset_by_tunnel_loss' | 'limit' | 'not_ready' | 'shutdown' | 'socks_error';

/** The ends a forward of each kind can report: -R neither holds nor limits clients, only -D speaks SOCKS. */
export const RESULTS_OF: Record<'local' | 'dynamic' | 'remote', readonly ConnectionResult[]> = {
  remote: ['ok', 'target_refused', 'reset_by_tunnel_loss', 'shutdown'],
  local: ['ok', 'target_refused', 'hold_timeout', 'reset_by_tunnel_loss', 'limit', 'not_ready', 'shutdown'],
  dynamic: ['ok', 'target_refused', 'hold_timeout', 'reset_by_tunnel_loss', 'limit', 'not_ready', 'shutdown', 'socks_error'],
};

/** The result of a pumped connection: cut by the tunnel or by shutdown, or ended by one of its ends. */
export function resultOf(r: PumpResult): ConnectionResult {
  if (!r.reset || r.side === 'client' || r.side === 'target') return 'ok';
  return r.side === 'tunnel' ? 'reset_by_tunnel_loss' : 'shutdown';
}

/** One log line per pumped connection: which side ended it, why, and how much it moved. */
export function logEnd(log: Logger, r: PumpResult, startedAt: number): void {
  const fields = { event: 'conn_end', side: r.side, reason: r.reason, reset: r.reset, bytesUp: r.bytesUp, bytesDown: r.bytesDown, durationMs: Date.now() - startedAt };
  if (r.reset) log.warn('client connection reset', fields);
  else log.info('client connection closed', fields);
}
