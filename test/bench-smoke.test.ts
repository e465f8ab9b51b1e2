/**
 * Regression guard, not a timing goal: sshkeep's bulk throughput through a real sshd is at least half
 * of OpenSSH `ssh -N -L`'s, each direction, each tool with its default cipher as a user runs it
 * (scripts/bench-smoke.ts: A B A B, 5 rounds, 64 MiB each way, the median of per-round ratios). A
 * ratio, so the machine's speed does not matter. At the same cipher sshkeep is at 0.6-0.9 of ssh
 * (BENCHMARKS.md), too close to 0.5 for a guard that must not flake on a shared 2-core machine.
 */
import t from 'tap';
import { requireSshd } from './fixtures/sshd.js';
import { describe, runSmoke } from '../scripts/bench/smoke.js';

t.test('bench smoke: sshkeep/ssh -L throughput and small-message ratios ≥ 0.5, each tool with its default cipher', async (t) => {
  if (!requireSshd(t)) return;
  const r = await runSmoke({ log: (l) => t.comment(l) });
  t.comment(`${r.seconds.toFixed(1)} s`);
  for (const dir of ['upload', 'download', 'small'] as const) {
    t.ok(r[dir].ratio >= 0.5, describe(r, dir));
  }
});
