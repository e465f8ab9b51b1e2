/**
 * The sshkeep under soak: the CLI as a child process with three -L forwards (sink, source, echo) and
 * a health server, through the fault relay; its log read as it comes, its RSS and fds sampled.
 */
import type fs from 'node:fs';
import { httpGet } from '../../test/fixtures/net.js';
import { metricSums } from '../../test/fixtures/metrics.js';
import { fdCount, killGroup, rssKiB } from '../../test/fixtures/proc.js';
import { sshdLogin, type Sshd } from '../../test/fixtures/sshd.js';
import { startForwarder, type Forwarder } from '../lib/forwarder.js';
import { sleep } from '../lib/sleep.js';
import { SshkeepLog } from './log.js';
import type { SoakReport } from './types.js';

export class SoakSshkeep {
  readonly log = new SshkeepLog();
  readonly samples: Array<{ atMs: number; rssKiB: number; fds: number }> = [];
  /** sshkeep's local ports for the sink, the source and the echo. */
  fwd = { sink: 0, source: 0, echo: 0 };
  healthPort = 0;
  readonly #f: Forwarder;
  readonly #at: () => number;

  /** Starts sshkeep dialling `relayPort` in front of `sshd`; its stderr is also written to `logTo`. */
  constructor(cli: string, sshd: Sshd, relayPort: number, targets: { sink: number; source: number; echo: number }, at: () => number, logTo: fs.WriteStream) {
    this.#at = at;
    this.#f = startForwarder({
      tool: 'sshkeep',
      cli,
      login: sshdLogin(sshd, relayPort),
      forwards: [targets.sink, targets.source, targets.echo].map((p) => `0:127.0.0.1:${p}`),
      args: ['--keepalive-interval', '2s', '--health', '127.0.0.1:0', '--log-format', 'json', '--log-level', 'debug'],
    });
    this.#f.onStderr((s) => logTo.write(s));
    this.#f.onLog((l) => this.log.take(l, at()));
  }

  get pid(): number {
    return this.#f.child.pid!;
  }

  /** How it ended ("exited with 0"…), or undefined while it runs. */
  exitInfo(): string | undefined {
    return this.#f.exitInfo();
  }

  exited(): Promise<unknown> {
    return this.#f.exited(Infinity);
  }

  /** Waits for the listen and health lines, then for /readyz; rejects when either does not come in time. */
  async started(targets: { sink: number; source: number; echo: number }): Promise<void> {
    await this.#f.waitForLog(() => this.log.listens.length === 3 && this.log.health !== undefined, 20_000, 'listen and health lines');
    this.fwd = { sink: this.log.portFor(targets.sink), source: this.log.portFor(targets.source), echo: this.log.portFor(targets.echo) };
    this.healthPort = this.log.health!.port;
    if (!(await this.ready(30_000))) throw new Error(`sshkeep not ready within 30 s (${this.exitInfo() ?? 'still running'})`);
  }

  /** Whether /readyz answers 200 within `ms` (polled). */
  async ready(ms: number): Promise<boolean> {
    const until = performance.now() + ms;
    while (performance.now() < until && !this.exitInfo()) {
      const r = await httpGet(this.healthPort, '/readyz', 2_000).catch(() => undefined);
      if (r?.status === 200) return true;
      await sleep(100);
    }
    return false;
  }

  /** Records its RSS and open fds now (nothing once it is gone). */
  sample(): void {
    try {
      this.samples.push({ atMs: this.#at(), rssKiB: rssKiB(this.pid), fds: fdCount(this.pid) });
    } catch {}
  }

  /** Its connection results and reconnects from /metrics, while it runs. */
  async metrics(): Promise<SoakReport['metrics']> {
    if (this.exitInfo()) return undefined;
    const m = await httpGet(this.healthPort, '/metrics').catch(() => undefined);
    if (m?.status !== 200) return undefined;
    const reconnects = metricSums(m.body, 'sshkeep_tunnel_reconnects_total', 'tunnel');
    return { connectionsTotal: metricSums(m.body, 'sshkeep_connections_total', 'result'), reconnects: Object.values(reconnects).reduce((a, b) => a + b, 0) };
  }

  /** SIGTERM; how it exited, and a failure line for anything but a clean exit 0 within 15 s. */
  async terminate(): Promise<{ exit: string | undefined; failures: string[] }> {
    const failures: string[] = [];
    if (this.exitInfo()) return { exit: this.exitInfo(), failures };
    killGroup(this.pid, 'SIGTERM');
    if (!(await this.#f.exited(15_000).then(() => true, () => false))) {
      failures.push('sshkeep did not exit within 15 s of SIGTERM');
      killGroup(this.pid, 'SIGKILL');
      await this.#f.exited(Infinity);
    }
    const exit = this.exitInfo();
    if (exit !== 'exited with 0') failures.push(`sshkeep ${exit} on SIGTERM (want 0)`);
    return { exit, failures };
  }

  /** Continues and kills it and its group, however the run ended. */
  kill(): void {
    killGroup(this.pid, 'SIGCONT');
    killGroup(this.pid, 'SIGKILL');
  }
}
