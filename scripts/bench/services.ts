/**
 * Real small-message servers for the small-messages table, when installed: PostgreSQL (a throwaway
 * cluster, trust auth, on a loopback port) and Redis (no persistence). Each start function
 * resolves with undefined and a reason (how to install it) when its binaries are absent.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HOST, deadline, freePorts, tryConnect } from '../../test/fixtures/net.js';
import { sleep } from '../lib/sleep.js';

export interface Service {
  name: string;
  port: number;
  stop(): Promise<void>;
}

export type Started = { service: Service } | { service: undefined; why: string };

const PG_BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';

/** `cmd` on PATH (or an absolute path that exists). */
export function found(cmd: string): boolean {
  return path.isAbsolute(cmd) ? fs.existsSync(cmd) : spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

/** PostgreSQL refuses to run as root: as root, run it as the `postgres` user. */
function pgUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('running as root and there is no postgres user to run PostgreSQL as');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

async function untilListening(port: number, child: ChildProcess, what: string): Promise<void> {
  const until = Date.now() + 30_000;
  while ((await tryConnect(port)) !== 'connected') {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}`);
    if (Date.now() > until) throw new Error(`${what} did not listen on ${port} within 30 s`);
    await sleep(50);
  }
}

function stopper(child: ChildProcess, dir?: string): () => Promise<void> {
  return async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await deadline(once(child, 'exit'), 10_000, 'service to exit').catch(() => child.kill('SIGKILL'));
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  };
}

/** A PostgreSQL cluster with pgbench's tables (scale 1), or why not. */
export async function startPostgres(): Promise<Started> {
  const why = `PostgreSQL server or pgbench not found (apt-get install -y postgresql postgresql-contrib; PG_BIN=${PG_BIN})`;
  if (!found(path.join(PG_BIN, 'initdb')) || !found('pgbench')) return { service: undefined, why };
  const user = pgUser();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sshkeep-bench-pg-'));
  if (user) fs.chownSync(dir, user.uid, user.gid);
  const [port] = (await freePorts(1)) as [number];
  const data = path.join(dir, 'data');
  const init = spawnSync(path.join(PG_BIN, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8'], { ...user, encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`);
  const child = spawn(
    path.join(PG_BIN, 'postgres'),
    ['-D', data, '-p', String(port), '-k', dir, '-c', `listen_addresses=${HOST}`, '-c', 'fsync=off', '-c', 'max_connections=100'],
    { ...user, stdio: 'ignore' },
  );
  const stop = stopper(child, dir);
  try {
    await untilListening(port, child, 'postgres');
    const fill = spawnSync('pgbench', ['-i', '-q', '-s', '1', '-h', HOST, '-p', String(port), '-U', 'postgres', 'postgres'], { encoding: 'utf8' });
    if (fill.status !== 0) throw new Error(`pgbench -i failed: ${fill.stderr}`);
  } catch (err) {
    await stop();
    throw err;
  }
  return { service: { name: 'postgres', port, stop } };
}

/** A Redis server without persistence, or why not. */
export async function startRedis(): Promise<Started> {
  if (!found('redis-server') || !found('redis-benchmark')) return { service: undefined, why: 'redis-server or redis-benchmark not found (apt-get install -y redis-server)' };
  const [port] = (await freePorts(1)) as [number];
  const child = spawn('redis-server', ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], { stdio: 'ignore' });
  const stop = stopper(child);
  try {
    await untilListening(port, child, 'redis-server');
  } catch (err) {
    await stop();
    throw err;
  }
  return { service: { name: 'redis', port, stop } };
}

/** Runs a command to completion within `ms`: its exit code and output (killed, and an error, past `ms`). */
export async function runCaptured(cmd: string, args: string[], ms: number): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c));
  child.stderr!.on('data', (c: Buffer) => (err += c));
  // 'close', not 'exit': the output is all read by then.
  const [code] = (await deadline(once(child, 'close'), ms, `${cmd} to finish`).catch((e: Error) => {
    child.kill('SIGKILL');
    throw e;
  })) as [number | null];
  return { code, out, err };
}

/** Runs a load generator to completion; its stdout, or a clear error with its stderr. */
export async function runLoad(cmd: string, args: string[], ms: number): Promise<string> {
  const { code, out, err } = await runCaptured(cmd, args, ms);
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${code}: ${err.trim().slice(-2000)}`);
  return out;
}

/** pgbench -S -c 8: transactions done, from its report. */
export async function pgbenchSelect(port: number, seconds: number, clients: number): Promise<number> {
  const out = await runLoad('pgbench', ['-S', '-n', '-c', String(clients), '-j', '2', '-T', String(seconds), '-h', HOST, '-p', String(port), '-U', 'postgres', 'postgres'], seconds * 1000 + 60_000);
  const m = /number of transactions actually processed: (\d+)/.exec(out);
  if (!m) throw new Error(`pgbench printed no transaction count:\n${out}`);
  return Number(m[1]);
}

/** redis-benchmark -c `clients` -t get,set, no pipelining: the requests it made (`n` per test). */
export async function redisBenchmark(port: number, n: number, clients: number): Promise<number> {
  const out = await runLoad('redis-benchmark', ['-h', HOST, '-p', String(port), '-c', String(clients), '-n', String(n), '-t', 'set,get', '--csv'], 300_000);
  const tests = out.split('\n').filter((l) => /^"(SET|GET)"/.test(l));
  if (tests.length !== 2) throw new Error(`redis-benchmark did not report SET and GET:\n${out}`);
  return 2 * n;
}
