/** The resolved, validated configuration the tunnel and forwards run from. */
import type { AddressRange } from './host-port.js';

export type StrictHostKeyChecking = 'yes' | 'accept-new' | 'no';

/** Where a forward listens or connects: a TCP host and port, or a Unix socket path. */
export type Endpoint = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

/** `-L`: listen here; every client becomes a channel to `target` through the tunnel. */
export interface LocalForwardSpec {
  type: 'local';
  /** A TCP port 0 asks the OS for a free port; the bound port is logged. */
  listen: Endpoint;
  /** True when the user wrote the bind address (a non-loopback one is allowed only then). */
  bindExplicit: boolean;
  /** Written `*` or empty: every interface, with or without -g (see bindAs). */
  bindEverywhere?: boolean;
  /** More addresses bound on the listen port: `::1` beside 127.0.0.1 for localhost, `::` beside 0.0.0.0 for every interface (see bindAs). */
  alsoListenOn?: string[];
  target: Endpoint;
  /** The spec as written, for logs and errors. */
  spec: string;
}

/** `-D`: listen here; each client names its target in a SOCKS request. */
export interface DynamicForwardSpec {
  type: 'dynamic';
  listen: Endpoint;
  bindExplicit: boolean;
  bindEverywhere?: boolean;
  alsoListenOn?: string[];
  spec: string;
}

/** `-R`: the server listens at `listen`; each connection there is connected to `target` here. */
export interface RemoteForwardSpec {
  type: 'remote';
  listen: Endpoint;
  /**
   * Undefined for remote dynamic forwarding (`-R [bind_address:]port`, OpenSSH 7.6): each
   * connection the server hands back makes a SOCKS request, and sshkeep connects where it asks.
   */
  target: Endpoint | undefined;
  spec: string;
}

/** A forward with a local listener. */
export type ListenForwardSpec = LocalForwardSpec | DynamicForwardSpec;

/** How to reach one SSH server: the destination or one of its jump hosts. */
export interface HostConfig {
  /** The host as given (`prod-bastion`), used to name it in logs. */
  name: string;
  /** The host actually dialled (ssh_config HostName or the destination). */
  hostName: string;
  port: number;
  user: string;
  /** Identity files to offer, in order, already `~`/token-expanded. */
  identityFiles: string[];
  /** CertificateFile, expanded: user certificates offered with the key they certify (from a file or ssh-agent). */
  certificateFiles: string[];
  /** True when the list came from -i or IdentityFile; false means the default identities. */
  identityFilesExplicit: boolean;
  /** OpenSSH's IdentitiesOnly: offer only the identity files, not the agent's keys. */
  identitiesOnly: boolean;
  /** Unix socket of ssh-agent, or undefined. */
  agentSocket: string | undefined;
  connectTimeoutMs: number;
  strictHostKeyChecking: StrictHostKeyChecking;
  knownHostsFiles: string[];
  globalKnownHostsFiles: string[];
  /** The name host keys are looked up and recorded under (HostKeyAlias or HostName). */
  hostKeyAlias: string | undefined;
  /** ProxyCommand, tokens expanded: its stdin/stdout carry the SSH connection instead of TCP. */
  proxyCommand: string | undefined;
  /** AddressFamily (-4, -6): the IP version of the TCP connect to this host. */
  addressFamily: AddressFamily;
  /** Compression (-C): offer zlib to the server first. */
  compression: boolean;
  /** HostKeyAlgorithms, PubkeyAcceptedAlgorithms, KexAlgorithms, Ciphers, MACs: each list when given, in order. */
  algorithms: Algorithms;
}

/** The algorithm options given, resolved to lists ssh2 negotiates; an absent one keeps the default. */
export interface Algorithms {
  hostKey?: string[];
  pubkey?: string[];
  kex?: string[];
  cipher?: string[];
  mac?: string[];
}

/** OpenSSH's AddressFamily: `any` lets the resolver choose. */
export type AddressFamily = 'any' | 'inet' | 'inet6';

export interface TunnelConfig extends HostConfig {
  /** Jump hosts (-J, ProxyJump), first hop first; each is its own SSH connection. */
  jumps: HostConfig[];
  /** Keys given as content (SSHKEEP_IDENTITY), offered before the files, on every hop. */
  inlineIdentities: { name: string; data: string }[];
  /** known_hosts given as content (SSHKEEP_KNOWN_HOSTS), checked before the files, on every hop. */
  inlineKnownHosts: { name: string; text: string }[];
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
  /** Pinned host keys (`SHA256:…`) of the destination: when given, they replace known_hosts for it. */
  hostKeyFingerprints: string[];
  /** SSH connections to keep (--connections); new streams go to the least loaded ready one. */
  connections: number;
  /** --resume: -L and -D streams survive the SSH connection's death, held by an agent on the server. */
  resume: boolean;
  /** How long a resumable stream waits for a new SSH connection. */
  resumeGraceMs: number;
  /** Unacknowledged bytes kept per resumable stream. */
  resumeBufferBytes: number;
  /** -L and -D. */
  forwards: ListenForwardSpec[];
  /** -R. */
  remoteForwards: RemoteForwardSpec[];
  /** `--socks-auth user:pass`: -D clients must authenticate (SOCKS5 username/password). */
  socksAuth: { user: string; pass: string } | undefined;
  /** ExitOnForwardFailure: a forward that cannot be set up at the first connect is fatal (exit 4). */
  exitOnForwardFailure: boolean;
}

/** Settings of the whole process, shared by every tunnel. */
export interface ProcessConfig {
  /** Clients forwarded or held at once; 0 = unlimited. */
  maxConnections: number;
  /** Held clients beyond this are reset at once. */
  maxHeld: number;
  /** `--health [host:]port`, or undefined for no HTTP endpoints. */
  health: { host: string; port: number } | undefined;
  /** --admin: POST /quitquitquit on the health server stops the process (loopback peers only, unless adminFrom). */
  admin: boolean;
  /** --admin-from: peers beyond loopback that POST /quitquitquit accepts; empty: loopback only. */
  adminFrom: AddressRange[];
  /** After SIGTERM, keep accepting this long (endpoint propagation). */
  minDrainMs: number;
  /** Then let open streams run at most this long before resetting them. */
  maxDrainMs: number;
  /** --skip-failed-tunnels: a tunnel whose first connect is refused keeps retrying while the others run. */
  skipFailedTunnels: boolean;
  /** --resume-buffer-total: the replay buffers of every resumable stream together. */
  resumeBufferTotalBytes: number;
}

export type { LogFormat, LogLevel } from '../log.js';
