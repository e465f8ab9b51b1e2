/**
 * Side-by-side benchmark (issue #6): sshkeep against OpenSSH `ssh -N -L` (and `autossh -M 0` where it
 * applies), through the same loopback sshd, in one run. Needs only `apt-get install openssh-server autossh`
 * (without autossh its column is skipped, with a note).
 *
 *   npm run build && node --import @tapjs/typescript/import scripts/bench.ts \
 *     [--ciphers default,aes128-gcm@openssh.com] [--cipher NAME] [--rounds 3] [--size-mib 512] [--streams 4]
 *     [--pings 5000] [--conns 300] [--rss-conns 1000] [--idle-seconds 60] [--multi-connections 4]
 *     [--sshkeep-args="<extra sshkeep args>"] [--json FILE]
 *     [--small-only] [--small-clients 8] [--small-requests 2500] [--small-warm 2000] [--small-size 64] [--cold-conns 300]
 *     [--pg-seconds 10] [--redis-requests 20000] [--baseline-cli OTHER/dist/bin/sshkeep.js] [--cpu-limit CORES]
 *
 *   Quick run: ... --size-mib 64 --pings 1000 --conns 100 --rss-conns 1000 --idle-seconds 10 --rounds 1
 *
 * One table per cipher mode (--ciphers, comma-separated; "default" = each tool negotiates its own
 * default; a name X = sshd restricted to `Ciphers X` and ssh given `-c X`, so both sides use X;
 * --cipher X is a shortcut for --ciphers X). Each round runs, per cipher mode, A B C D: sshkeep,
 * ssh -L, autossh -M 0 (RSS only), sshkeep --connections N (parallel streams only, after the same
 * burst of --rss-conns connections as the others), each a fresh process; then one idle window in
 * which every tool of every mode idles side by side, each behind its own byte-counting relay to
 * the sshd. Figures:
 *   - bulk upload/download, one stream of --size-mib each (MB = 10^6 bytes, first to last byte at the receiver);
 *   - the same --size-mib split over --streams concurrent uploads, then downloads: aggregate MB/s = total
 *     bytes / (last byte - first byte across all streams);
 *   - ping-pong round trips on one connection, 1 byte and 4 KiB (write 4096 bytes, wait for all 4096 back);
 *   - connect + first echo byte on --conns sequential new connections;
 *   - CPU seconds per GiB of the forwarder process (utime+stime, and utime alone; and, for reference, of the
 *     sshd sessions);
 *   - RSS (VmRSS, summed over the forwarder's process tree: autossh + its ssh) once the tunnel is up, and
 *     with --rss-conns connections open through it (each has echoed a byte; read 2 s after the last opened);
 *   - idle cost over --idle-seconds, after every tool has run 15 s (steady state), per minute: CPU (sum
 *     over all threads of /proc/PID/task/TID/schedstat run time; % of a core), wake-ups (voluntary +
 *     involuntary context switches of all threads), and bytes on the wire both ways between the
 *     forwarder and sshd (heartbeats). sshkeep at its default
 *     --keepalive-interval 15s, ssh and autossh with -o ServerAliveInterval=15; ssh with its default (no
 *     keepalive) is measured too and noted under the table.
 * Then, per cipher mode, the small-messages table (issue 17, scripts/bench/small.ts): sshkeep, a bare
 * ssh2 forwarder and ssh -L, fresh processes, interleaved stage by stage: CPU µs per request (user,
 * system) and requests/s of a request/reply load over --small-clients connections, of pgbench -S -c 8
 * and of redis-benchmark -c 50 when installed (PostgreSQL 15 server binaries in PG_BIN, default
 * /usr/lib/postgresql/15/bin, and pgbench: apt-get install -y postgresql; apt-get install -y
 * redis-server; without them those rows are skipped, with a note), and new-connection latency cold
 * (the first --cold-conns after start) and warm. --small-only runs only this table; --baseline-cli
 * adds another sshkeep build (its dist/bin/sshkeep.js, with its own node_modules) as a column, run
 * beside this one, for a before/after in one run. --cpu-limit CORES (0.1, or 100m as Kubernetes
 * writes it) runs each forwarder of the table in a cgroup of its own with that CPU quota, as a
 * sidecar with a CPU limit runs, from when it is ready: the request rates are then what the limit
 * serves (needs root and cgroup v1's cpu controller).
 * Goals (issue #6) are printed next to each ratio. --sshkeep-args="…" (quote-aware split; the "=" is needed
 * because the value starts with a dash) is passed to every sshkeep process;
 * --multi-connections N (0 = off) adds the rows "N parallel streams, sshkeep --connections N", which
 * read "n/a (flag not supported)" when the sshkeep CLI rejects the flag.
 *
 * Markdown goes to stdout, progress to stderr; JSON (every sample and the summary) is written only
 * when --json FILE is given. Every process, relay and sshd is cleaned up on exit, error, SIGINT and
 * SIGTERM. The stages are modules under scripts/bench/, which the other bench scripts reuse.
 */
import fs from 'node:fs';
import { CLK_TCK } from '../test/fixtures/proc.js';
import type { Sshd } from '../test/fixtures/sshd.js';
import { HOST } from '../test/fixtures/net.js';
import { ssh2Info } from './bench/environment.js';
import { IDLE_SETTLE_MS, KEEPALIVE_S, idleWindow, liveRelays } from './bench/idle.js';
import { parseOptions, USAGE } from './bench/options.js';
import { modeName, modeSection, summarize } from './bench/report.js';
import type { Ctx, Mode } from './bench/samples.js';
import { autosshSession, fullSession, multiSession } from './bench/sessions.js';
import { startBenchSshd } from './bench/sshd.js';
import { startPostgres, startRedis, type Service, type Started } from './bench/services.js';
import { smallRound, smallSection, summarizeSmall, type SmallTargets } from './bench/small.js';
import { startTargets, type Targets } from './bench/targets.js';
import { removeCpuLimits } from './lib/cpu-limit.js';
import { assertBuilt, killForwarders } from './lib/forwarder.js';
import { autosshVersion, commandLine, distIsStale, machine, machineSnapshot, sshVersion } from './lib/machine.js';
import { runMain } from './lib/main.js';
import { parseCommandLine } from './lib/options.js';

const options = parseCommandLine('bench', USAGE, parseOptions);

let cleanupPromise: Promise<void> | undefined;
const sshdRefs: Sshd[] = [];
let targetsRef: Targets | undefined;
const services: Service[] = [];

function cleanup(): Promise<void> {
  return (cleanupPromise ??= (async () => {
    killForwarders();
    await Promise.allSettled([...sshdRefs.map((s) => s.stop()), targetsRef?.close(), ...[...liveRelays].map((r) => r.close()), ...services.map((s) => s.stop())]);
    for (const line of removeCpuLimits()) process.stderr.write(`${line}\n`);
  })());
}

async function main(): Promise<void> {
  const opts = options;
  assertBuilt();
  if (opts.small.baselineCli) assertBuilt(opts.small.baselineCli);
  const ssh2 = ssh2Info();
  for (const c of opts.ciphers) {
    if (c && ssh2.supported.length && !ssh2.supported.includes(c)) {
      throw new Error(`ssh2 ${ssh2.version} does not support ${c}; it supports ${ssh2.supported.join(', ')}`);
    }
  }
  const stale = distIsStale();
  const autosshV = autosshVersion();
  if (!autosshV) process.stderr.write('autossh not found (apt-get install -y autossh): its column is skipped\n');
  const loadBefore = machineSnapshot();
  const startedAt = Date.now();

  targetsRef = await startTargets();
  const modes: Mode[] = [];
  for (const cipher of opts.ciphers) {
    const { sshd, listener } = await startBenchSshd(cipher);
    sshdRefs.push(sshd);
    modes.push({ cipher, sshd, listener, full: [], autossh: [], multi: [], idle: [], small: [] });
  }
  // The small-messages table's real servers, when installed; their rows are skipped otherwise.
  const serviceNotes: string[] = [];
  const service = (r: Started): Service | undefined => {
    if (r.service) services.push(r.service);
    else serviceNotes.push(`${r.why}: its rows are skipped`);
    return r.service;
  };
  const small: SmallTargets = { targets: targetsRef, postgres: service(await startPostgres()), redis: service(await startRedis()) };
  for (const n of serviceNotes) process.stderr.write(`${n}\n`);
  const smallOpts = { ...opts.small, sshkeepArgs: opts.sshkeepArgs };
  const ctx: Ctx = { opts, targets: targetsRef, autossh: autosshV !== undefined, multiSupported: opts.multiConnections > 0 };
  process.stderr.write(
    `${opts.rounds} round(s); cipher modes: ${modes.map(modeName).join('; ')}; ${opts.sizeMiB} MiB each way; idle window ${opts.idleSeconds} s\n`,
  );

  for (let round = 1; round <= opts.rounds; round++) {
    for (const mode of modes) {
      process.stderr.write(`round ${round}, ${modeName(mode)} (sshd on ${HOST}:${mode.sshd.port})\n`);
      mode.small.push(...(await smallRound(round, mode.sshd, mode.cipher, small, smallOpts, (l) => process.stderr.write(`${l}\n`))));
      if (opts.smallOnly) continue;
      for (const tool of ['sshkeep', 'ssh'] as const) mode.full.push(await fullSession(round, tool, mode, ctx));
      if (ctx.autossh) mode.autossh.push(await autosshSession(round, mode, ctx));
      if (opts.multiConnections > 0) mode.multi.push(await multiSession(round, mode, ctx));
    }
    if (!opts.smallOnly) await idleWindow(round, modes, ctx);
  }

  const cmdline = commandLine();
  const elapsed = (Date.now() - startedAt) / 1000;
  const header: Array<[string, string]> = [
    ['date', new Date().toISOString()],
    ['command', `\`${cmdline}\` (${elapsed.toFixed(0)} s)`],
    ['machine', machine(loadBefore)],
    ['node', process.version],
    ['OpenSSH', sshVersion()],
    ['autossh', autosshV ?? 'not installed (apt-get install -y autossh): its column is skipped'],
    ['ssh2 native crypto binding', ssh2.binding],
    ['sshkeep extra args', opts.sshkeepArgs.length ? `\`${opts.sshkeepArgs.join(' ')}\`` : 'none'],
    [
      'workload',
      opts.smallOnly ? 'the small-messages table only (--small-only)' : `${opts.rounds} round(s), per cipher mode sshkeep, ssh -L, ${ctx.autossh ? 'autossh -M 0 (RSS)' : 'no autossh'}, ` +
        `${opts.multiConnections > 0 ? `sshkeep --connections ${opts.multiConnections} (parallel streams)` : 'no --connections row'} in turn, ` +
        `fresh process each; ${opts.sizeMiB} MiB up + down on 1 stream, and split over ${opts.streams} concurrent streams; ` +
        `${opts.pings.toLocaleString('en-US')} ping-pongs of 1 B and of 4 KiB; ${opts.conns} new connections; RSS with ${opts.rssConns.toLocaleString('en-US')} open connections; ` +
        `one ${opts.idleSeconds} s idle window per round (all tools of all modes side by side); sshd LogLevel DEBUG1 (for the cipher lines); CLK_TCK ${CLK_TCK}`,
    ],
  ];
  if (stale) header.push(['warning', 'dist/ is older than src/: run npm run build']);
  if (opts.idleSeconds < 2 * KEEPALIVE_S) {
    header.push(['note', `the ${opts.idleSeconds} s idle window is shorter than two ${KEEPALIVE_S} s keepalive intervals: its bytes-on-the-wire figures are mostly 0 or one heartbeat (use --idle-seconds 60)`]);
  }

  const summaries = opts.smallOnly ? [] : modes.map((m) => ({ mode: m, rows: summarize(m, opts, ctx.autossh) }));
  const smallMd = modes.map((m) =>
    smallSection(m.small, smallOpts, [
      `cipher mode: ${modeName(m)}`,
      ...serviceNotes,
      'the machine is shared (load averages in the header): read the ratios of one round, not the absolute figures',
    ]),
  );
  const bulkNotes =
    'Throughput: median of per-round MB/s (10^6 bytes/s, first to last byte at the receiver; parallel: total bytes over the first to the ' +
      'last byte across all streams). Latencies: median/p99 over all samples of all rounds. CPU: utime+stime of the forwarder process ' +
      '(/proc/PID/stat) over each measured transfer, and utime alone (in user space). RSS: VmRSS (MB = 10^6 bytes) 0.5 s after the first echo, and 2 s after the last of ' +
      `the ${opts.rssConns.toLocaleString('en-US')} connections echoed; autossh = autossh + its ssh. Idle: per minute over the window, which opens once every tool has run ${IDLE_SETTLE_MS / 1000} s (steady state), summed over every thread ` +
      '(run time from schedstat; wake-ups = voluntary + involuntary context switches) and, for autossh, over autossh and its ssh; bytes ' +
      `counted both ways by a relay between the forwarder and sshd; sshkeep at its default --keepalive-interval 15s, ssh/autossh with ServerAliveInterval=${KEEPALIVE_S}. ` +
      'Goals (issue #6) apply to the median rows; "met" compares the ratio, or sshkeep\'s own value where the goal is absolute. ' +
      'autossh applies only where it adds a process (RSS, idle, startup): its data path is ssh\'s.';
  const md = [
    '## sshkeep vs OpenSSH `ssh -N -L`' + (ctx.autossh ? ' (and `autossh -M 0`)' : ''),
    '',
    ...header.map(([k, v]) => `- **${k}:** ${v}`),
    '',
    ...summaries.map(({ mode, rows }) => modeSection(mode, rows, opts, ctx.autossh)),
    ...(opts.smallOnly ? [] : [bulkNotes, '']),
    ...smallMd,
    '',
  ].join('\n');
  process.stdout.write(md);

  if (opts.json) {
    const json = {
      meta: Object.fromEntries(header),
      options: { ...opts, ciphers: opts.ciphers.map((c) => c ?? 'default') },
      ssh2: { version: ssh2.version, binding: ssh2.binding, defaultCiphers: ssh2.defaults },
      modes: modes.map((mode) => ({
        cipher: mode.cipher ?? 'default',
        summary: summaries.find((s) => s.mode === mode)?.rows ?? [],
        smallMessages: summarizeSmall(mode.small, smallOpts),
        samples: { full: mode.full, autossh: mode.autossh, multiConnections: mode.multi, idle: mode.idle, small: mode.small },
      })),
    };
    fs.writeFileSync(opts.json, JSON.stringify(json, null, 2) + '\n');
    process.stderr.write(`wrote ${opts.json}\n`);
  }
}

runMain('bench', main, cleanup);
