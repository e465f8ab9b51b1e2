/** What each bench session records, per cipher mode. */
import type { Sshd } from '../../test/fixtures/sshd.js';
import type { ToolName } from '../lib/forwarder.js';
import type { Bulk } from './measure.js';
import type { Options } from './options.js';
import type { SmallSample } from './small.js';
import type { Targets } from './targets.js';

export interface FullSample {
  round: number;
  tool: ToolName;
  cipher: string;
  startupMs: number;
  rssKiB: number;
  rssConnsKiB: number;
  pingUs: number[];
  ping4kUs: number[];
  connectUs: number[];
  upload: Bulk;
  download: Bulk;
  parallelUpload: Bulk;
  parallelDownload: Bulk;
}

/** autossh -M 0: RSS only (its data path is ssh's). */
export type RssSample = Pick<FullSample, 'round' | 'tool' | 'cipher' | 'startupMs' | 'rssKiB' | 'rssConnsKiB'>;

/** sshkeep --connections N: parallel streams only. */
export interface MultiSample {
  round: number;
  supported: boolean;
  note?: string;
  sshConnections?: number;
  parallelUpload?: Bulk;
  parallelDownload?: Bulk;
}


export type IdleKey = 'sshkeep' | 'ssh' | 'autossh' | 'sshNoKeepalive';

export interface IdleSample {
  round: number;
  tool: IdleKey;
  windowSeconds: number;
  threads: number;
  cpuSecondsPerMin: number;
  /** The same from clock ticks (/proc/PID/stat utime+stime), coarser: a cross-check. */
  tickCpuSecondsPerMin: number;
  corePercent: number;
  wakeupsPerMin: number;
  bytesUpPerMin: number;
  bytesDownPerMin: number;
  bytesPerMin: number;
  rssKiB: number;
}

export interface Mode {
  /** undefined = each tool's default cipher. */
  cipher: string | undefined;
  sshd: Sshd;
  listener: number;
  full: FullSample[];
  autossh: RssSample[];
  multi: MultiSample[];
  idle: IdleSample[];
  small: SmallSample[];
}

export interface Ctx {
  opts: Options;
  targets: Targets;
  autossh: boolean;
  /** Cleared once the CLI has rejected --connections. */
  multiSupported: boolean;
  multiNote?: string;
}
