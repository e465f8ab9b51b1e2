/** The resolved, validated configuration the tunnel and forwards run from. */

export type StrictHostKeyChecking = 'yes' | 'accept-new' | 'no';

/** `-L [bind_address:]port:host:hostport`. */
export interface LocalForward {
  bindAddress: string;
  /** 0 asks the OS for a free port; the bound port is logged. */
  bindPort: number;
  /** True when the user wrote the bind address (a non-loopback one is allowed only then). */
  bindExplicit: boolean;
  targetHost: string;
  targetPort: number;
  /** The spec as written, for logs and errors. */
  spec: string;
}

export interface TunnelConfig {
  /** The destination as given (`prod-bastion`), used to name the tunnel in logs. */
  name: string;
  /** The host actually dialled (ssh_config HostName or the destination). */
  hostName: string;
  port: number;
  user: string;
  /** Identity files to offer, in order, already `~`/token-expanded. */
  identityFiles: string[];
  /** Keys given as content (SSHKEEP_IDENTITY), offered before the files. */
  inlineIdentities: { name: string; data: string }[];
  /** known_hosts given as content (SSHKEEP_KNOWN_HOSTS), checked before the files. */
  inlineKnownHosts: { name: string; text: string }[];
  /** True when the list came from -i or IdentityFile; false means the default identities. */
  identityFilesExplicit: boolean;
  /** OpenSSH's IdentitiesOnly: offer only the identity files, not the agent's keys. */
  identitiesOnly: boolean;
  /** Unix socket of ssh-agent, or undefined. */
  agentSocket: string | undefined;
  connectTimeoutMs: number;
  /** Probe after this much inbound silence (ServerAliveInterval); 0 = no periodic probes. */
  keepaliveIntervalMs: number;
  /** A fixed probe deadline; undefined = adaptive from the measured RTT. */
  keepaliveTimeoutMs: number | undefined;
  /** ServerAliveCountMax when the user gave it; undefined = one missed adaptive deadline makes the link suspect. */
  keepaliveCountMax: number | undefined;
  /** How long a client waits for a ready tunnel before it is reset; 0 = do not hold. */
  holdTimeoutMs: number;
  /** Bytes buffered per held client before its socket is paused. */
  holdBufferBytes: number;
  strictHostKeyChecking: StrictHostKeyChecking;
  knownHostsFiles: string[];
  globalKnownHostsFiles: string[];
  /** The name host keys are looked up and recorded under (HostKeyAlias or HostName). */
  hostKeyAlias: string | undefined;
  /** Pinned host keys (`SHA256:…`): when given, they replace known_hosts for this tunnel. */
  hostKeyFingerprints: string[];
  forwards: LocalForward[];
}

/** Settings of the whole process, shared by every tunnel. */
export interface ProcessConfig {
  /** Clients forwarded or held at once; 0 = unlimited. */
  maxConnections: number;
  /** Held clients beyond this are reset at once. */
  maxHeld: number;
  /** `--health [host:]port`, or undefined for no HTTP endpoints. */
  health: { host: string; port: number } | undefined;
  /** After SIGTERM, keep accepting this long (endpoint propagation). */
  minDrainMs: number;
  /** Then let open streams run at most this long before resetting them. */
  maxDrainMs: number;
}

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export type LogFormat = 'pretty' | 'json';
