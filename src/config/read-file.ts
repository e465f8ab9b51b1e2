import fs from 'node:fs';

/** Larger than any configuration, key or known_hosts file: what is bigger is not one. */
const MAX_BYTES = 16 * 1024 * 1024;

/**
 * Reads a file a person named (a config, an ssh_config, a key, a certificate, known_hosts) as
 * fs.readFileSync does, refusing what is not a regular file: a FIFO would block the process
 * until something writes to it (a reload would freeze the running daemon), and a device such as
 * /dev/zero never ends. /dev/null reads as empty, as it does for OpenSSH (`-F /dev/null`,
 * `UserKnownHostsFile=/dev/null`). Errors carry a `code` as fs errors do (ENOENT, EACCES, EISDIR,
 * or the words "not a regular file" / "larger than 16 MiB"), which callers already put in their message.
 */
export function readRegularFile(file: string): Buffer {
  // O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting for one.
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  try {
    const stat = fs.fstatSync(fd);
    if (stat.isDirectory()) throw refusal('EISDIR');
    if (isNullDevice(stat)) return Buffer.alloc(0);
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

let nullDevice: number | undefined;

/** The null device, by its device number: under any name a link or a bind mount gives it. */
function isNullDevice(stat: fs.Stats): boolean {
  if (!stat.isCharacterDevice()) return false;
  nullDevice ??= fs.statSync('/dev/null').rdev;
  return stat.rdev === nullDevice;
}
