/**
 * A/B of node's flags for sshkeep: the same transfers through the real sshd, each variant a fresh
 * sshkeep process, interleaved A B A B so machine noise hits all alike. Reports the forwarder's CPU
 * seconds per GiB (utime+stime, /proc) and MB/s, median over the rounds. This is how the CLI's
 * shebang flags were chosen; rerun it before changing them.
 *
 * Each sshkeep first carries --hold-connections N connections (opened, echoed, held 2 s, closed), as a
 * forwarder that has served clients has: a fresh process measures a heap and JIT state no user runs.
 * Its RSS while they are open is reported too (the bench's "RSS with 1,000 connections").
 *
 *   npm run build && node --import @tapjs/typescript/import scripts/bench-node-flags.ts \
 *     [--variant ""] [--variant "--max-semi-space-size=1"] [--rounds 4] [--size-mib 512] [--cipher NAME]
 *     [--hold-connections 1000]
 *
 * With no --variant: no flags vs the shebang's flags.
 */
import { parseArgs } from 'node:util';
import { CLI_MAIN, shebangNodeArgs } from '../test/fixtures/bin.js';
import { cpuSeconds } from '../test/fixtures/proc.js';
import { download, upload } from './bench/clients.js';
import { launch } from './bench/launch.js';
import { rssWithConnections } from './bench/measure.js';
import { startBenchSshd } from './bench/sshd.js';
import { MIB, startTargets } from './bench/targets.js';
import { killForwarders } from './lib/forwarder.js';
import { runMain } from './lib/main.js';
import { intOption, parseCommandLine, splitArgs } from './lib/options.js';
import { median } from './lib/stats.js';

const USAGE =
  'usage: npm run build && node --import @tapjs/typescript/import scripts/bench-node-flags.ts [--variant ""] [--variant "--max-semi-space-size=1"]\n' +
  '         [--rounds 4] [--size-mib 512] [--cipher NAME] [--hold-connections 1000]\n';

const options = parseCommandLine('bench-node-flags', USAGE, (args) => {
  const { values } = parseArgs({
    args,
    options: {
      variant: { type: 'string', multiple: true },
      rounds: { type: 'string', default: '4' },
      'size-mib': { type: 'string', default: '512' },
      cipher: { type: 'string' },
      'hold-connections': { type: 'string', default: '1000' },
    },
  });
  return {
    variants: values.variant ?? ['', shebangNodeArgs(CLI_MAIN).join(' ')],
    rounds: intOption('rounds', values.rounds, 1),
    hold: intOption('hold-connections', values['hold-connections'], 0),
    sizeMiB: intOption('size-mib', values['size-mib'], 1),
    cipher: values.cipher,
  };
});

async function main(): Promise<void> {
  const { variants, rounds, hold, sizeMiB, cipher } = options;
  const bytes = sizeMiB * MIB;
  const gib = bytes / (1024 * MIB);
  const { sshd } = await startBenchSshd(cipher);
  const targets = await startTargets();
  const results = variants.map(() => ({ up: [] as number[], down: [] as number[], mbUp: [] as number[], mbDown: [] as number[], rssMb: [] as number[] }));
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const [i, variant] of variants.entries()) {
        const run = await launch(sshd, targets, { tool: 'sshkeep', nodeArgs: splitArgs(variant) });
        const r = results[i]!;
        if (hold > 0) r.rssMb.push((await rssWithConnections(run, hold)) / 1024);
        await upload(run.ports.sink, 32 * MIB, targets); // warm-up: JIT, windows
        await download(run.ports.source, 32 * MIB);
        let before = cpuSeconds(run.pid);
        r.mbUp.push((await upload(run.ports.sink, bytes, targets)).mbps);
        r.up.push((cpuSeconds(run.pid) - before) / gib);
        before = cpuSeconds(run.pid);
        r.mbDown.push((await download(run.ports.source, bytes)).mbps);
        r.down.push((cpuSeconds(run.pid) - before) / gib);
        await run.stop();
        process.stderr.write(`round ${round} [${variant || 'no flags'}]: up ${r.up.at(-1)!.toFixed(2)} s/GiB ${r.mbUp.at(-1)!.toFixed(0)} MB/s, down ${r.down.at(-1)!.toFixed(2)} s/GiB ${r.mbDown.at(-1)!.toFixed(0)} MB/s${hold > 0 ? `, RSS ${r.rssMb.at(-1)!.toFixed(1)} MB with ${hold} connections` : ''}\n`);
      }
    }
  } finally {
    await targets.close();
    await sshd.stop();
  }
  const rssColumn = hold > 0 ? ` RSS with ${hold} connections (MB) |` : '';
  console.log(`| node flags | CPU up (s/GiB) | CPU down (s/GiB) | up (MB/s) | down (MB/s) |${rssColumn}\n|---|---:|---:|---:|---:|${hold > 0 ? '---:|' : ''}`);
  for (const [i, variant] of variants.entries()) {
    const r = results[i]!;
    const rss = hold > 0 ? ` ${median(r.rssMb).toFixed(1)} |` : '';
    console.log(`| ${variant ? `\`${variant}\`` : 'none'} | ${median(r.up).toFixed(2)} | ${median(r.down).toFixed(2)} | ${median(r.mbUp).toFixed(0)} | ${median(r.mbDown).toFixed(0)} |${rss}`);
  }
  console.log(`\n${rounds} rounds, ${sizeMiB} MiB each way after ${hold} held connections, cipher ${cipher ?? 'sshkeep default'}; medians.`);
}

runMain('bench-node-flags', main, async () => killForwarders());
