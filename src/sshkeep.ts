import { DEFAULTS } from './config/defaults.js';
import { isLoopbackAddress } from './config/forward-spec.js';
import type { TunnelConfig } from './config/types.js';
import { LocalForward } from './forward/local-forward.js';
import { silentLogger, type Logger } from './ops/logger.js';
import { hostKeyPolicy } from './tunnel/host-key.js';
import { loadIdentities, type Identity } from './tunnel/identities.js';
import type { Prompter } from './tunnel/prompter.js';
import { dial } from './tunnel/ssh-adapter.js';
import { Tunnel } from './tunnel/tunnel.js';
import { watchForWake } from './tunnel/wake-watch.js';
import { watchNetwork } from './tunnel/network-watch.js';

export interface SshkeepOptions {
  logger?: Logger;
  /** Asks for passphrases and passwords; omit where nobody can answer. */
  prompter?: Prompter;
  /** Tried on every encrypted identity before asking (SSHKEEP_PASSPHRASE). */
  passphrase?: string;
}

export interface BoundForward {
  spec: string;
  address: string;
  port: number;
}

/** One tunnel and its forwards: listen at once, connect, keep serving until stopped. */
export class Sshkeep {
  readonly tunnel: Tunnel;
  readonly forwards: LocalForward[];
  readonly #logger: Logger;
  readonly #config: TunnelConfig;
  readonly #options: SshkeepOptions;
  #identities: Identity[] = [];
  #firstReady: Promise<void> | undefined;
  #stopWatches: () => void = () => {};

  constructor(config: TunnelConfig, options: SshkeepOptions = {}) {
    this.#logger = (options.logger ?? silentLogger).child({ tunnel: config.name });
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
          maxHeld: config.maxHeld,
          heldTotal: () => this.forwards.reduce((n, f) => n + f.held, 0),
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
    const { identityFiles, identityFilesExplicit } = this.#config;
    const { passphrase, prompter } = this.#options;
    this.#identities = await loadIdentities(identityFiles, identityFilesExplicit, { passphrase, prompter }, this.#logger);
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

  /** Resolves when the tunnel is first ready; rejects with a HostKeyError or AuthError at the first connect. */
  ready(): Promise<void> {
    if (!this.#firstReady) return Promise.reject(new Error('start() first'));
    return this.#firstReady;
  }

  /** Stops accepting, resets what is still open, closes the tunnel. Returns how many connections were cut. */
  async stop(reason = 'shutdown'): Promise<number> {
    this.#stopWatches();
    for (const f of this.forwards) f.stopAccepting();
    const cut = this.forwards.reduce((n, f) => n + f.resetAll(reason), 0);
    await this.tunnel.stop(reason);
    return cut;
  }
}
