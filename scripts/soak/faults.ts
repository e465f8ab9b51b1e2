/** The soak's faults: one chosen at random (seeded) every --fault-every, each with its window recorded. */
import type { Relay } from '../../test/fixtures/relay.js';
import { signalAll } from '../../test/fixtures/proc.js';
import type { Sshd } from '../../test/fixtures/sshd.js';
import { sleep } from '../lib/sleep.js';
import type { FaultKind, SoakOptions } from './options.js';
import type { FaultRecord } from './types.js';

/** How long each kind lasts: drawn before the fault, so it is known to end before the run does. */
const PLAN_MS: Record<FaultKind, [number, number]> = {
  blackhole: [2_000, 6_000],
  'drop-existing': [0, 0],
  reset: [1_000, 3_000],
  'sshd-restart': [0, 0],
  'sshd-stop': [2_000, 6_000],
};
const RESTART_ALLOWANCE_MS = 5_000; // sshd.restart() retries a busy port for up to 5 s

export const uniform = (rnd: () => number, [a, b]: [number, number]) => Math.round(a + rnd() * (b - a));

export interface FaultPlan {
  opts: SoakOptions;
  rnd: () => number;
  relay: Relay;
  sshd: Sshd;
  /** ms since the start of the run. */
  at: () => number;
  /** No fault may end after this (ms since the start). */
  endAt: number;
  /** Aborted when no new fault may start. */
  stop: AbortSignal;
  /** Aborted when the run ends early: a fault in progress ends at once. */
  abort: AbortSignal;
  progress: (line: string) => void;
}

export class Faults {
  readonly records: FaultRecord[] = [];
  /** sshd processes a fault has stopped, to continue whatever way the run ends. */
  #stopped: number[] = [];

  /** Continues any sshd process a fault left stopped. */
  resume(): void {
    signalAll(this.#stopped, 'SIGCONT');
  }

  async run(p: FaultPlan): Promise<void> {
    const { opts, rnd, at } = p;
    if (opts.faults.length === 0) return;
    let next = at() + uniform(rnd, opts.faultEveryMs);
    for (;;) {
      await sleep(next - at(), p.stop);
      const kind = opts.faults[Math.floor(rnd() * opts.faults.length)]!;
      const ms = uniform(rnd, PLAN_MS[kind]);
      const lasts = ms + (kind === 'sshd-restart' ? RESTART_ALLOWANCE_MS : 0);
      if (p.stop.aborted || at() + lasts + opts.quietTailMs > p.endAt) return;
      const f: FaultRecord = { index: this.records.length + 1, kind, startMs: at(), endMs: at(), detail: '' };
      this.records.push(f);
      f.detail = await this.#inject(p, kind, ms);
      f.endMs = at();
      p.progress(`fault ${f.index}: ${kind} (${f.detail}) ${f.startMs}–${f.endMs} ms`);
      next = at() + uniform(rnd, opts.faultEveryMs);
    }
  }

  /** Injects one fault for `ms`; what it did. */
  async #inject({ relay, sshd, abort }: FaultPlan, kind: FaultKind, ms: number): Promise<string> {
    switch (kind) {
      case 'blackhole':
        relay.set('blackhole');
        await sleep(ms, abort);
        relay.restore();
        return `${ms} ms, then the held bytes flow`;
      case 'drop-existing':
        relay.set('drop-existing');
        relay.restore(); // new flows pass either way; the dropped ones stay dead
        return 'existing flows go silent for ever';
      case 'reset':
        relay.set('refuse');
        await sleep(ms, abort);
        relay.restore();
        return `every flow reset, new ones refused for ${ms} ms`;
      case 'sshd-restart':
        await sshd.restart();
        return 'sshd and its sessions killed, started again';
      case 'sshd-stop': {
        const pids = sshd.pids();
        this.#stopped = pids;
        signalAll(pids, 'SIGSTOP');
        await sleep(ms, abort);
        signalAll(new Set([...pids, ...sshd.pids()]), 'SIGCONT');
        this.#stopped = [];
        return `${pids.length} sshd process(es) stopped for ${ms} ms`;
      }
    }
  }
}
