/** The soak's command line: every option, its default and its parser. */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseDuration } from '../../src/config/duration.js';
import { parseSize } from '../../src/config/size.js';
import { CLI_MAIN } from '../../test/fixtures/bin.js';

export const FAULT_KINDS = ['blackhole', 'drop-existing', 'reset', 'sshd-restart', 'sshd-stop'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface SoakOptions {
  durationMs: number;
  /** Pause between the end of one fault and the start of the next, drawn uniformly from [min, max]. */
  faultEveryMs: [number, number];
  faults: FaultKind[];
  seed: number;
  bulkSize: [number, number];
  /** Bytes per second per bulk stream; 0 = as fast as it goes. */
  bulkRate: number;
  uploads: number;
  downloads: number;
  echoes: number;
  idle: number;
  /** A reset this long after a fault's end is still that fault's. */
  graceMs: number;
  /** A stream that makes no progress this long is stalled (a failure). */
  stallMs: number;
  /** After the run, how long in-flight streams get to finish. */
  drainMs: number;
  /** No fault may end later than this before the end of the run. */
  quietTailMs: number;
  sampleEveryMs: number;
  cli: string;
  /** Keep sshkeep's log (and sshd's) in this directory. */
  keepLogs: string | undefined;
  json: boolean;
  failOnGrowth: boolean;
}

export const DEFAULT_OPTIONS: SoakOptions = {
  durationMs: 10 * 60_000,
  faultEveryMs: [20_000, 40_000],
  faults: [...FAULT_KINDS],
  seed: 0,
  bulkSize: [1024 ** 2, 8 * 1024 ** 2],
  bulkRate: 4 * 1024 ** 2,
  uploads: 2,
  downloads: 2,
  echoes: 4,
  idle: 8,
  // 2 s keepalive interval + a probe deadline (≤ 10 s) to suspect a silent link, + the old link's last-chance
  // deadline (≤ 10 s) after a spare took over, before its streams are reset.
  graceMs: 25_000,
  // Past the 30 s hold timeout plus a 10 s channel-open timeout.
  stallMs: 60_000,
  drainMs: 60_000,
  quietTailMs: 0,
  sampleEveryMs: 5_000,
  cli: CLI_MAIN,
  keepLogs: undefined,
  json: false,
  failOnGrowth: false,
};

export const USAGE = `usage: npm run soak -- [options]
  --duration D         how long traffic and faults run (default 10m; 60s for a CI-like run)
  --seed N             seed of the fault schedule and traffic sizes (default: time-based, printed)
  --fault-every A-B    pause between faults, uniform in [A, B] (default 20s-40s)
  --faults LIST        comma-separated subset of ${FAULT_KINDS.join(',')} (default: all)
  --bulk-size A-B      size of each upload/download (default 1MiB-8MiB)
  --bulk-rate R        bytes/s per bulk stream, 0 = unpaced (default 4MiB)
  --uploads N --downloads N --echoes N --idle N   concurrent workers (default 2, 2, 4, 8)
  --grace D            a reset this long after a fault still belongs to it (default 25s)
  --stall D            no progress this long is a stall (default 60s)
  --drain D            time in-flight streams get after the run (default 60s)
  --sample-every D     RSS/fd sampling period (default 5s)
  --keep-logs DIR      keep sshkeep's JSON log and sshd's log there
  --cli PATH           sshkeep entry point (default dist/bin/sshkeep.js)
  --json               JSON report on stdout instead of Markdown
  --fail-on-growth     exit 1 also when RSS or fds show a growth trend
`;

function range(text: string, what: string, parse: (s: string, w: string) => number): [number, number] {
  const [a, b = a] = text.split(/-(?=\s*\d)/).map((s) => parse(s.trim(), what)) as [number, number?];
  if (b < a) throw new Error(`${what}: ${text}: the upper bound is below the lower one`);
  return [a, b];
}

export function parseOptions(argv: string[]): SoakOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string' },
      seed: { type: 'string' },
      'fault-every': { type: 'string' },
      faults: { type: 'string' },
      'bulk-size': { type: 'string' },
      'bulk-rate': { type: 'string' },
      uploads: { type: 'string' },
      downloads: { type: 'string' },
      echoes: { type: 'string' },
      idle: { type: 'string' },
      grace: { type: 'string' },
      stall: { type: 'string' },
      drain: { type: 'string' },
      'sample-every': { type: 'string' },
      'keep-logs': { type: 'string' },
      cli: { type: 'string' },
      json: { type: 'boolean', default: false },
      'fail-on-growth': { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  const o: SoakOptions = { ...DEFAULT_OPTIONS, faults: [...DEFAULT_OPTIONS.faults], seed: (Date.now() ^ process.pid) >>> 0 };
  const dur = (v: string | undefined, what: string, dflt: number) => (v === undefined ? dflt : parseDuration(v, what));
  const count = (v: string | undefined, what: string, dflt: number) => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${what}: "${v}" must be a whole number >= 0`);
    return n;
  };
  o.durationMs = dur(values.duration, '--duration', o.durationMs);
  if (values.seed !== undefined) {
    const n = Number(values.seed);
    if (!Number.isInteger(n)) throw new Error(`--seed: "${values.seed}" must be an integer`);
    o.seed = n >>> 0;
  }
  if (values['fault-every'] !== undefined) o.faultEveryMs = range(values['fault-every'], '--fault-every', parseDuration);
  if (values.faults !== undefined) {
    const list = values.faults.split(',').map((s) => s.trim()).filter(Boolean);
    for (const f of list) if (!(FAULT_KINDS as readonly string[]).includes(f)) throw new Error(`--faults: unknown fault "${f}" (known: ${FAULT_KINDS.join(', ')})`);
    o.faults = list as FaultKind[];
  }
  if (values['bulk-size'] !== undefined) o.bulkSize = range(values['bulk-size'], '--bulk-size', parseSize);
  if (values['bulk-rate'] !== undefined) o.bulkRate = parseSize(values['bulk-rate'], '--bulk-rate');
  o.uploads = count(values.uploads, '--uploads', o.uploads);
  o.downloads = count(values.downloads, '--downloads', o.downloads);
  o.echoes = count(values.echoes, '--echoes', o.echoes);
  o.idle = count(values.idle, '--idle', o.idle);
  o.graceMs = dur(values.grace, '--grace', o.graceMs);
  o.stallMs = dur(values.stall, '--stall', o.stallMs);
  o.drainMs = dur(values.drain, '--drain', o.drainMs);
  o.sampleEveryMs = dur(values['sample-every'], '--sample-every', o.sampleEveryMs);
  if (o.sampleEveryMs <= 0) throw new Error('--sample-every must be > 0');
  o.keepLogs = values['keep-logs'];
  o.cli = path.resolve(values.cli ?? CLI_MAIN);
  o.json = values.json ?? false;
  o.failOnGrowth = values['fail-on-growth'] ?? false;
  return o;
}
