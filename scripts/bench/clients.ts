/** The client side of each measurement: bulk transfers, ping-pongs, new and held connections. */
import { once } from 'node:events';
import net from 'node:net';
import { HOST, connect, deadline } from '../../test/fixtures/net.js';
import { CHUNK, recordArrivals, type SinkResult, type Targets } from './targets.js';

const ONE = Buffer.from('x');

const nsToUs = (ns: bigint): number => Number(ns) / 1e3;

export interface Transfer {
  bytes: number;
  seconds: number;
  mbps: number;
}

export const transfer = (bytes: number, ns: bigint): Transfer => {
  const seconds = Number(ns) / 1e9;
  return { bytes, seconds, mbps: bytes / 1e6 / seconds };
};

/** Sends `bytes` to the sink and half-closes; resolves on the sink's reply (its byte count) and end. */
export async function sendToSink(port: number, bytes: number): Promise<void> {
  const s = await connect(port);
  try {
    let reply = '';
    s.on('data', (c: Buffer) => (reply += c.toString('latin1')));
    const ended = once(s, 'end');
    ended.catch(() => {}); // observed below
    let sent = 0;
    while (sent < bytes) {
      const len = Math.min(CHUNK.length, bytes - sent);
      sent += len;
      if (!s.write(len === CHUNK.length ? CHUNK : CHUNK.subarray(0, len))) await once(s, 'drain');
    }
    s.end();
    await ended;
    if (Number(reply) !== bytes) throw new Error(`upload: sent ${bytes}, sink replied "${reply}"`);
  } finally {
    s.destroy();
  }
}

/** Asks the source for `bytes`; first and last arrival times. */
async function receiveFromSource(port: number, bytes: number): Promise<SinkResult> {
  const s = await connect(port);
  try {
    const arrivals = recordArrivals(s);
    const ended = once(s, 'end');
    s.write(`${bytes}\n`);
    await ended;
    if (arrivals.bytes !== bytes) throw new Error(`download: expected ${bytes}, got ${arrivals.bytes}`);
    return { ...arrivals };
  } finally {
    s.destroy();
  }
}

/** `streams` concurrent uploads of `bytesEach`; aggregate over the first to the last byte at the sink across all of them. */
export async function upload(port: number, bytesEach: number, targets: Targets, streams = 1): Promise<Transfer> {
  const results = Array.from({ length: streams }, () => targets.nextSink());
  await Promise.all(Array.from({ length: streams }, () => sendToSink(port, bytesEach)));
  const rs = await Promise.all(results);
  for (const r of rs) if (r.bytes !== bytesEach) throw new Error(`upload: sent ${bytesEach}, the sink got ${r.bytes}`);
  return span(rs);
}

/** `streams` concurrent downloads of `bytesEach`; aggregate over the first to the last byte received across all of them. */
export async function download(port: number, bytesEach: number, streams = 1): Promise<Transfer> {
  return span(await Promise.all(Array.from({ length: streams }, () => receiveFromSource(port, bytesEach))));
}

function span(rs: SinkResult[]): Transfer {
  const first = rs.reduce((m, r) => (r.firstNs < m ? r.firstNs : m), rs[0]!.firstNs);
  const last = rs.reduce((m, r) => (r.lastNs > m ? r.lastNs : m), rs[0]!.lastNs);
  return transfer(
    rs.reduce((n, r) => n + r.bytes, 0),
    last - first,
  );
}

/** A connection to the echo target: round trips of `size` bytes (write `size`, wait until `size` bytes are back), as often as asked. */
export class PingPong {
  #waiting: { resolve: () => void; reject: (e: Error) => void } | undefined;
  #got = 0;
  #error: Error | undefined;

  private constructor(
    private readonly socket: net.Socket,
    private readonly size: number,
  ) {
    const fail = (e: Error) => {
      this.#error ??= e;
      this.#waiting?.reject(e);
    };
    socket.on('data', (c: Buffer) => {
      this.#got += c.length;
      if (this.#got < size) return;
      if (this.#got > size) return fail(new Error(`ping-pong: ${this.#got} bytes back for ${size}`));
      const w = this.#waiting;
      this.#waiting = undefined;
      w?.resolve();
    });
    socket.on('error', fail);
    socket.on('end', () => fail(new Error('ping-pong connection ended by the other side')));
    socket.on('close', () => fail(new Error('ping-pong connection closed')));
  }

  static async open(port: number, size = 1): Promise<PingPong> {
    return new PingPong(await connect(port), size);
  }

  /** `n` round trips, one after another; µs each. */
  async run(n: number): Promise<number[]> {
    const msg = this.size === 1 ? ONE : CHUNK.subarray(0, this.size);
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      if (this.#error) throw this.#error;
      this.#got = 0;
      const back = new Promise<void>((resolve, reject) => (this.#waiting = { resolve, reject }));
      const t0 = process.hrtime.bigint();
      this.socket.write(msg);
      await back;
      out.push(nsToUs(process.hrtime.bigint() - t0));
    }
    return out;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** `n` round trips of `size` bytes on a new connection, closed after; µs each. */
export async function pingPong(port: number, n: number, size = 1): Promise<number[]> {
  const p = await PingPong.open(port, size);
  try {
    return await p.run(n);
  } finally {
    p.close();
  }
}

/** `n` sequential new connections: connect, write one byte, first echoed byte; µs each. Each is closed cleanly before the next. */
export async function newConnections(port: number, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    const s = net.connect({ port, host: HOST });
    s.setNoDelay(true);
    const closed = once(s, 'close');
    closed.catch(() => {}); // rejects on 'error'; awaited below
    try {
      const t1 = await deadline(
        new Promise<bigint>((resolve, reject) => {
          s.once('connect', () => s.write(ONE));
          s.once('data', () => resolve(process.hrtime.bigint()));
          s.once('error', reject);
          s.once('close', () => reject(new Error('closed before the echo')));
        }),
        10_000,
        `echo on new connection ${i + 1}`,
      );
      out.push(nsToUs(t1 - t0));
    } finally {
      s.on('error', () => {});
      s.end();
    }
    // Untimed: let the previous connection's teardown finish so it does not overlap the next.
    await deadline(closed, 10_000, `connection ${i + 1} to close`).catch(() => s.destroy());
  }
  return out;
}

/**
 * Opens `n` connections through the forward (at most 32 connecting at a time), each having echoed one
 * byte so that its channel is really open, and keeps them open until close().
 */
export async function holdConnections(port: number, n: number): Promise<{ close(): Promise<void> }> {
  const open: net.Socket[] = [];
  const close = async () => {
    const closed = open.map((s) => {
      const c = once(s, 'close').catch(() => {});
      s.on('error', () => {});
      s.end();
      return c;
    });
    await deadline(Promise.all(closed), 20_000, `${open.length} held connections to close`).catch(() => {});
    for (const s of open) s.destroy();
  };
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const s = net.connect({ port, host: HOST });
      s.setNoDelay(true);
      open.push(s);
      await deadline(
        new Promise<void>((resolve, reject) => {
          s.once('connect', () => s.write(ONE));
          s.once('data', () => resolve());
          s.once('error', reject);
          s.once('close', () => reject(new Error('closed before the echo')));
        }),
        20_000,
        `echo on held connection ${i + 1} of ${n}`,
      );
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(32, n) }, worker));
  } catch (err) {
    await close();
    throw err;
  }
  return { close };
}
