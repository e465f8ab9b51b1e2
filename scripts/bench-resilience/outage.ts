/** Scenario 5: a new connection every 100 ms through an 8 s outage; successes and failures by kind. */
import type { RelayMode } from '../../test/fixtures/relay.js';
import { sleep } from '../lib/sleep.js';
import { request, type FailKind } from './clients.js';
import { met, ms, secs } from './report.js';
import {  notableLogs, now, transitions, type Env, type ToolSpec, withTool } from './tool.js';

interface S5Conn {
  startMs: number;
  ok: boolean;
  failure?: FailKind;
  latencyMs?: number;
}

export interface S5Row {
  label: string;
  mode: RelayMode;
  total: number;
  ok: number;
  failures: Partial<Record<string, number>>;
  successPct: number;
  latencyP50Ms?: number;
  latencyMaxMs?: number;
  failedWindow?: [number, number];
  conns: S5Conn[];
  restarts?: number;
  transitions?: ReturnType<typeof transitions>;
  logs?: Array<Record<string, unknown>>;
  sshStderr?: string;
  autosshLog?: string;
}

export const S5 = { durationMs: 20_000, everyMs: 100, outageFromMs: 6_000, outageMs: 8_000, perConnMs: 40_000 };

export async function scenario5(env: Env, spec: ToolSpec, mode: RelayMode): Promise<S5Row> {
  return withTool(spec, env, async (tool) => {
    await sleep(1000);
    const t0 = now();
    const n = S5.durationMs / S5.everyMs;
    const results: Array<Promise<S5Conn>> = [];
    const fault = (async () => {
      await sleep(S5.outageFromMs);
      tool.relay.set(mode);
      await sleep(S5.outageMs);
      tool.relay.restore();
    })();
    for (let i = 0; i < n; i++) {
      const wait = t0 + i * S5.everyMs - now();
      if (wait > 0) await sleep(wait);
      const startMs = now() - t0;
      results.push(
        request(tool.port, S5.perConnMs).then((r) => ({
          startMs: Math.round(startMs),
          ok: r.ok,
          ...(r.ok ? { latencyMs: ms(r.doneAt! - r.t0) } : { failure: r.failure }),
        })),
      );
    }
    await fault;
    const conns = await Promise.all(results);
    const ok = conns.filter((c) => c.ok);
    const failures: Partial<Record<string, number>> = {};
    for (const c of conns) if (!c.ok) failures[c.failure!] = (failures[c.failure!] ?? 0) + 1;
    const failed = conns.filter((c) => !c.ok).map((c) => c.startMs);
    const lat = ok.map((c) => c.latencyMs!).sort((a, b) => a - b);
    const row: S5Row = {
      label: spec.label,
      mode,
      total: conns.length,
      ok: ok.length,
      failures,
      successPct: (100 * ok.length) / conns.length,
      conns,
    };
    if (lat.length) {
      row.latencyP50Ms = lat[(lat.length - 1) >> 1];
      row.latencyMaxMs = lat[lat.length - 1];
    }
    if (failed.length) row.failedWindow = [Math.min(...failed), Math.max(...failed)];
    if (spec.kind === 'sshkeep') {
      row.transitions = transitions(tool, t0);
      row.logs = notableLogs(tool, t0).filter((l) => l.event !== 'conn_end' || l.reset === true).slice(0, 60);
    } else {
      row.sshStderr = tool.stderr().trim().slice(-800);
      if (spec.kind === 'autossh') {
        const log = tool.autosshLog();
        row.restarts = (log.match(/starting ssh/g) ?? []).length - 1;
        row.autosshLog = log.trim().split('\n').slice(-20).join('\n');
      }
    }
    return row;
  });
}

export function markdownS5(rows: S5Row[]): string {
  const L = [
    '### 5. A new connection every 100 ms for 20 s, 8 s outage in the middle',
    '',
    `${S5.durationMs / S5.everyMs} connections, one every ${S5.everyMs} ms; the relay is in the outage mode from ${secs(S5.outageFromMs)} to ${secs(S5.outageFromMs + S5.outageMs)}. ` +
      `Success = the full request echoed back within ${S5.perConnMs / 1000} s. 'refuse' = the server is down (existing and new SSH connections reset); ` +
      `'blackhole' = the link stalls (bytes held, delivered on restore). Target (sshkeep): 100 %.`,
    '',
    '| outage | tool | success | refused | reset | clean EOF | timeout | other | failing connections started | success latency p50 / max | target | result |',
    '|---|---|---:|---:|---:|---:|---:|---:|---|---|---|---|',
  ];
  for (const r of rows) {
    const isKeep = r.label.startsWith('sshkeep');
    const f = r.failures;
    const other = Object.entries(f)
      .filter(([k]) => !['refused', 'reset', 'eof', 'timeout'].includes(k))
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    L.push(
      `| ${r.mode} | ${r.label}${r.restarts !== undefined ? ` (${r.restarts} ssh restarts)` : ''} | **${r.successPct.toFixed(1)} %** (${r.ok}/${r.total}) | ${f.refused ?? 0} | ${f.reset ?? 0} | ${f.eof ?? 0} | ${f.timeout ?? 0} | ${other || 0} | ` +
        `${r.failedWindow ? `${secs(r.failedWindow[0])} – ${secs(r.failedWindow[1])}` : '—'} | ${r.latencyP50Ms !== undefined ? `${r.latencyP50Ms} ms / ${r.latencyMaxMs} ms` : '—'} | ${isKeep ? '100 %' : '—'} | ${met(isKeep ? r.ok === r.total : undefined)} |`,
    );
  }
  return L.join('\n') + '\n';
}
