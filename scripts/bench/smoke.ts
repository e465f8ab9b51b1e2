/**
 * The smoke benchmark (scripts/bench-smoke.ts, test/bench-smoke.test.ts): sshkeep and `ssh -N -L`
 * A B A B, each a fresh process, bulk MB/s up and down and small request/reply messages per second
 * (issue 17); the median of the per-round ratios.
 */
import { deadline } from '../../test/fixtures/net.js';
import type { Sshd } from '../../test/fixtures/sshd.js';
import { assertBuilt, killForwarders } from '../lib/forwarder.js';
import { median } from '../lib/stats.js';
import { download, upload } from './clients.js';
import { RequestReply } from './small.js';
import { LABEL, launch, type Running } from './launch.js';
import { startBenchSshd } from './sshd.js';
import { MIB, startTargets, type Targets } from './targets.js';

/** The small-message load: 8 concurrent connections, 64-byte requests and replies (as bench.ts's default). */
const SMALL_CLIENTS = 8;
const SMALL_SIZE = 64;

export interface SmokeOptions {
  /** MiB moved each way per session (default 64). */
  sizeMiB?: number;
  /** A B rounds (default 5). */
  rounds?: number;
  /** MiB moved each way, unmeasured, before the measured transfers of each fresh process (default 16, as bench.ts). */
  warmMiB?: number;
  /** The cipher both sides are restricted to (default: none, each tool negotiates its own). */
  cipher?: string;
  /** Round trips of 64 bytes on each of 8 connections, per session, after as many unmeasured (default 300). */
  smallRequests?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
  /**
   * When a measure's ratio is under this after the rounds, as many rounds again, and every measure is
   * judged on all of them: one contended stretch of a shared machine is outvoted, a real loss is not.
   */
  confirmBelow?: number;
}

export interface SmokeDirection {
  /** The median over the rounds of each round's sshkeep MB/s / ssh MB/s (A and B of a round run back to back). */
  ratio: number;
  /** median(sshkeep MB/s) / median(ssh MB/s), for reference. */
  ratioOfMedians: number;
  /** Median MB/s. */
  sshkeep: number;
  ssh: number;
  /** Per round, in order. */
  rounds: { sshkeep: number[]; ssh: number[]; ratio: number[] };
}

export interface SmokeResult {
  cipher: string | undefined;
  /** As the sshd logged them (LogLevel DEBUG1), per tool. */
  negotiated: { sshkeep: string[]; ssh: string[] };
  rounds: number;
  sizeMiB: number;
  seconds: number;
  upload: SmokeDirection;
  download: SmokeDirection;
  /** Small request/reply messages per second (the "MB/s" fields hold requests/s). */
  small: SmokeDirection;
}

type Key = 'up' | 'down' | 'small';
const KEYS: Key[] = ['up', 'down', 'small'];
type Rates = Record<'sshkeep' | 'ssh', Record<Key, number[]>>;
/** Each round's sshkeep rate / ssh rate (the two ran back to back), and their median. */
const ratiosOf = (mbps: Rates, k: Key): number[] => mbps.sshkeep[k].map((x, i) => x / mbps.ssh[k][i]!);
const ratioOf = (mbps: Rates, k: Key): number => median(ratiosOf(mbps, k));

/** Set while runSmoke() runs, for the script's SIGINT/SIGTERM cleanup. */
let current: { sshd?: Sshd; targets?: Targets } = {};

/** Ends what a running runSmoke() started (the script's SIGINT/SIGTERM cleanup). */
export async function abortSmoke(): Promise<void> {
  killForwarders();
  await Promise.allSettled([current.targets?.close(), current.sshd?.stop()]);
}

export async function runSmoke(o: SmokeOptions = {}): Promise<SmokeResult> {
  const sizeMiB = o.sizeMiB ?? 64;
  const rounds = o.rounds ?? 5;
  const cipher = o.cipher;
  const log = o.log ?? (() => {});
  assertBuilt();
  const t0 = Date.now();
  const bytes = sizeMiB * MIB;
  const warm = (o.warmMiB ?? 16) * MIB;
  const ms = 60_000 + bytes / 5_000;
  const smallRequests = o.smallRequests ?? 300;
  const mbps = { sshkeep: { up: [] as number[], down: [] as number[], small: [] as number[] }, ssh: { up: [] as number[], down: [] as number[], small: [] as number[] } };
  const negotiated = { sshkeep: new Set<string>(), ssh: new Set<string>() };
  let total = rounds;

  const { sshd } = await startBenchSshd(cipher);
  current = { sshd };
  let run: Running | undefined;
  try {
    const targets = await startTargets();
    current.targets = targets;
    for (let round = 1; round <= total; round++) {
      for (const tool of ['sshkeep', 'ssh'] as const) {
        run = await launch(sshd, targets, tool === 'sshkeep' ? { tool } : { tool, cipher });
        await deadline(upload(run.ports.sink, warm, targets), ms, `${tool} upload warm-up`);
        await deadline(download(run.ports.source, warm), ms, `${tool} download warm-up`);
        const up = await deadline(upload(run.ports.sink, bytes, targets), ms, `${tool} upload`);
        const down = await deadline(download(run.ports.source, bytes), ms, `${tool} download`);
        const load = await RequestReply.open(run.ports.echo, SMALL_CLIENTS, SMALL_SIZE);
        let small: number;
        try {
          await load.run(smallRequests); // warm-up
          const t1 = process.hrtime.bigint();
          small = (await load.run(smallRequests)) / (Number(process.hrtime.bigint() - t1) / 1e9);
        } finally {
          load.close();
        }
        mbps[tool].up.push(up.mbps);
        mbps[tool].down.push(down.mbps);
        mbps[tool].small.push(small);
        negotiated[tool].add(run.cipher);
        log(`round ${round} ${LABEL[tool].padEnd(7)} up ${up.mbps.toFixed(0)} MB/s, down ${down.mbps.toFixed(0)} MB/s, ${small.toFixed(0)} requests/s, ${run.cipher}`);
        await run.stop();
        run = undefined;
      }
      const under = round === rounds && o.confirmBelow !== undefined ? KEYS.filter((k) => ratioOf(mbps, k) < o.confirmBelow!) : [];
      if (under.length) {
        total = 2 * rounds;
        log(`${under.join(', ')} under ${o.confirmBelow} after ${rounds} rounds: ${rounds} more, judged on all ${total}`);
      }
    }
  } finally {
    await run?.stop();
    await current.targets?.close();
    await sshd.stop();
    current = {};
  }
  const direction = (k: Key): SmokeDirection => {
    const a = median(mbps.sshkeep[k]);
    const b = median(mbps.ssh[k]);
    return { ratio: ratioOf(mbps, k), ratioOfMedians: a / b, sshkeep: a, ssh: b, rounds: { sshkeep: mbps.sshkeep[k], ssh: mbps.ssh[k], ratio: ratiosOf(mbps, k) } };
  };
  return {
    cipher,
    negotiated: { sshkeep: [...negotiated.sshkeep], ssh: [...negotiated.ssh] },
    rounds: total,
    sizeMiB,
    seconds: (Date.now() - t0) / 1000,
    upload: direction('up'),
    download: direction('down'),
    small: direction('small'),
  };
}

/** One line per measure: "upload: sshkeep/ssh 0.71 (per round 0.69/0.71/0.80; median sshkeep 301 MB/s, ssh -L 424 MB/s …)". */
export function describe(r: SmokeResult, dir: 'upload' | 'download' | 'small'): string {
  const d = r[dir];
  const unit = dir === 'small' ? 'requests/s' : 'MB/s';
  const what = dir === 'small' ? `${SMALL_CLIENTS} connections × ${SMALL_SIZE} B request/reply` : `${r.sizeMiB} MiB`;
  const list = (xs: number[], digits = 0) => xs.map((x) => x.toFixed(digits)).join('/');
  return (
    `${dir}: sshkeep/ssh ${d.ratio.toFixed(2)} (median of per-round ratios ${list(d.rounds.ratio, 2)}; ` +
    `median sshkeep ${d.sshkeep.toFixed(0)} ${unit}, ssh -L ${d.ssh.toFixed(0)} ${unit}, ratio of medians ${d.ratioOfMedians.toFixed(2)}; ` +
    `per round ${list(d.rounds.sshkeep)} vs ${list(d.rounds.ssh)} ${unit}; ${r.rounds}× ${what}, ` +
    `ciphers ${r.negotiated.sshkeep.join('/')} vs ${r.negotiated.ssh.join('/')})`
  );
}
