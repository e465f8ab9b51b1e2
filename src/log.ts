/** sshkeep's logging: a leaf that every layer may import, importing nothing of sshkeep's own. */
import fs from 'node:fs';
import net from 'node:net';
import { Writable } from 'node:stream';
import winston from 'winston';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export type LogFormat = 'pretty' | 'json';

/** Structured fields with stable names: tunnel, forward, conn, event, error, … */
export type LogFields = Record<string, unknown>;

/** The narrow logging interface library code depends on; the CLI backs it with winston. */
export interface Logger {
  error(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
  isDebug(): boolean;
  child(fields: LogFields): Logger;
}

const jsonLine = winston.format.printf((info) => {
  const { level, message, timestamp, ...rest } = info;
  return JSON.stringify({ time: timestamp, level, msg: message, ...rest });
});

function prettyValue(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return /[\s"]/.test(s) ? JSON.stringify(s) : s;
}

const prettyLine = winston.format.printf((info) => {
  const { level, message, timestamp, ...rest } = info;
  const fields = Object.entries(rest)
    .filter(([k]) => typeof k === 'string')
    .map(([k, v]) => `${k}=${prettyValue(v)}`)
    .join(' ');
  // Pad by the visible level name: colour codes would throw a plain padEnd off.
  const pad = ' '.repeat(Math.max(0, 5 - String(level).replace(/\x1b\[[0-9;]*m/g, '').length));
  return `${String(timestamp).slice(11, 23)} ${level}${pad} ${String(message)}${fields ? '  ' + fields : ''}`;
});

/** Which levels are written. The level is fixed when the logger is made; winston's own check allocates on every call. */
interface Enabled {
  warn: boolean;
  info: boolean;
  debug: boolean;
}

/**
 * winston formats and pipes every call before its transport filters by level: check first.
 * A child is made in winston only when it first writes a line: each forwarded connection
 * has one, and most never log at the level in force.
 */
class WinstonLogger implements Logger {
  #w: winston.Logger | undefined;

  /** `make` gives the winston logger lines go to (a winston child has its parent's level). */
  constructor(private readonly enabled: Enabled, private readonly make: () => winston.Logger) {}

  get #out(): winston.Logger {
    return (this.#w ??= this.make());
  }

  error(msg: string, fields?: LogFields): void { this.#out.error(msg, fields); }
  warn(msg: string, fields?: LogFields): void { if (this.enabled.warn) this.#out.warn(msg, fields); }
  info(msg: string, fields?: LogFields): void { if (this.enabled.info) this.#out.info(msg, fields); }
  debug(msg: string, fields?: LogFields): void { if (this.enabled.debug) this.#out.debug(msg, fields); }
  isDebug(): boolean { return this.enabled.debug; }
  child(fields: LogFields): Logger { return new WinstonLogger(this.enabled, () => this.#out.child(fields)); }
}

/** A logger writing one line per event to stderr, JSON for machines or coloured text for a person. */
export function createLogger(
  level: LogLevel,
  format: LogFormat,
  stream: NodeJS.WritableStream = process.stderr,
  colour = (stream as { isTTY?: boolean }).isTTY === true,
): Logger {
  const w = winston.createLogger({
    level,
    format: winston.format.combine(
      winston.format.timestamp(),
      ...(format === 'json' ? [jsonLine] : colour ? [winston.format.colorize({ level: true }), prettyLine] : [prettyLine]),
    ),
    transports: [new winston.transports.Stream({ stream })],
  });
  return new WinstonLogger({ warn: w.isWarnEnabled(), info: w.isInfoEnabled(), debug: w.isDebugEnabled() }, () => w);
}

/**
 * Opens a log file for appending, created 0600. A FIFO is opened with O_NONBLOCK: one that no
 * process reads fails at once (ENXIO), where a plain open would wait for a reader, with every
 * signal unanswered. Anything else is opened as it was (a terminal stays blocking: its lines whole).
 */
export function openForAppend(path: string): number {
  const { O_WRONLY, O_APPEND, O_CREAT, O_NONBLOCK } = fs.constants;
  const fifo = fs.statSync(path, { throwIfNoEntry: false })?.isFIFO() === true;
  try {
    return fs.openSync(path, O_WRONLY | O_APPEND | O_CREAT | (fifo ? O_NONBLOCK : 0), 0o600);
  } catch (err) {
    if (!fifo || (err as NodeJS.ErrnoException).code !== 'ENXIO') throw err;
    throw Object.assign(new Error('ENXIO: a FIFO that no process has open for reading'), { code: 'ENXIO' });
  }
}

/** Log bytes queued for the file (written or not) past which new lines are dropped, and counted. */
const LOG_QUEUE_LIMIT_BYTES = 1024 * 1024;

/**
 * -E: a file the log is appended to, created 0600. reopen() (on SIGHUP) opens the path again, so
 * after logrotate moved the file away, the next lines start a new one. A regular file is written
 * at once, synchronously, in order up to the exit (as OpenSSH does). A FIFO or socket
 * (`-E /proc/1/fd/1` in a container) is written through libuv's non-blocking pipe, one write at a
 * time: a reader that stalls never stops the tunnels; past 1 MiB queued, lines are dropped, and
 * `onDropped` is told how many once it takes lines again. What is queued at exit is written then
 * without waiting.
 */
export class LogFile extends Writable {
  #fd: number;
  /** The destination when it is a FIFO or a socket (it owns #fd then). */
  #pipe: net.Socket | undefined;
  readonly #queue: Buffer[] = [];
  /** Bytes in the pipe's queue and in its write in flight. */
  #queued = 0;
  #writing = false;
  #dropped = 0;
  #failing = false;
  /** Closes what reopen() replaced while a write on it was in flight, once that write ends. */
  #retire: (() => void) | undefined;
  /** end()'s wait for the queue to empty. */
  #drained: (() => void) | undefined;
  /** Told how many lines were dropped, once the file takes lines again (the CLI logs it). */
  onDropped: ((lines: number) => void) | undefined;
  readonly #flushAtExit = () => this.#flushSync();

  /** Throws the open error (ENOENT, EACCES…) for the caller to explain. */
  constructor(readonly path: string) {
    super();
    this.#fd = openForAppend(path);
    this.#pipe = pipeOf(this.#fd);
    process.once('exit', this.#flushAtExit);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    if (!this.#pipe) {
      this.#writeSync(chunk);
    } else if (this.#queued + chunk.length > LOG_QUEUE_LIMIT_BYTES) {
      this.#dropped++;
    } else {
      this.#queue.push(chunk);
      this.#queued += chunk.length;
      this.#writeNext();
    }
    done();
  }

  #writeSync(chunk: Buffer): void {
    try {
      fs.writeSync(this.#fd, chunk);
      this.#failing = false;
    } catch (err) {
      this.#failed(err as NodeJS.ErrnoException);
    }
  }

  /**
   * A line the file cannot take (disk full, I/O error, a reader gone) is dropped and said once on
   * stderr, never passed on as an error: nothing listens for one, so it would end the daemon.
   */
  #failed(err: NodeJS.ErrnoException): void {
    if (!this.#failing) process.stderr.write(`sshkeep: cannot write the log file ${this.path} (${err.code ?? err.message}); lines are dropped until it can\n`);
    this.#failing = true;
  }

  /** The pipe's next write: what queued meanwhile, in one. */
  #writeNext(): void {
    if (this.#writing || this.#queue.length === 0 || !this.#pipe) return;
    const buf = this.#queue.length === 1 ? this.#queue[0]! : Buffer.concat(this.#queue);
    this.#queue.length = 0;
    this.#writing = true;
    const pipe = this.#pipe;
    const written = (err: NodeJS.ErrnoException | null | undefined) => {
      this.#writing = false;
      this.#retire?.();
      this.#retire = undefined;
      this.#queued -= buf.length;
      if (err) {
        this.#failed(err);
      } else {
        this.#failing = false;
        const dropped = this.#dropped;
        this.#dropped = 0;
        if (dropped > 0) this.onDropped?.(dropped);
      }
      this.#writeNext();
      if (!this.#writing) {
        this.#drained?.();
        this.#drained = undefined;
      }
    };
    pipe.write(buf, written);
  }

  /** end(): 'finish' once every queued line has been written (or failed). */
  override _final(done: (err?: Error | null) => void): void {
    if (!this.#writing && this.#queue.length === 0) return done();
    this.#drained = () => done();
  }

  /**
   * At exit: what the pipe still has queued, written now. Its descriptor is non-blocking: a
   * reader that stalled does not hold the exit up, and what it cannot take is lost.
   */
  #flushSync(): void {
    try {
      for (const buf of this.#queue) fs.writeSync(this.#fd, buf);
    } catch {}
    this.#queue.length = 0;
  }

  #close(): void {
    if (this.#pipe) this.#pipe.destroy();
    else fs.closeSync(this.#fd);
  }

  /** Opens the path again; if that fails, the old file stays in use and the error is thrown. */
  reopen(): void {
    const fd = openForAppend(this.path);
    const pipe = pipeOf(fd);
    // The one write in flight is on what a reopen during it retired already, if any, else on this.
    const old = { pipe: this.#pipe, fd: this.#fd };
    const close = () => (old.pipe ? old.pipe.destroy() : fs.closeSync(old.fd));
    if (this.#writing && !this.#retire) this.#retire = close;
    else close();
    this.#fd = fd;
    this.#pipe = pipe;
    if (!pipe) this.#flushSync(); // what the old pipe had queued, in order, before the next line
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    process.off('exit', this.#flushAtExit);
    this.#flushSync();
    this.#retire?.();
    this.#close();
    done(err);
  }
}

/**
 * stderr when it is a pipe or a socket (docker, kubectl, journald): node writes it without
 * blocking, but queues without bound while the reader stalls (about 400 bytes of memory per
 * line). Past 1 MiB queued, lines are dropped, and `onDropped` is told how many once it takes
 * lines again.
 */
export class BoundedPipe extends Writable {
  #dropped = 0;
  onDropped: ((lines: number) => void) | undefined;

  constructor(private readonly target: NodeJS.WritableStream & { readonly writableLength: number }) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    if (this.target.writableLength + chunk.length > LOG_QUEUE_LIMIT_BYTES) {
      this.#dropped++;
      return done();
    }
    this.target.write(chunk);
    const dropped = this.#dropped;
    this.#dropped = 0;
    if (dropped > 0) this.onDropped?.(dropped);
    done();
  }
}

/** `fd` is a FIFO or a socket: written without blocking, it queues when its reader stalls. */
function isPipe(fd: number): boolean {
  const stat = fs.fstatSync(fd);
  return stat.isFIFO() || stat.isSocket();
}

/** stderr is a pipe or a socket (not a terminal, not a file): BoundedPipe is for it. */
export function stderrIsPipe(): boolean {
  try {
    return isPipe(2);
  } catch {
    return false;
  }
}

/** A libuv pipe for a FIFO or socket descriptor (non-blocking from here on); undefined for a file or a terminal. */
function pipeOf(fd: number): net.Socket | undefined {
  if (!isPipe(fd)) return undefined;
  const pipe = new net.Socket({ fd, readable: false, writable: true });
  pipe.on('error', () => {}); // said through the write's callback
  return pipe;
}

/** A logger that drops everything: the library default when the caller passes none. */
export const silentLogger: Logger = {
  error() {},
  warn() {},
  info() {},
  debug() {},
  isDebug: () => false,
  child() { return silentLogger; },
};
