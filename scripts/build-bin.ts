/**
 * The `sshkeep` command as npm links it: dist/bin/sshkeep.js and its chunks, bundled by esbuild
 * from tsc's output (dist/cli/main.js and all it imports) but for ssh2 and yaml, which stay
 * runtime dependencies (yaml is loaded through createRequire, only for a configuration file:
 * src/config/file.ts). `sshkeep --version` then opens 37 JavaScript files instead of 210 and
 * spends about a fifth less CPU; a start-up to the first echo about a quarter less, which a
 * sidecar under a CPU limit waits for ten times over at 100m (BENCHMARKS.md, "Twenty-second
 * session").
 *
 * The entry keeps main.ts's order: it sets the signal listeners, then imports a chunk with the
 * rest (code splitting), so that a SIGHUP during the load is not lost. The metrics and health
 * server (prom-client) are chunks of their own, read only when used.
 *
 * ssh2 stays in node_modules: sshkeep reaches its internals and its native binding by path
 * (src/ssh/lean-channel.ts, adapter.ts), its patches are applied there, and one copy of it must
 * be loaded. The library (dist/index.js) is not bundled.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { parseCommandLine } from './lib/options.js';

const USAGE = 'usage: node --import @tapjs/typescript/import scripts/build-bin.ts (no options; npm run build runs it after tsc)\n';
parseCommandLine('build-bin', USAGE, (args) => {
  if (args.length > 0) throw new Error(`unknown option: ${args[0]}`);
});

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = path.join(root, 'dist', 'bin');

// Built beside, then swapped in: chunk names change with their contents, so an old dist/bin cannot
// be overwritten in place, and a sshkeep started during the build (the benches build first)
// should find the old one whole.
const next = `${dir}.next`;
fs.rmSync(next, { recursive: true, force: true });
try {
  await build({
    entryPoints: [path.join(root, 'dist', 'cli', 'main.js')],
    outdir: next,
    entryNames: 'sshkeep',
    chunkNames: '[name]-[hash]',
    splitting: true,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['ssh2'],
    // The CommonJS packages bundled in (winston, commander, ssh-config) require node's modules;
    // an ES module has no `require` of its own.
    banner: { js: "import { createRequire as sshkeepCreateRequire } from 'node:module'; const require = sshkeepCreateRequire(import.meta.url);" },
    // Maps stack frames back to src/*.ts through tsc's own maps (node --enable-source-maps),
    // without a copy of every source in the package.
    sourcemap: true,
    sourcesContent: false,
    logLevel: 'warning',
  });
} catch {
  // esbuild has printed what failed; its error object would only repeat it.
  fs.rmSync(next, { recursive: true, force: true });
  process.stderr.write('build-bin: esbuild failed (above); dist/bin/ is left as it was\n');
  process.exit(1);
}
fs.chmodSync(path.join(next, 'sshkeep.js'), 0o755);
const old = `${dir}.old`;
fs.rmSync(old, { recursive: true, force: true });
if (fs.existsSync(dir)) fs.renameSync(dir, old);
fs.renameSync(next, dir);
fs.rmSync(old, { recursive: true, force: true });
