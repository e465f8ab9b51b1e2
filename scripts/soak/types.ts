/** What the soak records: streams, faults, and the report. */
import type { FaultKind, SoakOptions } from './options.js';

export type StreamKind = 'upload' | 'download' | 'echo' | 'idle';
/**
 * ok: complete and verified. corrupt: complete (clean EOF) but wrong hash/bytes. truncated: a clean EOF before
 * the stream was complete. reset: ECONNRESET/EPIPE. error: any other socket error (refused, …). stalled: no
 * progress for --stall. unfinished: still running --drain after the run.
 */
export type Outcome = 'ok' | 'corrupt' | 'truncated' | 'reset' | 'error' | 'stalled' | 'unfinished';
export const OUTCOMES: Outcome[] = ['ok', 'corrupt', 'truncated', 'reset', 'error', 'stalled', 'unfinished'];

export interface StreamRecord {
  id: number;
  kind: StreamKind;
  /** Payload bytes (upload/download/echo). */
  size: number;
  /** ms since the start of the run. */
  startMs: number;
  endMs: number;
  outcome: Outcome;
  detail?: string;
  localPort?: number;
  /** sshkeep's side, from its log: the connection id, whether it was held, how sshkeep ended it. */
  conn?: number;
  held?: boolean;
  sshkeepEnd?: string;
  /** For a reset/error: the fault (index) whose window it overlaps. */
  fault?: number;
}

export interface Active {
  rec: StreamRecord;
  lastProgress: number;
  /** Idle connections are not expected to progress while idle. */
  idle: boolean;
  settle(outcome: Outcome, detail?: string): void;
}

export interface StreamCtl {
  readonly settled: boolean;
  progress(): void;
  settle(outcome: Outcome, detail?: string): void;
  setIdle(idle: boolean): void;
}

export interface FaultRecord {
  index: number;
  kind: FaultKind;
  startMs: number;
  endMs: number;
  detail: string;
}

export interface SeriesSummary {
  first: number;
  max: number;
  last: number;
  /** The trend (slope, thirds, growth) is over the samples from here on: the warm-up is left out. */
  trendFromMs: number;
  slopePerMin: number;
  firstThirdMedian: number;
  lastThirdMedian: number;
  growth: boolean;
}

export interface SoakReport {
  meta: Record<string, string>;
  options: SoakOptions;
  pass: boolean;
  failures: string[];
  streams: Record<StreamKind, Record<Outcome, number> & { started: number; bytesVerified: number }>;
  /** seenAsEof: resets the Node client saw as a clean EOF (libuv), told apart through /proc/net/tcp. */
  resets: { explained: number; unexplained: number; seenAsEof: number };
  completed: { total: number; matching: number };
  held: { held: number; served: number; timedOutLog: number; timedOutMetrics: number | undefined; clientLeft: number; other: number; open: number };
  faults: FaultRecord[];
  faultEffects: Array<{ index: number; streamsReset: number; states: string[] }>;
  states: Array<{ atMs: number; from: string; to: string; reason: string }>;
  /** Non-ok, non-reset records and unexplained ones, in full; the rest are counted. */
  problems: StreamRecord[];
  /** A sample of explained resets (up to 50), for the curious. */
  resetSamples: StreamRecord[];
  resources: {
    samples: Array<{ atMs: number; rssKiB: number; fds: number }>;
    rssMiB: SeriesSummary | undefined;
    fds: SeriesSummary | undefined;
  };
  metrics: { connectionsTotal: Record<string, number>; reconnects: number | undefined } | undefined;
  sshkeepExit: string | undefined;
  logEvents: Record<string, number>;
  durationMs: number;
}

