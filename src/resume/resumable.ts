import type net from 'node:net';
import type { ClientChannel } from 'ssh2';
import { openPort, type ChannelPort, type SshSession } from '../ssh/adapter.js';
import type { HeldBytes } from '../forward/hold.js';
import type { EndSide, PumpResult } from '../forward/pump.js';
import { resetSocket } from '../forward/reset-socket.js';
import type { Logger } from '../log.js';
import { DATA_PREFIX, ERROR_CODE, MAX_DATA, encodeDataInto, encodeFrame, type Frame, type FrameParser } from './frames.js';
import { ACK_DELAY_MS, OffsetError, type StreamState } from './stream.js';

/** How long a finished stream's last frames may wait for the send window before its channel is closed anyway. */
const FLUSH_BEFORE_CLOSE_MS = 10_000;

/** A channel to the agent that carries one stream, with the parser of what the agent sent on it. */
export interface Link {
  channel: ClientChannel;
  session: SshSession;
  parser: FrameParser;
}

export interface ResumableOptions {
  /** How long the stream waits for a new channel once its channel is gone (--resume-grace). */
  graceMs: number;
  log: Logger;
  onDone: (result: PumpResult) => void;
  /** The channel is gone and the stream waits: find it a new one. */
  onDetached: (stream: ResumableStream) => void;
}

/** Where DATA frames are encoded before ssh2 copies them into a packet: one per process, reused. */
let scratch = Buffer.allocUnsafe(64 * 1024);

/** Why the client reading is paused: the replay buffer is full, or the channel pushes back. */
type PauseReason = 'replay' | 'channel';

/**
 * One forwarded client whose target the agent holds: the client socket ⇄ frames on a channel
 * to the agent. When the channel dies with its SSH connection the client socket is kept, its
 * bytes go on filling the replay buffer (then it is paused), and a later `attach()` resends
 * from what the agent says it received. Ends once, as a Pump does, with which side ended it.
 */
export class ResumableStream {
  #link: Link | undefined;
  /** The data path of the attached channel. */
  #port: ChannelPort | undefined;
  /**
   * The replay buffer is the send queue: bytes below `#framed` went out in DATA frames on this
   * channel, the rest go as the window opens (#pump); `#eofFramed`: our EOF went too.
   */
  #framed = 0;
  #eofFramed = false;
  /** The most ever framed, on any channel: what an agent resuming may say it received. */
  #framedMost = 0;
  /** #pump waits for the port's room. */
  #waitingRoom = false;
  #unlink: (flush?: boolean) => void = () => {};
  #graceExpired = false;
  #done = false;
  /** Both directions ended and acknowledged; the client may still be taking its last bytes. */
  #completed = false;
  #firstEnd: EndSide | undefined;
  /** We shut down the client's writing side (the target's EOF arrived). */
  #clientWriteEnded = false;
  readonly #paused = new Set<PauseReason>();
  #graceTimer: NodeJS.Timeout | undefined;
  #ackTimer: NodeJS.Timeout | undefined;
  /** Bytes delivered to the client, and read from it (held ones included). */
  #bytesDown = 0;
  #bytesUp = 0;
  /** The client went away while no channel was attached: the agent is told at the next attach. */
  #pendingReset: string | undefined;

  constructor(
    private readonly client: net.Socket,
    /** 128 random bits; never logged (tag() shows 4 hex digits). */
    readonly id: Buffer,
    readonly state: StreamState,
    held: HeldBytes,
    private readonly options: ResumableOptions,
  ) {
    for (const chunk of held.chunks) this.#fromClient(chunk);
    if (held.ended) this.#clientEnded();
    else {
      client.on('data', (chunk: Buffer) => this.#fromClient(chunk));
      client.on('end', () => this.#clientEnded());
    }
    client.on('error', (err: NodeJS.ErrnoException) => this.#clientGone(`client error: ${err.code ?? err.message}`));
    client.on('close', () => {
      // Both ways ended cleanly: what is left is the agent's ack of our EOF, which needs no client.
      if (this.#bothWaysEnded) return;
      this.#clientGone('client closed');
    });
    client.on('drain', () => this.#port?.resumeReceive());
    if (!this.#paused.size) client.resume();
  }

  /** The first 4 hex digits of the id: enough to follow a stream in a debug log, useless to attach it. */
  get tag(): string {
    return this.id.subarray(0, 2).toString('hex');
  }

  get bytesUp(): number {
    return this.#bytesUp;
  }

  get bytesDown(): number {
    return this.#bytesDown;
  }

  get done(): boolean {
    return this.#done;
  }

  /** Reset because no channel came within --resume-grace (a metric's reason), not for another loss. */
  get graceExpired(): boolean {
    return this.#graceExpired;
  }

  /** Waiting for a channel: the agent must be told about this stream (resumed, or reset). */
  get detached(): boolean {
    return this.#link === undefined && (!this.#done || this.#pendingReset !== undefined);
  }

  get session(): SshSession | undefined {
    return this.#link?.session;
  }

  /**
   * Carries the stream on `link`, a channel whose ACCEPT said the agent received `peerReceived`:
   * an older channel is dropped, what the agent lacks is sent again, then `frames` (what came
   * after the ACCEPT) are handled. An offset the replay buffer cannot serve resets the stream.
   */
  attach(link: Link, peerReceived: number, frames: Frame[]): void {
    this.#unlink();
    this.#link = link;
    clearTimeout(this.#graceTimer);
    this.#graceTimer = undefined;
    const port = openPort(link.channel, link.session, DATA_PREFIX + 1); // a DATA frame carries at least one byte
    this.#port = port;
    const onGone = () => this.#detach(link);
    link.channel.on('close', onGone);
    link.channel.on('end', onGone);
    link.channel.on('error', onGone);
    const onDrain = () => this.#resumeClient('channel');
    link.channel.on('drain', onDrain);
    this.#unlink = (flush = false) => {
      port.detach();
      link.channel.off('close', onGone);
      link.channel.off('end', onGone);
      link.channel.off('drain', onDrain);
      link.channel.on('error', () => {});
      link.channel.resume();
      this.#unlink = () => {};
      if (link.session.closed) return;
      if (!flush || link.channel.writableLength === 0) return void link.channel.close();
      // Frames still queued behind the send window (a RESET, the last ACK): ssh2 drops what is
      // queued once the channel is closing, so close when they have gone out (or at a deadline).
      const close = () => {
        clearTimeout(timer);
        if (!link.session.closed) link.channel.close();
      };
      const timer = setTimeout(close, FLUSH_BEFORE_CLOSE_MS).unref();
      link.channel.once('finish', close);
      link.channel.end();
    };
    if (this.#pendingReset !== undefined) return this.#tellReset(this.#pendingReset, false); // the client left while detached: nothing more for the target
    let resend;
    try {
      const most = this.#framedMost + (this.#eofFramed ? 1 : 0);
      if (peerReceived > most) throw new OffsetError(`the agent resumes from ${peerReceived}, beyond what was sent (${most})`);
      resend = this.state.resumeFrom(peerReceived);
    } catch (err) {
      return this.#broken((err as Error).message);
    }
    // What the agent lacks is sent again from the replay buffer, then what the client sends next.
    this.#framed = Math.min(peerReceived, this.state.sent);
    this.#eofFramed = this.state.eofSent && !resend.eof;
    this.#waitingRoom = false;
    this.#pump();
    this.#resumeClient('channel');
    this.#resumeIfRoom(); // the resume's ack may have freed this stream's buffer while the cap is full
    for (const f of frames) if (this.#link === link) this.#onFrame(f);
    if (this.#link !== link) return; // those frames ended it
    port.receive((chunk) => {
      if (this.#link !== link) return true;
      const { frames: more, error } = link.parser.push(chunk);
      for (const f of more) if (this.#link === link) this.#onFrame(f);
      if (error !== undefined && this.#link === link) this.#protocolError(error);
      return this.client.writableNeedDrain === false;
    });
  }

  /** Both ways ended for the client: the target's EOF written to it, its own EOF sent on. */
  get #bothWaysEnded(): boolean {
    return this.state.eofSent && this.#clientWriteEnded;
  }

  /**
   * The stream cannot be resumed (the agent does not know it, or is gone): the client is reset;
   * true. Unless both ways were over for the client (the target's EOF written to it, its own
   * sent): the agent finished the stream before its last ACK reached us (or, gone, reset the
   * target itself), and a reset could only cost the client the tail it has still to read; then
   * it ends as it was ending, and false.
   */
  lost(why: string): boolean {
    if (this.#done && this.#pendingReset === undefined) return false;
    this.#pendingReset = undefined;
    clearTimeout(this.#graceTimer);
    this.#graceTimer = undefined;
    if (this.#bothWaysEnded) {
      const side = this.#firstEnd ?? 'client';
      this.#finish(side, `${side} closed`, false);
      return false;
    }
    resetSocket(this.client);
    this.#finish('tunnel', `stream not resumed: ${why}`, true);
    return true;
  }

  /** Ends the stream abruptly (shutdown): the client is reset, the agent told to reset the target. */
  abort(side: EndSide, reason: string): void {
    if (this.#done) return;
    resetSocket(this.client, 0);
    this.#tellReset(reason);
    // Shutting down: a detached stream is not waited for (GOODBYE makes the agent reset what it holds).
    this.#pendingReset = undefined;
    this.#finish(side, reason, true);
  }

  #fromClient(chunk: Buffer): void {
    this.#bytesUp += chunk.length;
    this.state.send(chunk);
    this.#pump();
    if (this.state.full) {
      this.#pauseClient('replay');
      this.#resumeIfRoom();
    }
  }

  /**
   * Paused on a full replay buffer: reads again if there is room now, else waits for it. Its
   * own acks call this again (#onFrame, attach); the process cap's room is waited for here,
   * each time the stream's own buffer has room and the cap is what stops it, however it got
   * there: its own acks can free its buffer while the cap is still full of other streams'.
   */
  #resumeIfRoom(): void {
    if (this.#done || !this.#paused.has('replay')) return;
    if (this.state.full) this.state.whenBudgetRoom(this.#onBudgetRoom);
    else this.#resumeClient('replay');
  }

  /** One function per stream: the cap calls a stream waiting on it once, however often it was asked. */
  readonly #onBudgetRoom = () => this.#resumeIfRoom();

  /**
   * Sends what the replay buffer holds beyond `#framed`, in DATA frames each sized to the room
   * the channel has now (one packet, within the window), each encoded into the scratch buffer
   * that ssh2 copies into its packet; then our EOF once all bytes went. Out of room, it waits
   * for the port: the client goes on filling the replay buffer, which pauses it when full.
   */
  #pump(): void {
    const port = this.#port;
    if (!this.#link || !port || this.#waitingRoom) return;
    while (this.#framed < this.state.sent) {
      const most = Math.min(MAX_DATA, port.room() - DATA_PREFIX);
      if (most < 1) {
        this.#waitingRoom = true;
        port.whenRoom(() => {
          this.#waitingRoom = false;
          if (this.#port === port) this.#pump();
        });
        return;
      }
      this.#frame(port, most); // within room(): sent at once (queued only over the stream API)
    }
    if (this.state.eofSent && !this.#eofFramed) {
      this.#eofFramed = true;
      this.#write({ type: 'eof', offset: this.state.sent });
    }
  }

  /** One DATA frame of at most `most` bytes from `#framed`, with our ack. */
  #frame(port: ChannelPort, most: number): void {
    const bytes = this.state.bytesAt(this.#framed, most);
    if (scratch.length < DATA_PREFIX + bytes.length) scratch = Buffer.allocUnsafe(DATA_PREFIX + bytes.length);
    const length = encodeDataInto(scratch, this.#framed, this.state.received, bytes);
    port.write(scratch.subarray(0, length));
    this.#framed += bytes.length;
    this.#framedMost = Math.max(this.#framedMost, this.#framed);
    this.#ackSent();
  }

  /** An ack from the agent: beyond what went out on this channel is a broken contract (OffsetError). */
  #onAck(ack: number): void {
    const limit = this.#framed + (this.#eofFramed ? 1 : 0);
    if (ack > limit) throw new OffsetError(`ack ${ack} beyond what was sent (${limit})`);
    this.state.onAck(ack);
  }

  /** A frame carried our ack: nothing is owed until more arrives. */
  #ackSent(): void {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    this.state.ack();
  }

  #clientEnded(): void {
    this.#firstEnd ??= 'client';
    this.state.sendEof();
    this.#pump();
  }

  /** Writes a frame on the channel; a channel that pushes back pauses the client until it drains. */
  #write(frame: Frame): void {
    if (!this.#link) return;
    if (!this.#port!.write(encodeFrame(frame))) this.#pauseClient('channel');
  }

  #pauseClient(why: PauseReason): void {
    this.#paused.add(why);
    this.client.pause();
  }

  #resumeClient(why: PauseReason): void {
    this.#paused.delete(why);
    if (why === 'replay' || !this.state.full) this.#paused.delete('replay');
    if (this.#paused.size === 0 && !this.#done) this.client.resume();
  }

  #onFrame(f: Frame): void {
    try {
      switch (f.type) {
        case 'data': {
          this.#onAck(f.ack);
          const fresh = this.state.onData(f.offset, f.data);
          if (fresh) this.#deliver(fresh);
          this.#afterReceive();
          break;
        }
        case 'ack':
          this.#onAck(f.ack);
          break;
        case 'eof':
          if (this.state.onEof(f.offset)) {
            this.#firstEnd ??= 'target';
            this.#clientWriteEnded = true;
            this.client.end();
          }
          this.#afterReceive();
          break;
        case 'reset':
          return this.#targetReset(f.reason);
        case 'error':
          return this.#broken(f.code === ERROR_CODE.unknownStream ? 'the agent no longer knows this stream' : `agent error ${f.code}: ${f.message}`);
        default:
          return this.#protocolError(`unexpected ${f.type.toUpperCase()} on a stream`);
      }
    } catch (err) {
      if (err instanceof OffsetError) return this.#broken(err.message);
      throw err;
    }
    this.#resumeIfRoom();
    if (this.state.finished) this.#complete();
  }

  #deliver(bytes: Buffer): void {
    this.#bytesDown += bytes.length;
    this.client.write(bytes); // a full client holds the channel's window back (the port's receiver)
  }

  /** Acknowledges at once every 256 KiB, else 100 ms after receiving when nothing was sent since. */
  #afterReceive(): void {
    if (this.state.ackDue) return this.#sendAck();
    if (this.state.owesAck && !this.#ackTimer) this.#ackTimer = setTimeout(() => this.#sendAck(), ACK_DELAY_MS);
  }

  #sendAck(): void {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    if (this.#link && this.state.owesAck) this.#write({ type: 'ack', ack: this.state.ack() });
  }

  /**
   * Both directions ended and acknowledged: a clean end, once the client has taken what was
   * written to it. Until then the stream counts as open: a drain waits for its tail.
   */
  #complete(): void {
    this.#sendAck();
    this.#completed = true;
    const side = this.#firstEnd ?? 'client';
    const finish = () => this.#finish(side, `${side} closed`, false);
    if (this.client.destroyed) finish();
    else this.client.once('close', finish);
    this.#unlinkAfterFlush();
  }

  #targetReset(reason: string): void {
    resetSocket(this.client);
    this.#finish('target', `target reset${reason ? `: ${reason}` : ''}`, true);
    this.#unlinkAfterFlush();
  }

  /** The stream cannot go on (unknown to the agent, offsets that do not meet): the client is reset. */
  #broken(why: string): void {
    resetSocket(this.client);
    this.#tellReset(why, false);
    this.#finish('tunnel', `stream not resumable: ${why}`, true);
  }

  #protocolError(message: string): void {
    this.#write({ type: 'error', code: ERROR_CODE.protocol, message });
    this.#broken(`protocol error: ${message}`);
  }

  /** The client left while the stream lives: the agent resets the target (now, or at the next attach). */
  #clientGone(reason: string): void {
    if (this.#done) return;
    // Complete for the agent: only the client's copy of the last bytes failed.
    if (this.#completed) return this.#finish('client', reason, true);
    this.#tellReset(reason);
    this.#finish('client', reason, !reason.startsWith('client closed'));
  }

  /**
   * RESET comes after the client's bytes (the agent delivers them first): what the window did not
   * let out yet is framed now, queued behind it, unless the stream is broken (`withData` false).
   */
  #tellReset(reason: string, withData = true): void {
    if (!this.#link) {
      this.#pendingReset = reason;
      return;
    }
    this.#pendingReset = undefined;
    if (withData) while (this.#framed < this.state.sent) this.#frame(this.#port!, MAX_DATA);
    this.#write({ type: 'reset', offset: withData ? this.state.sent : this.#framed, reason });
    this.#unlinkAfterFlush();
  }

  /** Closes the channel once what was written on it has gone out. */
  #unlinkAfterFlush(): void {
    const unlink = this.#unlink;
    this.#link = undefined;
    this.#port = undefined;
    this.#unlink = () => {};
    unlink(true);
  }

  /** The channel is gone (its SSH connection died, or the agent closed it): wait for another within the grace. */
  #detach(link: Link): void {
    if (this.#link !== link) return;
    this.#unlink();
    this.#link = undefined;
    this.#port = undefined;
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    if (this.#done && this.#pendingReset === undefined) return;
    this.#graceTimer ??= setTimeout(() => this.#graceOver(), this.options.graceMs);
    this.options.log.debug('stream waits for a new channel', { event: 'resume_wait', stream: this.tag, graceMs: this.options.graceMs });
    this.options.onDetached(this);
  }

  #graceOver(): void {
    this.#graceTimer = undefined;
    this.#pendingReset = undefined;
    if (this.#done) return this.options.onDetached(this);
    if (this.client.destroyed && this.#bothWaysEnded) {
      // Both ways ended cleanly for the client; only the agent's ack of our EOF was missing.
      this.#finish(this.#firstEnd ?? 'client', `${this.#firstEnd ?? 'client'} closed`, false);
      return this.options.onDetached(this);
    }
    resetSocket(this.client);
    this.#graceExpired = true;
    this.#finish('tunnel', `not resumed within --resume-grace (${this.options.graceMs} ms)`, true);
    this.options.onDetached(this);
  }

  #finish(side: EndSide, reason: string, reset: boolean): void {
    if (this.#done) return;
    this.#done = true;
    clearTimeout(this.#ackTimer);
    if (this.#pendingReset === undefined) {
      clearTimeout(this.#graceTimer);
      this.#graceTimer = undefined;
    }
    this.state.release();
    this.options.onDone({ side, reason, reset, bytesUp: this.#bytesUp, bytesDown: this.#bytesDown });
  }
}
