type Listener = (signal: NodeJS.Signals) => void;

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
