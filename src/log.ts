/** sshkeep's logging: a leaf that every layer may import, importing nothing of sshkeep's own. */
import fs from 'node:fs';
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
 * -E: a file the log is appended to, created 0600. reopen() (on SIGHUP) opens the path again, so
 * after logrotate moved the file away, the next lines start a new one. Each line is written at
 * once (synchronously): the last lines before an exit are in the file.
 */
export class LogFile extends Writable {
  #fd: number;

  /** Throws the open error (ENOENT, EACCES…) for the caller to explain. */
  constructor(readonly path: string) {
    super();
    this.#fd = fs.openSync(path, 'a', 0o600);
  }

  #failing = false;

  /**
   * A line the file cannot take (disk full, I/O error) is dropped, said once on stderr, and
   * not passed on as an error: nothing listens for one, so it would end the daemon.
   */
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    try {
      fs.writeSync(this.#fd, chunk);
      this.#failing = false;
    } catch (err) {
      if (!this.#failing) process.stderr.write(`sshkeep: cannot write the log file ${this.path} (${(err as NodeJS.ErrnoException).code ?? err}); lines are dropped until it can\n`);
      this.#failing = true;
    }
    done();
  }

  /** Opens the path again; if that fails, the old file stays in use and the error is thrown. */
  reopen(): void {
    const fd = fs.openSync(this.path, 'a', 0o600);
    fs.closeSync(this.#fd);
    this.#fd = fd;
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    fs.closeSync(this.#fd);
    done(err);
  }
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
