import os from 'node:os';

/** Polling is cheap (one getifaddrs call) and there is no portable change event in Node. */
const POLL_MS = 2_000;

/** The host's interface addresses as one comparable string. */
function addressSignature(): string {
  return Object.entries(os.networkInterfaces())
    .flatMap(([name, addrs]) => (addrs ?? []).map((a) => `${name}/${a.address}`))
    .sort()
    .join(',');
}

/**
 * Calls `onChange` when an interface address appears or disappears (Wi-Fi change, VPN up/down).
 * A reading that fails is skipped and told to `onUnreadable`: getifaddrs needs a socket, and a
 * client flood that took every file descriptor (EMFILE) made it throw, which ended the process.
 * The next reading compares with the last that worked. Returns a stop function.
 */
export function watchNetwork(
  onChange: (before: string, after: string) => void,
  onUnreadable: (err: Error) => void = () => {},
  readAddresses = addressSignature,
): () => void {
  const read = (): string | undefined => {
    try {
      return readAddresses();
    } catch (err) {
      onUnreadable(err as Error);
      return undefined;
    }
  };
  let last = read();
  const timer = setInterval(() => {
    const now = read();
    if (now === undefined) return;
    if (last === undefined) last = now;
    else if (now !== last) {
      const before = last;
      last = now;
      onChange(before, now);
    }
  }, POLL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
