/** Scenario 1: an idle blackhole, how soon each tool notices, and what an idle forwarded client sees. */
import { deadline } from '../../test/fixtures/net.js';
import { sleep } from '../lib/sleep.js';
import { openIdle, type IdleOutcome } from './clients.js';
import { TARGET, clientCell, met, ms, secs } from './report.js';
import {   now, transitions, waitGone, type Env, type ToolSpec, withTool, trace } from './tool.js';

export interface S1Row {
  label: string;
  rep: number;
  idleBeforeFaultMs: number;
  /** sshkeep: blackhole → state leaves ready; ssh: blackhole → ssh exits. */
  noticedMs?: number;
  noticedAs?: string;
  client: IdleOutcome['kind'];
  clientMs?: number;
  transitions?: ReturnType<typeof transitions>;
  logs?: Array<Record<string, unknown>>;
  sshStderr?: string;
}

export const S1_WATCH_MS = 16_000; // sshkeep resets the streams of a silent connection after its 10 s grace period

export async function scenario1(env: Env, spec: ToolSpec, rep: number, idleMs: number): Promise<S1Row> {
  return withTool(spec, env, async (tool) => {
    const idle = await openIdle(tool.port);
    await sleep(idleMs);
    const sshPid = tool.sshPid();
    const t0 = now();
    tool.relay.set('blackhole');
    const row: S1Row = { label: spec.label, rep, idleBeforeFaultMs: idleMs, client: 'still open' };
    if (spec.kind === 'sshkeep') {
      const l = await tool.waitLog((x) => x.event === 'state' && x.from === 'ready', S1_WATCH_MS, t0);
      if (l) {
        row.noticedMs = ms(l.at - t0);
        row.noticedAs = `${l.from} → ${l.to} (${l.reason})`;
      }
    } else if (sshPid) {
      const gone = await waitGone(sshPid, S1_WATCH_MS);
      if (gone !== null) {
        row.noticedMs = ms(gone - t0);
        row.noticedAs = 'ssh exited';
      }
    }
    const left = Math.max(0, t0 + S1_WATCH_MS - now());
    const out = await deadline(idle.outcome, left, 'idle client').catch((): IdleOutcome => ({ kind: 'still open' }));
    row.client = out.kind;
    row.clientMs = out.at !== undefined ? ms(out.at - t0) : undefined;
    Object.assign(row, trace(tool, t0));
    idle.destroy();
    tool.relay.restore();
    return row;
  });
}

export function markdownS1(rows: S1Row[]): string {
  const L = [
    '### 1. Idle blackhole noticed',
    '',
    `relay.set('blackhole') on an idle tunnel with one idle forwarded connection open. sshkeep: time until its \`state\` line leaves \`ready\`; ssh: time until the ssh process exits. ` +
      `Target (sshkeep): ≤ keepalive-interval + 1.5 s = ${secs(TARGET.s1(2000))}; its forwarded clients must be reset, never see a clean EOF. ` +
      `The idle time before the fault varies per repetition (where in the keepalive cycle the fault lands).`,
    '',
    '| tool | rep | idle before fault | noticed after | as | idle client sees | target | result |',
    '|---|---:|---:|---:|---|---|---|---|',
  ];
  for (const r of rows) {
    const isKeep = r.label.startsWith('sshkeep');
    const ok = isKeep ? r.noticedMs !== undefined && r.noticedMs <= TARGET.s1(2000) && r.client !== 'eof' : undefined;
    L.push(
      `| ${r.label} | ${r.rep} | ${secs(r.idleBeforeFaultMs)} | ${r.noticedMs !== undefined ? secs(r.noticedMs) : `not within ${S1_WATCH_MS / 1000} s`} | ${r.noticedAs ?? ''} | ${clientCell(r.client, r.clientMs)} | ${isKeep ? `≤ ${secs(TARGET.s1(2000))}, reset` : '—'} | ${met(ok)} |`,
    );
  }
  return L.join('\n') + '\n';
}
