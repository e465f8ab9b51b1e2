import fs from 'node:fs';
import tty from 'node:tty';

/** Whether stdin, stdout or stderr was a terminal at start: Node restores those at exit. */
const startedOnTerminal = [0, 1, 2].some((fd) => tty.isatty(fd));

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
