import type { LocalSocket } from '../local-socket.js';
import { link, type ForwardChannel, type SshSession } from '../ssh/adapter.js';
import type { HeldBytes } from './hold.js';
import { resetSocket } from './reset-socket.js';

/**
 * Options of the local socket of every pumped connection (an accepted client, or -R's target):
 * half-open allowed, so a client's EOF becomes the channel's and the other direction goes on;
 * `highWaterMark` is its write buffer's limit, and its read buffer's where reads go through the
 * socket's Readable (src/socket-reads.ts reads around it, holding nothing but a paused socket's reads).
 */
export function pumpedSocketOptions(highWaterMark: number): { allowHalfOpen: boolean; highWaterMark: number } {
  return { allowHalfOpen: true, highWaterMark };
}

/** Which end finished the connection: the local client, the remote target, or the tunnel under it. */
export type EndSide = 'client' | 'target' | 'tunnel' | 'local';

export interface PumpResult {
  side: EndSide;
  reason: string;
  /** True when the client socket was reset rather than ended cleanly. */
  reset: boolean;
  bytesUp: number;
  bytesDown: number;
}

/**
 * Moves bytes between a client socket and an SSH channel, with backpressure
 * both ways and half-close carried across. Ends exactly once: closes both
 * sides and reports which side ended and why. A stream cut by the tunnel's
 * loss resets the client, so a truncated reply can never look complete.
 */
export class Pump {
  #done = false;
  /** The channel's CLOSE has come (or its connection is gone): nothing more reaches the target. */
  #channelClosed = false;
  #firstEnd: EndSide | undefined;

  /** Which side the local socket is: the client (-L, -D), or the target (-R, where the client is on the server's side). */
  readonly #localSide: 'client' | 'target';
  readonly #channelSide: 'client' | 'target';

  constructor(
    private readonly client: LocalSocket,
    private readonly channel: ForwardChannel,
    private readonly session: SshSession,
    held: HeldBytes,
    private readonly onDone: (result: PumpResult) => void,
    localSide: 'client' | 'target' = 'client',
  ) {
    this.#localSide = localSide;
    this.#channelSide = localSide === 'client' ? 'target' : 'client';
    const onTunnelLost = (why: string) => this.#cut('tunnel', `SSH connection lost: ${why}`);
    session.on('close', onTunnelLost);
    this.#detach = () => session.off('close', onTunnelLost);

    // What the client sent while held goes first, in order.
    for (const chunk of held.chunks) channel.write(chunk);
    const clientEnded = () => {
      this.#firstEnd ??= this.#localSide;
      channel.end(); // SSH EOF: the target sees a half-close
    };
    if (held.ended) clientEnded();
    else client.on('end', clientEnded);

    channel.on('end', () => {
      this.#firstEnd ??= this.#channelSide;
      if (!session.closed) client.end();
    });
    client.on('error', (err: NodeJS.ErrnoException) => this.#cut(this.#localSide, `${this.#localSide} error: ${err.code ?? err.message}`));
    channel.on('error', (err: Error) => this.#cut(this.#channelSide, `channel error: ${err.message}`));
    client.on('close', () => {
      const side = this.#firstEnd ?? this.#localSide;
      this.#finish(side, `${side} closed`, false);
    });
    channel.on('close', () => {
      this.#channelClosed = true;
      if (this.#done || session.closed) return;
      // The far side closed both ways: deliver what is buffered, then close.
      this.#firstEnd ??= this.#channelSide;
      client.end(() => client.destroy());
    });
    // Last: a lean channel hands over at once what came before the link, its 'end' included.
    this.#unlink = link(client, channel, session, !held.ended).unlink;
  }

  readonly #detach: () => void;
  readonly #unlink: () => void;

  /** Bytes from the client (held ones included) to the target, and back: the local socket counts them, not the hot path. */
  get bytesUp(): number {
    return this.#localSide === 'client' ? this.client.bytesRead : this.client.bytesWritten;
  }

  get bytesDown(): number {
    return this.#localSide === 'client' ? this.client.bytesWritten : this.client.bytesRead;
  }

  /** Ends the connection abruptly as the process stops: the client sees a reset now, the channel is closed. */
  abort(side: EndSide, reason: string): void {
    this.#cut(side, reason, 0);
  }

  /** Ends the connection abruptly: the client sees a reset (after `flushMs` for a complete reply still being written), the channel is closed. */
  #cut(side: EndSide, reason: string, flushMs?: number): void {
    if (this.#done) return;
    this.#finish(side, reason, true);
    resetSocket(this.client, flushMs);
  }

  #finish(side: EndSide, reason: string, reset: boolean): void {
    if (this.#done) return;
    this.#done = true;
    this.#detach();
    this.#unlink();
    // Unlinked, the channel may be paused (a pipe paused it) and would never emit 'end', so never 'close', and its
    // connection would count it open for ever: drain it.
    this.channel.resume();
    const closeChannel = () => {
      if (!this.session.closed) this.channel.close();
    };
    const report = () => this.onDone({ side, reason, reset, bytesUp: this.bytesUp, bytesDown: this.bytesDown });
    if (reset || this.#channelClosed) {
      closeChannel();
      return report();
    }
    // A clean end lets the upload's tail (and our EOF) reach the target first, and the connection
    // counts as open until the server's CLOSE: OpenSSH sends it once it has written everything to
    // the target. A drain waits for that rather than stop the SSH connection under a tail still in
    // the server's buffer (the target would see a clean, truncated end). A server that never
    // answers our CLOSE has its channel closed by the session after a while (SshSession#track).
    if (this.channel.writableFinished) closeChannel();
    else this.channel.once('finish', closeChannel);
    this.channel.once('close', report);
  }
}
