/** Every default in one place, with units in the names and the reason for each value. */
export const DEFAULTS = {
  /** OpenSSH's port. */
  port: 22,
  /** Forwards listen on loopback only unless a bind address is written out. */
  bindAddress: '127.0.0.1',
  /**
   * OpenSSH has no connect timeout (the kernel's ~2 min SYN retries); a daemon that must
   * notice an unreachable bastion in seconds needs one. Also bounds how long a client
   * that arrives before the first connection waits.
   */
  connectTimeoutMs: 15_000,
  /** Probe after 15 s of silence: well under the 4 min idle timeout of common NATs and LBs. */
  keepaliveIntervalMs: 15_000,
  /** Three unanswered probes, as OpenSSH's ServerAliveCountMax. */
  keepaliveCountMax: 3,
  /** Refuse unknown hosts unless the user opts in, as OpenSSH. */
  strictHostKeyChecking: 'yes',
  knownHostsFiles: ['~/.ssh/known_hosts'],
  globalKnownHostsFiles: ['/etc/ssh/ssh_known_hosts'],
  /** OpenSSH's default identities, in its order of preference. */
  identityFiles: ['~/.ssh/id_ed25519', '~/.ssh/id_ecdsa', '~/.ssh/id_rsa'],
  sshConfigFile: '~/.ssh/config',
  /** A forwarded channel that does not open in this time is refused to the client. */
  channelOpenTimeoutMs: 10_000,
  /** Reconnect backoff: cap of the full-jitter exponential delay (first retry is immediate). */
  backoffCapMs: 5_000,
  backoffBaseMs: 250,
} as const;
