/**
 * Starting the resume agent on the server (docs/resume-protocol.md, "The
 * agent's life"): the scripts sshkeep ships, their versions, the probe and the
 * command `exec` channels run, what sshkeep writes to the second one's stdin, and the
 * one line each answers with. No I/O beyond reading each script once.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The prefix of every line the probe and the agent print. */
const LINE_PREFIX = 'sshkeep-agent: ';

/**
 * The interpreters the probe looks for, in its order: perl first (perl-base is Essential on
 * Debian and Ubuntu, where python3 is absent from minimal images; and its agent has the
 * smaller RSS), then python3 (RHEL/Alma 9, Amazon Linux 2023), then RHEL 8's
 * platform-python. Alpine has neither.
 */
export const INTERPRETERS = {
  perl: { path: 'perl', language: 'perl' },
  python3: { path: 'python3', language: 'python' },
  'platform-python': { path: '/usr/libexec/platform-python', language: 'python' },
} as const;

export type Interpreter = keyof typeof INTERPRETERS;
export type Language = (typeof INTERPRETERS)[Interpreter]['language'];

/** The scripts, two levels up from src/resume/ and from dist/resume/ alike. */
export const AGENT_SCRIPT_PATHS: Record<Language, string> = {
  perl: fileURLToPath(new URL('../../agent/sshkeep-agent.pl', import.meta.url)),
  python: fileURLToPath(new URL('../../agent/sshkeep-agent.py', import.meta.url)),
};

/**
 * Both commands run with the user's login shell, which may be fish or tcsh: so the one thing
 * they ask of it is `exec sh -c '…'`, and the rest is POSIX sh.
 *
 * The probe prints the first interpreter that runs and has its agent's modules (`sshkeep-agent: interpreter perl`), before
 * sshkeep sends anything: an exec channel's stdin carries one program, so the program is
 * chosen first. Nothing else comes from the server into a command line. A path is tested
 * with `[ -x ]`: dash's `command -v` finds a file that cannot be run.
 */
export function probeCommand(): string {
  return `exec sh -c '${Object.entries(INTERPRETERS)
    .map(([name, { path, language }], i) => `${i ? 'elif' : 'if'} ${usable(path, language)}; then echo "${LINE_PREFIX}interpreter ${name}"; `)
    .join('')}else echo "${LINE_PREFIX}error no-interpreter"; exit 127; fi'`;
}

/**
 * A shell test that the interpreter runs and loads every module its agent uses (read from the
 * script): a RHEL perl-interpreter without its POSIX or Socket packages fails it, and python3
 * is tried instead of an agent that would die at its first line.
 */
function usable(path: string, language: Language): string {
  const { text } = agentScript(language);
  const exists = path.startsWith('/') ? `[ -x ${path} ] && ` : '';
  if (language === 'perl') {
    const modules = [...text.matchAll(/^use ([A-Z][\w:]*)/gm)].map((m) => ` -M${m[1]}`).join('');
    return `${exists}${path}${modules} -e 1 >/dev/null 2>&1`;
  }
  const modules = [...text.matchAll(/^(?:import (\w+)|from (\w+) import)/gm)].map((m) => m[1] ?? m[2]).join(',');
  return `${exists}${path} -I -S -c "import ${modules}" >/dev/null 2>&1`;
}

/**
 * Python cannot read its program from stdin and then go on reading the parameter line after
 * it, as perl does after `__END__`: this loader reads stdin to its end, runs what comes
 * before the last two lines (`__END__` and the parameter line) and leaves those two to the
 * program as `end` and `parameters`. No quote or `$` in it, for the sh quoting around it.
 */
const PYTHON_LOADER = 'import sys;*program,end,parameters=sys.stdin.buffer.read().splitlines(True);exec(bytes().join(program))';

/**
 * The command that runs the agent with the interpreter the probe found. The script comes on
 * stdin, never in the command line. `sshkeep-agent` is in the process's command line from the
 * start, for `pgrep -f sshkeep-agent`; perl then renames itself `sshkeep-agent <version>
 * <session>`, which Python cannot, so its command line carries the two from the start (the
 * session names the agent's socket: it is no secret, as stream ids are). `-I -S`: no
 * PYTHON* variables, user site or current directory on the module path. umask 077: what the
 * agent creates is the user's alone. ulimit: a stream holds two descriptors (its channel and
 * its target), and a 1024 default would stop the agent near 500 streams; where the hard
 * limit is lower, the attempt fails silently.
 */
export function startCommand(interpreter: Interpreter, session: string): string {
  const { path, language } = INTERPRETERS[interpreter];
  const run = language === 'perl' ? `exec ${path} - sshkeep-agent` : `exec ${path} -I -S -c "${PYTHON_LOADER}" sshkeep-agent ${agentScript(language).version} ${checkedSession(session)}`;
  return `exec sh -c 'umask 077; ulimit -n 4096 2>/dev/null; ${run}'`;
}

export interface AgentScript {
  /** The program text, ending with its `__END__` line. */
  text: string;
  /** The first 12 hex digits of the script's sha256: names its socket, so two versions (or languages) never meet. */
  version: string;
}

const cached = new Map<Language, AgentScript>();

/** A shipped script and its version, read once. */
export function agentScript(language: Language = 'perl'): AgentScript {
  let script = cached.get(language);
  if (!script) {
    const file = AGENT_SCRIPT_PATHS[language];
    const text = fs.readFileSync(file, 'utf8');
    if (!text.endsWith('\n__END__\n')) throw new Error(`${file} does not end with its __END__ line`);
    script = { text, version: createHash('sha256').update(text).digest('hex').slice(0, 12) };
    cached.set(language, script);
  }
  return script;
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
  checkedSession(params.session);
  if (!Number.isSafeInteger(params.graceMs) || params.graceMs < 0) throw new RangeError(`agent grace ${params.graceMs} ms is not a whole number`);
  return `${JSON.stringify({ session: params.session, graceMs: params.graceMs, version })}\n`;
}

/** The session, checked: it goes into a command line and a file name. */
function checkedSession(session: string): string {
  if (!/^[0-9a-f]{16}$/.test(session)) throw new RangeError(`agent session ${JSON.stringify(session)} is not 16 hex digits`);
  return session;
}

/** Everything the exec channel's stdin gets: the interpreter's program, then the parameter line. Then stdin is closed. */
export function agentStdin(params: AgentParameters, interpreter: Interpreter = 'perl'): string {
  const { text, version } = agentScript(INTERPRETERS[interpreter].language);
  return text + parameterLine(params, version);
}

export type AgentLine =
  | { type: 'interpreter'; interpreter: Interpreter }
  | { type: 'ready'; socketPath: string }
  | { type: 'error'; reason: string; text: string }
  /** Not the agent speaking: a ForceCommand, a shell banner. The agent cannot run here. */
  | { type: 'other'; line: string };

/** The probe's or the agent's one line on stdout (without its newline). */
export function parseAgentLine(line: string): AgentLine {
  if (!line.startsWith(LINE_PREFIX)) return { type: 'other', line };
  const [word, ...rest] = line.slice(LINE_PREFIX.length).split(' ');
  if (word === 'interpreter' && rest.length === 1 && Object.hasOwn(INTERPRETERS, rest[0]!)) return { type: 'interpreter', interpreter: rest[0] as Interpreter };
  if (word === 'ready' && rest.length > 0 && rest.join(' ').startsWith('/')) return { type: 'ready', socketPath: rest.join(' ') };
  if (word === 'error' && rest.length > 0 && rest[0] !== '') return { type: 'error', reason: rest[0], text: rest.slice(1).join(' ') };
  return { type: 'other', line };
}
