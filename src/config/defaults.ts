/** Every default in one place, with units in the names and the reason for each value. */
export const DEFAULTS = {
  /** OpenSSH's port. */
  port: 22,
  /** Forwards listen on loopback only unless a bind address is written out. */
  bindAddress: '127.0.0.1',
  /**
   * OpenSSH has no connect timeout (the kernel's ~2 min SYN retries); a daemon that must
   * notice an unreachable bastion in seconds needs one. Covers TCP connect, the SSH
   * handshake and authentication of each attempt.
   */
  connectTimeoutMs: 15_000,
  /** Probe after 15 s of silence: well under the 4 min idle timeout of common NATs and LBs. */
  keepaliveIntervalMs: 15_000,
  /**
   * Hold clients through an outage this long: longer than a Wi-Fi roam, a bastion reboot or a
   * NAT rebind, shorter than a client's own connect timeout is likely to be.
   */
  holdTimeoutMs: 30_000,
  /** Enough for any protocol's opening flight (a TLS or PostgreSQL startup); then pause the client. */
  holdBufferBytes: 1024 * 1024,
  /** Bounds the memory and descriptors an outage can pin. */
  maxHeld: 1024,
  /** One SSH connection is what `ssh -L` keeps; more only pay off for many parallel streams. */
  connections: 1,
  /** No cap on clients: the server and the targets set the real limits; 0 means unlimited. */
  maxConnections: 0,
  /** Start and stop lines, state changes and warnings: what an operator reads; debug is for bugs. */
  logLevel: 'info',
  /**
   * Stop accepting at once on SIGTERM: outside an orchestrator nothing needs time to stop
   * sending; a Kubernetes pod sets it to cover endpoint propagation.
   */
  minDrainMs: 0,
  /**
   * A silent (suspect) connection is kept this long while a spare is dialled, in case it
   * recovers; past it its streams are reset so clients fail loudly instead of hanging.
   */
  suspectGraceMs: 10_000,
  /**
   * After SIGTERM, open streams get this long before they are reset: an idle pooled
   * connection must not hold a laptop's Ctrl-C or a pod's shutdown (cloud-sql-proxy's
   * max-sigterm-delay is the analogue).
   */
  maxDrainMs: 5_000,
  /**
   * The adaptive probe deadline, SRTT + 4·RTTVAR, is kept within these: never tighter than
   * scheduling jitter on a busy host allows, never so loose that a dead link takes long to
   * suspect; before any round trip was measured, generous for a slow first one.
   */
  probeTimeoutMinMs: 1_000,
  probeTimeoutMaxMs: 10_000,
  probeTimeoutInitialMs: 3_000,
  /** A new client after this much silence from the server triggers a probe at once. */
  onDemandQuietMs: 1_000,
  /** Refuse unknown hosts unless the user opts in, as OpenSSH. */
  strictHostKeyChecking: 'yes',
  /** OpenSSH's files, so a host trusted by `ssh` is trusted here too. */
  knownHostsFiles: ['~/.ssh/known_hosts'],
  globalKnownHostsFiles: ['/etc/ssh/ssh_known_hosts'],
  /** OpenSSH's default identities, in its order of preference. */
  identityFiles: ['~/.ssh/id_ed25519', '~/.ssh/id_ecdsa', '~/.ssh/id_rsa'],
  /** OpenSSH's per-user file, so an alias that works with `ssh` works here. */
  sshConfigFile: '~/.ssh/config',
  /**
   * Buffer limit, both ways, of the local socket of each forwarded connection. Node 20's 16 KiB
   * is half an SSH packet, so every packet written to the socket paused and resumed its
   * channel: 256 KiB saved 7-14 % CPU per GiB downloaded (BENCHMARKS.md). It adds at most
   * 240 KiB each way to the channel's own 2 MiB.
   */
  localSocketHighWaterMarkBytes: 256 * 1024,
  /** A forwarded channel that does not open in this time is refused to the client. */
  channelOpenTimeoutMs: 10_000,
  /**
   * Our CHANNEL_CLOSE unanswered this long: the server is broken, and the channel counts as closed
   * (its connection ended, its channel id freed) instead of for ever. OpenSSH answers once it has
   * written what it still holds for the target, up to its 2 MiB window, so a slow target's tail
   * must fit: the 10 s a channel open gets.
   */
  channelCloseTimeoutMs: 10_000,
  /** A -D client must finish its SOCKS request this fast; OpenSSH waits for ever, letting idle sockets pile up. */
  socksHandshakeTimeoutMs: 10_000,
  /**
   * While a client is held, the dial loop retries at least this often, and a held client
   * arriving during a longer backoff sleep ends it this long after the last failure. A refused
   * connect costs one round trip, so four tries a second is cheap, and a held client is served
   * within about a quarter second (plus the handshake) of the server's return, where the 5 s
   * backoff cap made it wait up to 5 s.
   */
  heldRetryCapMs: 250,
  /** During an outage, a "still unreachable" summary line at most this often. */
  outageSummaryMs: 30_000,
  /**
   * A listening port in use at start is retried this long: a previous instance still shutting
   * down holds its listeners through its --min-drain (0 by default) and a supervisor may start
   * the next one at once; a few seconds cover that. A longer --min-drain needs the supervisor
   * to wait for the old process (systemd does).
   */
  listenRetryMs: 5_000,
  /** …tried again this often within it: a bind costs nothing. */
  listenRetryIntervalMs: 250,
  /**
   * After an authentication or host key refusal (once the first connect worked, or with
   * --skip-failed-tunnels), the next try waits at least this long, doubling per refusal in a
   * row up to the max: 4 tries in the first 10 min stay under fail2ban's default of 5.
   */
  refusedRetryMinMs: 60_000,
  refusedRetryMaxMs: 600_000,
  /**
   * -R refused on a live connection: asked again this often at first. The dead session's sshd
   * frees the port at a moment nobody announces, and a request costs one round trip.
   */
  remoteRetryMs: 500,
  /** …for this long; a refusal that lasts (a port another process holds, a server's policy) is then asked about less often, doubling up to the cap. */
  remoteRetryFastMs: 30_000,
  remoteRetryCapMs: 30_000,
  /** Reconnect backoff: cap of the full-jitter exponential delay (first retry is immediate). */
  backoffCapMs: 5_000,
  /** Reconnect backoff: the first delay's scale, doubling per failed attempt up to the cap. */
  backoffBaseMs: 250,
  /**
   * `sshkeep wait` gives up after this: twice the connect timeout, so a first connect that
   * times out once and then succeeds still counts as started.
   */
  waitTimeoutMs: 30_000,
  /**
   * --resume: how long both ends keep a stream whose SSH connection died, waiting for a new
   * one. Long enough for a walk to a meeting with the lid closed, short enough not to pin
   * database sessions (and their locks) for long.
   */
  resumeGraceMs: 5 * 60_000,
  /**
   * --resume: bytes sent and not yet acknowledged, kept per stream to send again after a
   * reconnect; the client is paused when it is full. 4 MiB covers a few round trips of a
   * fast link (the bandwidth-delay product of 100 MB/s at 40 ms), so it rarely throttles.
   */
  resumeBufferBytes: 4 * 1024 * 1024,
  /** --resume: the replay buffers of every stream of the process together: 64 full streams. */
  resumeBufferTotalBytes: 256 * 1024 * 1024,
  /** `sshkeep wait` asks /startupz this often: a loopback GET costs nothing, and the wait ends within a quarter second of the start. */
  waitPollMs: 250,
} as const;
