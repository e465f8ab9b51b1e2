/**
 * sshkeep carries a patch of ssh2 (patches/, applied by patch-package at install): this fails
 * when it is not applied, e.g. after an ssh2 upgrade that patch-package could not patch, or an
 * install that skipped the postinstall script.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import t from 'tap';

const require = createRequire(import.meta.url);
const pkg = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { dependencies: Record<string, string>; scripts: Record<string, string>; files: string[] };

t.test('ssh2 patch – ssh2 is pinned to the version the patches were made for, and they are applied at install', async (t) => {
  const patches = fs.readdirSync(new URL('../patches/', import.meta.url)).filter((f) => f.startsWith('ssh2+'));
  t.ok(patches.length > 0, 'a patch of ssh2');
  for (const p of patches) t.equal(p.split('+')[1], pkg.dependencies.ssh2, `${p} is for the pinned ssh2`);
  t.equal((require('ssh2/package.json') as { version: string }).version, pkg.dependencies.ssh2, 'the installed ssh2 is the pinned one');
  t.match(pkg.scripts.postinstall, /^patch-package --error-on-fail/);
  t.ok(pkg.files.includes('patches'), 'the patches are published with the package');
});

t.test('ssh2 patch 001 certificates – applied: certificate host key algorithms, and the algorithm a certificate signs with', async (t) => {
  const { SUPPORTED_SERVER_HOST_KEY } = require('ssh2/lib/protocol/constants.js') as { SUPPORTED_SERVER_HOST_KEY: string[] };
  t.ok(SUPPORTED_SERVER_HOST_KEY.includes('ssh-ed25519-cert-v01@openssh.com'), 'certificate host key algorithms can be asked for');
  const { certifiedAlgorithm } = require('ssh2/lib/protocol/utils.js') as { certifiedAlgorithm?: (name: string) => string };
  t.equal(certifiedAlgorithm?.('rsa-sha2-512-cert-v01@openssh.com'), 'rsa-sha2-512');
  t.equal(certifiedAlgorithm?.('sk-ssh-ed25519-cert-v01@openssh.com'), 'sk-ssh-ed25519@openssh.com');
  t.equal(certifiedAlgorithm?.('ssh-ed25519'), 'ssh-ed25519');
});
