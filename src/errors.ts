/**
 * The named errors sshkeep raises and the exit code each maps to.
 * Only these cross module boundaries; ssh2's `err.level` strings are
 * translated into them in `ssh/adapter.ts` and nowhere else.
 */

export const EXIT = {
  ok: 0,
  internal: 1,
  usage: 2,
  hostKeyOrAuth: 3,
  /** A listener could not be opened: a port still held by a previous instance frees itself, so supervisors restart on it. */
  listen: 4,
  /** Ctrl-C at a prompt, as shells report SIGINT. */
  interrupted: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export abstract class SshkeepError extends Error {
  abstract readonly exitCode: ExitCode;
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad flag, option, forward spec or config file: exit 2. */
export class ConfigError extends SshkeepError {
  readonly exitCode = EXIT.usage;
}

/** A listener could not be opened (port in use past the retry window, no permission): exit 4. */
export class ListenError extends SshkeepError {
  readonly exitCode = EXIT.listen;
}

/** The server's host key is unknown, changed or revoked: exit 3. */
export class HostKeyError extends SshkeepError {
  readonly exitCode = EXIT.hostKeyOrAuth;
}

/** The server rejected every authentication method offered: exit 3. */
export class AuthError extends SshkeepError {
  readonly exitCode = EXIT.hostKeyOrAuth;
}

/** The person at the terminal pressed Ctrl-C at a prompt. */
export class InterruptedError extends SshkeepError {
  readonly exitCode = EXIT.interrupted;
}

/** The SSH connection could not be made or was lost (retryable). */
export class ConnectError extends SshkeepError {
  readonly exitCode = EXIT.internal;
}

/** The server would not open a forwarded channel to the target. */
export class ChannelOpenError extends SshkeepError {
  readonly exitCode = EXIT.internal;
  constructor(
    message: string,
    /** OpenSSH's reason name, e.g. `connect-failed`, `administratively-prohibited`, `timeout`. */
    readonly reason: string,
  ) {
    super(message);
  }
}

/** Errors that mean "do not retry the first connection; tell the user". */
export function isFatalOnFirstConnect(err: unknown): boolean {
  return err instanceof HostKeyError || err instanceof AuthError;
}

export function exitCodeOf(err: unknown): ExitCode {
  return err instanceof SshkeepError ? err.exitCode : EXIT.internal;
}

/** A name from outside, quoted for a one-line message (control characters escaped, long ones cut). */
export function quoted(name: string): string {
  return JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}…` : name);
}
