import { EventEmitter } from 'node:events';
import { ConnectError } from '../errors.js';
import type { SshSession } from './ssh-adapter.js';
import type { Tunnel, TunnelState, TunnelStatus } from './tunnel.js';

/** What a forward needs from the connection(s) it opens channels on. */
export interface SessionSource {
  readonly state: TunnelState;
  /** Is `session` one that new clients are given right now? */
  serves(session: SshSession): boolean;
  whenReady(timeoutMs: number, signal?: AbortSignal): Promise<SshSession>;
  noteNewClient(): void;
  on(event: 'status', listener: (s: TunnelStatus) => void): unknown;
  once(event: 'status', listener: (s: TunnelStatus) => void): unknown;
  off(event: 'status', listener: (s: TunnelStatus) => void): unknown;
}

/**
 * `--connections N`: several managed SSH connections to the same server, each with its own
 * state machine and heartbeat; each new stream goes to the ready one carrying the fewest
 * channels, so one connection's TCP head-of-line blocking does not stall every stream.
 */
export class TunnelPool extends EventEmitter<{ status: [TunnelStatus] }> implements SessionSource {
  constructor(readonly members: Tunnel[]) {
    super();
    this.setMaxListeners(0); // one per client waiting for a state change
    for (const m of members) m.on('status', (s) => this.emit('status', s));
  }

  /** Ready when any member is; otherwise the first member's state. */
  get state(): TunnelState {
    return this.members.some((m) => m.state === 'ready') ? 'ready' : this.members[0]!.state;
  }

  serves(session: SshSession): boolean {
    return this.members.some((m) => m.serves(session));
  }

  /** The ready session carrying the fewest channels. */
  #leastLoaded(): SshSession | undefined {
    const ready = this.members.map((m) => m.readySession).filter((s): s is SshSession => s !== undefined);
    return ready.reduce<SshSession | undefined>((best, s) => (best === undefined || s.channels < best.channels ? s : best), undefined);
  }

  /** The least loaded ready session, or the first to become ready within `timeoutMs`. */
  async whenReady(timeoutMs: number, signal?: AbortSignal): Promise<SshSession> {
    const now = this.#leastLoaded();
    if (now) return now;
    if (signal?.aborted) throw new ConnectError('no longer waiting');
    const giveUp = new AbortController();
    const onAbort = () => giveUp.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await Promise.any(this.members.map((m) => m.whenReady(timeoutMs, giveUp.signal)));
    } catch (err) {
      throw (err as AggregateError).errors?.[0] ?? err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      giveUp.abort(); // the other members stop waiting for us
    }
  }

  noteNewClient(): void {
    for (const m of this.members) m.noteNewClient();
  }
}
