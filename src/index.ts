/** sshkeep's library API: resolve a config the way the CLI does, then run it. */
export { Sshkeep, type SshkeepOptions, type BoundForward, type TunnelReport, type ForwardReport, type ClientEnd } from './sshkeep.js';
export { Fleet, type FleetChange } from './fleet.js';
export { Metrics } from './ops/metrics.js';
export { startHealthServer, type Control } from './ops/health.js';
export { resolveTunnel, type TunnelInput } from './config/resolve.js';
export type { Raw, Sourced } from './config/sourced.js';
export { parseLocalForward, parseRemoteForward, parseDynamicForward } from './config/forward-spec.js';
export { parseDuration } from './config/duration.js';
export { DEFAULTS } from './config/defaults.js';
export type { TunnelConfig, ProcessConfig, HostConfig, Endpoint, LocalForwardSpec, DynamicForwardSpec, RemoteForwardSpec, StrictHostKeyChecking } from './config/types.js';
export { createLogger, silentLogger, type Logger } from './log.js';
export { SshConnection, type ConnectionState, type ConnectionStatus } from './ssh/connection.js';
export { Tunnel, type TunnelState, type TunnelStatus } from './deprecated.js';
export {
  SshkeepError, ConfigError, ListenError, HostKeyError, AuthError, ConnectError, ChannelOpenError, EXIT, exitCodeOf,
} from './errors.js';
