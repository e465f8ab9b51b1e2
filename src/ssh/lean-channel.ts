import { createRequire } from 'node:module';
import type { Channel } from 'ssh2';
import type { SocketEvent } from '../local-socket.js';
import { SocketEvents } from '../socket-events.js';

/** One direction of a channel as ssh2 keeps it: the id the other side knows it by, its window, packet size and state. */
interface Side {
  id: number;
  window: number;
  packetSize: number;
  state: string;
}

/** What a lean channel uses of ssh2's Client (1.17): its table of channels, and the protocol that frames a channel's messages. */
export interface ClientInternals {
  _chanMgr: { get(id: number): unknown; update(id: number, channel: unknown): void };
  _protocol: {
    channelData(id: number, data: Uint8Array): void;
    channelEOF(id: number): void;
    channelClose(id: number): void;
    channelWindowAdjust(id: number, amount: number): void;
  };
}

/** What ssh2 makes a channel of when the server confirms its open. */
export interface ChannelInfo {
  type: string;
  incoming: Side;
  outgoing: Side;
}

/** ssh2's own window rule (lib/Channel.js): below the threshold, the window opens back to its maximum. */
const ssh2Window = (() => {
  try {
    const c = createRequire(import.meta.url)('ssh2/lib/Channel.js') as { windowAdjust?: unknown; WINDOW_THRESHOLD?: unknown };
    return typeof c.windowAdjust === 'function' && typeof c.WINDOW_THRESHOLD === 'number'
      ? { adjust: c.windowAdjust as (channel: object) => void, threshold: c.WINDOW_THRESHOLD }
      : undefined;
  } catch {
    return undefined;
  }
})();

/**
 * Does ssh2's protocol take any Uint8Array as a channel's data (patch 008), so that a client's read
 * can be lent to write() as a plain view of where it landed? Buffer's subarray() costs a small
 * message more than the copy it saves (BENCHMARKS.md, issue 17). Found out once, by framing one
 * byte with a stand-in protocol that queues the packet, as ssh2 does during a key exchange.
 */
export const takesViews: boolean = (() => {
  try {
    const Protocol = createRequire(import.meta.url)('ssh2/lib/protocol/Protocol.js') as { prototype: { channelData?: unknown } };
    const channelData = Protocol.prototype.channelData;
    if (typeof channelData !== 'function') return false;
    const queue: Uint8Array[] = [];
    const write = { allocStart: 0, alloc: (n: number) => Buffer.alloc(n), finalize: (packet: Buffer) => packet };
    channelData.call({ _packetRW: { write }, _kexinit: {}, _queue: queue }, 7, new Uint8Array([0x41]));
    return queue.length === 1 && Buffer.from(queue[0]!).equals(Buffer.from([94, 0, 0, 0, 7, 0, 0, 0, 1, 0x41]));
  } catch {
    return false;
  }
})();

/**
 * A forward has no stderr: ssh2 pushes a server's extended data here, dropped, and emits 'close'
 * on it with the channel's. Its push() takes it, so the window that data used opens again: it
 * costs no memory, and a window held for it would stall the channel's data too.
 */
const NO_STDERR = { readable: false, destroyed: true, push: () => true, emit: () => false };

/** Where the server's data goes: kept until receive() (undefined), to a receiver, or dropped (null). */
type Receiver = ((chunk: Buffer) => boolean) | null | undefined;

/**
 * A channel of ssh2's connection without its Duplex stream, for a forward's connection
 * (issue 17): ssh2's packet handlers drive it as they drive a Channel (its fields and push() below
 * are what they read and call), and its user writes, ends and closes it as a Channel, but the
 * server's data goes to one receiver as ssh2 hands it over. A stream's Readable and Writable
 * states, ticks and events cost a new connection about as much as ssh2's packets for it
 * (BENCHMARKS.md). Its events are a Channel's, with differences a Pump does not depend on: 'end'
 * comes within ssh2's handling of the EOF or CLOSE rather than on a later tick; 'finish' comes
 * only from end(), once nothing waits to be sent (ssh2 does not end it at the server's CLOSE as
 * it ends a Channel); no 'drain' once end() was called; a write after end() throws at once.
 * write() sends what the window and packet size allow, each write as one packet when it fits,
 * queues the rest until the server opens the window, and says wait while anything is queued:
 * the client is read no faster than the server takes it. ssh2 makes one where an open asks for
 * it (patch 007, `make`), or `replacing()` puts one in place of a Channel ssh2 has just opened;
 * neither when ssh2's internals are not as expected (`drives()`).
 */
export class LeanChannel extends SocketEvents {
  // What ssh2's handlers read and write (client.js, and onCHANNEL_CLOSE in utils.js).
  readonly server = false;
  readonly destroyed = false;
  readonly stderr = NO_STDERR;
  _callbacks: ((failed: boolean) => void)[] = [];
  readonly _exit = { code: undefined };
  /**
   * Set while writes wait for the window: ssh2 clears it at the server's WINDOW_ADJUST and calls
   * `_chunkcb` (it would call a Channel's _write with `_chunk`, which is never set here).
   */
  _waitWindow = false;
  _chunkcb(): void {
    this.#flush();
  }
  /** Set by ssh2 when push() said the receiver is full: the window stays as it is until readMore(). */
  _waitChanDrain = false;

  #receiver: Receiver;
  #early: Buffer[] = [];
  /** The server's EOF (or CLOSE) has come. */
  #eof = false;
  #endEmitted = false;
  readonly #queue: Uint8Array[] = [];
  #queued = 0;
  #needDrain = false;
  #ending = false;
  #finished = false;

  private constructor(
    readonly type: string,
    readonly incoming: Side,
    readonly outgoing: Side,
    readonly _client: ClientInternals,
  ) {
    super();
  }

  /**
   * ssh2 patch 007's `makeChannel`: given to an open (as a property of its callback), ssh2 makes
   * the channel a LeanChannel when the server confirms it, in place of a Channel. For a
   * connection whose client `drives()` says it can.
   */
  static readonly make = (client: ClientInternals, info: ChannelInfo): LeanChannel => new LeanChannel(info.type, info.incoming, info.outgoing, client);

  /** Is ssh2's `client` (a connection's) as a lean channel knows it? */
  static drives(client: unknown): client is ClientInternals {
    const c = client as Partial<ClientInternals> | undefined;
    const p = c?._protocol;
    return (
      ssh2Window !== undefined &&
      typeof p?.channelData === 'function' &&
      typeof p.channelEOF === 'function' &&
      typeof p.channelClose === 'function' &&
      typeof p.channelWindowAdjust === 'function' &&
      typeof c?._chanMgr?.get === 'function' &&
      typeof c._chanMgr.update === 'function'
    );
  }

  /**
   * Takes the place of `channel`, which ssh2 has just opened and nothing has used, in its
   * connection's table (where patch 007 did not make it lean): from now on the server's
   * messages on it come here. Undefined, and the channel left as it is, when ssh2 is not as
   * this class knows it.
   */
  static replacing(channel: Channel): LeanChannel | undefined {
    const c = channel as unknown as Partial<ChannelInfo & { _client: unknown }>;
    const client = c._client;
    if (!LeanChannel.drives(client) || typeof c.type !== 'string' || typeof c.incoming?.id !== 'number' || typeof c.outgoing?.window !== 'number' || client._chanMgr.get(c.incoming.id) !== channel) return undefined;
    const lean = LeanChannel.make(client, c as ChannelInfo);
    client._chanMgr.update(lean.incoming.id, lean);
    return lean;
  }

  /** True until 'end' has been emitted: ssh2 waits for it before 'close'. */
  get readable(): boolean {
    return !this.#endEmitted;
  }

  /** end() was called and nothing waits to be sent: our EOF is out, unless the channel was closed first. */
  get writableFinished(): boolean {
    return this.#finished;
  }

  /** ssh2 hands over the server's data, and null at its EOF or CLOSE; false holds the window back until readMore(). */
  push(chunk: Buffer | null): boolean {
    if (chunk === null) {
      this.#eof = true;
      if (this.#receiver !== undefined) this.#emitEnd();
      return false;
    }
    if (this.#eof) return true; // data after the server's EOF breaks the protocol: dropped
    if (this.#receiver === undefined) {
      this.#early.push(chunk);
      return false;
    }
    return this.#receiver === null || this.#receiver(chunk);
  }

  /**
   * Hands what came so far, then what comes, to `receiver`, which returns false when it is full
   * (then readMore() once it has room); the server's EOF is 'end', after its data.
   */
  receive(receiver: (chunk: Buffer) => boolean): void {
    const early = this.#early;
    this.#early = [];
    this.#receiver = receiver;
    let room = true;
    for (const chunk of early) room = receiver(chunk) && room;
    if (this.#eof) this.#emitEnd();
    else if (room) this.readMore();
  }

  /** As a Duplex nobody reads: what comes is dropped (its window still opens), and an EOF that came is 'end' now. */
  resume(): this {
    this.#receiver = null;
    this.#early = [];
    if (this.#eof) this.#emitEnd();
    this.readMore();
    return this;
  }

  /** The receiver has room again: the window opens if it was held back. */
  readMore(): void {
    if (!this._waitChanDrain) return;
    this._waitChanDrain = false;
    if (this.incoming.window <= ssh2Window!.threshold) ssh2Window!.adjust(this);
  }

  /**
   * Sends `chunk` (now, or queued until the window opens); false: wait for 'drain' before writing
   * more. `lent`: the chunk is a view its owner reads into again once this returns (lendReads; a
   * plain Uint8Array only where `takesViews`), so a queued one is copied; one sent now is copied
   * into its packet by ssh2.
   */
  write(chunk: Uint8Array, lent = false): boolean {
    if (this.#ending) throw new Error('write after end() on a channel');
    if (chunk.length === 0) return true; // no empty packet, as Channel._write sends none
    const out = this.outgoing;
    if (this.#queued === 0 && out.state === 'open' && chunk.length <= out.window && chunk.length <= out.packetSize) {
      out.window -= chunk.length;
      this._client._protocol.channelData(out.id, chunk);
      return true;
    }
    this.#queue.push(lent ? Buffer.from(chunk) : chunk);
    this.#queued += chunk.length;
    this.#flush();
    if (this.#queued === 0) return true;
    this.#needDrain = true;
    return false;
  }

  /** Sends EOF once what was written is sent; 'finish' then. */
  end(): this {
    if (this.#ending) return this;
    this.#ending = true;
    if (this.#queued === 0) this.#sendEof();
    return this;
  }

  /** Sends CLOSE (ssh2's Channel.close): the server answers with its own, then 'close'. */
  close(): void {
    const out = this.outgoing;
    if (out.state === 'open' || out.state === 'eof') {
      out.state = 'closing';
      this._client._protocol.channelClose(out.id);
    }
  }

  /** ssh2 also emits 'window' after a WINDOW_ADJUST (patch 004; `_chunkcb` has sent the queue), and 'exit' for an exit status (a forward has none). */
  override emit(event: string, arg?: unknown): boolean {
    return event === 'window' || event === 'exit' ? false : super.emit(event as SocketEvent, arg);
  }

  /** Sends what waits as far as the window and packet size allow; once nothing waits, the EOF asked for and 'drain'. */
  #flush(): void {
    const out = this.outgoing;
    while (this.#queued > 0 && out.state === 'open') {
      const head = this.#queue[0]!;
      const n = Math.min(head.length, out.window, out.packetSize);
      if (n <= 0) break;
      if (n === head.length) this.#queue.shift();
      else this.#queue[0] = head.subarray(n);
      out.window -= n;
      this.#queued -= n;
      this._client._protocol.channelData(out.id, n === head.length ? head : head.subarray(0, n));
    }
    if (this.#queued > 0) {
      this._waitWindow = true;
      return;
    }
    if (this.#ending) return this.#sendEof();
    if (this.#needDrain) {
      this.#needDrain = false;
      this.emit('drain');
    }
  }

  #sendEof(): void {
    if (this.#finished) return;
    this.#finished = true;
    const out = this.outgoing;
    if (out.state === 'open') {
      out.state = 'eof';
      this._client._protocol.channelEOF(out.id);
    }
    this.emit('finish');
  }

  #emitEnd(): void {
    if (this.#endEmitted) return;
    this.#endEmitted = true;
    this.emit('end');
  }
}
