/**
 * Helpers shared by the benchmark scripts (scripts/bench.ts, scripts/bench-resilience.ts):
 * loopback ports, child processes, and the environment lines of a report header.
 */
import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export const HOST = '127.0.0.1';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A command-line option's value as an integer of at least `min`; a clear error otherwise. */
export function intOption(name: string, v: string | undefined, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got ${v}`);
  return n;
}

export async function listen(server: net.Server): Promise<number> {
  server.listen(0, HOST);
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

/** `n` loopback ports that were free a moment ago (bound together, then released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, async () => {
      const s = net.createServer();
      await listen(s);
      return s;
    }),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

/** The environment for a forwarder under test: keys come from -i only, no SSHKEEP_* settings, and no tap loader leaks into node children. */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  delete env.SSH_AUTH_SOCK;
  for (const k of Object.keys(env)) if (k.startsWith('SSHKEEP_') && !(k in extra)) delete env[k]; // defaults mean defaults
  if (env.NODE_OPTIONS?.includes('@tapjs')) delete env.NODE_OPTIONS;
  // Under tap (test/bench-smoke.test.ts) this asks V8 for block coverage: a slower forwarder than users run.
  if (!('NODE_V8_COVERAGE' in extra)) delete env.NODE_V8_COVERAGE;
  return env;
}

/** Signals the process group of a child spawned with `detached: true`. */
export function killGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  if (!child.pid) return;
  try {
    process.kill(-child.pid, sig);
  } catch {}
}

/** stdout of a command, or its stderr / a short reason when it fails. */
export function sh(cmd: string, args: string[]): string {
  try {
    const r = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return r.trim();
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    return (e.stderr ?? '').trim() || `unavailable (${e.message.split('\n')[0]})`;
  }
}

/** `ssh -V` prints to stderr. */
export function sshVersion(): string {
  const r = spawnSync('ssh', ['-V'], { encoding: 'utf8' });
  return (r.stderr || r.stdout || 'unknown').trim();
}

export function cpuModel(): string {
  return os.cpus()[0]?.model.trim() ?? 'unknown';
}

/** Newest modification time (ms) of the .ts files under `dir`, to tell whether dist/ is stale. */
export function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * Runs a script's main(), cleaning up (processes, sshd) on success, failure, SIGINT and
 * SIGTERM, and exits with 0, 1 or 130.
 */
export function runMain(name: string, main: () => Promise<void>, cleanup: () => Promise<void>, verbose = false): void {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\n${sig}: cleaning up\n`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  main()
    .then(
      () => 0,
      (err: unknown) => {
        process.stderr.write(`${name} failed: ${err instanceof Error ? (verbose ? err.stack ?? err.message : err.message) : String(err)}\n`);
        return 1;
      },
    )
    .then(async (code) => {
      await cleanup();
      process.exit(code);
    });
}

/** Resolves when `child` exits or fails to spawn, dropping it from `live`; `info()` says how it ended. */
export function watchExit(child: ChildProcess, live: Set<ChildProcess>): { exited: Promise<void>; info(): string | undefined } {
  let exitInfo: string | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, sig) => {
      exitInfo = `exited with ${code ?? sig}`;
      live.delete(child);
      resolve();
    });
    child.once('error', (err) => {
      exitInfo = `spawn failed: ${err.message}`;
      live.delete(child);
      resolve();
    });
  });
  return { exited, info: () => exitInfo };
}

/**
 * True when the module at `url` (its import.meta.url) is the script node was started with, not a
 * module imported by another script or a test.
 */
export function isEntryPoint(url: string): boolean {
  const entry = process.argv[1];
  return entry !== undefined && url === pathToFileURL(path.resolve(entry)).href;
}

/** Connects to HOST:port, sends one byte, resolves once it is echoed; rejects on anything else. */
export async function echoProbe(port: number): Promise<void> {
  const s = net.connect({ port, host: HOST });
  s.setNoDelay(true);
  try {
    await new Promise<void>((resolve, reject) => {
      s.once('data', () => resolve());
      s.once('error', reject);
      s.once('close', () => reject(new Error('closed before the echo')));
      s.once('connect', () => s.write('x'));
    });
  } finally {
    s.on('error', () => {});
    s.destroy();
  }
}
