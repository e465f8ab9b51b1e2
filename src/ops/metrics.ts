import client from 'prom-client';
import type { Sshkeep, TunnelReport } from '../sshkeep.js';
import { RESULTS_OF } from '../forward/result.js';
import type { ConnectionState } from '../ssh/connection.js';
import type { ResumeReport } from '../resume/agent-client.js';
import { RESUME_FAILURE_REASONS } from '../resume/agent-start.js';

const STATES: ConnectionState[] = ['idle', 'connecting', 'ready', 'suspect', 'reconnecting', 'closed'];

/**
 * How the reports of one tunnel name combine, while a reload's replacement runs beside the
 * tunnel it replaces (whose streams are finishing): the state is the newest's; counts of what is
 * open add up; counters add up and keep what tunnels no longer watched had reached, so that
 * none goes backwards across a reload.
 */
type Combine = 'newest' | 'sum' | 'counter';

/**
 * sshkeep's Prometheus metrics, an observer of each tunnel's public report and events.
 * Gauges and byte counts are read from `report()` when Prometheus scrapes (the sockets
 * count bytes; nothing is counted per chunk); only RTT samples and client ends are events.
 * Every series a tunnel can have exists at 0 from the first scrape, so rate() and alerts
 * see it before it first moves.
 */
export class Metrics {
  readonly registry = new client.Registry();
  /** Watched tunnels, oldest first: a reload's replacement comes after the tunnel it replaces. */
  readonly #tunnels: Sshkeep[] = [];
  /** Each counter's samples from tunnels no longer watched, by series. */
  readonly #carried = new Map<string, Map<string, { labels: Record<string, string>; value: number }>>();
  /** Counters read from reports: what unwatch() carries over. */
  readonly #counters: { name: string; samples: (r: TunnelReport) => [Record<string, string>, number][] }[] = [];
  /** Tunnel names whose RTT histogram exists (zeroing it again would take it back to 0). */
  readonly #named = new Set<string>();
  readonly #rtt = new client.Histogram({
    name: 'sshkeep_heartbeat_rtt_seconds',
    help: 'Round-trip time of heartbeat probes on the SSH connection',
    labelNames: ['tunnel'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly #clientEnds = new client.Counter({
    name: 'sshkeep_connections_total',
    help: 'Clients forwarded or refused, by how their connection ended',
    labelNames: ['tunnel', 'forward', 'result'],
    registers: [this.registry],
    // At each scrape rather than in watch(): a forward is named by its bound port once it listens.
    collect: () => {
      for (const r of this.#reports()) {
        for (const f of r.forwards) for (const result of RESULTS_OF[f.kind]) this.#clientEnds.inc({ tunnel: r.tunnel, forward: f.name, result }, 0);
      }
    },
  });

  constructor() {
    // Event-loop lag sampled once a second: prom-client's default 10 ms wakes the process 100 times a
    // second, about 1 % of a core on an idle tunnel.
    client.collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 1000 });
    const reports = () => this.#reports();
    const carried = (name: string) => this.#carried.get(name)?.values() ?? [];
    /** A gauge or counter whose every sample is set from the reports at each scrape. */
    const fromReports = (
      combine: Combine,
      name: string,
      help: string,
      labelNames: string[],
      samples: (r: TunnelReport) => [Record<string, string>, number][],
    ) => {
      if (combine === 'counter') this.#counters.push({ name, samples });
      const Metric = combine === 'counter' ? client.Counter : client.Gauge;
      new Metric({
        name,
        help,
        labelNames,
        registers: [this.registry],
        collect(this: client.Gauge | client.Counter) {
          this.reset();
          const all = reports();
          // 'newest': a name's last report only (the tunnel in service).
          const counted = combine === 'newest' ? all.filter((r, i) => !all.slice(i + 1).some((later) => later.tunnel === r.tunnel)) : all;
          for (const r of counted) for (const [labels, value] of samples(r)) this.inc({ tunnel: r.tunnel, ...labels }, value);
          if (combine === 'counter') for (const { labels, value } of carried(name)) this.inc(labels, value);
        },
      });
    };
    fromReports('newest', 'sshkeep_tunnel_up', '1 when the tunnel has a ready SSH connection', ['tunnel'], (r) => [[{}, r.state === 'ready' ? 1 : 0]]);
    fromReports('newest', 'sshkeep_tunnel_state', "1 for the state the tunnel's SSH connection is in", ['tunnel', 'state'], (r) =>
      STATES.map((state) => [{ state }, state === r.state ? 1 : 0]),
    );
    fromReports('counter', 'sshkeep_tunnel_reconnects_total', 'SSH connections made after the first', ['tunnel'], (r) => [[{}, r.reconnects]]);
    fromReports('counter', 'sshkeep_outage_seconds_total', 'Time a tunnel that had been ready spent not ready', ['tunnel'], (r) => [[{}, r.outageMs / 1000]]);
    fromReports('sum', 'sshkeep_connections_active', 'Clients being forwarded', ['tunnel', 'forward'], (r) => r.forwards.map((f) => [{ forward: f.name }, f.active]));
    fromReports('sum', 'sshkeep_connections_held', 'Clients waiting for a ready SSH connection', ['tunnel', 'forward'], (r) =>
      r.forwards.filter((f) => f.kind !== 'remote').map((f) => [{ forward: f.name }, f.held]),
    );
    fromReports('counter', 'sshkeep_bytes_total', 'Bytes forwarded; up = client to target', ['tunnel', 'forward', 'direction'], (r) =>
      r.forwards.flatMap((f) => [
        [{ forward: f.name, direction: 'up' }, f.bytesUp],
        [{ forward: f.name, direction: 'down' }, f.bytesDown],
      ]),
    );
    /** --resume's series, for tunnels that have it. */
    const resume = (r: TunnelReport, sample: (resume: ResumeReport) => [Record<string, string>, number][]) => (r.resume ? sample(r.resume) : []);
    fromReports('newest', 'sshkeep_resume_available', '--resume: 1 when the agent runs on the server, else 0 (plain forwarding)', ['tunnel'], (r) =>
      resume(r, (x) => [[{}, x.available ? 1 : 0]]),
    );
    fromReports('sum', 'sshkeep_streams_resumable', '--resume: streams open through the agent', ['tunnel'], (r) => resume(r, (x) => [[{}, x.resumable]]));
    fromReports('counter', 'sshkeep_streams_resumed_total', '--resume: streams carried over to a new SSH connection', ['tunnel'], (r) => resume(r, (x) => [[{}, x.resumed]]));
    fromReports('counter', 'sshkeep_resume_failures_total', '--resume: the agent unavailable, or a stream not resumed, by reason', ['tunnel', 'reason'], (r) =>
      resume(r, (x) => RESUME_FAILURE_REASONS.map((reason) => [{ reason }, x.failures[reason] ?? 0])),
    );
    fromReports('sum', 'sshkeep_resume_replay_bytes', '--resume: bytes sent and not yet acknowledged, held to send again', ['tunnel'], (r) =>
      resume(r, (x) => [[{}, x.replayBytes]]),
    );
    fromReports('newest', 'sshkeep_remote_forward_bound', '1 when the server listens for a remote forward (-R), else 0', ['tunnel', 'forward'], (r) =>
      r.remoteForwards.map((f) => [{ forward: f.name }, f.state === 'bound' ? 1 : 0]),
    );
  }

  #reports(): TunnelReport[] {
    return this.#tunnels.map((t) => t.report());
  }

  /** Starts reporting one tunnel and its forwards (a reload's replacement under the name of the one it replaces). */
  watch(tunnel: Sshkeep): void {
    this.#tunnels.push(tunnel);
    const name = tunnel.name;
    if (!this.#named.has(name)) this.#rtt.zero({ tunnel: name });
    this.#named.add(name);
    const rtt = this.#rtt.labels({ tunnel: name });
    tunnel.on('rtt', (ms) => rtt.observe(ms / 1000));
    // One labelled child per forward and result, kept: looking the labels up costs more than the count.
    const ends = new Map<string, client.Counter.Internal>();
    tunnel.on('clientEnd', ({ forward, result }) => {
      const key = `${forward}\0${result}`;
      let end = ends.get(key);
      if (!end) ends.set(key, (end = this.#clientEnds.labels({ tunnel: name, forward, result })));
      end.inc();
    });
  }

  /** Stops reporting a tunnel a reload took out, once its last client has ended; its counters' totals stay. */
  unwatch(tunnel: Sshkeep): void {
    const i = this.#tunnels.indexOf(tunnel);
    if (i < 0) return;
    this.#tunnels.splice(i, 1);
    const report = tunnel.report();
    for (const { name, samples } of this.#counters) {
      const series = this.#carried.get(name) ?? new Map();
      this.#carried.set(name, series);
      for (const [labels, value] of samples(report)) {
        const all = { tunnel: report.tunnel, ...labels };
        const key = JSON.stringify(all);
        series.set(key, { labels: all, value: (series.get(key)?.value ?? 0) + value });
      }
    }
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
