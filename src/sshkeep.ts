import { EventEmitter } from 'node:events';
import { DEFAULTS } from './config/defaults.js';
import { isLocalOnly } from './config/forward-spec.js';
import type { TunnelConfig } from './config/types.js';
import { LocalForward } from './forward/local-forward.js';
import type { ListenerHandover } from './forward/handover.js';
import type { Limits } from './forward/hold.js';
import { RemoteForward, type RemoteForwardReport } from './forward/remote-forward.js';
import type { ConnectionResult } from './forward/result.js';
import { ConfigError, isFatalOnFirstConnect } from './errors.js';
import { silentLogger, type Logger } from './log.js';
import { hostKeyPolicy } from './ssh/host-key.js';
import { loadIdentities, newKeyMemory } from './ssh/identities.js';
import type { Prompter } from './ssh/prompter.js';
import { dialRoute, type Hop } from './ssh/route.js';
import type { SshSession } from './ssh/adapter.js';
import { CONNECTION_TUNING, HEARTBEAT_TUNING, remoteRetry } from './tuning.js';
import { currentLimits, type LegacyLimits } from './deprecated.js';
import { ConnectionPool, type SessionSource } from './ssh/pool.js';
import { SshConnection, type ConnectionState, type ConnectionStatus } from './ssh/connection.js';
import { watchForWake } from './ssh/wake-watch.js';
import { watchNetwork } from './ssh/network-watch.js';
import { AgentClient, type ResumeReport } from './resume/agent-client.js';
import { ReplayBudget } from './resume/stream.js';


export interface SshkeepOptions {
  logger?: Logger;
  /** Asks for passphrases and passwords; omit where nobody can answer. */
  prompter?: Prompter;
  /** Tried on every encrypted identity before asking (SSHKEEP_PASSPHRASE). */
  passphrase?: string;
  /** Accept identity files that group or others can read (OpenSSH refuses them). */
  insecureKeyPermissions?: boolean;
  /** Process-wide client limits; by default this tunnel's own, with DEFAULTS.maxHeld and no cap. */
  limits?: Limits | LegacyLimits;
  /**
   * --skip-failed-tunnels: an authentication or host key failure at the first connect does not
   * end the tunnel (nor, in a fleet, the process); it keeps retrying with backoff.
   */
  skipFailedTunnels?: boolean;
  /** --resume-buffer-total, shared by every tunnel of the process; by default this tunnel's own. */
  replayBudget?: ReplayBudget;
}

/** One forward's clients and bytes so far, named by the port it bound (`-L 0:…` included). */
export interface ForwardReport {
  name: string;
  kind: 'local' | 'dynamic' | 'remote';
  /** Clients being forwarded. */
  active: number;
  /** Clients waiting for a ready SSH connection (-L and -D only). */
  held: number;
  /** Bytes client → target and back, ended and live clients. */
  bytesUp: number;
  bytesDown: number;
}

/** How one client's connection through a forward ended. */
export interface ClientEnd {
  forward: string;
  kind: ForwardReport['kind'];
  result: ConnectionResult;
}

/** What /readyz reports of a tunnel, and what the status line and metrics read at each refresh. */
export interface TunnelReport {
  tunnel: string;
  state: ConnectionState;
  since: string;
  everReady: boolean;
  rttMs: number | undefined;
  reconnects: number;
  active: number;
  held: number;
  /** Not-ready time since the tunnel was first ready. */
  outageMs: number;
  /** --skip-failed-tunnels: the first connect was refused (auth, host key); it retries slowly. */
  skipped: boolean;
  /** Why the last connect failed, while no connect has succeeded since. */
  lastError: string | undefined;
  /** Every forward, -R included. */
  forwards: ForwardReport[];
  /** SSH connections ready, of --connections. */
  sshConnections: { ready: number; total: number };
  /** -R forwards: whether the server listens for each, and on which port. */
  remoteForwards: RemoteForwardReport[];
  /** --resume: whether the agent runs on the server (or why not), and the streams it carries; undefined without --resume. */
  resume: ResumeReport | undefined;
}

export interface BoundForward {
  spec: string;
  /** The address listened on, or the Unix socket path. */
  address: string;
  /** The port bound (the OS's choice for port 0); 0 for a Unix socket. */
  port: number;
}

/**
 * One tunnel and its forwards: listen at once, connect, keep serving until stopped. Observers
 * (metrics, the status line) read its `report()` and hear its events: the first SSH
 * connection's state changes and RTT samples, and each client's end.
 */
export class Sshkeep extends EventEmitter<{ status: [ConnectionStatus]; rtt: [ms: number]; clientEnd: [ClientEnd] }> {
  /** The tunnel's name (TunnelConfig.name: the host as given, or a --config tunnel's name): the `tunnel` label of logs and metrics. */
  readonly name: string;
  /** The first SSH connection: its state is the tunnel's, and it carries the remote forwards. */
  readonly connection: SshConnection;
  /** Every SSH connection (--connections); new clients go to the least loaded ready one. */
  readonly sshConnections: SshConnection[];
  readonly forwards: LocalForward[];
  readonly remoteForwards: RemoteForward[];
  readonly #logger: Logger;
  readonly #config: TunnelConfig;
  readonly #options: SshkeepOptions;
  readonly #hops: Hop[];
  #firstReady: Promise<void> | undefined;
  /** --skip-failed-tunnels: the first connect failed for good (auth, host key); it keeps retrying. */
  #skipped = false;
  #stopWatches: () => void = () => {};
  /** Where clients' channels come from: the connection, or the pool of them (--connections N). */
  readonly #source: SessionSource;
  /** The first start(): later calls return it. */
  #starting: Promise<BoundForward[]> | undefined;
  #stopped = false;
  /** Passphrases typed at start and keys already parsed: a reconnect reads the files again without asking or decrypting again. */
  readonly #keyMemory = newKeyMemory();
  /** The keys start() just read serve the first attempt; every later one reads them again. */
  #keysFresh = false;
  /** --resume: the server-side agent and the streams it holds. */
  readonly #resume: AgentClient | undefined;

  constructor(config: TunnelConfig, options: SshkeepOptions = {}) {
    super();
    this.name = config.name;
    this.#logger = (options.logger ?? silentLogger).child({ tunnel: config.name });
    const limits = options.limits ? currentLimits(options.limits) : {
      maxConnections: 0,
      maxHeld: DEFAULTS.maxHeld,
      clients: () => this.clients(),
      held: () => this.held(),
    };
    const hops: Hop[] = [...config.jumps, config].map((host) => ({
      host,
      hostKeys: hostKeyPolicy({ ...host, inlineKnownHosts: config.inlineKnownHosts, hostKeyFingerprints: host === config ? config.hostKeyFingerprints : [] }, this.#logger),
      secretCache: {},
      auth: {
        username: host.user,
        agentSocket: host.agentSocket,
        identitiesOnly: host.identitiesOnly,
        identities: [],
        prompter: options.prompter,
        host: host.hostName,
        certificateFiles: host.certificateFiles,
        pubkeyAlgorithms: host.algorithms.pubkey,
      },
    }));
    this.#config = config;
    this.#options = options;
    const newConnection = (member: number) =>
      new SshConnection({
        logger: member === 0 ? this.#logger : this.#logger.child({ connection: member + 1 }),
        ...CONNECTION_TUNING,
        fatalOnFirstConnect: !options.skipFailedTunnels,
        heartbeat: {
          intervalMs: config.keepaliveIntervalMs,
          ...HEARTBEAT_TUNING,
          ...(config.keepaliveTimeoutMs !== undefined && { timeoutMs: config.keepaliveTimeoutMs }),
          ...(config.keepaliveCountMax !== undefined && { countMax: config.keepaliveCountMax }),
        },
        dial: (signal) => this.#dial(signal),
      });
    this.sshConnections = Array.from({ length: config.connections }, (_, i) => newConnection(i));
    this.connection = this.sshConnections[0]!;
    const source = this.sshConnections.length > 1 ? new ConnectionPool(this.sshConnections) : this.connection;
    this.#source = source;
    this.#hops = hops;
    if (config.resume) {
      this.#resume = new AgentClient(source, {
        graceMs: config.resumeGraceMs,
        bufferBytes: config.resumeBufferBytes,
        budget: options.replayBudget ?? new ReplayBudget(DEFAULTS.resumeBufferTotalBytes),
        channelOpenTimeoutMs: DEFAULTS.channelOpenTimeoutMs,
        logger: this.#logger,
      });
      this.#resume.watch(this.sshConnections);
    }
    this.forwards = config.forwards.map(
      (spec) =>
        new LocalForward(spec, {
          source,
          logger: this.#logger,
          holdTimeoutMs: config.holdTimeoutMs,
          holdBufferBytes: config.holdBufferBytes,
          limits,
          channelOpenTimeoutMs: DEFAULTS.channelOpenTimeoutMs,
          socksAuth: config.socksAuth,
          resume: this.#resume,
          socksTimeoutMs: DEFAULTS.socksHandshakeTimeoutMs,
          socketHighWaterMarkBytes: DEFAULTS.localSocketHighWaterMarkBytes,
          listenRetryMs: DEFAULTS.listenRetryMs,
          listenRetryIntervalMs: DEFAULTS.listenRetryIntervalMs,
        }),
    );
    this.remoteForwards = config.remoteForwards.map(
      (spec) =>
        new RemoteForward(spec, {
          connection: this.connection,
          logger: this.#logger,
          connectTimeoutMs: DEFAULTS.channelOpenTimeoutMs,
          exitOnFailure: config.exitOnForwardFailure,
          retryDelay: remoteRetry,
          socketHighWaterMarkBytes: DEFAULTS.localSocketHighWaterMarkBytes,
          socksTimeoutMs: DEFAULTS.socksHandshakeTimeoutMs,
        }),
    );
    this.connection.on('status', (s) => this.emit('status', s));
    this.connection.on('rtt', (ms) => this.emit('rtt', ms));
    for (const f of [...this.forwards, ...this.remoteForwards]) {
      f.on('result', (result) => this.emit('clientEnd', { forward: f.name, kind: f.spec.type, result }));
    }
  }

  /**
   * Loads the identities, opens every listener (a ListenError if one cannot be), then starts
   * connecting. With a reload's `handover`, a forward on the address of a retiring one takes
   * over its listener instead of binding. Returns the bound addresses; `ready()` tells when the
   * tunnel is up.
   */
  start(handover?: ListenerHandover): Promise<BoundForward[]> {
    if (this.#stopped) return Promise.reject(new ConfigError(`tunnel ${this.name}: start() after stop(); a stopped tunnel does not start again, make a new one.`));
    // A second call is the first one: one set of listeners, watches and connections.
    this.#starting ??= this.#start(handover);
    return this.#starting;
  }

  async #start(handover: ListenerHandover | undefined): Promise<BoundForward[]> {
    // Keys first, asking for passphrases now and never at a reconnect; a bad key is then a
    // clean error before anything listens.
    await this.#loadKeys(this.#options.prompter);
    this.#keysFresh = true;
    const claimed = new Map(this.forwards.flatMap((f) => {
      const from = handover?.claim(f.spec);
      return from ? [[f, from] as const] : [];
    }));
    // Every bind that can fail comes before any listener is taken over: a failure leaves the retiring forwards as they were.
    try {
      for (const f of this.forwards) if (!claimed.has(f)) await f.listen();
    } catch (err) {
      for (const f of this.forwards) f.stopAccepting();
      handover?.unclaim(claimed.values());
      throw err;
    }
    for (const [f, from] of claimed) handover!.take(f, from);
    const bound: BoundForward[] = [];
    for (const f of this.forwards) {
      const at = await f.listen(); // where it listens, bound above or taken over
      const [address, port] = at.kind === 'tcp' ? [at.host, at.port] : [at.path, 0];
      bound.push({ spec: f.spec.spec, address, port });
      const fields = { event: 'listen', forward: f.name, address, port, ...(claimed.has(f) && { takenOver: true }) };
      if (isLocalOnly(at)) this.#logger.info('listening', fields);
      else this.#logger.warn('listening on a non-loopback address: other hosts can use this tunnel', fields);
    }
    const probeAll = (why: string) => this.sshConnections.forEach((c) => c.probeNow(why));
    const stopWake = watchForWake((pausedMs) => {
      this.#logger.info(`timers fired ${pausedMs} ms late: woke from sleep or suspension; probing the connections`, { event: 'wake', pausedMs });
      probeAll(`timers fired ${pausedMs} ms late: woke from sleep or suspension`);
    });
    const stopNet = watchNetwork(
      () => {
        this.#logger.info('network interfaces changed', { event: 'network_change' });
        probeAll('network interfaces changed');
      },
      (err) => this.#logger.debug('network interfaces not readable now; skipped', { event: 'network_unreadable', error: err.message }),
    );
    this.#stopWatches = () => {
      stopWake();
      stopNet();
    };
    for (const r of this.remoteForwards) r.start();
    const remoteFirst = () => (this.#config.exitOnForwardFailure ? Promise.all(this.remoteForwards.map((r) => r.firstResult)) : undefined);
    // The extra connections start once the first is up: a bad key or host key fails once, not N times.
    const others = () => void this.sshConnections.slice(1).forEach((c) => c.start().catch(() => {}));
    this.#firstReady = this.connection.start().then(others).then(remoteFirst).then(() => undefined).catch(async (err: Error) => {
      await this.stop(err.message);
      throw err;
    });
    this.#firstReady.catch(() => {}); // observed through ready()
    return bound;
  }

  /** The configuration it runs from: a reload compares it with the file's new one. */
  get config(): TunnelConfig {
    return this.#config;
  }

  /**
   * Every SSH connection is replaced make-before-break (SIGUSR2): a new one is dialled while
   * the current one serves; once ready it takes new clients, and the old one closes when its
   * streams end, or after `drainMs`.
   */
  reconnect(reason: string, drainMs: number): void {
    const state = this.connection.state;
    const what = state === 'ready'
      ? `dialling a new SSH connection; open streams stay on the current one until they end, ${drainMs} ms at most (--max-drain)`
      : `not connected (${state}): the next dial is made now`;
    this.#logger.info(`reconnecting (${reason}): ${what}`, { event: 'reconnect_request', reason, state, active: this.clients(), drainMs });
    for (const c of this.sshConnections) c.reconnect(reason, drainMs);
  }

  /**
   * Reads every hop's identity files (and SSHKEEP_IDENTITY) into its auth plan. Before each
   * connect, as OpenSSH does, so a rotated key needs no restart; without a prompter then, the
   * passphrases typed at start are tried instead.
   */
  async #loadKeys(prompter: Prompter | undefined): Promise<void> {
    const { passphrase, insecureKeyPermissions } = this.#options;
    const sources = { passphrase, prompter, insecurePermissions: insecureKeyPermissions, memory: this.#keyMemory };
    const inline = await loadIdentities(this.#config.inlineIdentities, true, sources, this.#logger);
    for (const hop of this.#hops) {
      const files = await loadIdentities(hop.host.identityFiles, hop.host.identityFilesExplicit, sources, this.#logger);
      hop.auth.identities = [...inline.identities, ...files.identities];
      hop.auth.missingIdentityFiles = files.missing;
    }
  }

  /**
   * One connect attempt along the route, with the keys read afresh (known_hosts is read at
   * each verification). A key that no longer loads fails this attempt only: the dial loop
   * logs why and retries with backoff.
   */
  async #dial(signal: AbortSignal): Promise<SshSession> {
    try {
      if (this.#keysFresh) this.#keysFresh = false;
      else await this.#loadKeys(undefined);
      return await dialRoute(this.#hops, {
        tcpKeepaliveMs: this.#config.keepaliveIntervalMs || DEFAULTS.keepaliveIntervalMs,
        signal,
        logger: this.#logger,
        channelCloseTimeoutMs: DEFAULTS.channelCloseTimeoutMs,
      });
    } catch (err) {
      this.#noteFirstConnectFailure(err);
      throw err;
    }
  }

  /**
   * Skipped (--skip-failed-tunnels): never ready, its first connect refused for a reason a
   * person must fix. It keeps dialling; a fleet's startup does not wait for it.
   */
  get skipped(): boolean {
    return this.#skipped && !this.connection.everReady;
  }

  #noteFirstConnectFailure(err: unknown): void {
    if (!this.#options.skipFailedTunnels || this.#skipped || this.connection.everReady || !isFatalOnFirstConnect(err)) return;
    this.#skipped = true;
    this.#logger.warn('first connect refused: this tunnel keeps retrying, the others run without it (--skip-failed-tunnels)', {
      event: 'skipped', error: (err as Error).message,
    });
  }

  /** Clients forwarded or held right now, remote forwards' included (what --max-connections counts). */
  clients(): number {
    return this.forwards.reduce((n, f) => n + f.clients, 0) + this.remoteForwards.reduce((n, f) => n + f.open, 0);
  }

  /** `clients()`, and connections whose local end has gone while their channel waits for the server's CLOSE: what a drain waits for. */
  unfinished(): number {
    return this.forwards.reduce((n, f) => n + f.unfinished, 0) + this.remoteForwards.reduce((n, f) => n + f.active, 0);
  }

  /** @deprecated since 0.2: `connection` (the first SSH connection). */
  get tunnel(): SshConnection {
    return this.connection;
  }

  /** @deprecated since 0.2: `sshConnections`. */
  get tunnels(): SshConnection[] {
    return this.sshConnections;
  }

  /** @deprecated since 0.2: `clients()`. */
  connections(): number {
    return this.clients();
  }

  /** Clients held right now. */
  held(): number {
    return this.forwards.reduce((n, f) => n + f.held, 0);
  }

  /** Ready while any of its SSH connections is (--connections N); otherwise the first one's state. */
  get state(): ConnectionState {
    return this.#source.state;
  }

  report(): TunnelReport {
    const t = this.connection;
    const ready = this.sshConnections.filter((c) => c.state === 'ready');
    return {
      tunnel: this.name,
      state: this.state,
      since: new Date(ready.length > 0 ? Math.min(...ready.map((c) => c.since)) : t.since).toISOString(),
      everReady: t.everReady,
      rttMs: t.rttMs === undefined ? undefined : Math.round(t.rttMs * 100) / 100,
      reconnects: this.sshConnections.reduce((n, c) => n + Math.max(0, c.generation - 1), 0),
      active: [...this.forwards, ...this.remoteForwards].reduce((n, f) => n + f.active, 0),
      held: this.held(),
      outageMs: t.outageMs(),
      skipped: this.skipped,
      lastError: t.lastError,
      forwards: [...this.forwards, ...this.remoteForwards].map((f) => {
        const { up, down } = f.bytes();
        return { name: f.name, kind: f.spec.type, active: f.active, held: f instanceof LocalForward ? f.held : 0, bytesUp: up, bytesDown: down };
      }),
      sshConnections: { ready: this.sshConnections.filter((c) => c.state === 'ready').length, total: this.sshConnections.length },
      remoteForwards: this.remoteForwards.map((r) => r.report()),
      resume: this.#resume?.report(),
    };
  }

  /** Stops accepting new clients (and the wake/network watches: nothing new will need them); open ones carry on. */
  stopAccepting(): void {
    this.#stopWatches();
    for (const f of this.forwards) f.stopAccepting();
    for (const r of this.remoteForwards) r.stopAccepting();
  }

  /**
   * Resolves when the tunnel is first ready; rejects with a HostKeyError or AuthError at the
   * first connect (with skipFailedTunnels it waits on instead, while the tunnel retries).
   */
  ready(): Promise<void> {
    if (this.#firstReady) return this.#firstReady;
    if (this.#starting) return this.#starting.then(() => this.#firstReady!);
    return Promise.reject(new ConfigError(`tunnel ${this.name}: ready() before start(); call start() first.`));
  }

  /** Resets every open and held connection now. Returns how many were cut. */
  resetAll(reason: string): number {
    return this.forwards.reduce((n, f) => n + f.resetAll(reason), 0) + this.remoteForwards.reduce((n, f) => n + f.resetAll(reason), 0);
  }

  /** Stops accepting, resets what is still open, closes the SSH connections. Returns how many clients were cut. */
  async stop(reason = 'shutdown'): Promise<number> {
    this.#stopped = true;
    this.stopAccepting();
    const cut = this.resetAll(reason);
    await this.#resume?.goodbye();
    await Promise.all(this.sshConnections.map((c) => c.stop(reason)));
    return cut;
  }
}
