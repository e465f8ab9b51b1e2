/**
 * How much of sshkeep's upload CPU any Node forwarder on ssh2 pays anyway. A minimal relay
 * (scripts/lib/floor-relay.mjs) does only the per-packet work such a forwarder cannot skip: read the
 * client socket, frame 32 KiB packets, pad, AES-128-GCM them with ssh2's native binding, write them
 * out. It runs side by side with sshkeep (after --hold-connections) and `ssh -L` at the same cipher,
 * A B C D A B C D, each uploading --size-mib after a 32 MiB warm-up; the table gives the forwarder's
 * CPU per GiB in user space and in the kernel (/proc/PID/stat), and MB/s, medians over the rounds.
 *
 *   npm run build && node --import @tapjs/typescript/import scripts/bench-floor.ts \
 *     [--rounds 3] [--size-mib 512] [--hold-connections 1000]
 *
 * The floor's packets go to the bench's sink instead of an sshd, so its kernel figure (which on
 * loopback includes delivery to the reader) is a rough guide only; its user-space figure is the point.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { shebangNodeArgs } from '../test/fixtures/bin.js';
import { CLI, MIB, ROOT, connectionBurst, killLiveChildren, launch, measuredBulk, median, sendToSink, startBenchSshd, startTargets, transfer, upload, type Bulk, type Targets, type Transfer } from './bench.js';
import { deadline } from '../test/fixtures/net.js';
import type { Sshd } from '../test/fixtures/sshd.js';
import { intOption, runMain } from './lib/common.js';

const CIPHER = 'aes128-gcm@openssh.com';
const RELAY = path.join(ROOT, 'scripts', 'lib', 'floor-relay.mjs');
const VARIANTS = ['floor', 'floor, packet buffers reused', 'sshkeep', 'ssh -L'] as const;
type Variant = (typeof VARIANTS)[number];

/** Uploads `bytes` through the floor relay; the sink counts framed bytes, so time its arrivals only. */
async function floorUpload(port: number, bytes: number, targets: Targets): Promise<Transfer> {
  const sunk = targets.nextSink();
  await sendToSink(port, bytes);
  const r = await sunk;
  return transfer(bytes, r.lastNs - r.firstNs);
}

/** A floor relay in its own process (node with the CLI's flags), forwarding to the sink. */
async function startFloor(sinkPort: number, mode: 'fresh' | 'reuse') {
  const child = spawn(process.execPath, [...shebangNodeArgs(CLI), RELAY, String(sinkPort), mode], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await deadline(once(child.stdout!, 'data'), 10_000, 'floor relay to listen')) as [Buffer];
  return {
    pid: child.pid!,
    port: Number(String(line).trim()),
    stop: async () => {
      child.kill('SIGKILL');
      if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
    },
  };
}

/** One of the variants, ready to carry an upload of `n` bytes. */
async function startForwarder(variant: Variant, sshd: Sshd, targets: Targets, hold: number) {
  if (variant.startsWith('floor')) {
    const floor = await startFloor(targets.sink, variant === 'floor' ? 'fresh' : 'reuse');
    return { ...floor, send: (n: number) => floorUpload(floor.port, n, targets) };
  }
  const run = await launch(sshd, targets, { tool: variant === 'sshkeep' ? 'sshkeep' : 'ssh', cipher: CIPHER });
  if (variant === 'sshkeep' && hold > 0) await connectionBurst(run, hold, () => undefined);
  return { pid: run.pid, stop: run.stop, send: (n: number) => upload(run.ports.sink, n, targets) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '3' },
      'size-mib': { type: 'string', default: '512' },
      'hold-connections': { type: 'string', default: '1000' },
    },
  });
  const rounds = intOption('rounds', values.rounds, 1);
  const hold = intOption('hold-connections', values['hold-connections'], 0);
  const bytes = intOption('size-mib', values['size-mib'], 1) * MIB;
  const { sshd, listener } = await startBenchSshd(CIPHER);
  const targets = await startTargets();
  const results = new Map<Variant, { user: number[]; kernel: number[]; mbps: number[] }>(VARIANTS.map((v) => [v, { user: [], kernel: [], mbps: [] }]));
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const variant of VARIANTS) {
        const forwarder = await startForwarder(variant, sshd, targets, hold);
        let bulk: Bulk;
        try {
          await forwarder.send(32 * MIB); // warm-up: JIT, windows
          bulk = await measuredBulk(forwarder.pid, listener, () => forwarder.send(bytes));
        } finally {
          await forwarder.stop();
        }
        const r = results.get(variant)!;
        r.user.push(bulk.userCpuSecondsPerGiB);
        r.kernel.push(bulk.cpuSecondsPerGiB - bulk.userCpuSecondsPerGiB);
        r.mbps.push(bulk.mbps);
        process.stderr.write(`round ${round} ${variant}: user ${r.user.at(-1)!.toFixed(2)}, kernel ${r.kernel.at(-1)!.toFixed(2)} s/GiB, ${r.mbps.at(-1)!.toFixed(0)} MB/s\n`);
      }
    }
  } finally {
    killLiveChildren();
    await targets.close();
    await sshd.stop();
  }
  console.log('| upload through | user-space CPU (s/GiB) | kernel CPU (s/GiB) | MB/s |\n|---|---:|---:|---:|');
  for (const [variant, r] of results) {
    console.log(`| ${variant} | ${median(r.user).toFixed(2)} | ${median(r.kernel).toFixed(2)} | ${median(r.mbps).toFixed(0)} |`);
  }
  console.log(`\n${rounds} rounds, ${values['size-mib']} MiB each, ${CIPHER}; sshkeep after ${hold} held connections; medians.`);
}

runMain('bench-floor', main, async () => killLiveChildren());
