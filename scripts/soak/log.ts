/**
 * sshkeep's JSON log, read as the soak needs it: the ports it bound, its state changes, and for each
 * client connection whether it was held and how sshkeep ended it.
 */
import type { LogLine } from '../../test/fixtures/child.js';

export interface ConnInfo {
  held: boolean;
  acceptAt: number;
  end?: { side: string; reason: string; reset: boolean; pumped: boolean };
}

export class SshkeepLog {
  readonly listens: Array<{ forward: string; address: string; port: number }> = [];
  health: { address: string; port: number } | undefined;
  readonly states: Array<{ atMs: number; from: string; to: string; reason: string }> = [];
  readonly conns = new Map<number, ConnInfo>();
  /** Client port → the latest connection id sshkeep accepted from it. */
  readonly byPort = new Map<number, number>();
  readonly events: Record<string, number> = {};
  warnings = 0;
  readonly errors: Array<{ atMs: number; msg: string }> = [];

  /** Takes one log line that arrived `atMs` into the run. */
  take(l: LogLine, atMs: number): void {
    const event = typeof l.event === 'string' ? l.event : '';
    if (event) this.events[event] = (this.events[event] ?? 0) + 1;
    if (l.level === 'warn') this.warnings++;
    if (l.level === 'error' && this.errors.length < 200) this.errors.push({ atMs, msg: `${String(l.msg)}${l.error ? `: ${String(l.error)}` : ''}` });
    switch (event) {
      case 'listen':
        this.listens.push({ forward: String(l.forward), address: String(l.address), port: Number(l.port) });
        break;
      case 'health':
        this.health = { address: String(l.address), port: Number(l.port) };
        break;
      case 'state':
        this.states.push({ atMs, from: String(l.from), to: String(l.to), reason: String(l.reason ?? '') });
        break;
      case 'accept': {
        const conn = Number(l.conn);
        const port = Number(String(l.client ?? '').split(':').pop());
        this.conns.set(conn, { held: l.state !== 'ready', acceptAt: atMs });
        if (Number.isFinite(port)) this.byPort.set(port, conn);
        break;
      }
      case 'conn_end': {
        if (l.conn === undefined) break;
        const conn = Number(l.conn);
        const info = this.conns.get(conn) ?? { held: false, acceptAt: atMs };
        info.end ??= { side: String(l.side ?? ''), reason: String(l.reason ?? ''), reset: l.reset === true, pumped: 'durationMs' in l };
        this.conns.set(conn, info);
        break;
      }
    }
  }

  /** The port sshkeep bound for the forward to `target`. */
  portFor(target: number): number {
    const l = this.listens.find((x) => x.forward.endsWith(`->127.0.0.1:${target}`));
    if (!l) throw new Error(`no listen line for the forward to ${target}: ${JSON.stringify(this.listens)}`);
    return l.port;
  }

  /** sshkeep's connection from `localPort` if it was accepted while the stream [startMs, endMs] lived. */
  connOf(localPort: number | undefined, startMs: number, endMs: number): { conn: number; info: ConnInfo } | undefined {
    const conn = localPort !== undefined ? this.byPort.get(localPort) : undefined;
    const info = conn !== undefined ? this.conns.get(conn) : undefined;
    if (!info || info.acceptAt < startMs - 1000 || info.acceptAt > endMs + 1000) return undefined;
    return { conn: conn!, info };
  }

  /** Held connections by how they ended. */
  held(): { held: number; served: number; timedOutLog: number; clientLeft: number; other: number; open: number } {
    const h = { held: 0, served: 0, timedOutLog: 0, clientLeft: 0, other: 0, open: 0 };
    for (const c of this.conns.values()) {
      if (!c.held) continue;
      h.held++;
      if (!c.end) h.open++;
      else if (c.end.pumped) h.served++;
      else if (c.end.reason === 'hold_timeout') h.timedOutLog++;
      else if (c.end.side === 'client') h.clientLeft++;
      else h.other++;
    }
    return h;
  }
}
