/** The soak's integrity rules: every reset belongs to a fault; nothing corrupt, truncated, stalled or unfinished. */
import type { FaultRecord, StreamRecord } from './types.js';

/** The fault whose window [start, end + grace] the stream's life [start, end] overlaps (the latest such), if any. */
export function explainingFault(rec: { startMs: number; endMs: number }, faults: FaultRecord[], graceMs: number): FaultRecord | undefined {
  let found: FaultRecord | undefined;
  for (const f of faults) if (f.startMs <= rec.endMs && rec.startMs <= f.endMs + graceMs) found = f;
  return found;
}

/**
 * Judges the records of streams that did not end ok: a reset (or other error) is explained by the fault
 * it overlaps (recorded in `fault`); anything else is a failure, described in one line.
 */
export function judge(kept: StreamRecord[], faults: FaultRecord[], graceMs: number): { failures: string[]; explained: number; unexplained: number; resetsByFault: Map<number, number> } {
  const failures: string[] = [];
  let explained = 0;
  let unexplained = 0;
  const resetsByFault = new Map<number, number>();
  for (const r of kept) {
    if (r.outcome === 'reset' || r.outcome === 'error') {
      const f = explainingFault(r, faults, graceMs);
      if (f) {
        r.fault = f.index;
        explained++;
        resetsByFault.set(f.index, (resetsByFault.get(f.index) ?? 0) + 1);
      } else {
        unexplained++;
        failures.push(`${r.kind} #${r.id} ${r.outcome} (${r.detail ?? ''}) at ${r.endMs} ms, started ${r.startMs} ms: no fault within ${graceMs} ms`);
      }
    } else if (r.outcome === 'corrupt') failures.push(`${r.kind} #${r.id} completed with the WRONG content: ${r.detail ?? ''}`);
    else if (r.outcome === 'truncated') failures.push(`${r.kind} #${r.id} ended cleanly before it was complete (a cut stream that looks complete): ${r.detail ?? ''}`);
    else if (r.outcome === 'stalled') failures.push(`${r.kind} #${r.id} stalled: ${r.detail ?? ''} (started ${r.startMs} ms)`);
    else if (r.outcome === 'unfinished') failures.push(`${r.kind} #${r.id} unfinished: ${r.detail ?? ''} (started ${r.startMs} ms)`);
  }
  return { failures, explained, unexplained, resetsByFault };
}
