/** The loopback servers every forwarder under test points at: an echo, a sink and a source. */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { listen, startEcho } from '../../test/fixtures/net.js';

export const MIB = 1024 * 1024;
/** The fixed buffer every bulk transfer repeats. */
export const CHUNK = randomBytes(MIB);

export interface SinkResult {
  bytes: number;
  firstNs: bigint;
  lastNs: bigint;
}

export interface Targets {
  echo: number;
  sink: number;
  source: number;
  /** Resolves with the next sink connection that ends. */
  nextSink(): Promise<SinkResult>;
  close(): Promise<void>;
}

/** Counts what arrives on `s` and when its first and last bytes came (updated as data arrives). */
export function recordArrivals(s: net.Socket): SinkResult {
  const r: SinkResult = { bytes: 0, firstNs: 0n, lastNs: 0n };
  s.on('data', (c: Buffer) => {
    const now = process.hrtime.bigint();
    if (r.bytes === 0) r.firstNs = now;
    r.bytes += c.length;
    r.lastNs = now;
  });
  return r;
}

export async function startTargets(): Promise<Targets> {
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.setNoDelay(true);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  };

  const echo = await startEcho();

  // Sink: reads and discards, replies with the total on end.
  const sinkWaiters: Array<(r: SinkResult) => void> = [];
  const sink = net.createServer({ allowHalfOpen: true }, (s) => {
    track(s);
    const arrivals = recordArrivals(s);
    s.on('end', () => {
      s.end(String(arrivals.bytes));
      sinkWaiters.shift()?.({ ...arrivals });
    });
  });

  // Source: reads "N\n", sends N bytes of CHUNK repeated, then ends.
  const source = net.createServer({ allowHalfOpen: true }, (s) => {
    track(s);
    let head = '';
    const onData = (c: Buffer) => {
      head += c.toString('latin1');
      const nl = head.indexOf('\n');
      if (nl < 0) return;
      s.off('data', onData);
      const total = Number(head.slice(0, nl));
      let sent = 0;
      const pump = () => {
        while (sent < total) {
          const len = Math.min(CHUNK.length, total - sent);
          sent += len;
          if (!s.write(len === CHUNK.length ? CHUNK : CHUNK.subarray(0, len))) {
            s.once('drain', pump);
            return;
          }
        }
        s.end();
      };
      pump();
    };
    s.on('data', onData);
  });

  const sinkPort = await listen(sink);
  const sourcePort = await listen(source);
  return {
    echo: echo.port,
    sink: sinkPort,
    source: sourcePort,
    nextSink: () => new Promise((resolve) => sinkWaiters.push(resolve)),
    close: async () => {
      for (const s of sockets) s.destroy();
      await Promise.all([
        echo.close(),
        new Promise<void>((r) => sink.close(() => r())),
        new Promise<void>((r) => source.close(() => r())),
      ]);
    },
  };
}
