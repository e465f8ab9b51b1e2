import { EventEmitter } from 'node:events';
import type { SshSession } from './adapter.js';
import type { SshConnection, ConnectionState, ConnectionStatus } from './connection.js';

/** What a forward needs from the connection(s) it opens channels on. */
export interface SessionSource {
  readonly state: ConnectionState;
  /** The session a new client is given right now, if one is ready. */
  readonly readySession: SshSession | undefined;
  /** Aborts when a spare takes `session`'s place: its unanswered channel opens go to the spare. */
  supersededSignal(session: SshSession): AbortSignal | undefined;
  /** A new client arrived (or `what`, another reason to want an answer now): probe a link that has been quiet a while. */
  noteNewClient(what?: string): void;
  /** A client is held until a session is ready: retry dialling promptly until `done()`. Returns `done`. */
  clientWaiting(): () => void;
  on(event: 'status', listener: (s: ConnectionStatus) => void): unknown;
  off(event: 'status', listener: (s: ConnectionStatus) => void): unknown;
}

/**
 * `--connections N`: several managed SSH connections to the same server, each with its own
 * state machine and heartbeat; each new stream goes to the ready one carrying the fewest
 * channels, so one connection's TCP head-of-line blocking does not stall every stream.
 */
export class ConnectionPool extends EventEmitter<{ status: [ConnectionStatus] }> implements SessionSource {
  constructor(readonly members: SshConnection[]) {
    super();
    this.setMaxListeners(0); // one per client waiting for a state change
    for (const m of members) m.on('status', (s) => this.emit('status', s));
  }

  /** Ready when any member is; otherwise the first member's state. */
  get state(): ConnectionState {
    return this.members.some((m) => m.state === 'ready') ? 'ready' : this.members[0]!.state;
  }

  supersededSignal(session: SshSession): AbortSignal | undefined {
    return this.members.map((m) => m.supersededSignal(session)).find((s) => s !== undefined);
  }

  /** The ready session carrying the fewest channels. */
  get readySession(): SshSession | undefined {
    const ready = this.members.map((m) => m.readySession).filter((s): s is SshSession => s !== undefined);
    return ready.reduce<SshSession | undefined>((best, s) => (best === undefined || s.channels < best.channels ? s : best), undefined);
  }

  noteNewClient(what?: string): void {
    for (const m of this.members) m.noteNewClient(what);
  }

  clientWaiting(): () => void {
    const done = this.members.map((m) => m.clientWaiting());
    return () => done.forEach((d) => d());
  }
}
