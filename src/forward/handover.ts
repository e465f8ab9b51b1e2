import type { ListenForwardSpec } from '../config/types.js';
import type { LocalForward } from './local-forward.js';

/**
 * A reload's listeners in transit: those of the forwards it retires, for the forwards that
 * replace them on the same address to take over. The listening socket never closes, so a client
 * that connects during the reload is not refused. If the reload is refused, `undo()` gives every
 * listener back.
 */
export class ListenerHandover {
  /** Retiring forwards whose listener nobody has claimed yet. */
  readonly #free: LocalForward[];
  /** new forward, retiring forward: swapped. */
  readonly #taken: [LocalForward, LocalForward][] = [];

  constructor(retiring: LocalForward[]) {
    this.#free = [...retiring];
  }

  /** The retiring forward listening where `spec` would, set aside for its taker; undefined if none. */
  claim(spec: ListenForwardSpec): LocalForward | undefined {
    const i = this.#free.findIndex((f) => f.listensAt(spec));
    return i < 0 ? undefined : this.#free.splice(i, 1)[0];
  }

  /** Claimed listeners that will not be taken after all (the taker could not start). */
  unclaim(forwards: Iterable<LocalForward>): void {
    this.#free.push(...forwards);
  }

  /** `taker` takes over the claimed forward's listener. */
  take(taker: LocalForward, from: LocalForward): void {
    taker.swapListener(from);
    this.#taken.push([taker, from]);
  }

  /** Every listener back to the forward it came from, last taken first. */
  undo(): void {
    for (const [taker, from] of this.#taken.reverse()) taker.swapListener(from);
    this.#taken.length = 0;
  }
}
