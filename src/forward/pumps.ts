import type { LocalSocket } from '../local-socket.js';
import type { Logger } from '../log.js';
import type { ForwardChannel, SshSession } from '../ssh/adapter.js';
import type { HeldBytes } from './hold.js';
import { Pump, type EndSide, type PumpResult } from './pump.js';
import { logEnd, resultOf, type ConnectionResult } from './result.js';

/** What Pumps needs of a connection it counts. */
export interface Pumped {
  readonly bytesUp: number;
  readonly bytesDown: number;
  /** Ends it at once, resetting the client (the process stops). */
  abort(side: EndSide, reason: string): void;
}

/** The connections one forward is pumping, and the bytes of those that ended; each end is logged and reported once. */
export class Pumps {
  readonly #live = new Set<Pumped>();
  readonly #done = { up: 0, down: 0 };
  /** Live ones whose local socket is still open. */
  #open = 0;

  constructor(private readonly onResult: (result: ConnectionResult) => void) {}

  /** Connections not finished: those whose local socket closed count until the server's CLOSE (the tail may still be on its way). */
  get size(): number {
    return this.#live.size;
  }

  /**
   * Connections whose local socket is still open: what --max-connections counts. One whose
   * client has gone is no client, though it waits a round trip for the server's CLOSE.
   */
  get open(): number {
    return this.#open;
  }

  /** Pumps `socket` ⇄ `channel` until one side ends; the end is logged on `log`. `socket` is the client, or with -R the target. */
  start(socket: LocalSocket, channel: ForwardChannel, session: SshSession, held: HeldBytes, log: Logger, socketSide: 'client' | 'target' = 'client'): void {
    this.add(socket, (done) => new Pump(socket, channel, session, held, done, socketSide), log);
  }

  /** Counts a connection of `socket` moved by something other than a Pump (a resumable stream) the same way. */
  add(socket: LocalSocket, make: (onDone: (r: PumpResult) => void) => Pumped, log: Logger): void {
    const started = Date.now();
    let ended = false; // it may end while being made (a resumable stream refused at once)
    let open = true;
    const closed = () => {
      if (open) this.#open--;
      open = false;
    };
    this.#open++;
    socket.once('close', closed);
    let pumped: Pumped | undefined = undefined;
    pumped = make((r) => {
      ended = true;
      closed();
      if (pumped) this.#live.delete(pumped);
      this.#done.up += r.bytesUp;
      this.#done.down += r.bytesDown;
      this.onResult(resultOf(r));
      logEnd(log, r, started);
    });
    if (!ended) this.#live.add(pumped);
  }

  /** Bytes moved both ways, by ended and live connections. */
  bytes(): { up: number; down: number } {
    let { up, down } = this.#done;
    for (const p of this.#live) {
      up += p.bytesUp;
      down += p.bytesDown;
    }
    return { up, down };
  }

  /** Resets every pumped connection (shutdown). Returns how many were cut. */
  abortAll(reason: string): number {
    const cut = this.#live.size;
    for (const pump of [...this.#live]) pump.abort('local', reason);
    return cut;
  }
}
