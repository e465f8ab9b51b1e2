import fs from 'node:fs';

/**
 * Whether Linux still lists a TCP connection between these two loopback ports, in either direction
 * (ESTABLISHED, CLOSE_WAIT, FIN_WAIT*, TIME_WAIT, LAST_ACK…): true after an orderly FIN exchange, false after
 * a reset (both ends are then gone at once, with no TIME_WAIT). undefined where /proc/net/tcp is not readable.
 *
 * Needed because a Node client cannot tell: when an RST arrives with data still unread, libuv's POLLHUP
 * short-cut reports EOF ('end') instead of ECONNRESET about half of the time.
 */
export function tcpPairListed(portA: number, portB: number): boolean | undefined {
  const hex = (p: number) => `:${p.toString(16).toUpperCase().padStart(4, '0')}`;
  const [a, b] = [hex(portA), hex(portB)];
  let readable = false;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    readable = true;
    for (const line of text.split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f.length < 4) continue;
      if ((f[1]!.endsWith(a) && f[2]!.endsWith(b)) || (f[1]!.endsWith(b) && f[2]!.endsWith(a))) return true;
    }
  }
  return readable ? false : undefined;
}
