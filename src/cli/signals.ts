import os from 'node:os';
import { EXIT } from '../errors.js';
import { exit } from './terminal.js';

type Listener = (signal: NodeJS.Signals) => void;
type EarlySignal = 'SIGINT' | 'SIGTERM' | 'SIGHUP' | 'SIGUSR1' | 'SIGUSR2';

let hungUp = false;

/**
 * The CLI's listeners from its first moments: main.ts sets them before the rest of the CLI
 * loads (about 0.25 s of imports, during which a SIGHUP or SIGUSR2 would otherwise end the
 * process). Until the daemon serves, SIGINT and SIGTERM end the run (exit 0: a stop is what was
 * asked), a SIGHUP is remembered (the configuration may change after it was read) and SIGUSR1 and
 * SIGUSR2 ignored (nothing is connected yet). What serves takes each over with handSignal().
 * SIGUSR1 needs a listener of its own for as long as the process runs: without one, node opens
 * its inspector on 127.0.0.1:9229, which lets any local user run code in sshkeep (its keys), and
 * autossh users send SIGUSR1 out of habit.
 */
export const EARLY: Record<EarlySignal, Listener> = {
  SIGINT: () => exit(EXIT.ok),
  SIGTERM: () => exit(EXIT.ok),
  SIGHUP: () => {
    hungUp = true;
  },
  SIGUSR1: () => {},
  SIGUSR2: () => {},
};

export function catchEarlySignals(): void {
  for (const [signal, listener] of Object.entries(EARLY)) process.on(signal, listener);
}

/** A SIGHUP came before the daemon served. */
export function hungUpEarly(): boolean {
  return hungUp;
}

/**
 * For a command that is not the daemon (`sshkeep wait`, `reload`, the demo): from now on each
 * of those signals interrupts it, exit 128 + its number as a shell reports it, so `sshkeep wait
 * && deploy` does not go on after a Ctrl-C, and a closed terminal ends the demo.
 */
export function interruptOnSignals(signals: EarlySignal[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGUSR1', 'SIGUSR2']): void {
  for (const s of signals) handSignal(s, EARLY[s], () => exit(128 + os.constants.signals[s]));
}

/**
 * Gives `signal` to a new listener in place of `from`, with no moment unwatched. Node closes a
 * signal's watcher as its last listener goes: a signal already caught but not yet dispatched is
 * dropped with it (a SIGTERM right as the forwards opened was lost), and one arriving before the
 * next listener takes the default action, which ends the process.
 */
export function handSignal(signal: NodeJS.Signals, from: Listener, to: Listener): void {
  process.on(signal, to);
  process.off(signal, from);
}
