import { Writable } from 'node:stream';
import type { TunnelReport } from '../sshkeep.js';

/** What the status line reads: the tunnels' reports (a Fleet). */
export interface Reporting {
  reports(): TunnelReport[];
}

const CLEAR = '\r\x1b[K';

function rate(bytesPerSecond: number): string {
  if (bytesPerSecond >= 1e6) return `${(bytesPerSecond / 1e6).toFixed(1)} MB/s`;
  if (bytesPerSecond >= 1e3) return `${(bytesPerSecond / 1e3).toFixed(1)} kB/s`;
  return `${Math.round(bytesPerSecond)} B/s`;
}

/**
 * The one-line live status a person sees under the log on a terminal: state, RTT,
 * active and held connections, throughput, refreshed in place every second. It is
 * also the log's stream, so a log line clears the status, prints, and redraws it.
 */
export class StatusLine extends Writable {
  #line = '';
  #timer: NodeJS.Timeout | undefined;
  #last = new Map<string, { up: number; down: number; at: number }>();

  constructor(private readonly out: NodeJS.WritableStream) {
    super();
  }

  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    this.out.write(`${CLEAR}${chunk.toString()}${this.#line}`);
    done();
  }

  /** Starts refreshing from `fleet`. */
  show(fleet: Reporting): void {
    this.#timer = setInterval(() => {
      this.#line = this.#render(fleet);
      this.out.write(`${CLEAR}${this.#line}`);
    }, 1000);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    if (this.#line) this.out.write(CLEAR);
    this.#line = '';
  }

  #render(fleet: Reporting): string {
    const now = performance.now();
    return fleet
      .reports()
      .map((r) => {
        const bytes = r.forwards.reduce((sum, f) => ({ up: sum.up + f.bytesUp, down: sum.down + f.bytesDown }), { up: 0, down: 0 });
        const prev = this.#last.get(r.tunnel) ?? { ...bytes, at: now };
        this.#last.set(r.tunnel, { ...bytes, at: now });
        const secs = Math.max(0.001, (now - prev.at) / 1000);
        const rtt = r.rttMs === undefined ? '' : `  rtt ${r.rttMs.toFixed(1)} ms`;
        return `${r.tunnel}: ${r.state}${rtt}  active ${r.active}  held ${r.held}  up ${rate((bytes.up - prev.up) / secs)}  down ${rate((bytes.down - prev.down) / secs)}`;
      })
      .join('  |  ');
  }
}
