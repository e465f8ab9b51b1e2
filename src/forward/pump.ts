import type { LocalSocket } from '../local-socket.js';
import { link, type ForwardChannel, type SshSession } from '../ssh/adapter.js';
import type { HeldBytes } from './hold.js';
import { resetSocket } from './reset-socket.js';
import { queuedDeadline } from '../ssh/deadline.js';

/**
 * -R: how long a channel whose EOFs have crossed waits for the server's CLOSE before sending its
 * own (a server that waits for ours). OpenSSH's comes at once.
 */
export const SERVER_CLOSE_WAIT_MS = 100;

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
  /** The server's EOF has come: nothing more comes from the channel. */
  #channelEnded = false;
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
      this.#channelEnded = true;
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
    const closeWhenOurEofIsOut = () => (this.#letServerCloseFirst() ? this.#closeAfterServer(closeChannel) : closeChannel());
    if (this.channel.writableFinished) closeWhenOurEofIsOut();
    else this.channel.once('finish', closeWhenOurEofIsOut);
    this.channel.once('close', report);
  }

  /**
   * -R, with both EOFs crossed: the server closes the channel on its own (OpenSSH does once both
   * EOFs are done) and ssh2 answers its CLOSE. Ours sent first had sshd answer it with a CLOSE our
   * side acknowledged only after the 40 ms delayed ACK, and sshd (no TCP_NODELAY without a
   * session) held the next connection's open behind it: 42 ms per new connection, as through
   * `ssh -R` (BENCHMARKS.md, "Seventeenth session").
   */
  #letServerCloseFirst(): boolean {
    return this.#localSide === 'target' && this.#channelEnded;
  }

  #closeAfterServer(closeChannel: () => void): void {
    const cancel = queuedDeadline(closeChannel, SERVER_CLOSE_WAIT_MS);
    this.channel.once('close', cancel);
  }
}
