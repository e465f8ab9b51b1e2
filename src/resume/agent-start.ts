/**
 * Reaching the resume agent over one SSH connection: starting it over exec, pinging it, a
 * channel to its socket, the first frame of an answer. Why it cannot run is a reason word
 * (a metric label) with what would fix it.
 */
import type { ClientChannel } from 'ssh2';
import type { ChannelOpenError } from '../errors.js';
import { closeUnused, type SshSession } from '../ssh/adapter.js';
import { probeCommand, agentStdin, parseAgentLine, startCommand, type AgentLine, type AgentParameters } from './bootstrap.js';
import { FrameParser, encodeFrame, type Frame } from './frames.js';

/** The probe's and the agent's one line must come this fast (docs/resume-protocol.md): else it cannot run here. */
const AGENT_LINE_MS = 10_000;

/** Why resume is not available on the server, as a metric label, with what would fix it. */
export const FIXES: Record<string, string> = {
  'no-interpreter': 'the server has neither perl nor python3: install perl or python3 (Debian and Ubuntu always have perl-base)',
  'forced-command': 'the server ran another command instead (a ForceCommand, or command= in authorized_keys): allow this key to run commands',
  'exec-refused': 'the server refused to run a command: allow exec for this user',
  'streamlocal-refused': 'the server refuses Unix socket forwarding: set AllowStreamLocalForwarding yes (or local) in sshd_config',
  directory: "the agent's directory ($XDG_RUNTIME_DIR/sshkeep or ~/.cache/sshkeep) is not private to the user: make it mode 0700, owned by the user",
  listen: 'the agent could not listen on its Unix socket (a full or noexec file system?)',
  version: 'the agent refused its parameters: sshkeep and its agent script differ (reinstall sshkeep)',
  timeout: `the agent did not answer within ${AGENT_LINE_MS} ms`,
  'agent-gone': 'the agent did not answer its ping and could not be started again',
};

/** Every `reason` of sshkeep_resume_failures_total: the agent unavailable, or a stream not resumed (its grace ran out, or lost). */
export const RESUME_FAILURE_REASONS = [...Object.keys(FIXES), 'grace', 'lost'] as const;

/** Why the agent cannot be used on a connection: a reason word and the details. */
export interface Unavailable {
  reason: string;
  detail: string;
}

/**
 * The first frame on a channel and those that came with it; the channel is left paused. An
 * `abandon` signal (another connection took over) ends the wait at once.
 */
export async function answer(channel: ClientChannel, parser: FrameParser, timeoutMs: number, abandon?: AbortSignal): Promise<{ first: Frame; rest: Frame[] }> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | undefined, frames?: Frame[]) => {
      clearTimeout(timer);
      abandon?.removeEventListener('abort', onAbandon);
      channel.pause();
      channel.off('data', onData);
      channel.off('close', onClose);
      if (err) return reject(err);
      resolve({ first: frames![0]!, rest: frames!.slice(1) });
    };
    const onData = (chunk: Buffer) => {
      const { frames, error } = parser.push(chunk);
      if (error !== undefined) return done(new Error(`protocol error from the agent: ${error}`));
      if (frames.length) done(undefined, frames);
    };
    const onClose = () => done(new Error('the agent closed the channel without an answer'));
    const onAbandon = () => done(new Error('no answer from the agent before another connection took over'));
    const timer = setTimeout(() => done(new Error(`no answer from the agent within ${timeoutMs} ms`)), timeoutMs);
    if (abandon?.aborted) return onAbandon();
    abandon?.addEventListener('abort', onAbandon, { once: true });
    channel.on('data', onData);
    channel.once('close', onClose);
    channel.resume();
  });
}

/** The first line of the channel's stdout, or undefined when it closed or stayed silent first. */
function firstLine(channel: ClientChannel, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    let text = '';
    const done = (line: string | undefined) => {
      clearTimeout(timer);
      channel.off('data', onData);
      channel.off('close', onClose);
      resolve(line);
    };
    const onData = (chunk: Buffer) => {
      text += chunk.toString('utf8');
      const end = text.indexOf('\n');
      if (end >= 0) done(text.slice(0, end).replace(/\r$/, ''));
      else if (text.length > 4096) done(text.slice(0, 200));
    };
    const onClose = () => done(text ? text.trimEnd() : undefined);
    const timer = setTimeout(() => done(undefined), timeoutMs);
    channel.stderr.resume();
    channel.on('data', onData);
    channel.once('close', onClose);
  });
}

/** A channel to the agent's socket, for a control request or a re-attach. */
export function toAgent(session: SshSession, path: string, timeoutMs: number): Promise<ClientChannel> {
  return session.openChannel({ kind: 'unix', path }, { address: '127.0.0.1', port: 0 }, timeoutMs);
}

/** Runs `command` over exec with `input` on its stdin: its one line, or why it cannot run. */
async function execLine(session: SshSession, command: string, input: string, timeoutMs: number): Promise<AgentLine | Unavailable> {
  let channel: ClientChannel;
  try {
    channel = await session.exec(command, input, timeoutMs);
  } catch (err) {
    return { reason: 'exec-refused', detail: (err as Error).message };
  }
  const line = await firstLine(channel, AGENT_LINE_MS);
  channel.on('error', () => {});
  closeUnused(channel);
  if (line === undefined) return { reason: 'forced-command', detail: 'the command printed nothing' };
  return parseAgentLine(line);
}

/** What the probe or the agent said that is not what was asked of it. */
function unavailable(said: AgentLine | Unavailable): Unavailable {
  if ('detail' in said) return said;
  if (said.type === 'error') return { reason: said.reason, detail: said.text };
  const line = said.type === 'other' ? said.line : `sshkeep-agent: ${said.type}`;
  return { reason: 'forced-command', detail: `the command printed ${JSON.stringify(line.slice(0, 120))}` };
}

/**
 * Finds an interpreter with the probe, then runs the agent's script for it over a second exec
 * (docs/resume-protocol.md, "The agent's life"): the agent's socket path, or why it cannot run.
 */
export async function startAgent(session: SshSession, params: AgentParameters, timeoutMs: number): Promise<string | Unavailable> {
  const probed = await execLine(session, probeCommand(), '', timeoutMs);
  if (!('type' in probed) || probed.type !== 'interpreter') return unavailable(probed);
  const said = await execLine(session, startCommand(probed.interpreter, params.session), agentStdin(params, probed.interpreter), timeoutMs);
  if ('type' in said && said.type === 'ready') return said.socketPath;
  return unavailable(said);
}

/** PING → PONG over a channel to the agent's socket: undefined when it answered. */
export async function pingAgent(session: SshSession, path: string, timeoutMs: number): Promise<Unavailable | undefined> {
  let channel: ClientChannel;
  try {
    channel = await toAgent(session, path, timeoutMs);
  } catch (err) {
    const e = err as ChannelOpenError;
    return { reason: e.reason === 'administratively-prohibited' ? 'streamlocal-refused' : 'agent-gone', detail: e.message };
  }
  try {
    channel.write(encodeFrame({ type: 'ping' }));
    const { first } = await answer(channel, new FrameParser(), timeoutMs);
    if (first.type !== 'pong') return { reason: 'agent-gone', detail: `the agent answered PING with ${first.type.toUpperCase()}` };
    return undefined;
  } catch (err) {
    return { reason: 'agent-gone', detail: (err as Error).message };
  } finally {
    channel.on('error', () => {});
    closeUnused(channel);
  }
}
