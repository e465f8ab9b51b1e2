/**
 * Library names and shapes of 0.1, kept working for existing callers: each maps onto its
 * 0.2 replacement and nothing else uses them.
 */
import type { Limits } from './forward/hold.js';
import { SshConnection, type ConnectionDeps, type ConnectionState, type ConnectionStatus } from './ssh/connection.js';
import type { HeartbeatOptions } from './ssh/heartbeat.js';
import { CONNECTION_TUNING, HEARTBEAT_TUNING } from './tuning.js';

/** @deprecated since 0.2: `ConnectionState`. */
export type TunnelState = ConnectionState;
/** @deprecated since 0.2: `ConnectionStatus`. */
export type TunnelStatus = ConnectionStatus;

/** 0.1's constructor options of `Tunnel`: the tuning values were optional then. */
export type TunnelDeps = Pick<ConnectionDeps, 'dial' | 'logger'> &
  Partial<Pick<ConnectionDeps, 'backoff' | 'refusedBackoff' | 'heldRetryCapMs' | 'outageSummaryMs'>> & {
    heartbeat?: Pick<HeartbeatOptions, 'intervalMs'> & Partial<HeartbeatOptions>;
    suspectGraceMs?: number;
  };

/**
 * @deprecated since 0.2: "tunnel" now means a destination with its forwards (`Sshkeep`);
 * the managed SSH connection is `SshConnection`, which takes every tuning value from its caller.
 */
export class Tunnel extends SshConnection {
  constructor({ suspectGraceMs, heartbeat, ...deps }: TunnelDeps) {
    const graceMs = suspectGraceMs ?? HEARTBEAT_TUNING.graceMs;
    super({ ...CONNECTION_TUNING, ...deps, ...(heartbeat && { heartbeat: { ...HEARTBEAT_TUNING, graceMs, ...heartbeat } }) });
  }
}

/** @deprecated since 0.2: 0.1's shape of `SshkeepOptions.limits`, with `connections()` where `clients()` is now. */
export type LegacyLimits = Omit<Limits, 'clients'> & { connections(): number };

/** Limits in 0.2's shape, whichever shape a caller gave. */
export function currentLimits(limits: Limits | LegacyLimits): Limits {
  if ('clients' in limits) return limits;
  return { maxConnections: limits.maxConnections, maxHeld: limits.maxHeld, held: () => limits.held(), clients: () => limits.connections() };
}
