/** The soak report as Markdown: the checks, the streams, the faults, sshkeep's resources, the failures. */
import type { Outcome, SoakReport } from './types.js';

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const num = (x: number | undefined, digits = 1) => (x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(digits));

export function markdown(r: SoakReport, command: string): string {
  const o = r.options;
  const L: string[] = [];
  L.push('## Soak: mixed traffic with a fault every ' + `${o.faultEveryMs[0] / 1000}–${o.faultEveryMs[1] / 1000} s`, '');
  for (const [k, v] of Object.entries({ ...r.meta, command: `\`${command}\``, run: `${secs(o.durationMs)} of traffic, ${secs(r.durationMs)} in all; seed ${o.seed}` })) L.push(`- **${k}:** ${v}`);
  L.push(
    `- **traffic:** ${o.uploads} upload + ${o.downloads} download workers (${(o.bulkSize[0] / 1024 ** 2).toFixed(2)}–${(o.bulkSize[1] / 1024 ** 2).toFixed(2)} MiB each, ${o.bulkRate ? `${(o.bulkRate / 1024 ** 2).toFixed(1)} MiB/s` : 'unpaced'}, sha256-checked), ` +
      `${o.echoes} short request/response workers (1–8 KiB echoed), ${o.idle} idle connections (one echo at the start, one at the end)`,
  );
  L.push(`- **rules:** a reset must overlap a fault window [start, end + ${o.graceMs / 1000} s]; no progress for ${o.stallMs / 1000} s is a stall; in-flight streams get ${o.drainMs / 1000} s after the run`, '');
  L.push(`**Result: ${r.pass ? '✅ PASS' : '❌ FAIL'}**`, '');
  L.push('| check | value | |', '|---|---:|---|');
  const ok = (b: boolean) => (b ? '✅' : '❌');
  L.push(`| streams completed | ${r.completed.total} | |`);
  L.push(`| … with matching hash / echo | ${r.completed.matching} | ${ok(r.completed.matching === r.completed.total)} must be all |`);
  const sum = (k: Outcome) => Object.values(r.streams).reduce((n, c) => n + c[k], 0);
  L.push(`| ended cleanly but incomplete (truncated) | ${sum('truncated')} | ${ok(sum('truncated') === 0)} must be 0 |`);
  L.push(`| streams reset, in a fault window | ${r.resets.explained} | ${r.resets.seenAsEof ? `${r.resets.seenAsEof} of them seen by the Node client as EOF (libuv), told apart by /proc/net/tcp` : ''} |`);
  L.push(`| streams reset, no fault nearby | ${r.resets.unexplained} | ${ok(r.resets.unexplained === 0)} must be 0 |`);
  L.push(`| stalled / unfinished | ${sum('stalled')} / ${sum('unfinished')} | ${ok(sum('stalled') + sum('unfinished') === 0)} must be 0 |`);
  L.push(`| held connections served | ${r.held.served} of ${r.held.held} held | |`);
  L.push(`| held connections timed out (log / /metrics) | ${r.held.timedOutLog} / ${r.held.timedOutMetrics ?? '—'} | |`);
  L.push(`| faults | ${r.faults.length} | |`);
  L.push(`| sshkeep reconnects (/metrics) | ${r.metrics?.reconnects ?? '—'} | |`);
  L.push(`| sshkeep exit on SIGTERM | ${r.sshkeepExit ?? '—'} | ${ok(r.sshkeepExit === 'exited with 0')} |`, '');

  L.push('### Streams', '', '| kind | started | ok | wrong content | truncated | reset | other error | stalled | unfinished | MiB verified |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const [k, c] of Object.entries(r.streams)) {
    L.push(`| ${k} | ${c.started} | ${c.ok} | ${c.corrupt} | ${c.truncated} | ${c.reset} | ${c.error} | ${c.stalled} | ${c.unfinished} | ${(c.bytesVerified / 1024 ** 2).toFixed(1)} |`);
  }
  L.push('');

  L.push('### Faults', '', '| # | fault | window | what | streams reset | sshkeep states in the window (+ grace) |', '|---:|---|---|---|---:|---|');
  for (const f of r.faults) {
    const e = r.faultEffects.find((x) => x.index === f.index);
    L.push(`| ${f.index} | ${f.kind} | ${secs(f.startMs)} – ${secs(f.endMs)} | ${f.detail} | ${e?.streamsReset ?? 0} | ${e?.states.join(', ') || '—'} |`);
  }
  L.push('');

  const tf = r.resources.rssMiB?.trendFromMs;
  L.push(`### sshkeep process (every ${o.sampleEveryMs / 1000} s, ${r.resources.samples.length} samples)`, '');
  if (tf !== undefined) L.push(`first / max / last over every sample; slope and thirds over the samples from ${secs(tf)} on (warm-up left out).`, '');
  L.push('| series | first | max | last | slope / min | median, first third | median, last third | growth trend (> 20 %) |', '|---|---:|---:|---:|---:|---:|---:|---|');
  for (const [name, s, d] of [['RSS (MiB)', r.resources.rssMiB, 1], ['open fds', r.resources.fds, 0]] as const) {
    if (!s) continue;
    L.push(`| ${name} | ${num(s.first, d)} | ${num(s.max, d)} | ${num(s.last, d)} | ${s.slopePerMin >= 0 ? '+' : ''}${num(s.slopePerMin, 2)} | ${num(s.firstThirdMedian, d)} | ${num(s.lastThirdMedian, d)} | ${s.growth ? '⚠️ yes' : 'no'} |`);
  }
  L.push('');

  if (r.failures.length) {
    L.push('### Failures', '');
    for (const f of r.failures.slice(0, 50)) L.push(`- ${f}`);
    if (r.failures.length > 50) L.push(`- … ${r.failures.length - 50} more (--json for all)`);
    L.push('');
  }
  const probs = r.problems.filter((p) => p.sshkeepEnd || p.conn !== undefined);
  if (probs.length) {
    L.push('### sshkeep\'s view of the failed streams', '', '| stream | outcome | sshkeep conn | held | sshkeep ended it |', '|---|---|---:|---|---|');
    for (const p of probs.slice(0, 30)) L.push(`| ${p.kind} #${p.id} | ${p.outcome} | ${p.conn ?? '—'} | ${p.held ? 'yes' : 'no'} | ${p.sshkeepEnd ?? '—'} |`);
    L.push('');
  }
  return L.join('\n');
}
