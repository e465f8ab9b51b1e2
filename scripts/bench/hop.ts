/**
 * The floor of a relay hop on the server (bench-resume): `socat`, a C program that only copies
 * bytes, listening on a Unix socket per target and dialling the target, where --resume's agent
 * sits. Plain sshkeep forwarding to those sockets crosses the same processes and sockets as
 * --resume (sshkeep → sshd → Unix socket → relay → target) without framing, acks or a script
 * language: what any --resume over a stock sshd must pay at least.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { until } from '../../test/fixtures/net.js';
import { cpuTimesWithChildren, waitingChildren } from '../../test/fixtures/proc.js';
import { sleep } from '../lib/sleep.js';
import { found } from './services.js';

/** socat's buffer per direction: the agent reads 256 KiB at a time too. */
const BUFFER = 256 * 1024;

export interface Hop {
  /** The Unix socket in front of each target port, by port. */
  paths: Map<number, string>;
  /** CPU seconds of every relay process so far, once the per-connection children have exited. */
  cpuSeconds(): Promise<number>;
  close(): Promise<void>;
}

export type StartedHop = { hop: Hop } | { hop: undefined; why: string };

async function untilExists(file: string, child: ChildProcess): Promise<void> {
  const until = Date.now() + 10_000;
  while (!fs.existsSync(file)) {
    if (child.exitCode !== null) throw new Error(`socat for ${file} exited with ${child.exitCode}`);
    if (Date.now() > until) throw new Error(`socat did not create ${file} within 10 s`);
    await sleep(20);
  }
}

/** A socat per target port, listening in `dir` (0700: only this user's sshd sessions reach it). */
export async function startHop(dir: string, targets: number[], host: string): Promise<StartedHop> {
  if (!found('socat')) return { hop: undefined, why: 'socat not found (apt-get install -y socat)' };
  const children: ChildProcess[] = [];
  const paths = new Map<number, string>();
  const close = async () => {
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
  };
  try {
    for (const port of targets) {
      const file = path.join(dir, `hop-${port}.sock`);
      const child = spawn('socat', ['-b', String(BUFFER), `UNIX-LISTEN:${file},fork,mode=600`, `TCP:${host}:${port},nodelay`], { stdio: 'ignore' });
      children.push(child);
      await untilExists(file, child);
      paths.set(port, file);
    }
  } catch (err) {
    await close();
    throw err;
  }
  const cpuSeconds = async () => {
    // A connection's child adds its CPU to the listener's once it has exited and been reaped.
    await until(() => children.every((c) => waitingChildren(c.pid!) === 0), 10_000, 'the relay hop connections to end');
    return children.reduce((n, c) => {
      const t = cpuTimesWithChildren(c.pid!);
      return n + t.user + t.system;
    }, 0);
  };
  return { hop: { paths, cpuSeconds, close } };
}
