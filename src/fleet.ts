import { EventEmitter } from 'node:events';
import { isDeepStrictEqual } from 'node:util';
import type { ProcessConfig, TunnelConfig } from './config/types.js';
import { ListenerHandover } from './forward/handover.js';
import { DEFAULTS } from './config/defaults.js';
import { refuseSameNames } from './config/settings.js';
import type { Limits } from './forward/hold.js';
import { ReplayBudget } from './resume/stream.js';
import { silentLogger, type Logger } from './log.js';
import { Sshkeep, type BoundForward, type SshkeepOptions, type TunnelReport } from './sshkeep.js';

/** What a reconfiguration did, by tunnel name. */
export interface FleetChange {
  added: string[];
  removed: string[];
  /** Replaced by a new tunnel of the same name: some setting differed. */
  changed: string[];
  /** The same objects, their clients untouched. */
  unchanged: string[];
}

/**
 * Every tunnel of one process, with the limits and the shutdown they share. Events: `added`
 * and `removed` when a reconfiguration starts a tunnel or takes one out (it drains), `retired`
 * once that one has stopped (observers such as the metrics follow them).
 */
export class Fleet extends EventEmitter<{ added: [Sshkeep]; removed: [Sshkeep]; retired: [Sshkeep] }> {
  /** Every tunnel (one per destination), in the order configured. */
  readonly tunnels: Sshkeep[];
  /** Tunnels a reconfiguration took out, finishing their streams. */
  readonly #retiring = new Set<Sshkeep>();
  /** Tunnels a reconfiguration started. */
  readonly #fromReload = new WeakSet<Sshkeep>();
  #draining = false;
  /** isStarted() once true stays true (a startup probe must not go back). */
  #started = false;
  readonly #logger: Logger;
  readonly #options: Omit<SshkeepOptions, 'limits'>;
  /** Shared by every tunnel, read at each client: a reconfiguration changes them in place. */
  readonly #limits: Limits;

  constructor(
    configs: TunnelConfig[],
    process: Pick<ProcessConfig, 'maxConnections' | 'maxHeld'> & Partial<Pick<ProcessConfig, 'resumeBufferTotalBytes'>>,
    options: Omit<SshkeepOptions, 'limits' | 'replayBudget'> = {},
  ) {
    super();
    this.#logger = options.logger ?? silentLogger;
    // --resume-buffer-total: one budget for every tunnel's replay buffers, those a reload starts included.
    this.#options = { ...options, replayBudget: new ReplayBudget(process.resumeBufferTotalBytes ?? DEFAULTS.resumeBufferTotalBytes) };
    this.#limits = {
      maxConnections: process.maxConnections,
      maxHeld: process.maxHeld,
      clients: () => this.clients(),
      held: () => this.#all().reduce((n, a) => n + a.held(), 0),
    };
    refuseSameNames(configs);
    this.tunnels = configs.map((c) => new Sshkeep(c, { ...this.#options, limits: this.#limits }));
  }

  /** The tunnels in service and those still finishing their streams after a reconfiguration. */
  #all(): Sshkeep[] {
    return [...this.tunnels, ...this.#retiring];
  }

  /** A tunnel whose start failed or was undone: never started, it only needs its listeners closed (nothing to log). */
  static async #abandon(a: Sshkeep, reason: string): Promise<void> {
    if (a.connection.state === 'idle') a.stopAccepting();
    else await a.stop(reason);
  }

  /**
   * Opens every listener of every tunnel, then starts connecting them all. Once a drain has
   * begun (a signal while a later tunnel still binds or asks for a passphrase), no further
   * tunnel starts, and a start the drain stopped is not a failure: what already listens drains.
   */
  async start(): Promise<BoundForward[]> {
    const bound: BoundForward[] = [];
    try {
      for (const app of this.tunnels) {
        if (this.#draining) break;
        bound.push(...(await app.start()));
      }
    } catch (err) {
      if (this.#draining) return bound;
      await Promise.all(this.tunnels.map((a) => Fleet.#abandon(a, 'start failed')));
      throw err;
    }
    return bound;
  }

  /**
   * Resolves when every tunnel has been ready once; rejects with the first fatal error (a
   * skipped tunnel's is none, nor is that of a tunnel a reconfiguration started). A tunnel a
   * reconfiguration took out before then no longer counts: the tunnels configured now do (a
   * reload that fixed a wrong address).
   */
  ready(): Promise<void> {
    const counted = (a: Sshkeep): Promise<void> =>
      a.ready().catch((err: unknown) => {
        if (!this.tunnels.includes(a)) return this.ready();
        // A tunnel a reload started is not fatal to the process: its failure was logged.
        if (!this.#fromReload.has(a)) throw err;
      });
    return Promise.all(this.tunnels.map(counted)).then(() => undefined);
  }

  /** Clients forwarded or held right now, across every tunnel (those finishing after a reconfiguration too). */
  clients(): number {
    return this.#all().reduce((n, a) => n + a.clients(), 0);
  }

  /** `clients()`, and connections waiting for the server's CLOSE after their local end went (Sshkeep.unfinished). */
  unfinished(): number {
    return this.#all().reduce((n, a) => n + a.unfinished(), 0);
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
    return this.readiness() === 'ready';
  }

  /** What /readyz says: `ready`, or why not, first the reasons that no tunnel row shows. */
  readiness(): 'ready' | 'draining' | 'at --max-connections' | 'not ready' {
    const { maxConnections } = this.#limits;
    const up = (a: Sshkeep) => a.state === 'ready' && a.remoteForwards.every((r) => r.state === 'bound');
    if (this.#draining) return 'draining';
    if (maxConnections > 0 && this.clients() >= maxConnections) return 'at --max-connections';
    return this.tunnels.every(up) ? 'ready' : 'not ready';
  }

  /**
   * Every tunnel has been ready at least once, or was skipped (--skip-failed-tunnels): what
   * the skip is for is that the healthy tunnels serve, and a startup probe that waited for a
   * refused key would have the orchestrator restart them all.
   */
  isStarted(): boolean {
    // At least one tunnel must have worked: skipping every one is not a start. Once started, a
    // tunnel a reload adds (which may fail as a skipped one would) does not make it unstarted.
    // A tunnel has started once ready with every -R answered: READY=1 promises forwards that carry traffic.
    const up = (a: Sshkeep) => a.connection.everReady && a.remoteForwards.every((r) => r.answered);
    this.#started ||= this.tunnels.every((a) => up(a) || a.skipped) && this.tunnels.some(up);
    return this.#started;
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
    this.#logger.info('draining: no longer accepting', { event: 'drain', phase: 'max', ms: maxDrainMs, open: this.unfinished() });
    await waitUntil(() => this.unfinished() === 0, maxDrainMs);
    return (await Promise.all(this.#all().map((a) => a.stop('drain ended')))).reduce((n, c) => n + c, 0);
  }

  /** Resets every open and held connection now, synchronously (the process is about to exit). */
  resetAll(reason: string): number {
    // Listeners closed first: a -L/-D Unix socket's file is removed by its close, never by exit.
    for (const a of this.#all()) a.stopAccepting();
    return this.#all().reduce((n, a) => n + a.resetAll(reason), 0);
  }

  /** Stops at once: every open connection is reset. */
  async stop(reason: string): Promise<number> {
    return (await Promise.all(this.#all().map((a) => a.stop(reason)))).reduce((n, c) => n + c, 0);
  }

  /** Every SSH connection of every tunnel is replaced make-before-break (SIGUSR2); streams open on the old ones get `drainMs`. */
  reconnect(reason: string, drainMs: number): void {
    for (const a of this.tunnels) a.reconnect(reason, drainMs);
  }

  /**
   * Applies a new configuration (a reload): tunnels with a new name start; those no longer
   * configured are taken out; those whose configuration differs in any way are replaced by a
   * new tunnel; the others are untouched, the same objects with the same clients. A tunnel taken
   * out stops accepting and its open streams run up to `maxDrainMs` (as on SIGTERM), then are
   * reset. A replacement on the address of a retiring forward takes over its listener, so no
   * client is refused. If a new tunnel cannot start (a key, a listener), every one started is
   * undone and the error thrown: the running configuration stays as it was. A tunnel started
   * here never ends the process: a refused first connect keeps retrying, as with
   * --skip-failed-tunnels. The limits apply from the next client. One call at a time (the
   * Reloader sees to it).
   */
  async reconfigure(configs: TunnelConfig[], process: Pick<ProcessConfig, 'maxConnections' | 'maxHeld' | 'maxDrainMs'>): Promise<FleetChange> {
    refuseSameNames(configs);
    const current = new Map(this.tunnels.map((a) => [a.name, a]));
    const kept = configs.map((c) => {
      const a = current.get(c.name);
      return a && isDeepStrictEqual(a.config, c) ? a : undefined;
    });
    const retiring = this.tunnels.filter((a) => !kept.includes(a));
    const handover = new ListenerHandover(retiring.flatMap((a) => a.forwards));
    const started = new Map<TunnelConfig, Sshkeep>();
    try {
      for (const [i, c] of configs.entries()) {
        if (kept[i]) continue;
        const a = new Sshkeep(c, { ...this.#options, limits: this.#limits, skipFailedTunnels: true });
        started.set(c, a);
        await a.start(handover);
      }
    } catch (err) {
      handover.undo();
      await Promise.all([...started.values()].map((a) => Fleet.#abandon(a, 'reload undone')));
      throw err;
    }
    this.#limits.maxConnections = process.maxConnections;
    this.#limits.maxHeld = process.maxHeld;
    this.tunnels.splice(0, this.tunnels.length, ...configs.map((c, i) => kept[i] ?? started.get(c)!));
    const names = new Set(configs.map((c) => c.name));
    for (const a of retiring) void this.#retire(a, names.has(a.name) ? 'replaced by a reload' : 'removed by a reload', process.maxDrainMs);
    for (const a of started.values()) {
      this.#fromReload.add(a);
      this.emit('added', a);
      a.ready().catch((err: Error) => {
        // Not when it stopped because it was taken out or the process is stopping.
        if (this.tunnels.includes(a) && !this.#draining) this.#logger.error(`tunnel ${a.name} stopped: ${err.message}`, { event: 'tunnel_failed', tunnel: a.name, error: err.message });
      });
    }
    // A SIGTERM while the tunnels started: the drain stopped accepting before these held the listeners.
    if (this.#draining) for (const a of started.values()) a.stopAccepting();
    const named = (list: Sshkeep[]) => list.map((a) => a.name);
    return {
      added: named([...started.values()].filter((a) => !current.has(a.name))),
      removed: named(retiring.filter((a) => !names.has(a.name))),
      changed: named(retiring.filter((a) => names.has(a.name))),
      unchanged: named(kept.filter((a) => a !== undefined)),
    };
  }

  /** A tunnel taken out by a reconfiguration: no new clients; open ones run up to `maxDrainMs`, then it stops. */
  async #retire(a: Sshkeep, reason: string, maxDrainMs: number): Promise<void> {
    this.#retiring.add(a);
    this.emit('removed', a);
    a.stopAccepting();
    this.#logger.info(`${reason}: no longer accepting; ${a.unfinished()} open client(s) get up to ${maxDrainMs} ms`, {
      event: 'drain', phase: 'reload', tunnel: a.name, open: a.unfinished(), ms: maxDrainMs,
    });
    await waitUntil(() => a.unfinished() === 0, maxDrainMs);
    const cut = await a.stop(reason);
    this.#retiring.delete(a);
    this.emit('retired', a);
    if (cut > 0) this.#logger.warn(`${reason}: ${cut} client(s) reset at the end of the drain`, { event: 'drain_end', tunnel: a.name, connectionsCut: cut });
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
