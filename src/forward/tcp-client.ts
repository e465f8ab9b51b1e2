import { constants } from 'node:os';
// The global process is an accessor on globalThis, called at every use in optimized code.
import { nextTick } from 'node:process';
import { ReadBuffers } from '../socket-reads.js';
import type { LocalSocket } from '../local-socket.js';
import { SocketEvents } from '../socket-events.js';
import { errnoError, streamWrap as wrap, type WriteReq, type ShutdownReq } from '../stream-wrap.js';

/**
 * An accepted TCP client on libuv's handle, driven as net.Socket drives it but without its
 * stream layers: net.Socket's Readable and Writable states, ticks and events cost a new
 * connection about as much CPU as ssh2's channel does (BENCHMARKS.md, issue 17). It does what
 * holding and pumping need (LocalSocket): reads while resumed, each handed on as one 'data'
 * event (ReadBuffers), writes with a high-water mark and 'drain', FIN after the writes, a reset,
 * and net.Socket's 'end', 'finish', 'error' and 'close' in net.Socket's order, half-open allowed
 * (closed once both ways have ended), emitted through SocketEvents rather than EventEmitter.
 * Node 20's handles (process.binding, DEP0111): `tcpClientsSupported()` says whether they are
 * as expected; test/tcp-client.test.ts fails when not.
 */

/** libuv's stream handle, as Node's tcp_wrap and stream_wrap bindings expose it. */
export interface TcpHandle {
  onread: (arrayBuffer: ArrayBuffer | undefined) => Buffer | undefined;
  readStart(): number;
  readStop(): number;
  useUserBuffer(buffer: Buffer): void;
  writeBuffer(req: WriteReq, bytes: Buffer): number;
  shutdown(req: ShutdownReq): number;
  setNoDelay(enable: boolean): number;
  getpeername(out: { address?: string; family?: string; port?: number }): number;
  reset(cb: () => void): number;
  close(cb: () => void): void;
}

const UV_EOF = -4095;
/** libuv's codes are the platform's errno, negated (107 on Linux, 57 on macOS and the BSDs). */
const UV_ENOTCONN = -constants.errno.ENOTCONN;

/** No borrower (lendReads): every read comes as 'data'. A function rather than undefined, so the field always holds one kind of value. */
const NOT_LENDING = (_view: Uint8Array): void => {};

/**
 * A write request whose write libuv finished at once, for the next write of any client: Node's
 * binding keeps nothing of a request it did not need (it makes the write's native side only for a
 * write left to finish later), and making one per write cost 850–1,500 instructions per round trip
 * (BENCHMARKS.md, "Nineteenth session"). One whose write was left to finish later is not used
 * again. The spare names no handle: it would keep the last client that wrote alive.
 */
let spareWrite: WriteReq | undefined;

const STREAM_METHODS = ['readStart', 'readStop', 'useUserBuffer', 'writeBuffer', 'shutdown', 'setNoDelay', 'getpeername', 'reset', 'close'] as const;

const hasStreamMethods = (o: object) => STREAM_METHODS.every((m) => typeof (o as Record<string, unknown>)[m] === 'function');

/**
 * A prototype found to carry every method: a handle made from it is not looked over again (nine
 * lookups of varying names cost each new connection ~1,500 instructions).
 */
let checkedPrototype: object | undefined;

/** Can `handle` (an accepted connection's, from a TCP listener) be a TcpClient here? */
export function tcpClientsSupported(handle: unknown): handle is TcpHandle {
  if (!wrap || typeof handle !== 'object' || handle === null) return false;
  const prototype = Object.getPrototypeOf(handle) as object | null;
  if (prototype !== null && prototype === checkedPrototype) return true;
  if (prototype !== null && hasStreamMethods(prototype)) checkedPrototype = prototype;
  return hasStreamMethods(handle);
}

export class TcpClient extends SocketEvents implements LocalSocket {
  bytesRead = 0;
  bytesWritten = 0;
  destroyed = false;
  writableEnded = false;
  writableFinished = false;
  #paused = true;
  #reading = false;
  /** pause() has queued the stop of libuv's reads for the end of the tick. */
  #stopQueued = false;
  /** The peer's FIN has come. */
  #readEnded = false;
  /** Bytes handed to libuv and not yet written. */
  #pending = 0;
  #needDrain = false;
  /** end() was called while writes were pending: FIN goes once they are written. */
  #finPending = false;
  /** FIN has been asked of libuv, after every write: the stream is complete, and can no longer be reset. */
  #finAsked = false;
  /** end()'s callbacks: called once FIN is out, or when the socket closes before. */
  #onFinished: (() => void)[] = [];
  #peer: { address?: string; family?: string; port?: number } | undefined;
  readonly #reads = new ReadBuffers();
  #borrower: (view: Uint8Array) => void = NOT_LENDING;

  /** `handle`: accepted, not reading (tcpClientsSupported). `highWaterMark`: write() says wait beyond it. */
  constructor(
    private readonly handle: TcpHandle,
    private readonly highWaterMark: number,
  ) {
    super();
    handle.onread = () => this.#onRead();
    handle.useUserBuffer(this.#reads.buffer());
  }

  /** write() says wait once this many bytes wait to be written (net.Socket's name). */
  get writableHighWaterMark(): number {
    return this.highWaterMark;
  }

  get remoteAddress(): string | undefined {
    return this.#peername().address;
  }

  get remotePort(): number | undefined {
    return this.#peername().port;
  }

  get remoteFamily(): string | undefined {
    return this.#peername().family;
  }

  #peername(): { address?: string; family?: string; port?: number } {
    if (!this.#peer && !this.destroyed) {
      const out = {};
      if (this.handle.getpeername(out) === 0) this.#peer = out;
    }
    return this.#peer ?? {};
  }

  setNoDelay(enable = true): this {
    if (!this.destroyed) this.handle.setNoDelay(enable);
    return this;
  }

  isPaused(): boolean {
    return this.#paused;
  }

  /**
   * Reads stop at the end of this tick, unless resumed by then: a client handed from its hold to its
   * pump is paused and resumed in one tick, and stopping and restarting libuv's reads costs two
   * epoll_ctl calls (BENCHMARKS.md, issue 17). No read can come in between: libuv reads between
   * ticks, and Node runs the tick queue after each callback, a read's included.
   */
  pause(): this {
    this.#paused = true;
    if (this.#reading && !this.#stopQueued) {
      this.#stopQueued = true;
      nextTick(() => this.#stopIfPaused());
    }
    return this;
  }

  #stopIfPaused(): void {
    this.#stopQueued = false;
    if (!this.#paused || !this.#reading || this.destroyed) return;
    this.#reading = false;
    this.handle.readStop();
  }

  resume(): this {
    this.#paused = false;
    if (!this.#reading && !this.#readEnded && !this.destroyed) {
      const err = this.handle.readStart();
      if (err) this.#fail(errnoError(err, 'read'));
      else this.#reading = true;
    }
    return this;
  }

  /**
   * Reads that would be copied out for 'data' (any read into the shared buffer, and one under
   * 32 KiB into the socket's own: a small message's) go to `borrower` instead, as views of the
   * buffer they landed in, read into again once it returns: it copies what it keeps. They reach
   * no 'data' listener. A bulk read handed on whole still comes as 'data'. Undefined: every read
   * as 'data' again.
   */
  lendReads(borrower: ((view: Uint8Array) => void) | undefined): void {
    this.#borrower = borrower ?? NOT_LENDING;
  }

  /** libuv read into the buffer last given; returns the buffer for the next read. */
  #onRead(): Buffer | undefined {
    const n = wrap!.streamBaseState[wrap!.kReadBytesOrError]!;
    if (n > 0) {
      const read = this.#reads.buffer();
      this.bytesRead += n;
      const borrower = this.#borrower;
      if (borrower !== NOT_LENDING && this.#reads.copies(n, read)) borrower(this.#reads.lend(n, read));
      else this.emit('data', this.#reads.take(n, read));
      const next = this.#reads.buffer();
      return next === read ? undefined : next;
    }
    if (n === 0) return undefined;
    this.#reading = false;
    this.handle.readStop();
    if (n !== UV_EOF) {
      this.#fail(errnoError(n, 'read'));
      return undefined;
    }
    this.#readEnded = true;
    this.emit('end');
    this.#closeIfDone();
    return undefined;
  }

  write(chunk: Buffer): boolean {
    if (this.destroyed) return false;
    if (this.writableEnded) {
      // As net.Socket: an error, which the pump answers with a reset (a peer's DATA after its EOF).
      this.#fail(Object.assign(new Error('write after end'), { code: 'ERR_STREAM_WRITE_AFTER_END' }));
      return false;
    }
    const req = spareWrite ?? (spareWrite = new wrap!.WriteWrap());
    const err = this.handle.writeBuffer(req, chunk); // a TCP write's request is not read for its handle
    this.bytesWritten += chunk.length;
    if (err) {
      spareWrite = undefined;
      this.#fail(errnoError(err, 'write'));
      return false;
    }
    if (!wrap!.streamBaseState[wrap!.kLastWriteWasAsync]) return this.#pending < this.highWaterMark;
    spareWrite = undefined; // libuv's until its oncomplete
    // Written later (libuv calls oncomplete then, never for a write done at once): the chunk is
    // held until then. Nothing of this is made for the writes the kernel took whole.
    req.handle = this.handle;
    req.buffer = chunk;
    req.bytes = chunk.length;
    req.oncomplete = (status) => this.#afterWrite(req, status);
    this.#pending += chunk.length;
    if (this.#pending < this.highWaterMark) return true;
    this.#needDrain = true;
    return false;
  }

  #afterWrite(req: WriteReq, status: number): void {
    this.#pending -= req.bytes;
    if (status < 0) return this.#fail(errnoError(status, 'write'));
    if (this.#pending > 0 || this.destroyed) return;
    if (this.#finPending) {
      this.#finPending = false;
      this.#shutdown();
    }
    if (this.#needDrain) {
      this.#needDrain = false;
      this.emit('drain');
    }
  }

  /** `cb` once FIN is out, or at once (next tick) if it is already or the socket is closed: never left waiting, as net.Socket's. */
  end(cb?: () => void): this {
    if (cb) {
      if (this.writableFinished || this.destroyed) nextTick(cb);
      else this.#onFinished.push(cb);
    }
    if (this.writableEnded || this.destroyed) return this;
    this.writableEnded = true;
    // As net.Socket: FIN is asked of libuv once the writes are done. One asked earlier would
    // wait there behind them, and a socket with its FIN asked cannot be reset (EINVAL): a
    // stream cut while its tail is still being written would end cleanly.
    if (this.#pending > 0) this.#finPending = true;
    else this.#shutdown();
    return this;
  }

  #shutdown(): void {
    this.#finAsked = true;
    const req = new wrap!.ShutdownWrap();
    req.handle = this.handle;
    req.oncomplete = (status) => this.#afterShutdown(status);
    const err = this.handle.shutdown(req);
    // As net.Socket: a peer already gone (ENOTCONN) leaves nothing to finish.
    if (err === UV_ENOTCONN) queueMicrotask(() => this.#afterShutdown(0));
    else if (err) this.#fail(errnoError(err, 'shutdown'));
  }

  #afterShutdown(status: number): void {
    if (this.destroyed) return;
    if (status < 0 && status !== UV_ENOTCONN) return this.#fail(errnoError(status, 'shutdown'));
    this.writableFinished = true;
    this.emit('finish');
    this.#callFinished();
    this.#closeIfDone();
  }

  /** Half-open allowed: closed once the peer's FIN has come and ours is out. */
  #closeIfDone(): void {
    if (this.#readEnded && this.writableFinished) this.destroy();
  }

  /**
   * Closes on a failed read, write or shutdown; 'error' comes on the next tick, as net.Socket's
   * does, so a write that fails does not call back into its writer (ssh2, mid-packet). With no
   * listener for it, the client is closed all the same, and the daemon carries on.
   */
  #fail(err: NodeJS.ErrnoException): void {
    if (this.destroyed) return;
    this.#close((cb) => this.handle.close(cb), true);
    nextTick(() => this.listenerCount('error') > 0 && this.emit('error', err));
  }

  destroy(): this {
    if (!this.destroyed) this.#close((cb) => this.handle.close(cb), false);
    return this;
  }

  /**
   * A TCP reset, unless FIN has been asked already: that stream is complete, and is closed.
   * (Node's reset leaves the handle unclosable when libuv refuses it, as it does then.)
   */
  resetAndDestroy(): this {
    if (this.#finAsked) return this.destroy();
    // A reset libuv refuses leaves Node's handle unclosable: 'close' is said all the same, so the
    // client is not counted for ever (its descriptor is Node's to lose, as with net.Socket).
    if (!this.destroyed) this.#close((cb) => void (this.handle.reset(cb) !== 0 && nextTick(cb)), false);
    return this;
  }

  #close(how: (cb: () => void) => void, hadError: boolean): void {
    this.destroyed = true;
    this.#reading = false;
    how(() => this.emit('close', hadError));
    if (this.#onFinished.length > 0) nextTick(() => this.#callFinished());
  }

  #callFinished(): void {
    const callbacks = this.#onFinished;
    this.#onFinished = [];
    for (const cb of callbacks) cb();
  }
}
