/** Driving a process that runs under valgrind's callgrind: collection on and off, dumps and their totals. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { until } from '../../test/fixtures/net.js';

/** `callgrind_control ARGS PID`; its output. */
export function callgrindControl(pid: number, ...args: string[]): string {
  const r = spawnSync('callgrind_control', [...args, String(pid)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`callgrind_control ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** The instructions of one dump (its `totals:` line). */
export function dumpTotal(file: string): number {
  return Number(/^totals: (\d+)/m.exec(fs.readFileSync(file, 'utf8'))?.[1] ?? 0);
}

/**
 * Instructions `pid` runs during `work`: collection on around it, then a dump, read from the file
 * in `dir` it makes. Start the process with collection off (--instr-atstart=no).
 */
export async function instructionsDuring(pid: number, dir: string, work: () => Promise<unknown>): Promise<number> {
  const before = new Set(fs.readdirSync(dir));
  callgrindControl(pid, '--instr=on');
  await work();
  callgrindControl(pid, '--instr=off');
  callgrindControl(pid, '--dump');
  // The process writes the dump when it next runs: wait for the file and its totals line (callgrind
  // also leaves an empty file under the name it was given, the first time).
  let made: string | undefined;
  await until(() => {
    made = fs.readdirSync(dir).find((f) => !before.has(f) && f.startsWith('callgrind.out') && dumpTotal(path.join(dir, f)) > 0);
    return made !== undefined;
  }, 30_000, `a callgrind dump of ${pid} in ${dir}`);
  return dumpTotal(path.join(dir, made!));
}
