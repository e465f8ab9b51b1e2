/** The idle window: every tool of every cipher mode idles side by side, each behind its own byte-counting relay. */
import { Relay } from '../../test/fixtures/relay.js';
import { trustRelay } from '../../test/fixtures/sshd.js';
import { sleep } from '../lib/sleep.js';
import { launch, type LaunchSpec, type Running } from './launch.js';
import { procCounters, treeRssKiB } from './measure.js';
import { modeName } from './report.js';
import type { Ctx, IdleKey, IdleSample, Mode } from './samples.js';
import { sshkeepSpec } from './sessions.js';

/** How long every tool runs before the idle window opens. */
/** Relays not closed yet, for the script's SIGINT/SIGTERM cleanup. */
export const liveRelays = new Set<Relay>();

export const IDLE_SETTLE_MS = 15_000;
/** ssh's ServerAliveInterval for the idle comparison: sshkeep's default --keepalive-interval. */
export const KEEPALIVE_S = 15;

const IDLE_LABEL: Record<IdleKey, string> = {
  sshkeep: 'sshkeep (default --keepalive-interval 15s)',
  ssh: `ssh -L -o ServerAliveInterval=${KEEPALIVE_S}`,
  autossh: `autossh -M 0 -o ServerAliveInterval=${KEEPALIVE_S}`,
  sshNoKeepalive: 'ssh -L (its default: no keepalive)',
};

/**
 * One idle window: every idle tool of every mode runs side by side, each dialling sshd through its
 * own byte-counting relay; after a settle period, counters are read at the start and end of the window.
 */
export async function idleWindow(round: number, modes: Mode[], ctx: Ctx): Promise<void> {
  const { opts } = ctx;
  const keys: IdleKey[] = ['sshkeep', 'ssh', ...(ctx.autossh ? (['autossh'] as const) : []), 'sshNoKeepalive'];
  const SA = ['-o', `ServerAliveInterval=${KEEPALIVE_S}`];
  const entries: Array<{ mode: Mode; key: IdleKey; relay: Relay; run: Running }> = [];
  try {
    for (const mode of modes) {
      for (const key of keys) {
        const relay = await new Relay(mode.sshd.port).listen();
        liveRelays.add(relay);
        trustRelay(mode.sshd, relay.port);
        const spec: LaunchSpec =
          key === 'sshkeep'
            ? { ...sshkeepSpec(opts), sshPort: relay.port }
            : { tool: key === 'sshNoKeepalive' ? 'ssh' : key, cipher: mode.cipher, sshPort: relay.port, sshArgs: key === 'sshNoKeepalive' ? [] : SA };
        try {
          entries.push({ mode, key, relay, run: await launch(mode.sshd, ctx.targets, spec) });
        } catch (err) {
          await relay.close();
          throw err;
        }
      }
    }
    // Steady state, as a sidecar idles for hours: start-up work (JIT, the readiness probe's channel)
    // and, for sshkeep, V8's memory reducer (two compacting GCs ~8 s after start, ~15 ms once) end first.
    await sleep(IDLE_SETTLE_MS);
    const start = entries.map((e) => ({ c: procCounters(e.run.pids()), b: e.relay.bytes() }));
    const t0 = process.hrtime.bigint();
    process.stderr.write(`  round ${round} idle window: ${entries.length} forwarders idle for ${opts.idleSeconds} s\n`);
    await sleep(opts.idleSeconds * 1000);
    const end = entries.map((e) => ({ c: procCounters(e.run.pids()), b: e.relay.bytes(), rss: treeRssKiB(e.run.pids()) }));
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const perMin = 60 / seconds;
    entries.forEach((e, i) => {
      const a = start[i]!;
      const z = end[i]!;
      const cpu = z.c.runSeconds - a.c.runSeconds;
      const up = z.b.up - a.b.up;
      const down = z.b.down - a.b.down;
      const s: IdleSample = {
        round,
        tool: e.key,
        windowSeconds: seconds,
        threads: z.c.threads,
        cpuSecondsPerMin: cpu * perMin,
        tickCpuSecondsPerMin: (z.c.tickSeconds - a.c.tickSeconds) * perMin,
        corePercent: (cpu / seconds) * 100,
        wakeupsPerMin: (z.c.ctxSwitches - a.c.ctxSwitches) * perMin,
        bytesUpPerMin: up * perMin,
        bytesDownPerMin: down * perMin,
        bytesPerMin: (up + down) * perMin,
        rssKiB: z.rss,
      };
      e.mode.idle.push(s);
      process.stderr.write(
        `    ${modeName(e.mode).padEnd(36)} ${IDLE_LABEL[e.key].padEnd(44)} cpu ${(s.cpuSecondsPerMin * 1000).toFixed(1)} ms/min ` +
          `(${s.corePercent.toFixed(3)} %), ${s.wakeupsPerMin.toFixed(0)} wake-ups/min, ${s.bytesPerMin.toFixed(0)} B/min\n`,
      );
    });
  } finally {
    await Promise.allSettled(entries.map((e) => e.run.stop()));
    await Promise.allSettled(entries.map((e) => e.relay.close().then(() => liveRelays.delete(e.relay))));
  }
}
