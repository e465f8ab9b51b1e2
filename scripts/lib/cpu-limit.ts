/**
 * A CPU quota on a process, as a container's `resources.limits.cpu` sets one: a cgroup of its own
 * with CFS bandwidth control (quota per 100 ms period, Kubernetes' default). The bench puts each
 * forwarder in one to measure what a sidecar with a CPU limit serves (issue 17). cgroup v1's cpu
 * controller only (`cpu.cfs_quota_us`): v2 needs the quota's cgroup in a subtree that holds no
 * other process, which this machine (v1) could not test. Needs root, or a delegated cgroup.
 */
import fs from 'node:fs';
import path from 'node:path';

/** CFS bandwidth's accounting period: the kubelet's default (`cpu.cfs_period_us`). */
export const PERIOD_US = 100_000;

/**
 * The cgroup that holds this process in the cgroup v1 hierarchy of the cpu controller, from
 * /proc/self/mountinfo and /proc/self/cgroup (their texts): quotas are set on new cgroups under
 * it. undefined when no v1 mount has the controller or none shows this process's cgroup.
 */
export function cpuCgroupDir(mountinfo: string, procCgroup: string): string | undefined {
  const mounts = mountinfo.split('\n').flatMap((line) => {
    const [left = '', right = ''] = line.split(' - ');
    const [fstype, , superOptions = ''] = right.split(' ');
    const [, , , root, mountPoint] = left.split(' ');
    if (!root || !mountPoint || fstype !== 'cgroup' || !superOptions.split(',').includes('cpu')) return [];
    return [{ root: unescapeMount(root), mountPoint: unescapeMount(mountPoint) }];
  });
  const own = procCgroup.split('\n').flatMap((line) => {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    return m && m[1]!.split(',').includes('cpu') ? [m[2]!] : [];
  })[0];
  if (own === undefined) return undefined;
  // A mount may show only part of the hierarchy (a container's): the one whose root holds the path.
  for (const m of mounts) {
    const rel = path.posix.relative(m.root, own);
    if (rel !== '..' && !rel.startsWith('../')) return path.posix.join(m.mountPoint, rel);
  }
  return undefined;
}

/** mountinfo writes space, tab, newline and backslash in octal. */
const unescapeMount = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** This machine's cgroup for quotas, or an error that says what is missing. */
function thisCgroup(): string {
  const read = (f: string) => {
    try {
      return fs.readFileSync(f, 'utf8');
    } catch {
      return '';
    }
  };
  const dir = cpuCgroupDir(read('/proc/self/mountinfo'), read('/proc/self/cgroup'));
  if (dir) return dir;
  const v2 = /\bcgroup2\b/.test(read('/proc/self/mountinfo')) ? ' This host has cgroup v2, which --cpu-limit does not drive yet.' : '';
  throw new Error(`--cpu-limit needs a cgroup v1 hierarchy with the cpu controller (mounted with "cpu"), and this machine has none.${v2}`);
}

/** What CFS bandwidth control has counted for a cgroup: the periods in which it ran, and those in which its quota ran out. */
export interface Throttling {
  periods: number;
  throttledPeriods: number;
}

/** cpu.stat's counters. */
export function parseCpuStat(text: string): Throttling {
  const field = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { periods: field('nr_periods'), throttledPeriods: field('nr_throttled') };
}

/** The cgroups made and not yet removed, for a script's cleanup on an error or a signal. */
const live = new Set<CpuLimit>();

/** Removes every cgroup made here and not yet removed; what could not be removed, one line each. */
export function removeCpuLimits(): string[] {
  const failed: string[] = [];
  for (const limit of live) {
    try {
      limit.remove();
    } catch (err) {
      failed.push(`--cpu-limit: ${limit.dir} was left behind (${(err as Error).message}); rmdir it once its processes have exited`);
    }
  }
  return failed;
}

/** A cgroup with a CPU quota, holding the processes given to it. */
export class CpuLimit {
  private constructor(
    /** The cgroup's directory. */
    readonly dir: string,
    private readonly parent: string,
  ) {}

  /**
   * A new cgroup named `name` under this process's own, limited to `cores` (0.1 = 100m: 10 ms of
   * CPU per 100 ms period, shared by all its threads). Throws, saying why, where it cannot be made.
   */
  static create(name: string, cores: number): CpuLimit {
    const parent = thisCgroup();
    const dir = path.join(parent, name);
    try {
      fs.mkdirSync(dir);
    } catch (err) {
      throw new Error(`--cpu-limit: cannot make a cgroup under ${parent} (${(err as Error).message}); it needs root, or a cgroup delegated to this user`);
    }
    try {
      fs.writeFileSync(path.join(dir, 'cpu.cfs_period_us'), String(PERIOD_US));
      fs.writeFileSync(path.join(dir, 'cpu.cfs_quota_us'), String(Math.round(cores * PERIOD_US)));
    } catch (err) {
      try {
        fs.rmdirSync(dir);
      } catch {} // the quota's error is the one to tell
      throw new Error(`--cpu-limit: cannot set the quota of ${dir} (${(err as Error).message})`);
    }
    const limit = new CpuLimit(dir, parent);
    live.add(limit);
    return limit;
  }

  /**
   * A command line that runs `cmd` in the cgroup from its first instruction: a shell writes its
   * own pid into the cgroup, then becomes `cmd` (exec keeps the pid).
   */
  wrap(cmd: string, args: string[]): [string, string[]] {
    return ['sh', ['-c', 'echo $$ > "$0" && exec "$@"', path.join(this.dir, 'cgroup.procs'), cmd, ...args]];
  }

  /** The counters so far. */
  throttling(): Throttling {
    return parseCpuStat(fs.readFileSync(path.join(this.dir, 'cpu.stat'), 'utf8'));
  }

  /**
   * Moves whatever is still in it back to the parent, and removes the cgroup. A process killed
   * a moment ago may still be exiting (the kernel moves no exiting task, and rmdir says EBUSY):
   * that is waited for, up to a second. Once removed, nothing.
   */
  remove(): void {
    if (!live.has(this)) return;
    for (let waited = 0; ; waited += 10) {
      for (const pid of fs.readFileSync(path.join(this.dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
        try {
          fs.writeFileSync(path.join(this.parent, 'cgroup.procs'), pid);
        } catch {} // it exited meanwhile
      }
      try {
        fs.rmdirSync(this.dir);
        live.delete(this);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EBUSY' || waited >= 1000) throw err;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10); // cleanup, also from a signal handler: synchronous
      }
    }
  }
}
