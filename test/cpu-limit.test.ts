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
import { CpuLimit, cpuCgroupDir, parseCpuStat } from '../scripts/lib/cpu-limit.js';
import { coresOption } from '../scripts/lib/options.js';

const V1_MOUNTS = [
  '30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
  '33 30 0:30 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset',
  '31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct',
  '40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
].join('\n');
const V1_GROUPS = '3:cpuset:/\n2:cpu,cpuacct:/kubepods/pod1\n0::/\n';

t.test("the cpu controller's v1 cgroup of this process", async (t) => {
  t.equal(cpuCgroupDir(V1_MOUNTS, V1_GROUPS), '/sys/fs/cgroup/cpu,cpuacct/kubepods/pod1', 'cpu among the mount options; the cpuset mount before it not taken for it');
  t.equal(cpuCgroupDir(V1_MOUNTS.replace('rw,cpu,cpuacct', 'rw,cpuacct'), V1_GROUPS), undefined, 'no v1 mount with cpu');
  t.equal(cpuCgroupDir('25 21 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate', '0::/user.slice\n'), undefined, 'cgroup v2 only: not driven');
  t.equal(cpuCgroupDir('31 30 0:28 / /mnt/my\\040cgroups rw - cgroup cgroup rw,cpu', '1:cpu:/\n'), '/mnt/my cgroups', "mountinfo's octal escapes");
  const partial = '31 30 0:28 /kubepods/pod1 /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu';
  t.equal(cpuCgroupDir(partial, '1:cpu:/kubepods/pod1/sidecar\n'), '/sys/fs/cgroup/cpu/sidecar', "a container's mount of part of the hierarchy");
  t.equal(cpuCgroupDir(partial, '1:cpu:/kubepods/pod2\n'), undefined, 'a mount that does not hold the cgroup');
  t.equal(cpuCgroupDir(`${partial}\n32 30 0:28 / /mnt/all rw - cgroup cgroup rw,cpu`, '1:cpu:/system.slice\n'), '/mnt/all/system.slice', 'the mount that holds it, of two');
});

t.test("cpu.stat's counters", async (t) => {
  t.same(parseCpuStat('nr_periods 40\nnr_throttled 31\nthrottled_time 2500000000\nnr_bursts 0\n'), { periods: 40, throttledPeriods: 31 });
});

t.test('--cpu-limit takes cores or millicores, as Kubernetes writes them', async (t) => {
  t.equal(coresOption('cpu-limit', '0.1'), 0.1);
  t.equal(coresOption('cpu-limit', '100m'), 0.1);
  t.equal(coresOption('cpu-limit', '2'), 2);
  t.equal(coresOption('cpu-limit', '.25'), 0.25);
  t.equal(coresOption('cpu-limit', '0.01'), 0.01, "the floor: the kernel's least quota, 1 ms a period");
  t.equal(coresOption('cpu-limit', '10m'), 0.01);
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
t.test('a busy process started under a 50m quota is throttled, and the cgroup goes when removed', { skip: why }, async (t) => {
  const limit = CpuLimit.create(`sshkeep-test-${process.pid}`, 0.05);
  const busy = spawn(...limit.wrap(process.execPath, ['-e', 'for (;;) {}']), { stdio: 'ignore' });
  t.teardown(async () => {
    if (busy.exitCode === null && busy.signalCode === null) {
      busy.kill('SIGKILL');
      await once(busy, 'exit');
    }
    limit.remove(); // after a failure above; once removed, nothing
  });
  await until(() => fs.readFileSync(`/proc/${busy.pid}/cmdline`, 'utf8').split('\0')[0] === process.execPath, 10_000, 'the shell to exec node');
  const group = fs.readFileSync(`/proc/${busy.pid}/cgroup`, 'utf8');
  t.match(group, new RegExp(`/sshkeep-test-${process.pid}$`, 'm'), 'the process is in the new cgroup, with the pid it was spawned with');
  await until(() => limit.throttling().throttledPeriods >= 3, 10_000, 'the kernel to throttle the busy process');
  const th = limit.throttling();
  t.ok(th.periods >= th.throttledPeriods, `counted: ${JSON.stringify(th)}`);
  t.equal(fs.readFileSync(`${limit.dir}/cpu.cfs_quota_us`, 'utf8').trim(), '5000', 'the quota: 5 ms of each 100 ms period');
  limit.remove(); // with the process still in it: moved back to the parent first
  t.notMatch(fs.readFileSync(`/proc/${busy.pid}/cgroup`, 'utf8'), /sshkeep-test-/, 'the process is back in its parent cgroup');
  t.notOk(fs.existsSync(limit.dir), `the cgroup is gone (${limit.dir})`);
});
