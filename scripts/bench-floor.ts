/**
 * How much of sshkeep's cost any Node forwarder on ssh2 pays anyway, side by side with sshkeep and
 * `ssh -L` at the same cipher, interleaved round by round:
 *
 * - Upload: a minimal relay (scripts/lib/floor-relay.mjs) does only the per-packet work such a
 *   forwarder cannot skip: read the client socket, frame 32 KiB packets, pad, AES-128-GCM them with
 *   ssh2's native binding, write them out. --size-mib after a 32 MiB warm-up; the forwarder's CPU per
 *   GiB in user space and in the kernel (/proc/PID/stat), and MB/s. sshkeep first carries
 *   --hold-connections connections, as in the full bench.
 * - New connections and round trips: a bare ssh2 forwarder (scripts/lib/bare-forwarder.mjs:
 *   forwardOut and pipes, nothing else). --conns sequential connect + first echo after as many for
 *   warm-up (median and p99 latency, the forwarder's CPU per connection), then --pings 1-byte round
 *   trips on one connection (median).
 *
 * - Small messages (issue 17): the small-messages table's request/reply load (8 connections × 64-byte
 *   round trips) through `ssh -L` (its default cipher and aes128-gcm), sshkeep, the bare ssh2
 *   forwarder, a plain Node TCP proxy without SSH (scripts/lib/plain-proxy.mjs), the same with
 *   `onread` on its target side, and socat; the forwarder's user and system CPU per request
 *   (scripts/bench/floor-small.ts). Through a second sshd that allows both ciphers.
 *
 *   npm run build && node --import @tapjs/typescript/import scripts/bench-floor.ts \
 *     [--rounds 3] [--size-mib 512] [--hold-connections 1000] [--conns 1000] [--pings 5000]
 *     [--small-only] [--small-clients 8] [--small-requests 5000] [--small-warm 5000] [--small-size 64]
 *     [--small-strace (and each row's system calls per round trip, apt-get install -y strace)]
 *
 * Every Node process runs with the CLI's shebang flags. The floor relay's packets go to the bench's
 * sink instead of an sshd, so its kernel CPU and MB/s are a rough guide only; its user-space CPU is
 * the point.
 */
import { parseArgs } from 'node:util';
import { echoProbe } from '../test/fixtures/net.js';
import { cpuSeconds } from '../test/fixtures/proc.js';
import type { Sshd } from '../test/fixtures/sshd.js';
import { pingPong, sendToSink, transfer, upload, type Transfer } from './bench/clients.js';
import { launch, startBare, startScript, type ScriptForwarder } from './bench/launch.js';
import { floorRows, floorSmallRound, floorSmallSection, killSocats, type FloorSample } from './bench/floor-small.js';
import { connectionBurst, measuredBulk, type Bulk } from './bench/measure.js';
import { startBenchSshd } from './bench/sshd.js';
import { MIB, startTargets, type Targets } from './bench/targets.js';
import { assertBuilt, killForwarders } from './lib/forwarder.js';
import { commandLine, machine, machineSnapshot, sshVersion } from './lib/machine.js';
import { runMain } from './lib/main.js';
import { intOption, parseCommandLine } from './lib/options.js';
import { median, quantile } from './lib/stats.js';

const USAGE =
  'usage: npm run build && node --import @tapjs/typescript/import scripts/bench-floor.ts [--rounds 3] [--size-mib 512]\n' +
  '         [--hold-connections 1000] [--conns 1000] [--pings 5000]\n' +
  '         [--small-only] [--small-clients 8] [--small-requests 5000] [--small-warm 5000] [--small-size 64] [--small-strace]\n';

const options = parseCommandLine('bench-floor', USAGE, (args) => {
  const { values } = parseArgs({
    args,
    options: {
      rounds: { type: 'string', default: '3' },
      'size-mib': { type: 'string', default: '512' },
      'hold-connections': { type: 'string', default: '1000' },
      conns: { type: 'string', default: '1000' },
      pings: { type: 'string', default: '5000' },
      'small-only': { type: 'boolean', default: false },
      'small-clients': { type: 'string', default: '8' },
      'small-requests': { type: 'string', default: '5000' },
      'small-warm': { type: 'string', default: '5000' },
      'small-size': { type: 'string', default: '64' },
      'small-strace': { type: 'boolean', default: false },
    },
  });
  return {
    rounds: intOption('rounds', values.rounds, 1),
    hold: intOption('hold-connections', values['hold-connections'], 0),
    sizeMiB: intOption('size-mib', values['size-mib'], 1),
    conns: intOption('conns', values.conns, 1),
    pings: intOption('pings', values.pings, 1),
    smallOnly: values['small-only'],
    small: {
      clients: intOption('small-clients', values['small-clients'], 1),
      requests: intOption('small-requests', values['small-requests'], 1),
      warm: intOption('small-warm', values['small-warm'], 0),
      size: intOption('small-size', values['small-size'], 1),
      strace: values['small-strace'],
    },
  };
});

const CIPHER = 'aes128-gcm@openssh.com';
const UPLOAD_VARIANTS = ['floor', 'floor, packet buffers reused', 'sshkeep', 'ssh -L'] as const;
const CONNECT_VARIANTS = ['bare ssh2', 'sshkeep', 'ssh -L'] as const;
type Variant = (typeof UPLOAD_VARIANTS)[number] | (typeof CONNECT_VARIANTS)[number];

interface Forwarder {
  pid: number;
  /** Where clients connect: the upload sink's forward, or the echo's. */
  port: number;
  stop: () => Promise<void>;
}

const script = async (started: Promise<ScriptForwarder>): Promise<Forwarder> => {
  const s = await started;
  return { pid: s.pid, port: s.ports[0]!, stop: s.stop };
};

async function startForwarder(variant: Variant, sshd: Sshd, targets: Targets, hold: number, upstream: 'sink' | 'echo'): Promise<Forwarder> {
  switch (variant) {
    case 'floor':
    case 'floor, packet buffers reused':
      return script(startScript('floor-relay.mjs', [String(targets.sink), variant === 'floor' ? 'fresh' : 'reuse']));
    case 'bare ssh2':
      return script(startBare(sshd, [targets.echo]));
    default: {
      const run = await launch(sshd, targets, { tool: variant === 'sshkeep' ? 'sshkeep' : 'ssh', cipher: CIPHER });
      if (variant === 'sshkeep' && hold > 0 && upstream === 'sink') await connectionBurst(run, hold, () => undefined);
      return { pid: run.pid, port: run.ports[upstream], stop: run.stop };
    }
  }
}

/** Uploads `bytes`; through a floor relay the sink counts framed bytes, so only its arrival times count. */
async function send(variant: Variant, port: number, bytes: number, targets: Targets): Promise<Transfer> {
  if (!variant.startsWith('floor')) return upload(port, bytes, targets);
  const sunk = targets.nextSink();
  await sendToSink(port, bytes);
  const r = await sunk;
  return transfer(bytes, r.lastNs - r.firstNs);
}

/** Runs `measure` on a started forwarder and stops it, whatever happens. */
async function withForwarder<T>(forwarder: Promise<Forwarder>, measure: (f: Forwarder) => Promise<T>): Promise<T> {
  const f = await forwarder;
  try {
    return await measure(f);
  } finally {
    await f.stop();
  }
}

async function main(): Promise<void> {
  const { rounds, hold, sizeMiB, conns, pings, smallOnly, small } = options;
  const bytes = sizeMiB * MIB;
  assertBuilt();
  const loadBefore = machineSnapshot();
  const smallRows = floorRows();
  // The upload and connection stages compare at one cipher; the small stage runs ssh -L with its default too.
  const bench = smallOnly ? undefined : await startBenchSshd(CIPHER);
  const open = await startBenchSshd(undefined).catch(async (err: unknown) => {
    await bench?.sshd.stop();
    throw err;
  });
  const targets = await startTargets();
  const uploads = new Map(UPLOAD_VARIANTS.map((v) => [v, { user: [] as number[], kernel: [] as number[], mbps: [] as number[] }]));
  const connects = new Map(CONNECT_VARIANTS.map((v) => [v, { us: [] as number[], cpuUs: [] as number[], pingUs: [] as number[] }]));
  const smallSamples: FloorSample[] = [];
  const log = (l: string) => process.stderr.write(`${l}\n`);
  try {
    for (let round = 1; round <= rounds; round++) {
      if (bench) await atOneCipher(round, bench, targets, { hold, bytes, conns, pings }, uploads, connects);
      smallSamples.push(...(await floorSmallRound(round, smallRows, open.sshd, targets, small, log)));
    }
  } finally {
    killForwarders();
    killSocats();
    await targets.close();
    await Promise.allSettled([bench?.sshd.stop(), open.sshd.stop()]);
  }
  console.log(`\`${commandLine()}\`; ${machine(loadBefore)}; node ${process.version}; ${sshVersion()}\n`);
  if (!smallOnly) {
    console.log('| upload through | user-space CPU (s/GiB) | kernel CPU (s/GiB) | MB/s |\n|---|---:|---:|---:|');
    for (const [variant, r] of uploads) console.log(`| ${variant} | ${median(r.user).toFixed(2)} | ${median(r.kernel).toFixed(2)} | ${median(r.mbps).toFixed(0)} |`);
    console.log('\n| through | new connection, median (µs) | p99 (µs) | forwarder CPU per connection (µs) | ping-pong 1 B, median (µs) |\n|---|---:|---:|---:|---:|');
    for (const [variant, r] of connects) {
      console.log(`| ${variant} | ${median(r.us).toFixed(0)} | ${quantile(r.us, 0.99).toFixed(0)} | ${median(r.cpuUs).toFixed(0)} | ${median(r.pingUs).toFixed(0)} |`);
    }
    console.log(
      `\n${rounds} rounds, ${CIPHER}; uploads of ${sizeMiB} MiB, sshkeep after ${hold} held connections; ` +
        `${conns} new connections after ${conns} for warm-up, then ${pings} round trips; medians (CPU: of the per-round figures; latency: of all samples).\n`,
    );
  }
  const notes = smallRows.includes('socat') ? [] : ['socat is not installed (apt-get install -y socat): its row is skipped'];
  console.log(floorSmallSection(smallSamples, smallRows, small, notes));
}

type Uploads = Map<Variant, { user: number[]; kernel: number[]; mbps: number[] }>;
type Connects = Map<Variant, { us: number[]; cpuUs: number[]; pingUs: number[] }>;

/** One round of the upload and connection stages, at CIPHER, into `uploads` and `connects`. */
async function atOneCipher(
  round: number,
  { sshd, listener }: { sshd: Sshd; listener: number },
  targets: Targets,
  o: { hold: number; bytes: number; conns: number; pings: number },
  uploads: Uploads,
  connects: Connects,
): Promise<void> {
  for (const variant of UPLOAD_VARIANTS) {
    const bulk: Bulk = await withForwarder(startForwarder(variant, sshd, targets, o.hold, 'sink'), async (f) => {
      await send(variant, f.port, 32 * MIB, targets); // warm-up: JIT, windows
      return measuredBulk(f.pid, listener, () => send(variant, f.port, o.bytes, targets));
    });
    const r = uploads.get(variant)!;
    r.user.push(bulk.userCpuSecondsPerGiB);
    r.kernel.push(bulk.cpuSecondsPerGiB - bulk.userCpuSecondsPerGiB);
    r.mbps.push(bulk.mbps);
    process.stderr.write(`round ${round} upload, ${variant}: user ${r.user.at(-1)!.toFixed(2)}, kernel ${r.kernel.at(-1)!.toFixed(2)} s/GiB, ${r.mbps.at(-1)!.toFixed(0)} MB/s\n`);
  }
  for (const variant of CONNECT_VARIANTS) {
    const r = connects.get(variant)!;
    const cpuUs = await withForwarder(startForwarder(variant, sshd, targets, o.hold, 'echo'), async (f) => {
      for (let i = 0; i < o.conns; i++) await echoProbe(f.port); // warm-up: JIT, allocator
      const before = cpuSeconds(f.pid);
      for (let i = 0; i < o.conns; i++) {
        const t0 = process.hrtime.bigint();
        await echoProbe(f.port);
        r.us.push(Number(process.hrtime.bigint() - t0) / 1000);
      }
      const after = cpuSeconds(f.pid);
      r.pingUs.push(...(await pingPong(f.port, o.pings)));
      return ((after - before) / o.conns) * 1e6;
    });
    r.cpuUs.push(cpuUs);
    process.stderr.write(
      `round ${round} new connections, ${variant}: median ${median(r.us.slice(-o.conns)).toFixed(0)} µs, cpu ${cpuUs.toFixed(0)} µs each; ` +
        `ping-pong median ${median(r.pingUs.slice(-o.pings)).toFixed(0)} µs\n`,
    );
  }
}

runMain('bench-floor', main, async () => {
  killForwarders();
  killSocats();
});
