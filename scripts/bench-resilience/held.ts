/** Scenario 4: a client held through a blackhole, served once the link is restored. */
import { sleep } from '../lib/sleep.js';
import { request, type FailKind, type Req } from './clients.js';
import { TARGET, met, ms, secs } from './report.js';
import {   now, transitions, type Env, type ToolSpec, withTool, trace } from './tool.js';

export interface S4Row {
  label: string;
  /** Blackhole → the client was opened (sshkeep: when it left `ready`). */
  openedAtMs: number;
  sshkeepLeftReadyAs?: string;
  /** Client open → restore. */
  heldMs: number;
  /** Restore → first reply byte. */
  firstByteAfterRestoreMs?: number;
  doneAfterRestoreMs?: number;
  failure?: FailKind;
  /** Failure time relative to the restore (negative: before it). */
  failedAfterRestoreMs?: number;
  verdict: string;
  transitions?: ReturnType<typeof transitions>;
  logs?: Array<Record<string, unknown>>;
  sshStderr?: string;
}

export const S4_HOLD_MS = 3000;

export async function scenario4(env: Env, spec: ToolSpec, openAfterMs: number): Promise<S4Row> {
  return withTool(spec, env, async (tool) => {
    await sleep(1000);
    const tb = now();
    tool.relay.set('blackhole');
    let leftAs: string | undefined;
    if (spec.kind === 'sshkeep') {
      const l = await tool.waitLog((x) => x.event === 'state' && x.from === 'ready', 20_000, tb);
      leftAs = l ? `${l.from} → ${l.to} after ${secs(l.at - tb)}` : 'still ready after 20 s';
    } else await sleep(openAfterMs);
    const opened = now();
    const pending = request(tool.port, 20_000 + S4_HOLD_MS);
    let early: Req | undefined;
    void pending.then((r) => (early = r));
    await sleep(S4_HOLD_MS);
    const tr = now();
    tool.relay.restore();
    const r = await pending;
    const row: S4Row = { label: spec.label, openedAtMs: ms(opened - tb)!, heldMs: ms(tr - opened)!, verdict: '' };
    if (leftAs) row.sshkeepLeftReadyAs = leftAs;
    if (r.firstByteAt !== undefined) row.firstByteAfterRestoreMs = ms(r.firstByteAt - tr);
    if (r.ok) {
      row.doneAfterRestoreMs = ms(r.doneAt! - tr);
      row.verdict = r.firstByteAt! < tr ? 'served before the restore' : 'held, then served';
    } else {
      row.failure = r.failure;
      row.failedAfterRestoreMs = ms(r.failedAt! - tr);
      const when = early ? `${secs(r.failedAt! - opened)} after it was opened, before the restore` : `${secs(r.failedAt! - tr)} after the restore`;
      row.verdict =
        r.failure === 'refused' ? 'refused' : r.failure === 'timeout' ? 'hangs (no reply within 20 s of the restore)' : `${r.failure === 'eof' ? 'clean EOF, no reply' : r.failure} ${when}`;
    }
    Object.assign(row, trace(tool, tb));
    return row;
  });
}

export function markdownS4(rows: S4Row[]): string {
  const L = [
    '### 4. A held connection',
    '',
    `relay.set('blackhole'); once sshkeep leaves \`ready\` (ssh rows: after the same delay) a client connects and sends a request; ` +
      `relay.restore() ${S4_HOLD_MS / 1000} s later. Measured: restore → first reply byte. Target (sshkeep): ≤ ${secs(TARGET.s4)}.`,
    '',
    '| tool | client opened after | restore after | first reply byte after restore | what the client saw | target | result |',
    '|---|---:|---:|---:|---|---|---|',
  ];
  for (const r of rows) {
    const isKeep = r.label.startsWith('sshkeep');
    const ok = isKeep ? r.firstByteAfterRestoreMs !== undefined && r.firstByteAfterRestoreMs <= TARGET.s4 && !r.failure : undefined;
    L.push(
      `| ${r.label} | ${secs(r.openedAtMs)}${r.sshkeepLeftReadyAs ? ` (${r.sshkeepLeftReadyAs})` : ''} | ${secs(r.heldMs)} | ${r.firstByteAfterRestoreMs !== undefined ? secs(r.firstByteAfterRestoreMs) : '—'} | ${r.verdict} | ${isKeep ? `≤ ${secs(TARGET.s4)}` : '—'} | ${met(ok)} |`,
    );
  }
  return L.join('\n') + '\n';
}
