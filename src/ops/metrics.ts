import client from 'prom-client';
import type { Sshkeep } from '../sshkeep.js';
import { RESULTS_OF } from '../forward/result.js';
import type { TunnelState } from '../tunnel/tunnel.js';

const STATES: TunnelState[] = ['idle', 'connecting', 'ready', 'suspect', 'reconnecting', 'closed'];

/**
 * sshkeep's Prometheus metrics. Byte counts are read from the sockets' own counters
 * when Prometheus scrapes; nothing is counted per chunk. Every series a tunnel can have
 * exists at 0 from the first scrape, so rate() and alerts see it before it first moves.
 */
export class Metrics {
  readonly registry = new client.Registry();
  readonly #apps: Sshkeep[] = [];
  readonly #up = new client.Gauge({ name: 'sshkeep_tunnel_up', help: '1 when the tunnel is ready', labelNames: ['tunnel'], registers: [this.registry] });
  readonly #state = new client.Gauge({ name: 'sshkeep_tunnel_state', help: '1 for the state the tunnel is in', labelNames: ['tunnel', 'state'], registers: [this.registry] });
  readonly #reconnects = new client.Counter({ name: 'sshkeep_tunnel_reconnects_total', help: 'SSH connections made after the first', labelNames: ['tunnel'], registers: [this.registry] });
  readonly #rtt = new client.Histogram({
    name: 'sshkeep_heartbeat_rtt_seconds',
    help: 'Round-trip time of heartbeat probes',
    labelNames: ['tunnel'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly #total = new client.Counter({
    name: 'sshkeep_connections_total',
    help: 'Client connections by how they ended',
    labelNames: ['tunnel', 'forward', 'result'],
    registers: [this.registry],
    // At each scrape rather than in watch(): a forward is named by its bound port once it listens.
    collect: () => {
      for (const app of this.#apps) {
        for (const f of [...app.forwards, ...app.remoteForwards]) {
          for (const result of RESULTS_OF[f.spec.type]) this.#total.inc({ tunnel: app.name, forward: f.name, result }, 0);
        }
      }
    },
  });

  constructor() {
    // Event-loop lag sampled once a second: prom-client's default 10 ms wakes the process 100 times a
    // second, about 1 % of a core on an idle tunnel.
    client.collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 1000 });
    const apps = this.#apps;
    new client.Gauge({
      name: 'sshkeep_connections_active',
      help: 'Client connections being forwarded',
      labelNames: ['tunnel', 'forward'],
      registers: [this.registry],
      collect() {
        for (const app of apps) for (const f of [...app.forwards, ...app.remoteForwards]) this.set({ tunnel: app.name, forward: f.name }, f.active);
      },
    });
    new client.Gauge({
      name: 'sshkeep_remote_forward_bound',
      help: '1 when the server listens for a remote forward (-R), else 0',
      labelNames: ['tunnel', 'forward'],
      registers: [this.registry],
      collect() {
        for (const app of apps) for (const f of app.remoteForwards) this.set({ tunnel: app.name, forward: f.name }, f.state === 'bound' ? 1 : 0);
      },
    });
    new client.Gauge({
      name: 'sshkeep_connections_held',
      help: 'Client connections waiting for a ready tunnel',
      labelNames: ['tunnel', 'forward'],
      registers: [this.registry],
      collect() {
        for (const app of apps) for (const f of app.forwards) this.set({ tunnel: app.name, forward: f.name }, f.held);
      },
    });
    new client.Counter({
      name: 'sshkeep_bytes_total',
      help: 'Bytes forwarded; up = client to target',
      labelNames: ['tunnel', 'forward', 'direction'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const app of apps) {
          for (const f of [...app.forwards, ...app.remoteForwards]) {
            const { up, down } = f.bytes();
            this.inc({ tunnel: app.name, forward: f.name, direction: 'up' }, up);
            this.inc({ tunnel: app.name, forward: f.name, direction: 'down' }, down);
          }
        }
      },
    });
    new client.Counter({
      name: 'sshkeep_outage_seconds_total',
      help: 'Time a tunnel that had been ready spent not ready',
      labelNames: ['tunnel'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const app of apps) this.inc({ tunnel: app.name }, app.tunnel.outageMs() / 1000);
      },
    });
  }

  /** Starts reporting one tunnel and its forwards. */
  watch(app: Sshkeep): void {
    this.#apps.push(app);
    const tunnel = app.name;
    const setState = (current: TunnelState) => {
      this.#up.set({ tunnel }, current === 'ready' ? 1 : 0);
      for (const s of STATES) this.#state.set({ tunnel, state: s }, s === current ? 1 : 0);
    };
    setState(app.tunnel.state);
    this.#reconnects.inc({ tunnel }, 0);
    this.#rtt.zero({ tunnel });
    const reconnects = this.#reconnects.labels({ tunnel });
    const rtt = this.#rtt.labels({ tunnel });
    let generation = app.tunnel.generation;
    app.tunnel.on('status', (s) => {
      setState(s.to);
      if (s.to !== 'ready' || s.generation === generation) return;
      if (generation > 0) reconnects.inc(); // a new connection, not the first, not a recovery
      generation = s.generation;
    });
    app.tunnel.on('rtt', (ms) => rtt.observe(ms / 1000));
    for (const f of [...app.forwards, ...app.remoteForwards]) {
      f.on('result', (result) => this.#total.inc({ tunnel, forward: f.name, result }));
    }
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
