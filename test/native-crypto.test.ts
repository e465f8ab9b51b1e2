/**
 * ssh2's native crypto binding roughly doubles AES-GCM and ChaCha20 throughput; `npm ci`
 * builds it when python3, make and g++ are present (.ci/run installs them) and package.json's
 * allowScripts lets ssh2's install script run. Under CI a missing binding is a failure,
 * elsewhere a reported skip.
 */
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { nativeCrypto } from '../src/ssh/adapter.js';
import { REPO_ROOT, logIs, spawnCliFor } from './fixtures/cli.js';
import { refusedPort } from './fixtures/net.js';

t.test('native crypto – ssh2 loaded its native binding', async (t) => {
  const hint = 'ssh2 native crypto binding not built (needs python3 make g++ at npm ci time)';
  if (nativeCrypto() === 'loaded') t.pass('binding loaded, built from the patched source');
  else if (process.env.CI === 'true') t.fail(hint);
  else t.pass('binding', { skip: hint });
});

/** Installed packages (top level and scoped) that declare an install-time script. */
function packagesWithInstallScripts(): string[] {
  const root = path.join(REPO_ROOT, 'node_modules');
  const dirs = fs.readdirSync(root).flatMap((d) => (d.startsWith('@') ? fs.readdirSync(path.join(root, d)).map((s) => `${d}/${s}`) : [d]));
  return dirs.filter((d) => {
    const file = path.join(root, d, 'package.json');
    if (!fs.existsSync(file)) return false;
    const scripts = (JSON.parse(fs.readFileSync(file, 'utf8')) as { scripts?: Record<string, string> }).scripts ?? {};
    return ['preinstall', 'install', 'postinstall'].some((s) => scripts[s] !== undefined);
  });
}

t.test('native crypto – every installed install script is declared in allowScripts (npm 12 skips the others)', async (t) => {
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { allowScripts?: Record<string, boolean> };
  const allowed = pkg.allowScripts ?? {};
  const found = packagesWithInstallScripts();
  t.ok(found.includes('ssh2'), 'ssh2 is among them (its install script builds the binding)');
  for (const name of found) t.equal(allowed[name], true, `allowScripts.${name}`);
});

for (const [binding, env, said] of [
  ['without the binding', {}, /native crypto binding is not built/],
  ['with a binding built before the ssh2 patches', { NATIVE_CRYPTO_FIXTURE: 'stale' }, /built before sshkeep's ssh2 patches.*npm rebuild ssh2/],
] as const) {
  t.test(`native crypto – ${binding} the CLI warns once at start-up and still runs`, async (t) => {
    const preload = path.join(REPO_ROOT, 'test', 'fixtures', 'native-crypto.cjs');
    const port = await refusedPort();
    const cli = spawnCliFor(t, ['-F', 'none', '-o', 'GlobalKnownHostsFile=none', '-L', '0:127.0.0.1:9', '-p', String(port), '127.0.0.1'], {
      env: { NODE_OPTIONS: `--require ${preload}`, ...env },
    });
    await cli.waitForLog(logIs('native_crypto'), 10_000, 'the native_crypto warning');
    // The warning comes before the listeners open: once they are, start-up is over.
    await cli.waitForLog(logIs('listen'), 10_000, 'the listener');
    const warnings = cli.logs().filter(logIs('native_crypto'));
    t.equal(warnings.length, 1, 'one warning');
    t.equal(warnings[0]!.level, 'warn');
    t.match(String(warnings[0]!.msg), said);
  });
}
