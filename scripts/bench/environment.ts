/** ssh2 for the report header: its version, its native binding and its ciphers. */
import { createRequire } from 'node:module';
import path from 'node:path';
import { REPO_ROOT } from '../../test/fixtures/bin.js';

export function ssh2Info(): { version: string; binding: string; supported: string[]; defaults: string[] } {
  const req = createRequire(path.join(REPO_ROOT, 'package.json'));
  let version = 'unknown';
  try {
    version = (req('ssh2/package.json') as { version: string }).version;
  } catch {}
  let binding: string;
  try {
    const crypto = req('ssh2/lib/protocol/crypto.js') as { bindingAvailable?: boolean };
    const nodeFile = path.join(path.dirname(req.resolve('ssh2/lib/protocol/crypto.js')), 'crypto', 'build', 'Release', 'sshcrypto.node');
    binding = crypto.bindingAvailable
      ? `loaded (ssh2 ${version}, ${path.relative(REPO_ROOT, nodeFile)})`
      : `NOT loaded (ssh2 ${version} falls back to pure JS; ChaCha20 roughly halves)`;
  } catch (err) {
    binding = `unknown (${(err as Error).message})`;
  }
  let supported: string[] = [];
  let defaults: string[] = [];
  try {
    const c = req('ssh2/lib/protocol/constants.js') as { SUPPORTED_CIPHER?: string[]; DEFAULT_CIPHER?: string[] };
    supported = c.SUPPORTED_CIPHER ?? [];
    defaults = c.DEFAULT_CIPHER ?? [];
  } catch {}
  return { version, binding, supported, defaults };
}
