/**
 * Resilience benchmark (issue 3, "Figures to reach"): sshkeep side by side with OpenSSH `ssh -N -L`
 * and `autossh -M 0`, each tool's SSH traffic going through its own fault relay
 * (test/fixtures/relay.ts) in front of one loopback sshd (test/fixtures/sshd.ts).
 *
 *   npm run build && node --import @tapjs/typescript/import scripts/bench-resilience.ts \
 *     [--json out.json] [--quick] [--reps N] [--stop-seconds S] [--autossh-poll S] [--only 1,2,5]
 *
 * Scenarios:
 *   1. idle blackhole noticed: relay.set('blackhole') → sshkeep's state leaves `ready` / ssh exits;
 *      and what an idle forwarded client sees (clean EOF or reset).
 *   2. a new connection 5 s after a silent death (relay 'drop-existing': a NAT that forgot the flow),
 *      default settings: time to the first reply byte.
 *   3. the forwarder SIGSTOPped for 20 s (--quick: 8 s) while the link changed (drop-existing at the
 *      start of the stop), then SIGCONT: a new connection's first reply byte, timed from SIGCONT.
 *   4. a held connection: blackhole, wait until sshkeep is no longer `ready`, open a client and send a
 *      request, restore 3 s later: time from the restore to the first reply byte.
 *   5. one new connection every 100 ms for 20 s with an 8 s outage in the middle (relay 'refuse', and
 *      'blackhole' unless --quick): successes and failures by kind.
 *
 * Markdown goes to stdout, progress to stderr. Every wait has a deadline. Every process, relay and the
 * sshd are cleaned up on exit, error, SIGINT and SIGTERM (stopped processes are continued first).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLI_MAIN } from '../test/fixtures/bin.js';
import { HOST, startEcho } from '../test/fixtures/net.js';
import type { RelayMode } from '../test/fixtures/relay.js';
import { startSshd, type Sshd } from '../test/fixtures/sshd.js';
import { FIRST_BYTE_GIVE_UP_MS, markdownFirstByte, scenario2, scenario3, type FirstByteRow } from './bench-resilience/first-byte.js';
import { markdownS4, scenario4, type S4Row } from './bench-resilience/held.js';
import { markdownS1, scenario1, type S1Row } from './bench-resilience/idle-blackhole.js';
import { parseOptions, USAGE } from './bench-resilience/options.js';
import { markdownS5, scenario5, type S5Row } from './bench-resilience/outage.js';
import { TARGET, clientCell, failCell, secs } from './bench-resilience/report.js';
import { SPEC, liveRelays, type Env } from './bench-resilience/tool.js';
import { assertBuilt, killForwarders } from './lib/forwarder.js';
import { autosshVersion, commandLine, distIsStale, gitDescribe, machine, machineSnapshot, sshVersion } from './lib/machine.js';
import { runMain } from './lib/main.js';
import { parseCommandLine } from './lib/options.js';

const options = parseCommandLine('bench-resilience', USAGE, parseOptions);

let cleanupPromise: Promise<void> | undefined;
let sshdRef: Sshd | undefined;
let echoRef: { close(): Promise<void> } | undefined;
let tmpRef: string | undefined;

function cleanup(): Promise<void> {
  return (cleanupPromise ??= (async () => {
    killForwarders();
    await Promise.allSettled([...liveRelays].map((r) => r.close()));
    await Promise.allSettled([sshdRef?.stop(), echoRef?.close()]);
    if (tmpRef) fs.rmSync(tmpRef, { recursive: true, force: true });
  })());
}

async function main(): Promise<void> {
  const opts = options;
  const CLI = opts.cli;
  assertBuilt(CLI);
  const autossh = autosshVersion();
  if (!autossh) throw new Error('autossh is not installed (apt-get install -y autossh)');
  const stale = distIsStale(CLI);
  const loadBefore = machineSnapshot();
  const startedAt = Date.now();
  const gitAtStart = gitDescribe();
  if (opts.logDir) fs.mkdirSync(opts.logDir, { recursive: true });

  tmpRef = fs.mkdtempSync(path.join(os.tmpdir(), 'sshkeep-bench-resilience-'));
  sshdRef = await startSshd();
  const echo = await startEcho();
  echoRef = echo;
  const env: Env = { sshd: sshdRef, echoPort: echo.port, opts, tmp: tmpRef };
  const progress = (s: string) => process.stderr.write(`[${((Date.now() - startedAt) / 1000).toFixed(0).padStart(4)} s] ${s}\n`);
  progress(`sshd on ${HOST}:${sshdRef.port}, echo target on ${echo.port}; ${opts.quick ? 'quick' : 'full'} run`);

  const out: Record<string, unknown> = {};
  const sections: string[] = [];

  if (opts.only.has(1)) {
    const rows: S1Row[] = [];
    for (let rep = 1; rep <= opts.reps; rep++) {
      // Where the fault lands in the 2 s keepalive cycle: the idle client's echo was the last inbound
      // traffic, so 0.1 s after it is the worst case (a whole interval of silence still to come) and the
      // later repetitions spread over the cycle: 0.1 s, 0.77 s, 1.43 s… (with --reps 3).
      const idleMs = 100 + Math.round(((rep - 1) * 2000) / opts.reps);
      for (const spec of [SPEC.sshkeep2s, SPEC.ssh22]) {
        const r = await scenario1(env, spec, rep, idleMs);
        progress(`1. ${r.label} rep ${rep}: noticed ${secs(r.noticedMs)} (${r.noticedAs ?? '-'}), idle client: ${clientCell(r.client, r.clientMs)}`);
        rows.push(r);
      }
    }
    out.scenario1 = rows;
    sections.push(markdownS1(rows));
  }

  if (opts.only.has(2)) {
    const rows: FirstByteRow[] = [];
    for (const spec of [SPEC.sshkeepDefaults, SPEC.sshDefaults, SPEC.ssh22, SPEC.autossh22]) {
      const r = await scenario2(env, spec);
      progress(`2. ${r.label}: first byte ${secs(r.firstByteMs)} ${failCell(r.failure, r.failedMs)}`);
      rows.push(r);
    }
    out.scenario2 = rows;
    sections.push(
      markdownFirstByte(
        '### 2. New connection 5 s after a silent death (default settings)',
        `relay.set('drop-existing') (the NAT forgot the SSH flow: it goes silent forever, new flows pass); 5 s later a client connects and sends a request. ` +
          `Measured from the client's connect to the first reply byte; gives up at ${FIRST_BYTE_GIVE_UP_MS / 1000} s. Target (sshkeep, defaults): ≤ ${secs(TARGET.s2)}.`,
        rows,
        TARGET.s2,
      ),
    );
  }

  if (opts.only.has(3)) {
    const rows: Array<FirstByteRow & { stopMs: number }> = [];
    for (const spec of [SPEC.sshkeepDefaults, SPEC.ssh22, SPEC.autossh22]) {
      const r = await scenario3(env, spec, opts.stopSeconds * 1000);
      progress(`3. ${r.label}: first byte ${secs(r.firstByteMs)} ${failCell(r.failure, r.failedMs)}`);
      rows.push(r);
    }
    out.scenario3 = rows;
    sections.push(
      markdownFirstByte(
        `### 3. SIGSTOP for ${opts.stopSeconds} s while the link changed, then SIGCONT`,
        `SIGSTOP to the tool's process group (autossh: autossh and its ssh), relay.set('drop-existing') at the same moment, SIGCONT ${opts.stopSeconds} s later and at once a new client ` +
          `connects and sends a request. Measured from SIGCONT to the first reply byte; gives up at ${FIRST_BYTE_GIVE_UP_MS / 1000} s. Target (sshkeep, defaults): ≤ ${secs(TARGET.s3)}.`,
        rows,
        TARGET.s3,
      ),
    );
  }

  if (opts.only.has(4)) {
    const rows: S4Row[] = [];
    let openAfter = 3500;
    for (const spec of [SPEC.sshkeep2s, SPEC.sshDefaults, SPEC.ssh22, SPEC.autossh22]) {
      const r = await scenario4(env, spec, openAfter);
      if (spec.kind === 'sshkeep') openAfter = r.openedAtMs; // the ssh rows open their client at the same point of the outage
      progress(`4. ${r.label}: ${r.verdict}, first byte ${secs(r.firstByteAfterRestoreMs)} after the restore`);
      rows.push(r);
    }
    out.scenario4 = rows;
    sections.push(markdownS4(rows));
  }

  if (opts.only.has(5)) {
    const rows: S5Row[] = [];
    const modes: RelayMode[] = opts.quick ? ['refuse'] : ['refuse', 'blackhole'];
    for (const mode of modes) {
      for (const spec of [SPEC.sshkeepDefaults, SPEC.ssh22, SPEC.autossh22]) {
        const r = await scenario5(env, spec, mode);
        progress(`5. ${mode} ${r.label}: ${r.successPct.toFixed(1)} % (${r.ok}/${r.total}) ${JSON.stringify(r.failures)}`);
        rows.push(r);
      }
    }
    out.scenario5 = rows;
    sections.push(markdownS5(rows));
  }

  const cmdline = commandLine();
  const header: Array<[string, string]> = [
    ['date', new Date(startedAt).toISOString()],
    ['command', `\`${cmdline}\``],
    ['duration', `${((Date.now() - startedAt) / 1000).toFixed(0)} s`],
    ['machine', machine(loadBefore)],
    ['node', process.version],
    ['OpenSSH', sshVersion()],
    ['autossh', `${autossh}; env AUTOSSH_GATETIME=0${opts.autosshPoll !== undefined ? ` AUTOSSH_POLL=${opts.autosshPoll}` : ' (AUTOSSH_POLL unset: 600 s, restart back-off after 5 fast failures: 2 s, 8 s, 18 s…)'}`],
    ['sshkeep', CLI === CLI_MAIN ? `${gitAtStart}, dist/bin/sshkeep.js built ${fs.statSync(CLI).mtime.toISOString()}` : `${CLI} (built ${fs.statSync(CLI).mtime.toISOString()}); repository at the start: ${gitAtStart}`],
    [
      'setup',
      'one loopback sshd (OpenSSH, test/fixtures/sshd.ts); each tool run is a fresh process whose SSH traffic goes through its own userland fault relay ' +
        '(test/fixtures/relay.ts); the forward targets a loopback echo server. ssh/autossh: `-N -F none -o BatchMode=yes -o ExitOnForwardFailure=yes -o IdentitiesOnly=yes`; ' +
        'sshkeep: `-F none -o IdentitiesOnly=yes --log-format json`. Times: performance.now() in this process (sshkeep events: when its log line arrived here; ssh exit: polled every 20 ms).',
    ],
  ];
  if (stale) header.push(['warning', 'dist/ is older than src/: run npm run build']);
  const md = ['## Resilience: sshkeep vs `ssh -N -L` vs `autossh -M 0`', '', ...header.map(([k, v]) => `- **${k}:** ${v}`), '', ...sections].join('\n');
  process.stdout.write(md + '\n');

  if (opts.json) {
    fs.writeFileSync(opts.json, JSON.stringify({ meta: Object.fromEntries(header), options: { ...opts, only: [...opts.only] }, targets: { s1Ms: TARGET.s1(2000), s2Ms: TARGET.s2, s3Ms: TARGET.s3, s4Ms: TARGET.s4, s5SuccessPct: 100 }, ...out }, null, 2) + '\n');
    process.stderr.write(`wrote ${opts.json}\n`);
  }
}

runMain('bench-resilience', main, cleanup, true);
