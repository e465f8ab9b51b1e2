/** What the scenario tables share: the targets of issue 3 and how times and outcomes are written. */
import type { FailKind } from './clients.js';
import { S1_WATCH_MS } from './idle-blackhole.js';

export const ms = (x: number | undefined | null) => (x === undefined || x === null || !Number.isFinite(x) ? undefined : Math.round(x));
export const secs = (x: number | undefined) => (x === undefined ? 'n/a' : `${(x / 1000).toFixed(2)} s`);

export const TARGET = {
  s1: (intervalMs: number) => intervalMs + 1500,
  s2: 3000,
  s3: 3000,
  s4: 1500,
};

export const met = (ok: boolean | undefined) => (ok === undefined ? '—' : ok ? '✅ met' : '❌ missed');

export function clientCell(kind: string, atMs: number | undefined): string {
  const k = kind === 'eof' ? 'clean EOF' : kind === 'reset' ? 'reset (ECONNRESET)' : kind;
  return atMs !== undefined ? `${k} at ${secs(atMs)}` : kind === 'still open' ? `still open after ${S1_WATCH_MS / 1000} s` : k;
}

export function failCell(f: FailKind | undefined, atMs: number | undefined): string {
  if (!f) return '';
  const name = f === 'eof' ? 'clean EOF, no reply' : f === 'timeout' ? 'no reply (gave up)' : f;
  return `${name} after ${secs(atMs)}`;
}
