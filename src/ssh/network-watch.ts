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

/** Calls `onChange` when an interface address appears or disappears (Wi-Fi change, VPN up/down). Returns a stop function. */
export function watchNetwork(onChange: (before: string, after: string) => void, readAddresses = addressSignature): () => void {
  let last = readAddresses();
  const timer = setInterval(() => {
    const now = readAddresses();
    if (now !== last) {
      const before = last;
      last = now;
      onChange(before, now);
    }
  }, POLL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
