import fs from 'node:fs';

/** Larger than any configuration, key or known_hosts file: what is bigger is not one. */
const MAX_BYTES = 16 * 1024 * 1024;

/**
 * Reads a file a person named (a config, an ssh_config, a key, a certificate, known_hosts) as
 * fs.readFileSync does, refusing what is not a regular file: a FIFO would block the process
 * until something writes to it (a reload would freeze the running daemon), and a device such as
 * /dev/zero never ends. Errors carry a `code` as fs errors do (ENOENT, EACCES, EISDIR, or the
 * words "not a regular file" / "larger than 16 MiB"), which callers already put in their message.
 */
export function readRegularFile(file: string): Buffer {
  // O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting for one.
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  try {
    const stat = fs.fstatSync(fd);
    if (stat.isDirectory()) throw refusal('EISDIR');
    if (!stat.isFile()) throw refusal('not a regular file');
    if (stat.size > MAX_BYTES) throw refusal('larger than 16 MiB');
    return fs.readFileSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function refusal(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(code), { code });
}
