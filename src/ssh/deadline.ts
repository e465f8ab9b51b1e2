import { performance } from 'node:perf_hooks';

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

/** Stops a queued deadline; a no-op once it has fired. */
export type CancelDeadline = () => void;

interface Queued {
  at: number;
  /** Undefined once it has fired or been cancelled. */
  verdict: (() => void) | undefined;
  prev: Queued | undefined;
  next: Queued | undefined;
}

/**
 * The deadlines of one duration, on one timer. Every new connection sets such deadlines (its
 * channel open's, its probe's) and nearly always cancels them a millisecond later: a Node timer
 * each would make and drop a timer list, a priority-queue entry and a hash-table slot every time
 * (BENCHMARKS.md, issue 17). One duration expires in the order it was set, so the deadlines are a
 * first-in first-out list, each cancelled by unlinking it; the timer stays armed for the oldest.
 * It is unref'd: what a deadline waits for (a socket, a server) keeps the process up.
 */
class DeadlineQueue {
  #head: Queued | undefined;
  #tail: Queued | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly ms: number) {}

  add(verdict: () => void): CancelDeadline {
    const entry: Queued = { at: performance.now() + this.ms, verdict, prev: this.#tail, next: undefined };
    if (this.#tail) this.#tail.next = entry;
    else this.#head = entry;
    this.#tail = entry;
    if (!this.#timer) this.#arm(this.ms);
    return () => this.#remove(entry);
  }

  #remove(entry: Queued): void {
    if (!entry.verdict) return;
    entry.verdict = undefined;
    if (entry.prev) entry.prev.next = entry.next;
    else this.#head = entry.next;
    if (entry.next) entry.next.prev = entry.prev;
    else this.#tail = entry.prev;
    entry.prev = entry.next = undefined;
  }

  #arm(ms: number): void {
    this.#timer = setTimeout(() => setImmediate(() => this.#expire()), Math.max(1, Math.ceil(ms))).unref();
  }

  /** After a poll phase, as deadlineAfterPoll: runs each verdict whose time has come, then waits for the next. */
  #expire(): void {
    const now = performance.now();
    const due: (() => void)[] = [];
    for (let e = this.#head; e && e.at <= now; e = this.#head) {
      due.push(e.verdict!);
      this.#remove(e);
    }
    this.#timer = undefined;
    if (this.#head) this.#arm(this.#head.at - now);
    // Each verdict runs, whatever one before it throws (as each would on a timer of its own); a throw is still uncaught.
    for (const verdict of due) {
      try {
        verdict();
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}

const queues = new Map<number, DeadlineQueue>();

/**
 * `verdict` after `ms`, one poll phase late as deadlineAfterPoll, on a timer shared by every
 * deadline of that duration: for the deadlines set per new connection. Returns its cancel.
 */
export function queuedDeadline(verdict: () => void, ms: number): CancelDeadline {
  let queue = queues.get(ms);
  if (!queue) queues.set(ms, (queue = new DeadlineQueue(ms)));
  return queue.add(verdict);
}
