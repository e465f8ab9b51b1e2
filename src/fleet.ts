import type { ProcessConfig, TunnelConfig } from './config/types.js';
import { DEFAULTS } from './config/defaults.js';
import type { Limits } from './forward/hold.js';
import { ReplayBudget } from './resume/stream.js';
import { silentLogger, type Logger } from './log.js';
import { Sshkeep, type BoundForward, type SshkeepOptions, type TunnelReport } from './sshkeep.js';

/** Every tunnel of one process, with the limits and the shutdown they share. */
export class Fleet {
  /** Every tunnel (one per destination), in the order configured. */
  readonly tunnels: Sshkeep[];
  #draining = false;
  readonly #logger: Logger;

  constructor(
    configs: TunnelConfig[],
    private readonly process: Pick<ProcessConfig, 'maxConnections' | 'maxHeld'> & Partial<Pick<ProcessConfig, 'resumeBufferTotalBytes'>>,
    options: Omit<SshkeepOptions, 'limits' | 'replayBudget'> = {},
  ) {
    this.#logger = options.logger ?? silentLogger;
    const limits: Limits = {
      maxConnections: process.maxConnections,
      maxHeld: process.maxHeld,
      clients: () => this.clients(),
      held: () => this.tunnels.reduce((n, a) => n + a.held(), 0),
    };
    const replayBudget = new ReplayBudget(process.resumeBufferTotalBytes ?? DEFAULTS.resumeBufferTotalBytes);
    this.tunnels = configs.map((c) => new Sshkeep(c, { ...options, limits, replayBudget }));
  }

  /** Opens every listener of every tunnel, then starts connecting them all. */
  async start(): Promise<BoundForward[]> {
    const bound: BoundForward[] = [];
    try {
      for (const app of this.tunnels) bound.push(...(await app.start()));
    } catch (err) {
      // Tunnels that never started only need their listeners closed: nothing to log.
      await Promise.all(this.tunnels.map((a) => (a.connection.state === 'idle' ? a.stopAccepting() : a.stop('start failed'))));
      throw err;
    }
    return bound;
  }

  /** Resolves when every tunnel has been ready once; rejects with the first fatal error (a skipped tunnel's is none). */
  ready(): Promise<void> {
    return Promise.all(this.tunnels.map((a) => a.ready())).then(() => undefined);
  }

  /** Clients forwarded or held right now, across every tunnel. */
  clients(): number {
    return this.tunnels.reduce((n, a) => n + a.clients(), 0);
  }

  /** @deprecated since 0.2: `tunnels`. */
  get apps(): Sshkeep[] {
    return this.tunnels;
  }

  /** @deprecated since 0.2: `clients()`. */
  connections(): number {
    return this.clients();
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** Ready for traffic: every tunnel ready with its remote forwards bound, not draining, not at --max-connections. */
  isReady(): boolean {
    const { maxConnections } = this.process;
    const full = maxConnections > 0 && this.clients() >= maxConnections;
    const up = (a: Sshkeep) => a.connection.state === 'ready' && a.remoteForwards.every((r) => r.state === 'bound');
    return !this.#draining && !full && this.tunnels.every(up);
  }

  /**
   * Every tunnel has been ready at least once, or was skipped (--skip-failed-tunnels): what
   * the skip is for is that the healthy tunnels serve, and a startup probe that waited for a
   * refused key would have the orchestrator restart them all.
   */
  isStarted(): boolean {
    // At least one tunnel must have worked: skipping every one is not a start.
    return this.tunnels.every((a) => a.connection.everReady || a.skipped) && this.tunnels.some((a) => a.connection.everReady);
  }

  reports(): TunnelReport[] {
    return this.tunnels.map((a) => a.report());
  }

  /**
   * Graceful shutdown: keep accepting for `minDrainMs` (while endpoints learn the pod is
   * going), then stop accepting and let open streams run up to `maxDrainMs`, then reset
   * what is left. Resolves with how many connections were cut.
   */
  async drain(minDrainMs: number, maxDrainMs: number): Promise<number> {
    this.#draining = true;
    if (minDrainMs > 0) {
      this.#logger.info('draining: still accepting', { event: 'drain', phase: 'min', ms: minDrainMs });
      await waitUntil(() => false, minDrainMs);
    }
    for (const a of this.tunnels) a.stopAccepting();
    this.#logger.info('draining: no longer accepting', { event: 'drain', phase: 'max', ms: maxDrainMs, open: this.clients() });
    await waitUntil(() => this.clients() === 0, maxDrainMs);
    const cut = (await Promise.all(this.tunnels.map((a) => a.stop('drain ended')))).reduce((n, c) => n + c, 0);
    return cut;
  }

  /** Resets every open and held connection now, synchronously (the process is about to exit). */
  resetAll(reason: string): number {
    return this.tunnels.reduce((n, a) => n + a.resetAll(reason), 0);
  }

  /** Stops at once: every open connection is reset. */
  async stop(reason: string): Promise<number> {
    return (await Promise.all(this.tunnels.map((a) => a.stop(reason)))).reduce((n, c) => n + c, 0);
  }
}

/** Resolves when `done()` holds (checked every 50 ms) or after `ms`. */
function waitUntil(done: () => boolean, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const end = performance.now() + ms;
    const finish = () => {
      clearInterval(timer);
      resolve();
    };
    const timer = setInterval(() => {
      if (done() || performance.now() >= end) finish();
    }, Math.min(50, Math.max(1, ms)));
    if (done() || ms <= 0) finish();
  });
}
