import type { SocketEvent } from './local-socket.js';

type Listener = (...args: any[]) => void;
type OnceWrapper = Listener & { listener: Listener };

function slotOf(event: string): number {
  switch (event) {
    case 'data':
      return 0;
    case 'end':
      return 1;
    case 'drain':
      return 2;
    case 'finish':
      return 3;
    case 'error':
      return 4;
    case 'close':
      return 5;
    default:
      throw new TypeError(`no '${event}' event: there are data, end, drain, finish, error and close`);
  }
}

/**
 * EventEmitter's behaviour for the six events of a local socket (src/local-socket.ts), which a
 * lean channel (src/ssh/lean-channel.ts) has too, without EventEmitter's dictionary of listeners
 * keyed by name: EventEmitter's code is shared by every kind of emitter, so each of
 * its reads of that dictionary is a megamorphic lookup, and a new connection adds or removes a
 * listener on its client about seventeen times (BENCHMARKS.md, issue 17). Here each event has
 * its own slot: one listener as itself, as EventEmitter keeps it, more as an array replaced on
 * every change, so an emit calls the listeners there when it began, as EventEmitter does,
 * without copying them. Listeners are called with the emitter as `this` and the event's one
 * argument, or none if it has none; an 'error' with no listener throws. Unlike EventEmitter, a
 * name that is not one of the six is a TypeError, on() and off() alike: a listener for it would
 * never be called.
 */
export class SocketEvents {
  readonly #slots: (Listener | Listener[] | undefined)[] = [undefined, undefined, undefined, undefined, undefined, undefined];

  on(event: SocketEvent, listener: Listener): this {
    const i = slotOf(event);
    const now = this.#slots[i];
    this.#slots[i] = now === undefined ? listener : typeof now === 'function' ? [now, listener] : [...now, listener];
    return this;
  }

  addListener(event: SocketEvent, listener: Listener): this {
    return this.on(event, listener);
  }

  once(event: SocketEvent, listener: Listener): this {
    let fired = false;
    const wrapper = ((arg?: unknown) => {
      if (fired) return;
      fired = true;
      this.off(event, wrapper);
      call(listener, this, arg);
    }) as OnceWrapper;
    wrapper.listener = listener;
    return this.on(event, wrapper);
  }

  /** Removes the listener added last as `listener` (or as a once() of it), as EventEmitter does. */
  off(event: SocketEvent, listener: Listener): this {
    const i = slotOf(event);
    const now = this.#slots[i];
    if (now === undefined) return this;
    if (typeof now === 'function') {
      if (isListener(now, listener)) this.#slots[i] = undefined;
      return this;
    }
    for (let k = now.length - 1; k >= 0; k--) {
      if (isListener(now[k]!, listener)) {
        this.#slots[i] = now.length === 2 ? now[1 - k] : now.filter((_, j) => j !== k);
        break;
      }
    }
    return this;
  }

  removeListener(event: SocketEvent, listener: Listener): this {
    return this.off(event, listener);
  }

  listenerCount(event: SocketEvent): number {
    const now = this.#slots[slotOf(event)];
    return now === undefined ? 0 : typeof now === 'function' ? 1 : now.length;
  }

  emit(event: SocketEvent, arg?: unknown): boolean {
    const now = this.#slots[slotOf(event)];
    if (now === undefined) {
      if (event === 'error') throw arg instanceof Error ? arg : new Error(`Unhandled error. (${String(arg)})`);
      return false;
    }
    if (typeof now === 'function') call(now, this, arg);
    else for (let k = 0; k < now.length; k++) call(now[k]!, this, arg);
    return true;
  }
}

/** A listener called as EventEmitter calls it: 'end', 'drain' and 'finish' have no argument. */
const call = (listener: Listener, self: SocketEvents, arg: unknown) => (arg === undefined ? listener.call(self) : listener.call(self, arg));

/** `l` is `listener`, or once()'s wrapper of it. */
const isListener = (l: Listener, listener: Listener) => l === listener || (l as OnceWrapper).listener === listener;
