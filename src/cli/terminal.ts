import fs from 'node:fs';
import tty from 'node:tty';

/**
 * Started on a terminal: stdin, stdout or stderr is one (Node restores those at exit), and it is
 * the controlling terminal. Under setsid(1) a process may hold a terminal's descriptors without
 * one: /dev/tty never opens for it, and that is not a terminal since closed.
 */
export const startedOnTerminal = [0, 1, 2].some((fd) => tty.isatty(fd)) && terminalOpen();

/**
 * Whether the process has a controlling terminal that is still there: once the terminal is
 * closed (hung up), /dev/tty no longer opens. A daemon (systemd, launchd, a container) has none.
 */
export function terminalOpen(): boolean {
  try {
    fs.closeSync(fs.openSync('/dev/tty', fs.constants.O_RDWR | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK));
    return true;
  } catch {
    return false;
  }
}

/** Started on a terminal that has since been closed. */
export function terminalClosed(): boolean {
  return startedOnTerminal && !terminalOpen();
}

/** Ends the process with `code`. */
export function exit(code: number): never {
  // Node 20 aborts at exit when its terminal is gone (restoring the tty fails: nodejs/node#51519,
  // fixed in later Node); nobody is left to read an exit status, so end without a core dump.
  if (terminalClosed()) process.kill(process.pid, 'SIGKILL');
  process.exit(code);
}
