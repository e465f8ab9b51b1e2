/** The soak's targets: a sink that hashes what it gets, a source that sends random bytes and their hash, an echo. */
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { listen, startEcho } from '../../test/fixtures/net.js';
import { sleep } from '../lib/sleep.js';

const CHUNK = 64 * 1024;

function waitDrainOrClose(sock: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      sock.off('drain', done);
      sock.off('close', done);
      resolve();
    };
    sock.on('drain', done);
    sock.on('close', done);
  });
}

/**
 * Writes `size` random bytes to `sock` at `rate` bytes/s (0: unpaced) while `going()`, calling `onWritten`
 * as each chunk is handed to the kernel; resolves with their sha256 (hex), or undefined if it stopped first.
 */
export async function sendRandom(sock: net.Socket, size: number, rate: number, going = () => true, onWritten = () => {}): Promise<string | undefined> {
  const hash = createHash('sha256');
  const started = performance.now();
  let sent = 0;
  while (sent < size) {
    if (!going() || sock.destroyed) return undefined;
    const chunk = randomBytes(Math.min(CHUNK, size - sent));
    hash.update(chunk);
    sent += chunk.length;
    if (!sock.write(chunk, (err) => err || onWritten())) await waitDrainOrClose(sock);
    if (rate > 0) {
      const wait = started + (sent / rate) * 1000 - performance.now();
      if (wait > 1) await sleep(wait);
    }
  }
  return hash.digest('hex');
}

export interface Targets {
  sink: net.Server;
  source: net.Server;
  ports: { sink: number; source: number; echo: number };
  close(): Promise<void>;
}

/** The sink hashes what it receives and, at the client's EOF, answers "<bytes> <sha256 hex>\n". */
function sinkServer(sockets: Set<net.Socket>): net.Server {
  return net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    const hash = createHash('sha256');
    let n = 0;
    s.on('data', (c: Buffer) => {
      hash.update(c);
      n += c.length;
    });
    s.on('end', () => s.end(`${n} ${hash.digest('hex')}\n`));
  });
}

/** The source reads "<size>\n", sends that many random bytes (paced at `rate`), then their sha256 hex (64 bytes), then EOF. */
function sourceServer(sockets: Set<net.Socket>, rate: number): net.Server {
  return net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let header = '';
    const onData = (c: Buffer) => {
      header += c.toString('latin1');
      const nl = header.indexOf('\n');
      if (nl < 0) {
        if (header.length > 32) s.destroy();
        return;
      }
      s.off('data', onData);
      s.resume(); // the client's EOF must still be read
      const size = Number(header.slice(0, nl));
      if (!Number.isSafeInteger(size) || size < 0) return void s.destroy();
      void sendRandom(s, size, rate).then((hash) => hash !== undefined && !s.destroyed && s.end(hash));
    };
    s.on('data', onData);
  });
}

export async function startTargets(rate: number): Promise<Targets> {
  const sockets = new Set<net.Socket>();
  const sink = sinkServer(sockets);
  const source = sourceServer(sockets, rate);
  const echo = await startEcho();
  const ports = { sink: await listen(sink), source: await listen(source), echo: echo.port };
  return {
    sink,
    source,
    ports,
    async close() {
      for (const s of sockets) s.destroy();
      await Promise.allSettled([
        new Promise<void>((r) => sink.close(() => r())),
        new Promise<void>((r) => source.close(() => r())),
        echo.close(),
      ]);
    },
  };
}
