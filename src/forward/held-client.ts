import type net from 'node:net';
import { resetSocket } from './reset-socket.js';

/** What a held client sent before its channel opened. */
export interface HeldBytes {
  chunks: Buffer[];
  bytes: number;
  /** The client half-closed while held: send EOF after the chunks. */
  ended: boolean;
}

/**
 * A client waiting for a tunnel: its first bytes are read and kept (up to
 * `limitBytes`, then the socket is paused, not dropped), and its departure is
 * noticed, so a client that gives up while held is not forwarded.
 */
export class HeldClient {
  readonly #held: HeldBytes = { chunks: [], bytes: 0, ended: false };
  #gone: string | undefined;
  readonly #onData = (chunk: Buffer) => {
    this.#held.chunks.push(chunk);
    this.#held.bytes += chunk.length;
    if (this.#held.bytes >= this.limitBytes) this.socket.pause();
  };
  readonly #onEnd = () => (this.#held.ended = true);
  readonly #left = new AbortController();
  readonly #onError = (err: NodeJS.ErrnoException) => this.#leave(`client error: ${err.code ?? err.message}`);
  readonly #onClose = () => this.#leave('client closed while held');

  /** `early`: bytes already read from the client (sent right after its SOCKS request). */
  constructor(readonly socket: net.Socket, private readonly limitBytes: number, early?: Buffer) {
    if (early?.length) this.#onData(early);
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
    socket.resume(); // accepted paused (pauseOnConnect): a 'data' listener alone does not start reading
  }

  #leave(why: string): void {
    this.#gone ??= why;
    this.#left.abort();
  }

  /** Aborts when the client leaves while held: stop waiting on its behalf. */
  get left(): AbortSignal {
    return this.#left.signal;
  }

  /** Why the client left while held, or undefined if it is still there. */
  get gone(): string | undefined {
    return this.#gone;
  }

  get bytes(): number {
    return this.#held.bytes;
  }

  /** Resets the client (shutdown): whoever waits on its behalf stops. */
  cut(why: string): void {
    this.#leave(why);
    this.release();
    resetSocket(this.socket);
  }

  /** Stops holding: the socket is paused and handed over with what it sent so far. */
  release(): HeldBytes {
    this.socket.pause();
    this.socket.off('data', this.#onData);
    this.socket.off('end', this.#onEnd);
    this.socket.off('error', this.#onError);
    this.socket.off('close', this.#onClose);
    return this.#held;
  }
}
