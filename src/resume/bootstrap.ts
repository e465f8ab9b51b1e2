/**
 * Starting the resume agent on the server (docs/resume-protocol.md, "The
 * agent's life"): the script sshkeep ships, its version, the command an `exec`
 * channel runs, what sshkeep writes to that channel's stdin, and the one line
 * the agent answers with. No I/O beyond reading the script once.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The script, two levels up from src/resume/ and from dist/resume/ alike. */
export const AGENT_SCRIPT_PATH = fileURLToPath(new URL('../../agent/sshkeep-agent.pl', import.meta.url));

/**
 * The exec command. sshd runs it with the user's login shell, which may be
 * fish or tcsh: so the one thing it asks of that shell is `exec sh -c '…'`,
 * and the rest is POSIX sh. The script comes on stdin, never in the command
 * line; the argument `sshkeep-agent` puts the name in the process's command
 * line from the start, for `pgrep -f sshkeep-agent`. umask 077: what the agent
 * creates is the user's alone. ulimit: a stream holds two descriptors (its
 * channel and its target), and a 1024 default would stop the agent near 500
 * streams; where the hard limit is lower, the attempt fails silently.
 */
export const BOOTSTRAP_COMMAND =
  "exec sh -c 'umask 077; ulimit -n 4096 2>/dev/null; " +
  'if command -v perl >/dev/null 2>&1; then exec perl - sshkeep-agent; ' +
  'else echo "sshkeep-agent: error no-interpreter"; exit 127; fi\'';

/** The prefix of the agent's one line on stdout. */
const LINE_PREFIX = 'sshkeep-agent: ';

export interface AgentScript {
  /** The program text, ending with its `__END__` line. */
  text: string;
  /** The first 12 hex digits of the script's sha256: names its socket, so two versions never meet. */
  version: string;
}

let cached: AgentScript | undefined;

/** The shipped script and its version, read once. */
export function agentScript(): AgentScript {
  if (!cached) {
    const text = fs.readFileSync(AGENT_SCRIPT_PATH, 'utf8');
    if (!text.endsWith('\n__END__\n')) throw new Error(`${AGENT_SCRIPT_PATH} does not end with its __END__ line`);
    cached = { text, version: createHash('sha256').update(text).digest('hex').slice(0, 12) };
  }
  return cached;
}

/** One agent per sshkeep process: 64 random bits, in hex. Not a secret (it names the socket); stream ids are. */
export function newSession(): string {
  return randomBytes(8).toString('hex');
}

export interface AgentParameters {
  /** 16 hex digits, from newSession(). */
  session: string;
  /** How long the agent lives with nothing attached and nothing held. */
  graceMs: number;
}

/** The parameter line, as the agent reads it after the program's `__END__`. */
export function parameterLine(params: AgentParameters, version = agentScript().version): string {
  if (!/^[0-9a-f]{16}$/.test(params.session)) throw new RangeError(`agent session ${JSON.stringify(params.session)} is not 16 hex digits`);
  if (!Number.isSafeInteger(params.graceMs) || params.graceMs < 0) throw new RangeError(`agent grace ${params.graceMs} ms is not a whole number`);
  return `${JSON.stringify({ session: params.session, graceMs: params.graceMs, version })}\n`;
}

/** Everything the exec channel's stdin gets: the program, then the parameter line. Then stdin is closed. */
export function agentStdin(params: AgentParameters): string {
  const { text, version } = agentScript();
  return text + parameterLine(params, version);
}

export type AgentLine =
  | { type: 'ready'; socketPath: string }
  | { type: 'error'; reason: string; text: string }
  /** Not the agent speaking: a ForceCommand, a shell banner. The agent cannot run here. */
  | { type: 'other'; line: string };

/** The agent's one line on stdout (without its newline). */
export function parseAgentLine(line: string): AgentLine {
  if (!line.startsWith(LINE_PREFIX)) return { type: 'other', line };
  const [word, ...rest] = line.slice(LINE_PREFIX.length).split(' ');
  if (word === 'ready' && rest.length > 0 && rest.join(' ').startsWith('/')) return { type: 'ready', socketPath: rest.join(' ') };
  if (word === 'error' && rest.length > 0 && rest[0] !== '') return { type: 'error', reason: rest[0], text: rest.slice(1).join(' ') };
  return { type: 'other', line };
}
