/** Scenarios 2 and 3: a new connection after a silent death, and after the forwarder was stopped while the link changed. */
import { killGroup } from '../../test/fixtures/proc.js';
import { sleep } from '../lib/sleep.js';
import { request, type FailKind, type Req } from './clients.js';
import { failCell, met, ms, secs } from './report.js';
import {   now, transitions, type Env, type Tool, type ToolSpec, withTool, trace } from './tool.js';

export interface FirstByteRow {
  label: string;
  /** Timed from the start of the measured connection (scenario 2) or from SIGCONT (scenario 3). */
  firstByteMs?: number;
  doneMs?: number;
  failure?: FailKind;
  failedMs?: number;
  transitions?: ReturnType<typeof transitions>;
  logs?: Array<Record<string, unknown>>;
  sshStderr?: string;
  autosshLog?: string;
  relayAccepted: number;
}

export const FIRST_BYTE_GIVE_UP_MS = 30_000;

function firstByteRow(spec: ToolSpec, tool: Tool, r: Req, from: number, faultAt: number): FirstByteRow {
  const row: FirstByteRow = { label: spec.label, relayAccepted: tool.relay.accepted };
  if (r.firstByteAt !== undefined) row.firstByteMs = ms(r.firstByteAt - from);
  if (r.ok) row.doneMs = ms(r.doneAt! - from);
  else {
    row.failure = r.failure;
    row.failedMs = ms(r.failedAt! - from);
  }
  Object.assign(row, trace(tool, faultAt));
  if (spec.kind === 'autossh') row.autosshLog = tool.autosshLog().trim().split('\n').slice(-12).join('\n');
  return row;
}

export async function scenario2(env: Env, spec: ToolSpec): Promise<FirstByteRow> {
  return withTool(spec, env, async (tool) => {
    await sleep(1000);
    const tf = now();
    tool.relay.set('drop-existing');
    await sleep(5000);
    const r = await request(tool.port, FIRST_BYTE_GIVE_UP_MS);
    return firstByteRow(spec, tool, r, r.t0, tf);
  });
}

export async function scenario3(env: Env, spec: ToolSpec, stopMs: number): Promise<FirstByteRow & { stopMs: number }> {
  return withTool(spec, env, async (tool) => {
    await sleep(1000);
    const tf = now();
    killGroup(tool.pid, 'SIGSTOP');
    tool.relay.set('drop-existing');
    await sleep(stopMs);
    const tc = now();
    killGroup(tool.pid, 'SIGCONT');
    const r = await request(tool.port, FIRST_BYTE_GIVE_UP_MS);
    return { ...firstByteRow(spec, tool, r, tc, tf), stopMs };
  });
}

export function markdownFirstByte(title: string, intro: string, rows: FirstByteRow[], target: number): string {
  const L = [title, '', intro, '', '| tool | first reply byte | full echo | failure | target | result |', '|---|---:|---:|---|---|---|'];
  for (const r of rows) {
    const isKeep = r.label.startsWith('sshkeep');
    const ok = isKeep ? r.firstByteMs !== undefined && r.firstByteMs <= target && !r.failure : undefined;
    L.push(
      `| ${r.label} | ${r.firstByteMs !== undefined ? secs(r.firstByteMs) : '—'} | ${r.doneMs !== undefined ? secs(r.doneMs) : '—'} | ${failCell(r.failure, r.failedMs)} | ${isKeep ? `≤ ${secs(target)}` : '—'} | ${met(ok)} |`,
    );
  }
  return L.join('\n') + '\n';
}
