import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../errors.js';
import { LogFile, openForAppend } from '../log.js';
import type { Sourced } from '../config/sourced.js';

const cannotOpen = (raw: Sourced, why: string) =>
  new ConfigError(`${raw.source} ${raw.value}: cannot open the log file: ${why}. Give a writable path, or leave -E out to log to stderr.`);

/** -E's file, opened for appending (created 0600), or a usage error (exit 2) saying why it cannot be. */
export function openLogFile(raw: Sourced): LogFile {
  try {
    return new LogFile(raw.value);
  } catch (err) {
    throw cannotOpen(raw, (err as Error).message);
  }
}

/** `sshkeep check`: whether openLogFile would succeed, without creating the file. */
export function checkLogFile(raw: Sourced): void {
  try {
    if (raw.value === '') throw new Error('an empty path');
    if (fs.existsSync(raw.value)) fs.closeSync(openForAppend(raw.value));
    else {
      const dir = path.dirname(path.resolve(raw.value));
      if (!fs.statSync(dir).isDirectory()) throw new Error(`ENOTDIR: ${dir} is not a directory`);
      fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
    }
  } catch (err) {
    throw cannotOpen(raw, (err as Error).message);
  }
}
