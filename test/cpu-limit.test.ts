/**
 * scripts/lib/cpu-limit.ts: the bench's CPU quota on a forwarder, as a sidecar's CPU limit sets one
 * (issue 17). Where this machine lets a cgroup be made (root, a cpu controller), a busy process is
 * put under a quota and the kernel is seen throttling it.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import t from 'tap';
import { until } from './fixtures/net.js';
import { CpuLimit, cpuHierarchy, parseCpuStat } from '../scripts/lib/cpu-limit.js';
import { coresOption } from '../scripts/lib/options.js';

const V1_MOUNTS = [
  '30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
  '31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct',
  '33 30 0:30 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset',
  '40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
].join('\n');
const V1_GROUPS = '3:cpuset:/\n2:cpu,cpuacct:/kubepods/pod1\n0::/\n';
const V2_MOUNTS = '25 21 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate';

t.test('the cpu controller: v1 where a mount has it, else v2 where cgroup.controllers lists it', async (t) => {
  t.same(cpuHierarchy(V1_MOUNTS, V1_GROUPS, () => 'cpu'), { version: 1, dir: '/sys/fs/cgroup/cpu,cpuacct/kubepods/pod1' }, 'v1: cpu among the mount options, "cpuset" not taken for it');
  t.same(cpuHierarchy(V2_MOUNTS, '0::/user.slice/session-1.scope\n', (d) => (d === '/sys/fs/cgroup' ? 'cpuset cpu io memory pids' : '')), { version: 2, dir: '/sys/fs/cgroup/user.slice/session-1.scope' }, 'v2');
  t.equal(cpuHierarchy(V2_MOUNTS, '0::/\n', () => 'cpuset io memory'), undefined, 'v2 without cpu delegated');
  t.equal(cpuHierarchy(V1_MOUNTS.replace('rw,cpu,cpuacct', 'rw,cpuacct'), V1_GROUPS, () => 'hugetlb'), undefined, 'neither');
  t.same(cpuHierarchy('31 30 0:28 / /mnt/my\\040cgroups rw - cgroup cgroup rw,cpu', '1:cpu:/\n', () => ''), { version: 1, dir: '/mnt/my cgroups' }, "mountinfo's octal escapes");
  t.same(cpuHierarchy('25 21 0:22 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw', '0::/kubepods/pod1/sidecar\n', () => 'cpu'), { version: 2, dir: '/sys/fs/cgroup/sidecar' }, "a container's mount of part of the hierarchy");
});

t.test("cpu.stat's counters, v1 (ns) and v2 (µs)", async (t) => {
  t.same(parseCpuStat('nr_periods 40\nnr_throttled 31\nthrottled_time 2500000000\nnr_bursts 0\n'), { periods: 40, throttledPeriods: 31, throttledSeconds: 2.5 });
  t.same(parseCpuStat('usage_usec 9\nuser_usec 5\nsystem_usec 4\nnr_periods 12\nnr_throttled 3\nthrottled_usec 150000\n'), { periods: 12, throttledPeriods: 3, throttledSeconds: 0.15 });
});

t.test('--cpu-limit takes cores or millicores, as Kubernetes writes them', async (t) => {
  t.equal(coresOption('cpu-limit', '0.1'), 0.1);
  t.equal(coresOption('cpu-limit', '100m'), 0.1);
  t.equal(coresOption('cpu-limit', '2'), 2);
  t.equal(coresOption('cpu-limit', '.25'), 0.25);
  for (const bad of ['0', '5m', 'abc', '-1', '100mi', '1e3', '']) t.throws(() => coresOption('cpu-limit', bad), /--cpu-limit must be a CPU amount of at least 0.01 cores/, JSON.stringify(bad));
});

/** Whether this process may make a cgroup with a quota here (the bench's own check is CpuLimit.create's error). */
function cannotLimit(): string | false {
  try {
    CpuLimit.create(`sshkeep-test-probe-${process.pid}`, 0.5).remove();
    return false;
  } catch (err) {
    return (err as Error).message;
  }
}

const why = cannotLimit();
t.test('a busy process under a 50m quota is throttled, and the cgroup goes when removed', { skip: why }, async (t) => {
  const limit = CpuLimit.create(`sshkeep-test-${process.pid}`, 0.05);
  const busy = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
  t.teardown(async () => {
    if (busy.exitCode === null && busy.signalCode === null) {
      busy.kill('SIGKILL');
      await once(busy, 'exit');
    }
    limit.remove(); // after a failure above; once removed, nothing
  });
  limit.add(busy.pid!);
  const group = fs.readFileSync(`/proc/${busy.pid}/cgroup`, 'utf8');
  t.match(group, new RegExp(`/sshkeep-test-${process.pid}$`, 'm'), 'the process is in the new cgroup');
  await until(() => limit.throttling().throttledPeriods >= 3, 10_000, 'the kernel to throttle the busy process');
  const th = limit.throttling();
  t.ok(th.periods >= th.throttledPeriods && th.throttledSeconds > 0, `counted: ${JSON.stringify(th)}`);
  limit.remove(); // with the process still in it: moved back to the parent first
  t.notMatch(fs.readFileSync(`/proc/${busy.pid}/cgroup`, 'utf8'), /sshkeep-test-/, 'the process is back in its parent cgroup');
  t.notOk(fs.existsSync(limit.dir), `the cgroup is gone (${limit.dir})`);
});
