/**
 * The `sshkeep` command as npm links it: dist/bin/sshkeep.js, bundled by esbuild from tsc's output
 * (dist/cli/main.js and all it imports), ssh2 excepted. `sshkeep --version` then opens 37
 * JavaScript files instead of 210 and spends about a fifth less CPU; a start-up to the first echo
 * about a quarter less, which a sidecar under a CPU limit waits for ten times over at 100m
 * (BENCHMARKS.md, "Twenty-second session").
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
const BIN = path.join(root, 'dist', 'bin', 'sshkeep.js');

// Chunk names change with their contents: a build starts from an empty directory.
fs.rmSync(path.dirname(BIN), { recursive: true, force: true });
await build({
  entryPoints: [path.join(root, 'dist', 'cli', 'main.js')],
  outdir: path.dirname(BIN),
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
  // Maps stack frames back to src/*.ts through tsc's own maps (node --enable-source-maps).
  sourcemap: true,
  logLevel: 'warning',
});
fs.chmodSync(BIN, 0o755);
