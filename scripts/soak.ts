/**
 * Soak test (issue 7, "Faults over a long run"): sshkeep as a CLI child process, its SSH connection going
 * through a fault relay (test/fixtures/relay.ts) to a real OpenSSH sshd (test/fixtures/sshd.ts), carrying
 * mixed traffic to local targets for --duration while a fault chosen at random (seeded) hits every 20–40 s.
 *
 *   npm run soak -- [--duration 10m] [--seed N] [--json] [--fault-every 20s-40s] [--faults a,b,…]
 *                   [--bulk-size 1MiB-8MiB] [--bulk-rate 4MiB] [--uploads 2] [--downloads 2] [--echoes 4] [--idle 8]
 *                   [--grace 25s] [--stall 60s] [--drain 60s] [--sample-every 5s] [--keep-logs DIR] [--cli PATH]
 *
 * Traffic, all through sshkeep's -L forwards:
 *   - uploads: random data to a sink that answers "<bytes> <sha256>" after the client's EOF; compared;
 *   - downloads: "<size>\n" to a source that sends that many random bytes then their sha256; compared;
 *   - echoes: many short connections, a few KiB echoed back, compared;
 *   - idle: connections opened, one echo, left idle; one more echo at the end of the run.
 * Faults: blackhole (2–6 s, then the held bytes flow), drop-existing (a NAT forgets the flows), reset (the relay
 * resets every flow and refuses new ones for 1–3 s), sshd restart, sshd SIGSTOP (2–6 s). Each one's window is recorded.
 *
 * Integrity (exit 1 on any failure): every stream that completed has the right hash/echo; no stream ends with a clean
 * EOF before it is complete (a cut stream must look cut); every reset (or other error) overlaps a fault window
 * [start, end + grace]; no stream stalls (no progress for --stall) or is still unfinished --drain after the run; every
 * idle connection still open answers its last echo; sshkeep stays up, is ready again after the run and exits 0 on SIGTERM.
 *
 * Also reported: held connections served / timed out (sshkeep's debug `accept` lines carry the tunnel state; its
 * `conn_end` lines and /metrics the outcome), and sshkeep's RSS and fd count every --sample-every, with a trend flag.
 * Markdown on stdout (JSON with --json), progress on stderr. Every process is cleaned up on exit, error and SIGINT.
 * The run is scripts/soak/run.ts, its parts the other modules of scripts/soak/.
 */
import { runMain } from './lib/main.js';
import { parseCommandLine } from './lib/options.js';
import { markdown } from './soak/markdown.js';
import { parseOptions, USAGE } from './soak/options.js';
import { cleanupAll, runSoak } from './soak/run.js';

const o = parseCommandLine('soak', USAGE, parseOptions);
const command = ['npm run soak --', ...process.argv.slice(2)].join(' ');
runMain(
  'soak',
  async () => {
    const report = await runSoak(o);
    process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : `${markdown(report, command)}\n`);
    if (!report.pass) {
      process.stderr.write(`soak: ${report.failures.length} integrity failure(s)\n`);
      throw new Error('integrity failure');
    }
  },
  cleanupAll,
);
