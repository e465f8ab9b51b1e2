/**
 * One soak run: sshd, the fault relay and the targets; sshkeep; traffic workers and the fault schedule
 * for --duration; then the drain, sshkeep's exit, and the report.
 */
import { setMaxListeners } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLI_MAIN } from '../../test/fixtures/bin.js';
import { prng } from '../../test/fixtures/prng.js';
import { Relay } from '../../test/fixtures/relay.js';
import { startSshd, trustRelay, type Sshd } from '../../test/fixtures/sshd.js';
import { assertBuilt } from '../lib/forwarder.js';
import { cpuModel, distIsStale, gitDescribe, sshVersion } from '../lib/machine.js';
import { sleep } from '../lib/sleep.js';
import { Faults, uniform } from './faults.js';
import type { SoakOptions } from './options.js';
import { SoakSshkeep } from './sshkeep.js';
import { Streams } from './streams.js';
import { startTargets, type Targets } from './targets.js';
import { summarize } from './trend.js';
import type { SoakReport } from './types.js';
import { judge } from './verdict.js';

export interface SoakHooks {
  /** Progress lines (default: stderr). */
  progress?: (line: string) => void;
}

/** What a run started, so a SIGINT can clean it up. */
const runs = new Set<() => Promise<void>>();

export async function cleanupAll(): Promise<void> {
  await Promise.allSettled([...runs].map((c) => c()));
}

export async function runSoak(opts: SoakOptions, hooks: SoakHooks = {}): Promise<SoakReport> {
  const progressOut = hooks.progress ?? ((l: string) => process.stderr.write(`${l}\n`));
  assertBuilt(opts.cli);
  const wallStart = Date.now();
  const t0 = performance.now();
  const at = () => Math.round(performance.now() - t0);
  const progress = (s: string) => progressOut(`[${(at() / 1000).toFixed(0).padStart(4)} s] ${s}`);
  const trafficRnd = prng(opts.seed ^ 0x9e3779b9);

  const failures: string[] = [];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sshkeep-soak-'));
  let sshd: Sshd | undefined;
  let relay: Relay | undefined;
  let targets: Targets | undefined;
  let sshkeep: SoakSshkeep | undefined;
  let streams: Streams | undefined;
  const faults = new Faults();
  let logStream: fs.WriteStream | undefined;

  /** Timers and loops to end whatever way the run ends. */
  const disposers: Array<() => void> = [];
  let cleaned: Promise<void> | undefined;
  const cleanup = () =>
    (cleaned ??= (async () => {
      for (const d of disposers.splice(0)) d();
      faults.resume();
      sshkeep?.kill();
      streams?.destroyAll();
      await Promise.allSettled([relay?.close(), targets?.close()]);
      if (sshd && opts.keepLogs) {
        try {
          fs.mkdirSync(opts.keepLogs, { recursive: true });
          fs.writeFileSync(path.join(opts.keepLogs, 'sshd.log'), sshd.logs());
        } catch {}
      }
      await sshd?.stop().catch(() => {});
      await new Promise<void>((r) => (logStream ? logStream.end(() => r()) : r()));
      fs.rmSync(tmp, { recursive: true, force: true });
    })());
  runs.add(cleanup);

  try {
    // ---- infrastructure
    sshd = await startSshd();
    relay = await new Relay(sshd.port).listen();
    trustRelay(sshd, relay.port);
    targets = await startTargets(opts.bulkRate);
    const { ports } = targets;
    progress(`sshd on ${sshd.port}, relay on ${relay.port}; targets sink ${ports.sink}, source ${ports.source}, echo ${ports.echo}; seed ${opts.seed}`);

    // ---- sshkeep
    if (opts.keepLogs) fs.mkdirSync(opts.keepLogs, { recursive: true });
    logStream = fs.createWriteStream(path.join(opts.keepLogs ?? tmp, 'sshkeep.log'));
    const keep = (sshkeep = new SoakSshkeep(opts.cli, sshd, relay.port, ports, at, logStream));
    await keep.started(ports);
    const { fwd, log } = keep;
    progress(`sshkeep ready (pid ${keep.pid}); forwards sink ${fwd.sink}, source ${fwd.source}, echo ${fwd.echo}; health ${keep.healthPort}`);

    // ---- bookkeeping of streams
    const s = (streams = new Streams(at, opts.bulkRate, fwd));
    const ctlRun = new AbortController();
    /** Aborted when the run ends (or sshkeep died): no new fault. */
    const stopCtl = new AbortController();
    setMaxListeners(0, ctlRun.signal, stopCtl.signal); // every worker's pause listens
    let stopping = false;
    let terminating = false;
    let terminatingAt = Infinity;
    disposers.push(() => {
      stopping = true;
      ctlRun.abort();
    });
    ctlRun.signal.addEventListener('abort', () => stopCtl.abort(), { once: true });

    // ---- watchdog, samples
    const watchdog = setInterval(() => s.settleStalled(opts.stallMs), 1000);
    const sampler = setInterval(() => keep.sample(), opts.sampleEveryMs);
    let lastReport = 0;
    const status = setInterval(() => {
      if (at() - lastReport < 10_000) return;
      lastReport = at();
      const last = keep.samples[keep.samples.length - 1];
      progress(
        `streams ok ${s.total('ok')}, reset ${s.total('reset', 'error')}, bad ${s.total('corrupt', 'truncated', 'stalled')}, active ${s.active.size}; ` +
          `sshkeep rss ${last ? (last.rssKiB / 1024).toFixed(1) : '?'} MiB, fds ${last?.fds ?? '?'}`,
      );
    }, 1000);
    const stopTimers = () => {
      clearInterval(watchdog);
      clearInterval(sampler);
      clearInterval(status);
    };
    disposers.push(stopTimers);
    void keep.exited().then(() => {
      if (!terminating) {
        failures.push(`sshkeep ${keep.exitInfo()} during the run`);
        ctlRun.abort();
      }
    });

    // ---- workers
    const workers: Promise<void>[] = [];
    const loop = (fn: () => Promise<unknown>, pauseMs: [number, number]) =>
      workers.push(
        (async () => {
          while (!stopping && !ctlRun.signal.aborted) {
            await fn();
            await sleep(uniform(trafficRnd, pauseMs), ctlRun.signal);
          }
        })(),
      );
    keep.sample();
    const trafficStart = at();
    for (let i = 0; i < opts.uploads; i++) loop(() => s.upload(uniform(trafficRnd, opts.bulkSize)), [50, 250]);
    for (let i = 0; i < opts.downloads; i++) loop(() => s.download(uniform(trafficRnd, opts.bulkSize)), [50, 250]);
    for (let i = 0; i < opts.echoes; i++) loop(() => s.echo(uniform(trafficRnd, [1024, 8192])), [20, 120]);
    for (let i = 0; i < opts.idle; i++) loop(() => s.idle(), [500, 1500]); // a reset idle connection is replaced

    // ---- faults
    const endAt = trafficStart + opts.durationMs;
    const faultLoop = faults.run({ opts, rnd: prng(opts.seed), relay, sshd, at, endAt, stop: stopCtl.signal, abort: ctlRun.signal, progress });

    // ---- the run, then the end of it
    await sleep(endAt - at(), ctlRun.signal);
    stopping = true;
    stopCtl.abort();
    await faultLoop;
    relay.restore();
    progress(`traffic stops; ${s.active.size} stream(s) in flight`);
    const readyAgain = ctlRun.signal.aborted ? false : await keep.ready(60_000);
    if (!ctlRun.signal.aborted && !readyAgain) failures.push('sshkeep not ready again within 60 s of the end of the run');
    s.startFinal();
    // In-flight streams (and the idle connections' last echo) get --drain to finish.
    const drained = Promise.allSettled(workers);
    const drainTimer = new AbortController();
    await Promise.race([drained, sleep(opts.drainMs, drainTimer.signal)]);
    drainTimer.abort();
    s.settleAll('unfinished', `still running ${Math.round(opts.drainMs / 1000)} s after the run`);
    await drained;
    stopTimers();
    keep.sample();

    // ---- what sshkeep says
    const metrics = await keep.metrics();
    terminating = true;
    terminatingAt = at();
    const { exit: sshkeepExit, failures: exitFailures } = await keep.terminate();
    failures.push(...exitFailures);
    // The last log lines are in now: join each kept record with sshkeep's view of its connection.
    for (const r of s.kept) {
      const c = log.connOf(r.localPort, r.startMs, r.endMs);
      if (!c) continue;
      r.conn = c.conn;
      r.held = c.info.held;
      if (c.info.end) r.sshkeepEnd = `${c.info.end.side}: ${c.info.end.reason}${c.info.end.reset ? ' (reset)' : ''}`;
    }

    // ---- verdict
    const verdict = judge(s.kept, faults.records, opts.graceMs);
    failures.push(...verdict.failures);
    const held = { ...log.held(), timedOutMetrics: metrics ? metrics.connectionsTotal.hold_timeout ?? 0 : undefined };

    // Warm-up (heap growth, JIT, first buffers) is not a leak: the trend leaves out min(60 s, a fifth of the run).
    const trendFrom = trafficStart + Math.min(60_000, opts.durationMs / 5);
    const rssMiB = summarize(keep.samples.map((x) => ({ atMs: x.atMs, v: x.rssKiB / 1024 })), trendFrom);
    const fds = summarize(keep.samples.map((x) => ({ atMs: x.atMs, v: x.fds })), trendFrom);
    if (opts.failOnGrowth && (rssMiB?.growth || fds?.growth)) failures.push('RSS or fd count shows a growth trend (--fail-on-growth)');

    const faultEffects = faults.records.map((f) => ({
      index: f.index,
      streamsReset: verdict.resetsByFault.get(f.index) ?? 0,
      states: log.states.filter((x) => x.atMs >= f.startMs && x.atMs <= Math.min(f.endMs + opts.graceMs, terminatingAt)).map((x) => `${x.from}→${x.to}`),
    }));

    const report: SoakReport = {
      meta: {
        date: new Date(wallStart).toISOString(),
        machine: `nproc ${os.cpus().length}, ${cpuModel()}, load avg at the end ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
        node: process.version,
        OpenSSH: sshVersion(),
        sshkeep: `${gitDescribe()}; ${opts.cli === CLI_MAIN ? 'dist/bin/sshkeep.js' : opts.cli} built ${fs.statSync(opts.cli).mtime.toISOString()}${distIsStale(opts.cli) ? ' (OLDER than src/: run npm run build)' : ''}`,
        setup:
          'sshkeep -L ×3 --keepalive-interval 2s --health --log-level debug (CLI child process) → fault relay (test/fixtures/relay.ts) → OpenSSH sshd (test/fixtures/sshd.ts); targets in this process',
      },
      options: opts,
      pass: failures.length === 0,
      failures,
      streams: s.counts,
      resets: { explained: verdict.explained, unexplained: verdict.unexplained, seenAsEof: s.resetSeenAsEof },
      completed: { total: s.total('ok', 'corrupt'), matching: s.total('ok') },
      held,
      faults: faults.records,
      faultEffects,
      states: log.states,
      problems: s.kept.filter((r) => !((r.outcome === 'reset' || r.outcome === 'error') && r.fault !== undefined)),
      resetSamples: s.kept.filter((r) => r.fault !== undefined).slice(0, 50),
      resources: { samples: keep.samples, rssMiB, fds },
      metrics,
      sshkeepExit,
      logEvents: log.events,
      durationMs: at(),
    };
    progress(`done: ${report.pass ? 'PASS' : `FAIL (${failures.length} failure(s))`}`);
    return report;
  } finally {
    await cleanup();
    runs.delete(cleanup);
  }
}
