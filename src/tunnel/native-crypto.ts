import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/**
 * True when ssh2's optional native crypto binding is loaded. Without it (no compiler when
 * `npm ci` ran) AES-GCM and ChaCha20 run in JavaScript at about half the throughput.
 */
export function nativeCryptoLoaded(): boolean {
  try {
    return (require('ssh2/lib/protocol/crypto.js') as { bindingAvailable?: boolean }).bindingAvailable === true;
  } catch {
    return false;
  }
}
