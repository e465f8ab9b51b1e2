/**
 * A CPU quota on a process, as a container's `resources.limits.cpu` sets one: a cgroup of its own
 * with CFS bandwidth control (quota per 100 ms period, Kubernetes' default), on cgroup v2
 * (`cpu.max`) or v1 (`cpu.cfs_quota_us`). The bench puts each forwarder in one to measure what a
 * sidecar with a CPU limit serves (issue 17). Needs root, or a delegated cgroup.
 */
import fs from 'node:fs';
import path from 'node:path';

/** CFS bandwidth's accounting period: the kubelet's default (`cpu.cfs_period_us`). */
export const PERIOD_US = 100_000;

/** Where CPU quotas can be set: the cgroup that holds this process, in the hierarchy of the cpu controller. */
export interface CpuHierarchy {
  version: 1 | 2;
  /** That cgroup's directory; quotas are set on new cgroups under it. */
  dir: string;
}

/**
 * The cpu controller's hierarchy from /proc/self/mountinfo and /proc/self/cgroup (their texts):
 * a v1 mount whose options name `cpu`, or else a v2 mount whose `cgroup.controllers` (read with
 * `controllersOf`) lists it. undefined when neither has it.
 */
export function cpuHierarchy(mountinfo: string, procCgroup: string, controllersOf: (dir: string) => string): CpuHierarchy | undefined {
  const mounts = mountinfo.split('\n').flatMap((line) => {
    const [left = '', right = ''] = line.split(' - ');
    const [fstype, , superOptions = ''] = right.split(' ');
    const [, , , root, mountPoint] = left.split(' ');
    if (!root || !mountPoint || (fstype !== 'cgroup' && fstype !== 'cgroup2')) return [];
    return [{ fstype, root: unescapeMount(root), mountPoint: unescapeMount(mountPoint), options: superOptions.split(',') }];
  });
  const groups = procCgroup.split('\n').flatMap((line) => {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    return m ? [{ controllers: m[1]!.split(','), path: m[2]! }] : [];
  });
  // A mount may show only part of the hierarchy (a container's): its root is cut from the path.
  const dirOf = (m: (typeof mounts)[number], p: string) => {
    const rel = path.relative(m.root, p);
    return path.join(m.mountPoint, rel.startsWith('..') ? p : rel);
  };
  const v1 = mounts.find((m) => m.fstype === 'cgroup' && m.options.includes('cpu'));
  const v1Path = groups.find((g) => g.controllers.includes('cpu'))?.path;
  if (v1 && v1Path !== undefined) return { version: 1, dir: dirOf(v1, v1Path) };
  const v2Path = groups.find((g) => g.controllers.length === 1 && g.controllers[0] === '')?.path;
  for (const m of mounts.filter((m) => m.fstype === 'cgroup2')) {
    if (v2Path !== undefined && controllersOf(m.mountPoint).split(/\s+/).includes('cpu')) return { version: 2, dir: dirOf(m, v2Path) };
  }
  return undefined;
}

/** mountinfo writes space, tab, newline and backslash in octal. */
const unescapeMount = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** This machine's hierarchy, or an error that says what is missing. */
function thisHierarchy(): CpuHierarchy {
  const read = (f: string) => {
    try {
      return fs.readFileSync(f, 'utf8');
    } catch {
      return '';
    }
  };
  const h = cpuHierarchy(read('/proc/self/mountinfo'), read('/proc/self/cgroup'), (dir) => read(path.join(dir, 'cgroup.controllers')));
  if (!h) throw new Error('--cpu-limit needs the cgroup cpu controller (a cgroup v1 mount with "cpu", or cgroup v2 listing it in cgroup.controllers); this machine has neither');
  return h;
}

/** What CFS bandwidth control has counted for a cgroup. */
export interface Throttling {
  periods: number;
  throttledPeriods: number;
  throttledSeconds: number;
}

/** cpu.stat's counters: v1 gives throttled_time in ns, v2 throttled_usec. */
export function parseCpuStat(text: string): Throttling {
  const field = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
  const ns = field('throttled_time');
  return {
    periods: field('nr_periods'),
    throttledPeriods: field('nr_throttled'),
    throttledSeconds: Number.isNaN(ns) ? field('throttled_usec') / 1e6 : ns / 1e9,
  };
}

/** The cgroups made and not yet removed, for a script's cleanup on an error or a signal. */
const live = new Set<CpuLimit>();

/** Removes every cgroup made here and not yet removed (their processes go back to the parent). */
export function removeCpuLimits(): void {
  for (const limit of live) limit.remove();
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
    const h = thisHierarchy();
    const dir = path.join(h.dir, name);
    try {
      if (h.version === 2) writeIfMissing(path.join(h.dir, 'cgroup.subtree_control'), '+cpu', 'cpu');
      fs.mkdirSync(dir);
    } catch (err) {
      throw new Error(`--cpu-limit: cannot make a cgroup under ${h.dir} (${(err as Error).message}); it needs root, or a cgroup delegated to this user`);
    }
    const quota = String(Math.round(cores * PERIOD_US));
    try {
      if (h.version === 2) fs.writeFileSync(path.join(dir, 'cpu.max'), `${quota} ${PERIOD_US}`);
      else {
        fs.writeFileSync(path.join(dir, 'cpu.cfs_period_us'), String(PERIOD_US));
        fs.writeFileSync(path.join(dir, 'cpu.cfs_quota_us'), quota);
      }
    } catch (err) {
      fs.rmdirSync(dir);
      throw new Error(`--cpu-limit: cannot set the quota of ${dir} (${(err as Error).message})`);
    }
    const limit = new CpuLimit(dir, h.dir);
    live.add(limit);
    return limit;
  }

  /** Moves a process, every thread of it, into the cgroup. */
  add(pid: number): void {
    fs.writeFileSync(path.join(this.dir, 'cgroup.procs'), String(pid));
  }

  /** The counters so far. */
  throttling(): Throttling {
    return parseCpuStat(fs.readFileSync(path.join(this.dir, 'cpu.stat'), 'utf8'));
  }

  /** Moves whatever is still in it back to the parent, and removes the cgroup (once). */
  remove(): void {
    if (!live.delete(this)) return;
    for (const pid of fs.readFileSync(path.join(this.dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
      try {
        fs.writeFileSync(path.join(this.parent, 'cgroup.procs'), pid);
      } catch {} // it exited meanwhile
    }
    fs.rmdirSync(this.dir);
  }
}

/** Writes `line` to a control file unless its text already lists `word`. */
function writeIfMissing(file: string, line: string, word: string): void {
  if (!fs.readFileSync(file, 'utf8').split(/\s+/).includes(word)) fs.writeFileSync(file, line);
}
