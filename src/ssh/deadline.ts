/**
 * A timer for a verdict on "no answer yet" (a probe, a dead link's grace, a channel open): it
 * decides one poll phase after it fires. After the event loop was blocked (a long GC, a starved
 * container), libuv runs expired timers before it reads the sockets; an answer already waiting
 * there is read first. clearTimeout stops it until it fires; after that the verdict re-checks
 * its own state.
 */
export function deadlineAfterPoll(verdict: () => void, ms: number): NodeJS.Timeout {
  return setTimeout(() => setImmediate(verdict), ms);
}
