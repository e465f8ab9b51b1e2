import { DEFAULTS } from './config/defaults.js';
import { isLoopbackAddress } from './config/forward-spec.js';
import type { TunnelConfig } from './config/types.js';
import { LocalForward, type Limits } from './forward/local-forward.js';
import { silentLogger, type Logger } from './ops/logger.js';
import { hostKeyPolicy } from './tunnel/host-key.js';
import { loadIdentities, type Identity } from './tunnel/identities.js';
import type { Prompter } from './tunnel/prompter.js';
import { dial } from './tunnel/ssh-adapter.js';
import { Tunnel, type TunnelState } from './tunnel/tunnel.js';
import { watchForWake } from './tunnel/wake-watch.js';
import { watchNetwork } from './tunnel/network-watch.js';

export interface SshkeepOptions {
  logger?: Logger;
  /** Asks for passphrases and passwords; omit where nobody can answer. */
  prompter?: Prompter;
  /** Tried on every encrypted identity before asking (SSHKEEP_PASSPHRASE). */
  passphrase?: string;
  /** Accept identity files that group or others can read (OpenSSH refuses them). */
  insecureKeyPermissions?: boolean;
  /** Process-wide connection limits; by default this tunnel's own, with DEFAULTS.maxHeld and no cap. */
  limits?: Limits;
}

/** What /readyz reports of a tunnel. */
export interface TunnelReport {
  tunnel: string;
  state: TunnelState;
  since: string;
  everReady: boolean;
  rttMs: number | undefined;
  reconnects: number;
  active: number;
  held: number;
}

export interface BoundForward {
  spec: string;
  address: string;
  port: number;
}

/** One tunnel and its forwards: listen at once, connect, keep serving until stopped. */
export class Sshkeep {
  /** The destination as given: the `tunnel` label of logs and metrics. */
  readonly name: string;
  readonly tunnel: Tunnel;
  readonly forwards: LocalForward[];
  readonly #logger: Logger;
  readonly #config: TunnelConfig;
  readonly #options: SshkeepOptions;
  #identities: Identity[] = [];
  #firstReady: Promise<void> | undefined;
  #stopWatches: () => void = () => {};

  constructor(config: TunnelConfig, options: SshkeepOptions = {}) {
    this.name = config.name;
    this.#logger = (options.logger ?? silentLogger).child({ tunnel: config.name });
    const limits = options.limits ?? {
      maxConnections: 0,
      maxHeld: DEFAULTS.maxHeld,
      connections: () => this.connections(),
      held: () => this.held(),
    };
    const secretCache: { password?: string } = {};
    const hostKeys = hostKeyPolicy(config, this.#logger);
    this.#config = config;
    this.#options = options;
    this.tunnel = new Tunnel({
      logger: this.#logger,
      heartbeat: {
        intervalMs: config.keepaliveIntervalMs,
        ...(config.keepaliveTimeoutMs !== undefined && { timeoutMs: config.keepaliveTimeoutMs }),
        ...(config.keepaliveCountMax !== undefined && { countMax: config.keepaliveCountMax }),
      },
      dial: (signal) =>
        dial({
          host: config.hostName,
          port: config.port,
          connectTimeoutMs: config.connectTimeoutMs,
          tcpKeepaliveMs: config.keepaliveIntervalMs || DEFAULTS.keepaliveIntervalMs,
          auth: {
            username: config.user,
            agentSocket: config.identitiesOnly ? undefined : config.agentSocket,
            identities: this.#identities,
            prompter: options.prompter,
            host: config.hostName,
          },
          hostKeys,
          secretCache,
          signal,
        }),
    });
    this.forwards = config.forwards.map(
      (spec) =>
        new LocalForward(spec, {
          tunnel: this.tunnel,
          logger: this.#logger,
          holdTimeoutMs: config.holdTimeoutMs,
          holdBufferBytes: config.holdBufferBytes,
          limits,
          channelOpenTimeoutMs: DEFAULTS.channelOpenTimeoutMs,
        }),
    );
  }

  /**
   * Loads the identities, opens every listener (a ListenError if one cannot be),
   * then starts connecting. Returns the bound addresses; `ready()` tells when the tunnel is up.
   */
  async start(): Promise<BoundForward[]> {
    // Keys first, asking for passphrases now rather than at every reconnect; a bad key
    // is then a clean error before anything listens.
    const { identityFiles, identityFilesExplicit, inlineIdentities } = this.#config;
    const { passphrase, prompter, insecureKeyPermissions } = this.#options;
    const sources = { passphrase, prompter, insecurePermissions: insecureKeyPermissions };
    this.#identities = [
      ...(await loadIdentities(inlineIdentities, true, sources, this.#logger)),
      ...(await loadIdentities(identityFiles, identityFilesExplicit, sources, this.#logger)),
    ];
    const bound: BoundForward[] = [];
    try {
      for (const f of this.forwards) {
        const addr = await f.listen();
        bound.push({ spec: f.spec.spec, address: addr.address, port: addr.port });
        const fields = { event: 'listen', forward: f.name, address: addr.address, port: addr.port };
        if (isLoopbackAddress(f.spec.bindAddress)) this.#logger.info('listening', fields);
        else this.#logger.warn('listening on a non-loopback address: other hosts can use this tunnel', fields);
      }
    } catch (err) {
      for (const f of this.forwards) f.stopAccepting();
      throw err;
    }
    const stopWake = watchForWake((pausedMs) => this.tunnel.probeNow(`timers fired ${pausedMs} ms late: woke from sleep or suspension`));
    const stopNet = watchNetwork(() => {
      this.#logger.info('network interfaces changed', { event: 'network_change' });
      this.tunnel.probeNow('network interfaces changed');
    });
    this.#stopWatches = () => {
      stopWake();
      stopNet();
    };
    this.#firstReady = this.tunnel.start().catch(async (err: Error) => {
      await this.stop(err.message);
      throw err;
    });
    this.#firstReady.catch(() => {}); // observed through ready()
    return bound;
  }

  /** Clients forwarded or held right now. */
  connections(): number {
    return this.forwards.reduce((n, f) => n + f.active + f.held, 0);
  }

  /** Clients held right now. */
  held(): number {
    return this.forwards.reduce((n, f) => n + f.held, 0);
  }

  report(): TunnelReport {
    const t = this.tunnel;
    return {
      tunnel: this.name,
      state: t.state,
      since: new Date(t.since).toISOString(),
      everReady: t.everReady,
      rttMs: t.rttMs === undefined ? undefined : Math.round(t.rttMs * 100) / 100,
      reconnects: Math.max(0, t.generation - 1),
      active: this.forwards.reduce((n, f) => n + f.active, 0),
      held: this.held(),
    };
  }

  /** Stops accepting new clients (and the wake/network watches: nothing new will need them); open ones carry on. */
  stopAccepting(): void {
    this.#stopWatches();
    for (const f of this.forwards) f.stopAccepting();
  }

  /** Resolves when the tunnel is first ready; rejects with a HostKeyError or AuthError at the first connect. */
  ready(): Promise<void> {
    if (!this.#firstReady) return Promise.reject(new Error('start() first'));
    return this.#firstReady;
  }

  /** Stops accepting, resets what is still open, closes the tunnel. Returns how many connections were cut. */
  async stop(reason = 'shutdown'): Promise<number> {
    this.stopAccepting();
    const cut = this.forwards.reduce((n, f) => n + f.resetAll(reason), 0);
    await this.tunnel.stop(reason);
    return cut;
  }
}
