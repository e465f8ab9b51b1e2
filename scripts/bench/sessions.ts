/** One fresh forwarder process per session: every figure but idle cost. */
import { deadline } from '../../test/fixtures/net.js';
import { sleep } from '../lib/sleep.js';
import { median } from '../lib/stats.js';
import { download, newConnections, pingPong, upload } from './clients.js';
import { FlagUnsupported, LABEL, launch, type LaunchSpec, type Running } from './launch.js';
import { connectionBurst, measuredBulk, rssWithConnections, treeRssKiB, type Bulk } from './measure.js';
import type { Options } from './options.js';
import type { Ctx, FullSample, Mode, MultiSample, RssSample } from './samples.js';
import { MIB, type Targets } from './targets.js';

const bulkMs = (bytes: number) => 120_000 + bytes / 5_000; // generous: 5 MB/s would still finish

async function parallelPair(run: Running, mode: Mode, opts: Options, targets: Targets): Promise<[Bulk, Bulk]> {
  const each = Math.max(1, Math.floor((opts.sizeMiB * MIB) / opts.streams));
  const warm = Math.min(each, 4 * MIB);
  const ms = bulkMs(opts.sizeMiB * MIB);
  await deadline(upload(run.ports.sink, warm, targets, opts.streams), ms, 'parallel upload warm-up');
  await deadline(download(run.ports.source, warm, opts.streams), ms, 'parallel download warm-up');
  const up = await measuredBulk(run.pid, mode.listener, () => deadline(upload(run.ports.sink, each, targets, opts.streams), ms, 'parallel upload'));
  const down = await measuredBulk(run.pid, mode.listener, () => deadline(download(run.ports.source, each, opts.streams), ms, 'parallel download'));
  return [up, down];
}

export const sshkeepSpec = (opts: Options, extra: string[] = []): LaunchSpec => ({ tool: 'sshkeep', sshkeepArgs: [...opts.sshkeepArgs, ...extra] });

export async function fullSession(round: number, tool: 'sshkeep' | 'ssh', mode: Mode, ctx: Ctx): Promise<FullSample> {
  const { opts, targets } = ctx;
  const run = await launch(mode.sshd, targets, tool === 'sshkeep' ? sshkeepSpec(opts) : { tool, cipher: mode.cipher });
  try {
    const bytes = opts.sizeMiB * MIB;
    const warm = Math.min(bytes, 16 * MIB);
    await sleep(500); // let startup settle before reading the idle footprint
    const rss = treeRssKiB(run.pids());
    const rssConns = await rssWithConnections(run, opts.rssConns);

    await deadline(pingPong(run.ports.echo, 100), 30_000, 'ping-pong warm-up');
    const pingUs = await deadline(pingPong(run.ports.echo, opts.pings), 120_000 + opts.pings * 20, 'ping-pong');
    await deadline(pingPong(run.ports.echo, 100, 4096), 30_000, '4 KiB ping-pong warm-up');
    const ping4kUs = await deadline(pingPong(run.ports.echo, opts.pings, 4096), 120_000 + opts.pings * 20, '4 KiB ping-pong');
    await newConnections(run.ports.echo, 10);
    const connectUs = await newConnections(run.ports.echo, opts.conns);

    await deadline(upload(run.ports.sink, warm, targets), bulkMs(warm), 'upload warm-up');
    await deadline(download(run.ports.source, warm), bulkMs(warm), 'download warm-up');
    const up = await measuredBulk(run.pid, mode.listener, () => deadline(upload(run.ports.sink, bytes, targets), bulkMs(bytes), 'upload'));
    const down = await measuredBulk(run.pid, mode.listener, () => deadline(download(run.ports.source, bytes), bulkMs(bytes), 'download'));
    const [pUp, pDown] = await parallelPair(run, mode, opts, targets);

    const sample: FullSample = {
      round,
      tool,
      cipher: run.cipher,
      startupMs: run.startupMs,
      rssKiB: rss,
      rssConnsKiB: rssConns,
      pingUs,
      ping4kUs,
      connectUs,
      upload: up,
      download: down,
      parallelUpload: pUp,
      parallelDownload: pDown,
    };
    process.stderr.write(
      `  round ${round} ${LABEL[tool].padEnd(12)} up ${up.mbps.toFixed(0)}, down ${down.mbps.toFixed(0)}, ` +
        `${opts.streams}× up ${pUp.mbps.toFixed(0)}, down ${pDown.mbps.toFixed(0)} MB/s; ` +
        `ping ${median(pingUs).toFixed(0)} / 4K ${median(ping4kUs).toFixed(0)} µs, connect ${median(connectUs).toFixed(0)} µs, ` +
        `cpu ${up.cpuSecondsPerGiB.toFixed(2)}/${down.cpuSecondsPerGiB.toFixed(2)} s/GiB, ` +
        `rss ${(rss / 1024).toFixed(1)} MiB, ${opts.rssConns} conns ${(rssConns / 1024).toFixed(1)} MiB, ${run.cipher}\n`,
    );
    return sample;
  } finally {
    await run.stop();
  }
}

export async function autosshSession(round: number, mode: Mode, ctx: Ctx): Promise<RssSample> {
  const run = await launch(mode.sshd, ctx.targets, { tool: 'autossh', cipher: mode.cipher });
  try {
    await sleep(500);
    const rss = treeRssKiB(run.pids());
    const rssConns = await rssWithConnections(run, ctx.opts.rssConns);
    process.stderr.write(
      `  round ${round} ${LABEL.autossh.padEnd(12)} rss ${(rss / 1024).toFixed(1)} MiB, ${ctx.opts.rssConns} conns ${(rssConns / 1024).toFixed(1)} MiB (autossh + ssh), ${run.cipher}\n`,
    );
    return { round, tool: 'autossh', cipher: run.cipher, startupMs: run.startupMs, rssKiB: rss, rssConnsKiB: rssConns };
  } finally {
    await run.stop();
  }
}

export async function multiSession(round: number, mode: Mode, ctx: Ctx): Promise<MultiSample> {
  const n = ctx.opts.multiConnections;
  if (!ctx.multiSupported) return { round, supported: false, note: ctx.multiNote ?? 'flag not supported' };
  let run: Running;
  try {
    run = await launch(mode.sshd, ctx.targets, sshkeepSpec(ctx.opts, ['--connections', String(n)]));
  } catch (err) {
    if (!(err instanceof FlagUnsupported)) throw err;
    ctx.multiSupported = false;
    ctx.multiNote = `flag not supported: ${err.message.split('\n')[0]}`;
    process.stderr.write(`  round ${round} sshkeep --connections ${n}: ${ctx.multiNote}\n`);
    return { round, supported: false, note: ctx.multiNote };
  }
  try {
    // The extra connections start once the first is up: wait until sshd has authenticated all N.
    const authenticated = () => (run.sshdLog().match(/Accepted publickey/g) ?? []).length;
    const until = Date.now() + 15_000;
    while (authenticated() < n && Date.now() < until) await sleep(20);
    const sshConnections = authenticated();
    // The history of the one-connection rows (their RSS stage): V8's state after a burst of
    // connections differs from a fresh process's (BENCHMARKS.md, GC on the main thread).
    await connectionBurst(run, ctx.opts.rssConns, () => undefined);
    const [up, down] = await parallelPair(run, mode, ctx.opts, ctx.targets);
    process.stderr.write(
      `  round ${round} sshkeep --connections ${n}: ${ctx.opts.streams}× up ${up.mbps.toFixed(0)}, down ${down.mbps.toFixed(0)} MB/s ` +
        `(${sshConnections} SSH connections authenticated)\n`,
    );
    return { round, supported: true, sshConnections, parallelUpload: up, parallelDownload: down };
  } finally {
    await run.stop();
  }
}

