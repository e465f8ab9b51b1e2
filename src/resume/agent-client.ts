import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import type { ClientChannel } from 'ssh2';
import { ChannelOpenError } from '../errors.js';
import type { HeldBytes } from '../forward/hold.js';
import type { PumpResult } from '../forward/pump.js';
import type { Logger } from '../log.js';
import { closeUnused, type ForwardChannel, type SshSession } from '../ssh/adapter.js';
import type { SshConnection } from '../ssh/connection.js';
import type { SessionSource } from '../ssh/pool.js';
import { newSession } from './bootstrap.js';
import { FIXES, answer, pingAgent, startAgent, toAgent } from './agent-start.js';
import { ERROR_CODE, ID_BYTES, FrameParser, encodeFrame, type Frame } from './frames.js';
import { ResumableStream, type Link } from './resumable.js';
import { StreamState, type ReplayBudget } from './stream.js';

export interface AgentClientOptions {
  /** --resume-grace: how long both ends keep a stream with no channel attached. */
  graceMs: number;
  /** --resume-buffer: per stream. */
  bufferBytes: number;
  /** --resume-buffer-total: every stream of the process. */
  budget: ReplayBudget;
  channelOpenTimeoutMs: number;
  logger: Logger;
}

/** What /readyz and the metrics show of --resume for one tunnel. */
export interface ResumeReport {
  /** The agent runs and answers on the server. */
  available: boolean;
  /** Why not, as a word (`forced-command`, `no-interpreter`, …). */
  reason: string | undefined;
  /** Streams open through the agent now. */
  resumable: number;
  /** Streams carried over to a new SSH connection so far. */
  resumed: number;
  /** Bytes sent and not yet acknowledged, held to send again. */
  replayBytes: number;
  /** Agent unavailability and streams that could not be resumed, by reason. */
  failures: Record<string, number>;
}

/** A stream opened through the agent, or a plain channel when resume is not available there. */
export type Opened =
  | { kind: 'plain'; channel: ForwardChannel }
  | { kind: 'resumable'; id: Buffer; link: Link; peerReceived: number; frames: Frame[] };

/** ERROR 4's errno name as the plain path's channel-open reason. */
function connectReason(errno: string): string {
  if (/^EAI_/.test(errno)) return 'unresolvable';
  if (errno === 'ETIMEDOUT') return 'timeout';
  if (/UNREACH/.test(errno)) return 'host-unreachable';
  return 'connect-failed';
}

/**
 * sshkeep's side of `--resume` for one tunnel: starts or finds its agent on each new SSH
 * connection, opens each forwarded stream through it (after checking that the server would
 * allow the target for direct-tcpip), re-attaches every held stream after each reconnect,
 * and says goodbye on a clean stop. Where the agent cannot run, it says why once and the
 * forwards run plain.
 */
/** A stream's frames: DATA as the SSH packets brought it, not joined (a stream places bytes by offset). */
function streamParser(): FrameParser {
  return new FrameParser({ dataInPieces: true });
}

export class AgentClient {
  /** The agent's session: one agent per sshkeep tunnel, never shared with another process. */
  readonly #agentSession = newSession();
  /** Where the agent listens on the server, once it said so. */
  #socketPath: string | undefined;
  /** Per SSH connection: the agent's socket when it runs and answers there, else undefined. */
  readonly #ready = new WeakMap<SshSession, Promise<string | undefined>>();
  /** Per SSH connection and target: the server allows it for direct-tcpip (undefined) or refuses it. */
  readonly #permitted = new WeakMap<SshSession, Map<string, Promise<ChannelOpenError | undefined>>>();
  readonly #streams = new Set<ResumableStream>();
  readonly #attaching = new Set<ResumableStream>();
  /** Streams whose attach found the channel closed unanswered once: the next such failure ends them. */
  readonly #retried = new WeakSet<ResumableStream>();
  /** Streams the agent may hold that nobody will attach (their OPEN went unanswered). */
  readonly #orphans = new Set<Buffer>();
  #unavailable: string | undefined;
  #warned = new Set<string>();
  #everAvailable = false;
  #resumed = 0;
  readonly #failures = new Map<string, number>();
  #stopped = false;

  constructor(
    private readonly source: SessionSource,
    private readonly options: AgentClientOptions,
  ) {}

  /** Each new SSH connection of `connections` checks the agent and re-attaches the streams. */
  watch(connections: SshConnection[]): void {
    for (const c of connections) c.on('session', (session) => void this.#onSession(session));
  }

  /** For /readyz and metrics. */
  report(): ResumeReport {
    let replayBytes = 0;
    let resumable = 0;
    for (const s of this.#streams) {
      if (s.done) continue;
      resumable++;
      replayBytes += s.state.replayBytes;
    }
    return {
      available: this.#unavailable === undefined && this.#everAvailable,
      reason: this.#unavailable ?? (this.#everAvailable ? undefined : 'not checked yet: no SSH connection so far'),
      resumable,
      resumed: this.#resumed,
      replayBytes,
      failures: Object.fromEntries(this.#failures),
    };
  }

  #fail(reason: string): void {
    this.#failures.set(reason, (this.#failures.get(reason) ?? 0) + 1);
  }

  /** The agent's socket on `session` (started there if need be), or undefined: forward plain. */
  readyOn(session: SshSession): Promise<string | undefined> {
    let ready = this.#ready.get(session);
    if (!ready) {
      ready = this.#findOrStart(session);
      this.#ready.set(session, ready);
    }
    return ready;
  }

  async #findOrStart(session: SshSession): Promise<string | undefined> {
    if (this.#socketPath && (await pingAgent(session, this.#socketPath, this.options.channelOpenTimeoutMs)) === undefined) return this.#available(this.#socketPath);
    const started = await startAgent(session, { session: this.#agentSession, graceMs: this.options.graceMs }, this.options.channelOpenTimeoutMs);
    if (typeof started === 'string') this.options.logger.debug('resume agent ready', { event: 'resume_agent', socket: started });
    if (typeof started !== 'string') return this.#cannot(started.reason, started.detail);
    const pinged = await pingAgent(session, started, this.options.channelOpenTimeoutMs);
    if (pinged !== undefined) return this.#cannot(pinged.reason, pinged.detail);
    this.#socketPath = started;
    return this.#available(started);
  }

  #available(path: string): string {
    if (this.#unavailable !== undefined) this.options.logger.info('resume available again', { event: 'resume_available' });
    this.#unavailable = undefined;
    this.#everAvailable = true;
    return path;
  }

  /** Resume cannot run on this connection: said once per reason, at warn; forwards run plain. */
  #cannot(reason: string, detail: string): undefined {
    this.#unavailable = reason;
    this.#fail(reason);
    const fields = { event: 'resume_unavailable', reason, detail };
    const message = `--resume is not available on this server: ${FIXES[reason] ?? reason}; forwarding without resume`;
    if (this.#warned.has(reason)) this.options.logger.debug(message, fields);
    else this.options.logger.warn(message, fields);
    this.#warned.add(reason);
    return undefined;
  }

  /**
   * The server's policy, checked once per SSH connection and target: the agent dials as the
   * user, so a target sshd would refuse for direct-tcpip (PermitOpen, AllowTcpForwarding no)
   * is refused here the same way. A target merely unreachable now is not cached.
   */
  #check(session: SshSession, host: string, port: number, src: { address: string; port: number }): Promise<ChannelOpenError | undefined> {
    let perSession = this.#permitted.get(session);
    if (!perSession) this.#permitted.set(session, (perSession = new Map()));
    const key = `${host}\0${port}`;
    const known = perSession.get(key);
    if (known) return known;
    const check = session.openChannel({ kind: 'tcp', host, port }, src, this.options.channelOpenTimeoutMs).then(
      (channel) => {
        channel.on('error', () => {});
        closeUnused(channel);
        return undefined;
      },
      (err: ChannelOpenError) => {
        if (err.reason !== 'administratively-prohibited') perSession.delete(key);
        return err;
      },
    );
    perSession.set(key, check);
    return check;
  }

  /**
   * Opens a forwarded client's stream on `session`: through the agent when it runs there (an
   * ACCEPT, or a ChannelOpenError as the plain path would give), else a plain channel.
   */
  async open(session: SshSession, host: string, port: number, src: { address: string; port: number }, abandon?: AbortSignal, again = true): Promise<Opened> {
    const path = await this.readyOn(session);
    const timeout = this.options.channelOpenTimeoutMs;
    if (!path) return { kind: 'plain', channel: await session.openForward({ kind: 'tcp', host, port }, src, timeout, abandon) };
    const refused = await this.#check(session, host, port, src);
    if (refused) throw refused;
    let channel: ClientChannel;
    try {
      channel = await session.openChannel({ kind: 'unix', path }, src, timeout, abandon);
    } catch (err) {
      // The connection is fine but the agent's socket does not answer: it is gone. Check again (and restart it) once.
      if ((err as ChannelOpenError).reason === 'tunnel-lost' || !again) throw err;
      this.#agentGone(session);
      return this.open(session, host, port, src, abandon, false);
    }
    const id = randomBytes(ID_BYTES);
    const parser = streamParser();
    try {
      channel.write(encodeFrame({ type: 'open', id, graceMs: this.options.graceMs, port, host }));
      const { first, rest } = await answer(channel, parser, timeout, abandon);
      if (first.type === 'accept') return { kind: 'resumable', id, link: { channel, session, parser }, peerReceived: first.received, frames: rest };
      if (first.type === 'error' && first.code === ERROR_CODE.connect) {
        throw new ChannelOpenError(`server could not open ${host}:${port}: ${first.message}`, connectReason(first.message));
      }
      const why = first.type === 'error' ? `agent error ${first.code}: ${first.message}` : `the agent answered OPEN with ${first.type.toUpperCase()}`;
      throw new ChannelOpenError(`server could not open ${host}:${port}: ${why}`, first.type === 'error' && first.code === ERROR_CODE.limit ? 'resource-shortage' : 'connect-failed');
    } catch (err) {
      channel.on('error', () => {});
      // No answer: the OPEN may still be on its way (a silent link that comes back); the RESET
      // behind it cancels it there.
      if (!(err instanceof ChannelOpenError)) channel.end(encodeFrame({ type: 'reset', offset: 0, reason: 'no answer to OPEN' }));
      closeUnused(channel);
      if (err instanceof ChannelOpenError) throw err;
      // No answer: the agent may have dialled the target and hold it for the grace, for nobody (the
      // hold opens the client's stream again with a new id): it is reset at once on a live
      // connection (a spare may have taken over already), else on the next one.
      this.#orphans.add(id);
      // A channel may close a turn before its connection says it is closed.
      if (!session.closed) await new Promise((resolve) => setImmediate(resolve));
      const lost = session.closed || abandon?.aborted === true;
      const live = lost ? this.source.readySession : session;
      if (live && !live.closed && !(lost && live === session)) void this.#cancelOrphans(live, path);
      throw new ChannelOpenError(`server could not open ${host}:${port} through the resume agent: ${(err as Error).message}`, lost ? 'tunnel-lost' : 'connect-failed');
    }
  }

  /** Resets the orphans at the agent: ATTACH then RESET on a channel each (an unknown one is answered ERROR 2). */
  async #cancelOrphans(session: SshSession, path: string): Promise<void> {
    for (const id of [...this.#orphans]) {
      this.#orphans.delete(id);
      try {
        const channel = await toAgent(session, path, this.options.channelOpenTimeoutMs);
        channel.on('error', () => {});
        channel.resume(); // its answer is not needed; the agent closes the channel
        channel.end(Buffer.concat([encodeFrame({ type: 'attach', id, received: 0 }), encodeFrame({ type: 'reset', offset: 0, reason: 'opened again on another connection' })]));
      } catch {
        if (session.closed) this.#orphans.add(id); // the next connection tries again
      }
    }
  }

  /** The agent did not answer on a live connection: the next open or attach checks it again (and starts it if need be). */
  #agentGone(session: SshSession): void {
    this.#ready.delete(session);
  }

  /** Nobody wants an opened stream (the client left while it opened): the agent resets the target. */
  discard(opened: Opened): void {
    if (opened.kind === 'resumable') opened.link.channel.end(encodeFrame({ type: 'reset', offset: 0, reason: 'client left' }));
    const channel: ForwardChannel = opened.kind === 'plain' ? opened.channel : opened.link.channel;
    channel.on('error', () => {});
    closeUnused(channel);
  }

  /** Carries `client` on an opened resumable stream until it ends; `onDone` once. */
  carry(client: net.Socket, opened: Extract<Opened, { kind: 'resumable' }>, held: HeldBytes, log: Logger, onDone: (r: PumpResult) => void): ResumableStream {
    const state = new StreamState(this.options.bufferBytes, this.options.budget);
    const stream = new ResumableStream(client, opened.id, state, held, {
      graceMs: this.options.graceMs,
      log,
      onDone: (r) => {
        if (!stream.detached) this.#streams.delete(stream);
        if (r.side === 'tunnel' && r.reset) this.#fail(stream.graceExpired ? 'grace' : 'lost');
        onDone(r);
      },
      onDetached: (s) => this.#onDetached(s),
    });
    this.#streams.add(stream);
    stream.attach(opened.link, opened.peerReceived, opened.frames);
    return stream;
  }

  /** A stream lost its channel: attach it on a ready connection now, or wait for the next one. */
  #onDetached(stream: ResumableStream): void {
    if (!stream.detached) return void this.#streams.delete(stream);
    const session = this.source.readySession;
    if (session && !session.closed) void this.#attachAll(session, [stream]);
  }

  /** A new SSH connection: is the agent still there? Then every stream waiting, or on a replaced connection, moves to it. */
  async #onSession(session: SshSession): Promise<void> {
    const waiting = [...this.#streams].filter((s) => s.detached || (s.session && s.session !== session && this.source.supersededSignal(s.session)?.aborted));
    await this.#attachAll(session, waiting);
  }

  async #attachAll(session: SshSession, streams: ResumableStream[]): Promise<void> {
    // Waiting streams do not wait for the ping: an ATTACH to where the agent was finds it gone as
    // surely (and ends the stream), and saves a round trip on the way back.
    const checked = this.readyOn(session);
    const path = this.#socketPath ?? (await checked);
    if (this.#stopped) return;
    if (path && this.#orphans.size > 0) void this.#cancelOrphans(session, path);
    const todo = streams.filter((s) => !this.#attaching.has(s) && this.#streams.has(s));
    if (todo.length === 0) return;
    if (!path) {
      const lost = todo.filter((s) => s.lost(`the resume agent is not available (${this.#unavailable})`)).length;
      return void this.options.logger.info(`reconnected: 0 streams resumed, ${lost} lost`, { event: 'resume', resumed: 0, lost });
    }
    const results = await Promise.all(todo.map((s) => this.#attach(session, path, s)));
    const resumed = results.filter((r) => r === 'resumed').length;
    const lost = results.filter((r) => r === 'lost').length;
    if (resumed + lost > 0) this.options.logger.info(`reconnected: ${resumed} streams resumed, ${lost} lost`, { event: 'resume', resumed, lost });
  }

  /** ATTACH on a new channel: resumed, lost (reset), or waiting still (the connection went too). */
  async #attach(session: SshSession, path: string, stream: ResumableStream): Promise<'resumed' | 'lost' | 'waiting' | 'told'> {
    this.#attaching.add(stream);
    const log = this.options.logger;
    let channel: ClientChannel | undefined;
    try {
      channel = await toAgent(session, path, this.options.channelOpenTimeoutMs);
      const parser = streamParser();
      channel.write(encodeFrame({ type: 'attach', id: stream.id, received: stream.state.received }));
      const { first, rest } = await answer(channel, parser, this.options.channelOpenTimeoutMs);
      if (first.type === 'accept') {
        const told = stream.done;
        stream.attach({ channel, session, parser }, first.received, rest);
        if (told) return 'told';
        if (stream.done) return 'lost';
        this.#resumed++;
        this.#retried.delete(stream);
        log.debug('stream resumed', { event: 'resumed', stream: stream.tag, peerReceived: first.received, received: stream.state.received });
        return 'resumed';
      }
      closeUnused(channel);
      const why = first.type === 'error' && first.code === ERROR_CODE.unknownStream ? 'the agent no longer knows it' : `the agent answered ATTACH with ${first.type === 'error' ? `error ${first.code}: ${first.message}` : first.type.toUpperCase()}`;
      log.debug('stream not resumed', { event: 'resume_lost', stream: stream.tag, reason: why });
      const told = stream.done;
      return stream.lost(why) && !told ? 'lost' : 'told';
    } catch (err) {
      if (channel) {
        channel.on('error', () => {});
        closeUnused(channel);
      }
      if (session.closed || (err as ChannelOpenError).reason === 'tunnel-lost') {
        // The connection went down (or is going) while attaching: the stream waits for the next one.
        log.debug('attach failed: the stream waits', { event: 'resume_wait', stream: stream.tag, error: (err as Error).message });
        return 'waiting';
      }
      this.#agentGone(session);
      if (!(err instanceof ChannelOpenError) && !this.#retried.has(stream)) {
        // The channel closed unanswered: the agent died, or the connection is going and does not
        // know it yet. Once more, after this turn: a live connection then checks the agent again.
        this.#retried.add(stream);
        setImmediate(() => this.#onDetached(stream));
        return 'waiting';
      }
      // The connection is up but the agent does not answer: what it held is gone with it.
      const told = stream.done;
      return stream.lost(`the resume agent does not answer (${(err as Error).message})`) && !told ? 'lost' : 'told';
    } finally {
      this.#attaching.delete(stream);
      if (!stream.detached && stream.done) this.#streams.delete(stream);
    }
  }

  /** A clean stop, after the drain: the agent resets what it still holds and exits now rather than after its grace. */
  async goodbye(): Promise<void> {
    this.#stopped = true;
    const session = this.source.readySession;
    const path = this.#socketPath;
    if (!session || !path || session.closed) return;
    try {
      const channel = await toAgent(session, path, Math.min(this.options.channelOpenTimeoutMs, 1000));
      channel.on('error', () => {});
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        channel.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        channel.end(encodeFrame({ type: 'goodbye' }));
        channel.resume();
      });
      closeUnused(channel);
      this.options.logger.debug('resume agent told to exit', { event: 'resume_goodbye' });
    } catch (err) {
      this.options.logger.debug('resume agent goodbye not delivered: it exits after its grace', { event: 'resume_goodbye', error: (err as Error).message });
    }
  }
}
