/** What a forwarder spends: CPU per GiB moved, RSS, and every thread's counters for the idle window. */
import fs from 'node:fs';
import { deadline } from '../../test/fixtures/net.js';
import { cpuSeconds, cpuTimes, rssKiB } from '../../test/fixtures/proc.js';
import { sleep } from '../lib/sleep.js';
import { holdConnections, type Transfer } from './clients.js';
import type { Running } from './launch.js';
import { sshdCpuDelta, sshdSessionCpu } from './sshd.js';
import { MIB } from './targets.js';

const GIB = 1024 * MIB;

/** VmRSS summed over processes (autossh + its ssh), in KiB. */
export const treeRssKiB = (pids: number[]): number => pids.reduce((sum, p) => sum + rssKiB(p), 0);

/** What a set of processes has spent so far, summed over every thread. */
export interface ProcCounters {
  /** On-CPU time of the live threads (/proc/PID/task/TID/schedstat, ns resolution), seconds. */
  runSeconds: number;
  /** utime + stime of the processes (/proc/PID/stat, clock ticks), seconds. */
  tickSeconds: number;
  /** voluntary_ctxt_switches + nonvoluntary_ctxt_switches of every live thread. */
  ctxSwitches: number;
  threads: number;
}

export function procCounters(pids: number[]): ProcCounters {
  const c: ProcCounters = { runSeconds: 0, tickSeconds: 0, ctxSwitches: 0, threads: 0 };
  for (const pid of pids) {
    c.tickSeconds += cpuSeconds(pid);
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      try {
        c.runSeconds += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e9;
        const status = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
        c.ctxSwitches += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
        c.ctxSwitches += Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
        c.threads++;
      } catch {} // a thread that ended between readdir and read
    }
  }
  return c;
}

export interface Bulk extends Transfer {
  cpuSeconds: number;
  cpuSecondsPerGiB: number;
  /** The user-space part of cpuSecondsPerGiB; the rest is the kernel's (syscalls, loopback delivery). */
  userCpuSecondsPerGiB: number;
  sshdCpuSecondsPerGiB: number;
}


export async function measuredBulk(pid: number, sshdListener: number, fn: () => Promise<Transfer>): Promise<Bulk> {
  const cpu0 = cpuTimes(pid);
  const sshd0 = sshdSessionCpu(sshdListener);
  const t = await fn();
  const cpu1 = cpuTimes(pid);
  const user = cpu1.user - cpu0.user;
  const cpu = user + cpu1.system - cpu0.system;
  const sshdCpu = sshdCpuDelta(sshd0, sshdSessionCpu(sshdListener));
  const gib = t.bytes / GIB;
  return { ...t, cpuSeconds: cpu, cpuSecondsPerGiB: cpu / gib, userCpuSecondsPerGiB: user / gib, sshdCpuSecondsPerGiB: sshdCpu / gib };
}

/**
 * A burst of `n` connections through the forward: opened (each echoed once), held, `measure()`d
 * 2 s after the last one echoed, closed. Also what a forwarder that has served clients has been through.
 */
export async function connectionBurst<T>(run: Running, n: number, measure: () => T): Promise<T> {
  const held = await deadline(holdConnections(run.ports.echo, n), 120_000, `${n} held connections`);
  try {
    await sleep(2_000);
    return measure();
  } finally {
    await held.close();
  }
}

/** RSS with `n` connections held open through the forward, read 2 s after the last one echoed. */
export const rssWithConnections = (run: Running, n: number): Promise<number> => connectionBurst(run, n, () => treeRssKiB(run.pids()));
