/**
 * The one adapter around ssh2, and its only runtime user: a new Client per attempt, host
 * keys verified, sockets tuned, synchronous throws wrapped, ssh2's `err.level` strings
 * translated into sshkeep's named errors here and nowhere else; key parsing, the key objects
 * that present certificates and agent identities to ssh2, CA signature checks, ssh2's
 * algorithm lists and the native-binding probe too, so an ssh2 upgrade is checked against
 * this one file (and the patch in patches/).
 */
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import { createPublicKey, verify as verifySignature } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';
import type { LocalSocket } from '../local-socket.js';
import ssh2 from 'ssh2';
import type {
  BaseAgent, Channel, CipherAlgorithm, ClientChannel, ConnectConfig, KexAlgorithm, MacAlgorithm, ParsedKey, ServerHostKeyAlgorithm, SigningRequestOptions,
} from 'ssh2';
import type { AlgorithmCatalogue } from '../config/algorithms.js';
import { formatEndpoint } from '../config/forward-spec.js';
import type { Algorithms, Endpoint } from '../config/types.js';
import { AuthError, ChannelOpenError, ConnectError, HostKeyError, quoted } from '../errors.js';
import { AgentClient, RSA_SHA2_256, RSA_SHA2_512, type AgentIdentity } from './agent.js';
import { authHandler, type AuthPlan, type KeyMaker } from './auth.js';
import { certifiedKeyType, isCertificateType, parseCertificate, type Certificate } from './certificate.js';
import { queuedDeadline, type CancelDeadline } from './deadline.js';
import { LeanChannel, takesViews } from './lean-channel.js';
import type { HeartbeatLink } from './heartbeat.js';
import type { HostKeyPolicy } from './host-key.js';
import { WireReader, wireStrings } from './wire.js';

export interface DialOptions {
  /** `host:port` of the server, for messages. */
  target: string;
  /** What carries the SSH connection: a TCP socket, a channel of the previous hop, a ProxyCommand's stdio. */
  sock: Duplex;
  connectTimeoutMs: number;
  auth: AuthPlan;
  hostKeys: HostKeyPolicy;
  /** Reused across attempts so a password typed once serves every reconnect. */
  secretCache: { password?: string };
  /** Compression (-C): zlib is asked for first; otherwise none is (as OpenSSH). */
  compression?: boolean;
  /** KexAlgorithms, Ciphers, MACs when given (ssh2's defaults otherwise). */
  algorithms?: Pick<Algorithms, 'kex' | 'cipher' | 'mac'>;
  /** Abandons the attempt (the connection is stopping, or no longer needs this dial). */
  signal?: AbortSignal;
  /** A channel whose CLOSE the server leaves unanswered this long is closed as if it had answered; without it, never (OpenSSH). */
  channelCloseTimeoutMs?: number;
}

/** ssh2 speaks both zlib methods; the delayed one first, as OpenSSH's -C (no compression before authentication). */
const COMPRESSION_FIRST = ['zlib@openssh.com', 'zlib', 'none'] as const;

/** RFC 4254 channel-open failure reason codes, by OpenSSH's names. */
const OPEN_FAILURE: Record<number, string> = {
  1: 'administratively-prohibited',
  2: 'connect-failed',
  3: 'unknown-channel-type',
  4: 'resource-shortage',
};

/** A connection the server forwards back to us (-R); accept() gives the channel, reject() refuses it. */
export interface IncomingConnection {
  /** The connection's channel as a stream (a SOCKS handshake reads it so). */
  accept(): Channel;
  /** The connection's channel for a pump: a LeanChannel where ssh2 is as it knows it, else the Channel. */
  acceptForward(): ForwardChannel;
  reject(): void;
  /** Who connected to the server's listener, for logs. */
  origin: string;
}

/**
 * OpenSSH reports every failed connect as connect-failed, with the cause only in the
 * description (strerror or getaddrinfo's message): name the causes a client can act on.
 */
function openFailureReason(code: number, description: string): string {
  const name = OPEN_FAILURE[code] ?? `reason-${code}`;
  if (name !== 'connect-failed') return name;
  if (/name or service not known|name resolution|nodename nor servname|no address associated/i.test(description)) return 'unresolvable';
  if (/no route to host|unreachable/i.test(description)) return 'host-unreachable';
  if (/timed out/i.test(description)) return 'timeout';
  return name;
}

/**
 * One established SSH connection. `close` is its one "down" signal, emitted once.
 * It is also the heartbeat's link: it knows when the server last sent anything.
 * Over jump hosts it is the last hop's connection, and it closes with any hop under it.
 * `unansweredClose` tells of a channel the server never closed in answer to ours (see #track).
 */
export class SshSession extends EventEmitter<{ close: [reason: string]; unansweredClose: [count: number, waitedMs: number] }> implements HeartbeatLink {
  #closed = false;
  #closeReason = '';
  #lastInboundAt = performance.now();
  #channels = 0;
  /** Channels closed here because the server left our CLOSE unanswered. */
  #unansweredCloses = 0;
  #endWhenIdle = false;
  #corked = false;
  /** Remote forwards bound on this connection, by the address the server reports back. */
  readonly #incoming = new Map<string, (conn: IncomingConnection) => void>();
  /** The opens each abandon signal gives up: one 'abort' listener per signal, not one per open (an EventTarget's are costly). */
  readonly #abandonable = new WeakMap<AbortSignal, Set<() => void>>();
  /** ssh2's client is as LeanChannel knows it (its protocol is set once the connection is up): forwards get lean channels. */
  readonly #lean: boolean;

  constructor(
    private readonly client: ssh2.Client,
    private readonly sock: Duplex,
    readonly description: string,
    /** The jump hosts' connections this one runs over, first hop first. */
    via: SshSession[] = [],
    /** How long the server gets to answer our CLOSE of a channel (see #track); undefined: for ever. */
    private readonly channelCloseTimeoutMs?: number,
  ) {
    super();
    this.#lean = LeanChannel.drives(client);
    this.setMaxListeners(0); // one listener per forwarded connection
    // Any bytes from the server prove it alive; a second 'data' listener costs one call per chunk.
    sock.on('data', () => (this.#lastInboundAt = performance.now()));
    let lastError: Error | undefined;
    client.on('error', (err) => (lastError = err));
    client.on('close', () => {
      this.#closed = true;
      this.#closeReason = lastError ? describe(lastError) : 'connection closed by server';
      for (const hop of via) hop.end();
      this.emit('close', this.#closeReason);
    });
    for (const hop of via) {
      hop.once('close', (why) => {
        lastError ??= new Error(`jump host ${hop.description} lost: ${why}`);
        client.destroy();
      });
    }
    const route = (key: string, origin: string, accept: () => Channel, reject: () => void) => {
      const handler = this.#incoming.get(key);
      if (!handler) return reject();
      const lean = this.#lean;
      handler({ accept: () => this.#track(accept()), acceptForward: () => this.#track(lean ? madeLean(accept()) : accept()), reject, origin });
    };
    client.on('tcp connection', (info, accept, reject) => route(`${info.destIP}:${info.destPort}`, `${info.srcIP}:${info.srcPort}`, accept, reject));
    client.on('unix connection', (info, accept, reject) => route(info.socketPath, info.socketPath, accept, reject));
  }

  /**
   * Holds this connection's writes until the event loop's check phase, so that the SSH packets
   * of every channel written in this turn of the loop leave in one system call, as OpenSSH's
   * poll loop sends them. Called as a client's bytes arrive, before they are written.
   */
  coalesceWrites(): void {
    if (this.#corked) return;
    this.#corked = true;
    this.sock.cork();
    setImmediate(this.#uncork);
  }

  readonly #uncork = (): void => {
    this.#corked = false;
    this.sock.uncork();
  };

  lastInboundAt(): number {
    return this.#lastInboundAt;
  }

  /**
   * Sends keepalive@openssh.com with want-reply. ssh2 has no public call for it: this is how
   * its own keepalive does it (a callback queued for the global-request reply, then ping()).
   */
  sendProbe(onReply: () => void): void {
    if (this.#closed) return;
    const internals = this.client as unknown as { _callbacks: (() => void)[]; _protocol: { ping(): void } };
    internals._callbacks.push(onReply);
    internals._protocol.ping();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Opens a channel to `target` (direct-tcpip, or direct-streamlocal for a Unix socket);
   * rejects with a ChannelOpenError after `timeoutMs`: `tunnel-lost` if nothing at all came from
   * the server meanwhile (the heartbeat's probe replies included: the link, not the target, is
   * what failed), else `timeout`. `abandon` gives up waiting for the server's answer with reason
   * `tunnel-lost`. Either `tunnel-lost` means nothing reached the target yet, so the open can be
   * re-issued; a channel that opens afterwards is closed unused.
   */
  openChannel(target: Endpoint, src: { address: string; port: number }, timeoutMs: number, abandon?: AbortSignal): Promise<ClientChannel> {
    return this.#open(target, src, timeoutMs, abandon, asOpened);
  }

  /**
   * openChannel() for a forward's connection: a LeanChannel in place of ssh2's Channel, unless
   * ssh2's internals are not as LeanChannel knows them (then the Channel).
   */
  openForward(target: Endpoint, src: { address: string; port: number }, timeoutMs: number, abandon?: AbortSignal): Promise<ForwardChannel> {
    if (!this.#lean) return this.openChannel(target, src, timeoutMs, abandon);
    return this.#open<ForwardChannel>(target, src, timeoutMs, abandon, asLean, LeanChannel.make);
  }

  /** openChannel(), the opened channel made into what the caller uses by `make`; `makeChannel`: what ssh2 makes it of (patch 007). */
  #open<T extends ForwardChannel>(target: Endpoint, src: { address: string; port: number }, timeoutMs: number, abandon: AbortSignal | undefined, make: (channel: ClientChannel) => T, makeChannel?: typeof LeanChannel.make): Promise<T> {
    const where = formatEndpoint(target);
    return new Promise((resolve, reject) => {
      if (this.#closed) return reject(new ChannelOpenError(`SSH connection lost: ${this.#closeReason}`, 'tunnel-lost'));
      let settled = false;
      const giveUp = (error: ChannelOpenError) => {
        settled = true;
        cancelDeadline();
        stopWatching?.();
        reject(error);
      };
      const stopWatching = abandon && this.#onAbandon(abandon, () => giveUp(new ChannelOpenError('channel open abandoned: another connection took over from a silent one', 'tunnel-lost')));
      const sentAt = performance.now();
      const cancelDeadline = queuedDeadline(() => {
        if (settled) return; // the answer was in the socket, read by this turn's poll phase
        if (this.#lastInboundAt < sentAt) giveUp(new ChannelOpenError(`nothing came from the server in the ${timeoutMs} ms since the channel to ${where} was asked for: the link is down`, 'tunnel-lost'));
        else giveUp(new ChannelOpenError(`channel to ${where} did not open within ${timeoutMs} ms`, 'timeout'));
      }, timeoutMs);
      const onOpen = (err: (Error & { reason?: number }) | undefined, channel: ClientChannel) => {
        cancelDeadline();
        stopWatching?.();
        if (settled) {
          // The open outlived its deadline: nobody is waiting for this channel.
          if (!err) closeUnused(channel);
          return;
        }
        settled = true;
        if (!err && !carriesData(channel)) {
          closeUnused(channel);
          return reject(new ChannelOpenError(`server opened ${where} with a maximum packet size of 0: nothing could be sent on it`, 'connect-failed'));
        }
        if (!err) return resolve(this.#track(make(channel)));
        // No reason code: the server never answered (the connection is going or gone), so
        // nothing reached the target and the open can be re-issued elsewhere.
        const reason = err.reason !== undefined ? openFailureReason(err.reason, err.message) : 'tunnel-lost';
        reject(new ChannelOpenError(`server could not open ${where}: ${err.message.replace(/^\(SSH\) /, '')}`, reason));
      };
      if (makeChannel) Object.assign(onOpen, { makeChannel });
      try {
        if (target.kind === 'tcp') this.client.forwardOut(src.address, src.port, target.host, target.port, onOpen);
        else this.client.openssh_forwardOutStreamLocal(target.path, onOpen);
      } catch (err) {
        // ssh2 throws "Not connected" when its socket can no longer be written: this
        // connection is finished; say so now rather than when the close event comes.
        onOpen(err as Error, undefined as unknown as ClientChannel);
        this.destroy();
      }
    });
  }

  /**
   * Runs `command` over an exec channel (no terminal), writes `input` to its stdin and closes
   * stdin; resolves with the channel, whose stdout the caller reads. Rejects when the server
   * refuses the channel or the exec, or does not answer within `timeoutMs`.
   */
  exec(command: string, input: Buffer | string, timeoutMs: number): Promise<ClientChannel> {
    return new Promise((resolve, reject) => {
      if (this.#closed) return reject(new Error(`SSH connection lost: ${this.#closeReason}`));
      let settled = false;
      const timer = setTimeout(() => {
        settled = true;
        reject(new Error(`exec did not start within ${timeoutMs} ms`));
      }, timeoutMs);
      const onExec = (err: Error | undefined, channel: ClientChannel) => {
        clearTimeout(timer);
        if (settled) {
          if (!err) closeUnused(channel);
          return;
        }
        settled = true;
        if (err) return reject(new Error(err.message.replace(/^\(SSH\) /, '')));
        if (!carriesData(channel)) {
          closeUnused(channel);
          return reject(new Error('the server opened the exec channel with a maximum packet size of 0: nothing could be sent on it'));
        }
        this.#track(channel);
        channel.end(input);
        resolve(channel);
      };
      try {
        this.client.exec(command, onExec);
      } catch (err) {
        onExec(err as Error, undefined as unknown as ClientChannel);
      }
    });
  }

  /** Has `signal`'s abort call `giveUp` (unless already aborted, as addEventListener would); returns what stops that. */
  #onAbandon(signal: AbortSignal, giveUp: () => void): () => void {
    let waiting = this.#abandonable.get(signal);
    if (!waiting) {
      const opens = (waiting = new Set());
      this.#abandonable.set(signal, opens);
      signal.addEventListener('abort', () => [...opens].forEach((g) => g()), { once: true });
    }
    waiting.add(giveUp);
    return () => waiting.delete(giveUp);
  }

  /**
   * Counts a channel open on this connection until it closes. ssh2 emits 'close' only once the
   * server's CLOSE has come, and keeps the channel (and its id) till then: every CLOSE of ours,
   * whoever sends it (a Pump, ssh2 once both ends ended), starts one deadline, cancelled by the
   * server's answer. A server that lets it run out is broken: the channel is closed here as its
   * CLOSE would have closed it, so that it stops counting, in this count and in its connection's.
   */
  #track<T extends ForwardChannel>(channel: T): T {
    this.#channels++;
    let cancelUnanswered: CancelDeadline | undefined;
    const waitMs = this.channelCloseTimeoutMs;
    if (waitMs !== undefined) {
      const sendClose = channel.close;
      channel.close = () => {
        sendClose.call(channel);
        if (cancelUnanswered === undefined && awaitsClose(channel)) cancelUnanswered = queuedDeadline(() => this.#closeUnanswered(channel, waitMs), waitMs);
      };
    }
    channel.once('close', () => {
      cancelUnanswered?.();
      this.#channels--;
      if (this.#endWhenIdle && this.#channels === 0) this.end();
    });
    return channel;
  }

  #closeUnanswered(channel: ForwardChannel, waitedMs: number): void {
    if (this.#closed || !awaitsClose(channel)) return; // the connection's end closes it
    this.emit('unansweredClose', ++this.#unansweredCloses, waitedMs);
    closeAsAnswered(channel);
  }

  /**
   * Asks the server to listen at `listen` (tcpip-forward, or streamlocal-forward for a Unix
   * socket) and hand each connection to `onConnection`. Resolves with the port bound
   * (the server's choice for port 0); rejects with the server's refusal.
   */
  forwardIn(listen: Endpoint, onConnection: (conn: IncomingConnection) => void): Promise<number | undefined> {
    return new Promise((resolve, reject) => {
      const done = (err: Error | null | undefined, port?: number) => {
        if (err) return reject(new Error(err.message.replace(/^\(SSH\) /, '')));
        this.#incoming.set(listen.kind === 'tcp' ? `${listen.host}:${port}` : listen.path, onConnection);
        resolve(port);
      };
      try {
        if (listen.kind === 'tcp') this.client.forwardIn(listen.host, listen.port, done);
        else this.client.openssh_forwardInStreamLocal(listen.path, (err) => done(err));
      } catch (err) {
        reject(err as Error);
      }
    });
  }

  /**
   * Asks the server to stop listening at `listen` (bound as `port`); open channels carry on. Best
   * effort: resolves once the server has answered, or the connection closed, or at once when
   * there is none to ask.
   */
  unforwardIn(listen: Endpoint, port: number | undefined): Promise<void> {
    this.#incoming.delete(listen.kind === 'tcp' ? `${listen.host}:${port}` : listen.path);
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.off('close', done);
        resolve();
      };
      this.once('close', done);
      try {
        if (listen.kind === 'tcp') this.client.unforwardIn(listen.host, port ?? listen.port, done);
        else this.client.openssh_unforwardInStreamLocal(listen.path, done);
      } catch {
        done(); // not connected any more: nothing to cancel
      }
    });
  }

  /** Channels open on this connection now. */
  get channels(): number {
    return this.#channels;
  }

  /** Takes no new work: ends the connection once its last channel closes (now, if none is open). */
  endWhenIdle(): void {
    this.#endWhenIdle = true;
    if (this.#channels === 0) this.end();
  }

  /** Closes the connection politely (SSH disconnect, then TCP FIN). */
  end(): void {
    try {
      this.client.end();
    } catch {
      this.client.destroy();
    }
  }

  /** Drops the connection at once. */
  destroy(): void {
    this.client.destroy();
    // ssh2 destroys only a socket still writable: after end() (our FIN sent) one whose server never answers would stay.
    this.sock.destroy();
  }
}

function describe(err: Error & { level?: string; code?: string }): string {
  return err.code ? `${err.message.replace(new RegExp(`^${err.code}:? ?`), '')} (${err.code})`.trim() : err.message;
}

/** openChannel() gives the channel ssh2 opened. */
const asOpened = (channel: ClientChannel): ClientChannel => channel;

/** A Channel ssh2 has just made (the server's open of a -R connection, or ours without patch 007), made lean where ssh2 is as LeanChannel knows it. */
const madeLean = (channel: Channel): ForwardChannel => LeanChannel.replacing(channel) ?? channel;

/** openForward(): made lean by ssh2 (patch 007), or made lean here when ssh2 made a Channel (not patched). */
const asLean = (channel: ClientChannel): ForwardChannel => (channel instanceof LeanChannel ? channel : madeLean(channel));

/**
 * False for a channel whose server set its maximum packet size to 0 (RFC 4254 sets no minimum):
 * ssh2 would write empty packets for ever, in one turn of the event loop, for its first byte.
 */
function carriesData(channel: Channel): boolean {
  return (channel as unknown as { outgoing?: { packetSize?: unknown } }).outgoing?.packetSize !== 0;
}

/** What an ssh2 Channel's close reads and changes (1.17): its local id and both states, and its client's message handlers. */
interface CloseInternals {
  incoming: { id: number; state: string };
  outgoing: { state: string };
  _client: { _protocol: { _handlers: { CHANNEL_CLOSE?: (protocol: unknown, recipient: number) => void } } };
}

/** Our CLOSE is sent and the server's has not come. */
function awaitsClose(channel: ForwardChannel): boolean {
  const c = channel as unknown as Partial<CloseInternals>;
  return c.outgoing?.state === 'closing' && c.incoming?.state !== 'closed';
}

/**
 * Closes `channel` as the server's CLOSE would: through ssh2's own handler, which frees its id
 * (ssh2 does not reuse one before 2^32 opens, so a late CLOSE names no channel and is dropped),
 * ends it both ways and emits 'close'. Resumed, as 'close' waits for 'end'.
 */
function closeAsAnswered(channel: ForwardChannel): void {
  const c = channel as unknown as Partial<CloseInternals>;
  const protocol = c._client?._protocol;
  const onClose = protocol?._handlers?.CHANNEL_CLOSE;
  channel.resume();
  if (typeof onClose === 'function' && typeof c.incoming?.id === 'number') onClose(protocol, c.incoming.id);
  else channel.emit('close'); // internals not as expected: at least it stops counting
}

/** Closes a channel nobody will read; resumed, so its 'end' and 'close' still come and it stops counting. */
export function closeUnused(channel: ForwardChannel): void {
  channel.resume();
  channel.close();
}

/** Runs the SSH handshake over `options.sock`; resolves when authenticated and ready. */
export function dial(options: DialOptions, via: SshSession[] = []): Promise<SshSession> {
  const { target, sock } = options;
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    const attempts = { tried: [] as string[], notes: [] as string[] };
    let hostKeyError: HostKeyError | null = null;
    let settled = false;
    const onAbort = () => fail(new ConnectError('connect abandoned: stopping'));
    const settle = () => {
      settled = true;
      options.signal?.removeEventListener('abort', onAbort);
    };
    const fail = (err: Error) => {
      if (settled) return;
      settle();
      client.destroy();
      sock.destroy();
      reject(err);
    };

    if (options.signal?.aborted) {
      sock.destroy();
      return reject(new ConnectError('connect abandoned: stopping'));
    }
    options.signal?.addEventListener('abort', onAbort, { once: true });

    client.on('ready', () => {
      if (settled) return;
      settle();
      resolve(new SshSession(client, sock, target, via, options.channelCloseTimeoutMs));
    });
    client.on('error', (err: Error & { level?: string; code?: string }) => {
      if (settled) return;
      if (hostKeyError) return fail(hostKeyError);
      switch (err.level) {
        case 'agent':
          // ssh2 goes on with the next key or method, as ssh does; the failure is told if all fail.
          attempts.notes.push(`${err.message}.`);
          return;
        case 'client-authentication':
          return fail(
            new AuthError(
              `Authentication as "${options.auth.username}" to ${target} was rejected. Tried: ${attempts.tried.join(', ') || 'nothing (no identity file, no ssh-agent, no terminal to ask for a password)'}. ` +
                `Check the user (-l), the key (-i) and that its public key is in the server's authorized_keys.` +
                (attempts.notes.length ? ` ${attempts.notes.join(' ')}` : ''),
            ),
          );
        case 'client-timeout':
          return fail(new ConnectError(`No SSH handshake with ${target} within ${options.connectTimeoutMs} ms (ConnectTimeout).`));
        default:
          return fail(new ConnectError(`Cannot connect to ${target}: ${describe(err)}`));
      }
    });
    client.on('close', () => fail(new ConnectError(`Connection to ${target} closed during the SSH handshake.`)));

    const config: ConnectConfig = {
      sock,
      username: options.auth.username,
      readyTimeout: options.connectTimeoutMs,
      keepaliveInterval: 0, // the Heartbeat replaces ssh2's, which counts only its own replies
      algorithms: {
        serverHostKey: options.hostKeys.algorithms() as ServerHostKeyAlgorithm[],
        ...(options.compression ? { compress: [...COMPRESSION_FIRST] } : {}),
        ...(options.algorithms?.kex && { kex: options.algorithms.kex as KexAlgorithm[] }),
        ...(options.algorithms?.cipher && { cipher: options.algorithms.cipher as CipherAlgorithm[] }),
        ...(options.algorithms?.mac && { hmac: options.algorithms.mac as MacAlgorithm[] }),
      },
      hostVerifier: (key: Buffer) => {
        hostKeyError = options.hostKeys.verify(key);
        return hostKeyError === null;
      },
      authHandler: authHandler(options.auth, attempts, options.secretCache, KEYS),
    };
    try {
      client.connect(config);
    } catch (err) {
      fail(new ConnectError(`Cannot connect to ${target}: ${(err as Error).message}`));
    }
  });
}

/** A private or public key in any format ssh2 reads (OpenSSH, PEM, PPK), or why it cannot be read. */
export function parseKey(data: Buffer | string, passphrase?: string): ParsedKey | Error {
  const parsed = ssh2.utils.parseKey(data, passphrase);
  return Array.isArray(parsed) ? (parsed[0] as ParsedKey) : parsed;
}

/** ssh2's own lists: what it asks for by default and what it can negotiate, per algorithm option. */
export function ssh2Algorithms(): Record<'kex' | 'cipher' | 'mac', AlgorithmCatalogue> & { hostKeys: readonly string[] } {
  const require = createRequire(import.meta.url);
  const c = require('ssh2/lib/protocol/constants.js') as Record<string, string[]>;
  return {
    kex: { default: c.DEFAULT_KEX!, supported: c.SUPPORTED_KEX! },
    cipher: { default: c.DEFAULT_CIPHER!, supported: c.SUPPORTED_CIPHER! },
    mac: { default: c.DEFAULT_MAC!, supported: c.SUPPORTED_MAC! },
    hostKeys: c.SUPPORTED_SERVER_HOST_KEY!,
  };
}

/**
 * Whether ssh2's optional native crypto binding is loaded: 'missing' without it (no compiler when
 * `npm ci` ran, or its install script skipped), where AES-GCM and ChaCha20 run in JavaScript at
 * about half the throughput; 'stale' when it was built before sshkeep's ssh2 patches (patch 010
 * changes the binding; postinstall builds it again), where ssh2 leaves AES-GCM decryption to
 * node:crypto.
 */
export function nativeCrypto(): 'loaded' | 'missing' | 'stale' {
  try {
    const require = createRequire(import.meta.url);
    if ((require('ssh2/lib/protocol/crypto.js') as { bindingAvailable?: boolean }).bindingAvailable !== true) return 'missing';
    const binding = require('ssh2/lib/protocol/crypto/build/Release/sshcrypto.node') as { AESGCMDecipher?: { prototype?: { decryptAt?: unknown } } };
    return typeof binding.AESGCMDecipher?.prototype?.decryptAt === 'function' ? 'loaded' : 'stale';
  } catch {
    return 'missing';
  }
}

/** How long an ssh-agent may take to list its keys or sign (a security key waits for a touch). */
const AGENT_TIMEOUT_MS = 30_000;

/**
 * A key ssh2 sends as `blob` of type `type` (a certificate, or a security key it cannot parse),
 * built on a key ssh2 did parse (`base`: the private key that signs, or the certified key's
 * plain twin for an agent key, signed for by the agent).
 */
function presentedAs(base: ParsedKey, type: string, blob: Buffer): ParsedKey {
  const key = Object.create(base) as ParsedKey;
  Object.defineProperties(key, {
    type: { value: type },
    getPublicSSH: { value: () => blob },
  });
  return key;
}

/**
 * The plain key ssh2 can parse beside an agent identity: a certificate's certified key, and
 * for a security key the ordinary key of the same curve point (ssh2 only needs it to exist).
 */
function plainTwin(blob: Buffer): ParsedKey | Error {
  const r = new WireReader(blob);
  const type = r.text('the key type');
  if (isCertificateType(type)) return plainTwin(parseCertificate(blob).key);
  let plain = blob;
  if (type === 'sk-ssh-ed25519@openssh.com') plain = wireStrings('ssh-ed25519', r.string('the key'));
  else if (type === 'sk-ecdsa-sha2-nistp256@openssh.com') plain = wireStrings('ecdsa-sha2-nistp256', r.string('the curve'), r.string('the key'));
  const parsed = ssh2.utils.parseKey(plain);
  return Array.isArray(parsed) ? parsed[0]! : parsed;
}

/** ssh2's agent interface over sshkeep's agent client: every identity the agent holds is offered, whole signatures come back. */
class Agent extends ssh2.BaseAgent<ParsedKey> {
  /** The blob each offered key is signed with: a CertificateFile certificate's key is in the agent as a plain key. */
  readonly #signWith = new WeakMap<ParsedKey, Buffer>();

  constructor(
    private readonly client: AgentClient,
    private readonly certificates: Certificate[],
    /** Why an identity is not to be offered, or undefined to offer it. */
    private readonly screen: (type: string, blob: Buffer) => string | undefined,
    private readonly skipped: (identity: string, why: string) => void,
  ) {
    super();
  }

  getIdentities(cb: (err: Error | undefined, keys?: ParsedKey[]) => void): void {
    this.client.identities().then((identities) => {
      // A CertificateFile certificate whose key is in the agent is offered too, signed for by the agent
      // (auth.ts screened it already: a second screening would note a principal problem twice).
      const extra = this.certificates.filter((c) => identities.some((id) => id.blob.equals(c.key)));
      const all: (AgentIdentity & { signWith?: Buffer })[] = [...identities, ...extra.map((c) => ({ blob: c.blob, comment: `certificate ${quoted(c.keyId)}`, signWith: c.key }))];
      const keys: ParsedKey[] = [];
      for (const id of all) {
        let base: ParsedKey | Error;
        let type = '';
        let problem: string | undefined;
        try {
          type = new WireReader(id.blob).text('the key type');
          base = plainTwin(id.blob);
          problem = id.signWith ? undefined : this.screen(type, id.blob);
        } catch (err) {
          base = err as Error;
        }
        if (base instanceof Error) this.skipped(id.comment, `sshkeep cannot read its key (${base.message})`);
        else if (problem !== undefined) this.skipped(id.comment, problem);
        else {
          const key = presentedAs(base, type, id.blob);
          this.#signWith.set(key, id.signWith ?? id.blob);
          keys.push(key);
        }
      }
      cb(undefined, keys);
    }, (err: Error) => cb(err));
  }

  sign(key: ParsedKey, data: Buffer, options: SigningRequestOptions | ((err?: Error, signature?: Buffer) => void), cb?: (err?: Error, signature?: Buffer) => void): void {
    const done = typeof options === 'function' ? options : cb!;
    const hash = typeof options === 'function' ? undefined : (options as { hash?: string }).hash;
    const plainType = isCertificateType(key.type) ? certifiedKeyType(key.type) : key.type;
    const flags = plainType === 'ssh-rsa' ? (hash === 'sha512' ? RSA_SHA2_512 : hash === 'sha256' ? RSA_SHA2_256 : 0) : 0;
    this.client.sign(this.#signWith.get(key) ?? key.getPublicSSH(), data, flags).then((whole) => {
      // ssh2 (patched) takes a security key's signature whole, any other as its bare bytes
      // (parseSignResponse checked that both are there).
      let signature = whole;
      if (!plainType.startsWith('sk-')) {
        const r = new WireReader(whole);
        r.text('the signature format');
        signature = r.string('the signature');
      }
      try {
        done(undefined, signature);
      } catch (err) {
        // ssh2 converts the bytes before it sends them (ECDSA's r and s into DER) and throws on
        // bytes that are not what the key type says: a bad agent's signature fails the login,
        // where it would be an unhandled rejection that ends the process.
        done(err as Error);
      }
    }, (err: Error) => done(err));
  }
}

/** How auth.ts turns certificates and agent identities into what ssh2 offers. */
const KEYS: KeyMaker = {
  certified: (key, cert) => presentedAs(key, cert.type, cert.blob),
  agent: (socket, certificates, screen, skipped) => new Agent(new AgentClient(socket, AGENT_TIMEOUT_MS), certificates, screen, skipped) as BaseAgent,
};

/** Field sizes of r and s in an ECDSA signature, by curve (for Node's IEEE P1363 form). */
const ECDSA_FIELD_BYTES: Record<string, [hash: string, bytes: number]> = {
  'ecdsa-sha2-nistp256': ['sha256', 32],
  'ecdsa-sha2-nistp384': ['sha384', 48],
  'ecdsa-sha2-nistp521': ['sha512', 66],
};

/**
 * Checks a CA's signature over a certificate; returns why it fails, or undefined when it holds.
 * RSA signatures with SHA-1 (`ssh-rsa`) are refused, as OpenSSH's default CASignatureAlgorithms does.
 */
export function certificateSignatureProblem(cert: Certificate): string | undefined {
  try {
    const ca = plainTwin(cert.caKey);
    if (ca instanceof Error || isCertificateType(new WireReader(cert.caKey).text('the CA key type'))) return 'its CA key is not a key sshkeep can check signatures with';
    const sig = new WireReader(cert.signature);
    const format = sig.text('the signature format');
    let bytes = sig.string('the signature');
    const key = createPublicKey(ca.getPublicPEM());
    let ok: boolean;
    if (format === 'ssh-ed25519' && ca.type === 'ssh-ed25519') ok = verifySignature(null, cert.signed, key, bytes);
    else if ((format === 'rsa-sha2-512' || format === 'rsa-sha2-256') && ca.type === 'ssh-rsa') ok = verifySignature(format === 'rsa-sha2-512' ? 'sha512' : 'sha256', cert.signed, key, bytes);
    else if (ECDSA_FIELD_BYTES[format] && ca.type === format) {
      const [hash, size] = ECDSA_FIELD_BYTES[format]!;
      const rs = new WireReader(bytes);
      const fixed = (mpint: Buffer) => {
        let lead = 0;
        while (lead < mpint.length && mpint[lead] === 0) lead++;
        const digits = mpint.subarray(lead);
        if (digits.length > size) throw new Error('an ECDSA signature value too long for its curve');
        return Buffer.concat([Buffer.alloc(size - digits.length), digits]);
      };
      bytes = Buffer.concat([fixed(rs.string('r')), fixed(rs.string('s'))]);
      ok = verifySignature(hash, cert.signed, { key, dsaEncoding: 'ieee-p1363' }, bytes);
    } else return `its CA signed it with ${format}, which sshkeep does not accept for a ${ca.type} CA key`;
    return ok ? undefined : 'its CA signature does not verify';
  } catch (err) {
    return `its CA signature cannot be read (${(err as Error).message})`;
  }
}

/**
 * What the lean data path reads of an ssh2 Channel (1.17): its send window and packet size,
 * the protocol that frames CHANNEL_DATA, its Writable and Readable states, and push()/_read(),
 * through which ssh2 hands it the server's data and is told to open the window again.
 */
interface ChannelInternals {
  outgoing: { id: number; window: number; packetSize: number; state: string };
  _client: { _protocol: { channelData(id: number, data: Buffer): void } };
  _writableState: { length: number; ending: boolean; corked: number };
  readableLength: number;
  push(chunk: Buffer | null): boolean;
  _read(n: number): void;
}

/** The channel's internals when they are what the lean path expects, else undefined. */
function internals(channel: Channel): ChannelInternals | undefined {
  const c = channel as unknown as Partial<ChannelInternals>;
  const ok =
    typeof c.outgoing?.window === 'number' &&
    typeof c.outgoing.packetSize === 'number' &&
    typeof c._client?._protocol?.channelData === 'function' &&
    typeof c._writableState?.length === 'number' &&
    typeof c._read === 'function' &&
    typeof c.push === 'function' &&
    !Object.hasOwn(c, 'push'); // not already linked
  return ok ? (c as ChannelInternals) : undefined;
}

/**
 * Sends `chunk` as one CHANNEL_DATA packet straight through ssh2's protocol when nothing is
 * queued on the channel's stream and the server's window and packet size allow it, doing the
 * window accounting Channel._write would; false when the stream must take it.
 */
function sendDirect(c: ChannelInternals, chunk: Buffer): boolean {
  const out = c.outgoing;
  const ws = c._writableState;
  if (out.state !== 'open' || ws.length !== 0 || ws.ending || ws.corked || chunk.length > out.window || chunk.length > out.packetSize) return false;
  out.window -= chunk.length;
  c._client._protocol.channelData(out.id, chunk);
  return true;
}

/**
 * A forward's channel: ssh2's Channel, or a LeanChannel in its place (openForward); what a
 * Pump and link() use of it.
 */
export interface ForwardChannel {
  write(chunk: Buffer): boolean;
  end(): unknown;
  close(): void;
  resume(): unknown;
  emit(event: 'close'): boolean;
  readonly writableFinished: boolean;
  on(event: 'end' | 'finish' | 'drain' | 'error' | 'close', listener: (...args: any[]) => void): unknown;
  once(event: 'end' | 'finish' | 'drain' | 'error' | 'close', listener: (...args: any[]) => void): unknown;
}

/** How link() joined a socket and a channel; unlink() stops moving bytes (EOF and close stay the caller's). */
export interface Link {
  /** True on the lean path, false over the channel's stream API (pipes). */
  lean: boolean;
  unlink(): void;
}

/**
 * Moves bytes between a local socket and a channel until unlink() — the client's
 * bytes up (unless `up` is false: the client already ended), the channel's down — with
 * backpressure both ways; EOF and close are the caller's. A small message crosses no stream
 * layer of the channel: up, it is framed straight into ssh2's protocol; down, ssh2's push()
 * writes it to the socket, and a full socket holds the window back until it drains, as a
 * paused channel would. Anything unusual (a full window, a queued write, a stream ending)
 * takes the channel's stream API, and so does all of it when ssh2's internals are not as
 * expected (pipes). A LeanChannel has no stream API: all of it is the lean path, and what it
 * received before the link (its EOF too) is handed over now. The SSH packets of one turn of the
 * event loop leave together (SshSession.coalesceWrites).
 */
export function link(socket: LocalSocket, channel: ForwardChannel, session: SshSession, up = true): Link {
  return channel instanceof LeanChannel ? linkLean(socket, channel, session, up) : linkChannel(socket, channel as Channel, session, up);
}

/** link() for ssh2's Channel. */
function linkChannel(socket: LocalSocket, channel: Channel, session: SshSession, up: boolean): Link {
  const c = internals(channel);
  if (!c || channel.readableLength > 0) return linkByEvents(socket, channel, session, up);
  const onData = (chunk: Buffer) => {
    session.coalesceWrites();
    if (sendDirect(c, chunk) || channel.write(chunk)) return;
    socket.pause();
    channel.once('drain', () => socket.resume());
  };
  const push = c.push;
  c.push = (chunk: Buffer | null) => (chunk === null ? push.call(channel, null) : socket.destroyed || socket.write(chunk));
  const onDrain = () => c._read(0); // ssh2 sends the window adjust it held back
  socket.on('drain', onDrain);
  channel.resume(); // flowing, empty: 'end' comes as soon as ssh2 pushes the EOF
  if (up) {
    socket.on('data', onData);
    socket.resume();
  }
  const unlink = () => {
    delete (c as Partial<ChannelInternals>).push; // back to the prototype's: later data is dropped by the flowing stream
    socket.off('drain', onDrain);
    socket.off('data', onData);
  };
  return { lean: true, unlink };
}

/** link() for a LeanChannel: its writes and its receiver are already the lean path, all of it. */
function linkLean(socket: LocalSocket, channel: LeanChannel, session: SshSession, up: boolean): Link {
  const onData = (chunk: Uint8Array, lent = false) => {
    session.coalesceWrites();
    if (channel.write(chunk, lent)) return;
    socket.pause();
    channel.once('drain', () => socket.resume());
  };
  const onLent = (view: Uint8Array) => onData(view, true);
  const onDrain = () => channel.readMore();
  socket.on('drain', onDrain);
  channel.receive((chunk) => socket.destroyed || socket.write(chunk));
  if (up) {
    socket.on('data', onData);
    if (takesViews) socket.lendReads?.(onLent); // the channel copies a small read into its packet: no copy of it before
    socket.resume();
  }
  const unlink = () => {
    channel.resume(); // later data is dropped
    socket.off('drain', onDrain);
    socket.off('data', onData);
    socket.lendReads?.(undefined);
  };
  return { lean: true, unlink };
}

/** link() over the channel's stream API ('data' and write()), each side paused while the other is full, as pipe() would (a TcpClient has no pipe()). */
function linkByEvents(socket: LocalSocket, channel: Channel, session: SshSession, up: boolean): Link {
  const resumeSocket = () => socket.resume();
  const resumeChannel = () => channel.resume();
  const onUp = (chunk: Buffer) => {
    session.coalesceWrites();
    if (channel.write(chunk)) return;
    socket.pause();
    channel.once('drain', resumeSocket);
  };
  const onDown = (chunk: Buffer) => {
    if (socket.destroyed || socket.write(chunk)) return;
    channel.pause();
    socket.once('drain', resumeChannel);
  };
  channel.on('data', onDown);
  channel.resume(); // what the channel buffered before the link goes first
  if (up) {
    socket.on('data', onUp);
    socket.resume();
  }
  const unlink = () => {
    socket.off('data', onUp);
    channel.off('data', onDown);
    channel.off('drain', resumeSocket);
    socket.off('drain', resumeChannel);
  };
  return { lean: false, unlink };
}

/**
 * A channel's bytes for a caller that frames its own messages (--resume's streams), without
 * the channel's stream layers where ssh2's internals allow: write() sends a message that fits
 * the window and one packet straight into ssh2's protocol, and what arrives goes to the
 * receiver as ssh2 hands it over, the receiver returning false to hold the window back. Over
 * the stream API otherwise, and for all of it when the internals are not as expected.
 * A caller with its own send queue (the replay buffer) sends only what room() allows and
 * waits for whenRoom(), so nothing it sends is queued, copied or allocated on the way.
 */
export interface ChannelPort {
  /** Sends `bytes`, which the caller may reuse once it returns; false: wait for the channel's 'drain'. */
  write(bytes: Buffer): boolean;
  /** How many bytes one write() may send now without being queued (0: wait for whenRoom). */
  room(): number;
  /** Calls `wake` once, when room() may have grown (the server opened the window, or the queue drained). */
  whenRoom(wake: () => void): void;
  /** Hands over what arrived so far, then what arrives; `receiver` returns false when it is full. */
  receive(receiver: (chunk: Buffer) => boolean): void;
  /** The receiver has room again: the window opens. */
  resumeReceive(): void;
  /** Stops handing data over; later data is dropped (the channel is being closed). */
  detach(): void;
}

/**
 * A copy the channel's stream may queue while the caller reuses `bytes` (a control frame; DATA
 * waits in the replay buffer for room), made without zeroing the new memory first as
 * Buffer.from(buffer) does.
 */
function copyOf(bytes: Buffer): Buffer {
  const copy = Buffer.allocUnsafe(bytes.length);
  bytes.copy(copy);
  return copy;
}

/** How long a port waits for ssh2's 'window' event before it looks at the window anyway, until one is seen. */
const WINDOW_BACKSTOP_MS = 100;
/** ssh2 has emitted 'window' in this process: its patch is there, no backstop timer is needed. */
let windowEvents = false;

/** OpenSSH's channel packet size: a DATA frame's room over the stream API, where ssh2's internals cannot say. */
const DEFAULT_PACKET_SIZE = 32 * 1024;

/**
 * `smallestWrite`: the fewest bytes the caller sends in one write(). The lean path sends a write
 * as one packet within the window, so a channel whose packet size (or first window) is smaller
 * would have the caller wait for room that never comes: it takes the stream API, which splits a
 * write over packets.
 */
export function openPort(channel: Channel, session: SshSession, smallestWrite: number): ChannelPort {
  const c = internals(channel);
  if (!c || Math.min(c.outgoing.packetSize, c.outgoing.window) < smallestWrite) return portByStream(channel, session);
  const push = c.push;
  let detached = false;
  let wake: (() => void) | undefined;
  let backstop: NodeJS.Timeout | undefined;
  // ssh2 patch 004: after a window adjust, once the stream's own waiting write went out.
  const onWindow = () => {
    clearTimeout(backstop);
    const w = wake;
    wake = undefined;
    w?.();
  };
  const onWindowEvent = () => {
    windowEvents = true;
    onWindow();
  };
  channel.on('window', onWindowEvent);
  return {
    write(bytes) {
      session.coalesceWrites();
      return sendDirect(c, bytes) || channel.write(copyOf(bytes));
    },
    room() {
      const out = c.outgoing;
      const ws = c._writableState;
      return out.state !== 'open' || ws.length !== 0 || ws.ending || ws.corked ? 0 : Math.min(out.window, out.packetSize);
    },
    whenRoom(w) {
      wake = w;
      // Until ssh2 is seen to emit it (patch 004; not there if installed without its scripts): slow rather than stalled.
      clearTimeout(backstop);
      if (!windowEvents) backstop = setTimeout(onWindow, WINDOW_BACKSTOP_MS).unref();
    },
    receive(receiver) {
      for (let chunk: Buffer | null; !detached && (chunk = channel.read() as Buffer | null) !== null; ) receiver(chunk);
      if (detached) return; // what was buffered ended the receiver's use of the channel
      c.push = (chunk: Buffer | null) => (chunk === null ? push.call(channel, null) : receiver(chunk));
      channel.resume(); // flowing, empty: 'end' comes as soon as ssh2 pushes the EOF
    },
    resumeReceive: () => c._read(0), // ssh2 sends the window adjust it held back
    detach: () => {
      detached = true;
      wake = undefined;
      clearTimeout(backstop);
      channel.off('window', onWindowEvent);
      delete (c as Partial<ChannelInternals>).push;
    },
  };
}

/** openPort() over the channel's stream API. */
function portByStream(channel: Channel, session: SshSession): ChannelPort {
  let onData: ((chunk: Buffer) => void) | undefined;
  let onDrain: (() => void) | undefined;
  return {
    write(bytes) {
      session.coalesceWrites();
      return channel.write(copyOf(bytes));
    },
    // The stream queues (a copy): there is room until it asks to wait for 'drain'.
    room: () => (channel.writableNeedDrain ? 0 : DEFAULT_PACKET_SIZE),
    whenRoom(wake) {
      if (onDrain) channel.off('drain', onDrain);
      onDrain = () => {
        onDrain = undefined;
        wake();
      };
      channel.once('drain', onDrain);
    },
    receive(receiver) {
      onData = (chunk) => {
        if (!receiver(chunk)) channel.pause();
      };
      channel.on('data', onData);
      channel.resume();
    },
    resumeReceive: () => channel.resume(),
    detach: () => {
      if (onData) channel.off('data', onData);
      if (onDrain) channel.off('drain', onDrain);
    },
  };
}
