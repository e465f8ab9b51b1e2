import { spawn, spawnSync } from 'node:child_process';

/** How long a `Match exec` command may run (ssh waits for ever; sshkeep would not start, nor say why). */
export const EXEC_TIMEOUT_MS = 10_000;

/** How a `Match exec` command ended: its exit status, or why it has none. */
export type ExecOutcome = { status: number | null } | { timedOut: true } | { cannotRun: string };

/** Asked for a command whose outcome is not known yet: the evaluation is run again once it is. */
class PendingExec extends Error {
  constructor(readonly line: string) {
    super(`Match exec "${line}" has not run yet`);
  }
}

/** The outcomes known to the asynchronous evaluation in progress, by command line; undefined: run them in place. */
let known: Map<string, ExecOutcome> | undefined;

/** The shell Match exec runs its command with, as ssh: $SHELL, else /bin/sh. */
export const shell = () => process.env.SHELL || '/bin/sh';

/** Runs `line` through the shell, as ssh does, in place (blocking), or answers from the asynchronous evaluation's outcomes. */
export function runMatchExec(line: string): ExecOutcome {
  if (known) {
    const outcome = known.get(line);
    if (outcome === undefined) throw new PendingExec(line);
    return outcome;
  }
  const r = spawnSync(shell(), ['-c', line], { stdio: 'ignore', timeout: EXEC_TIMEOUT_MS, killSignal: 'SIGKILL' });
  const code = (r.error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ETIMEDOUT') return { timedOut: true };
  if (r.error) return { cannotRun: code ?? r.error.message };
  return { status: r.status };
}

function runAsync(line: string): Promise<ExecOutcome> {
  return new Promise((resolve) => {
    const child = spawn(shell(), ['-c', line], { stdio: 'ignore' });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve({ timedOut: true });
    }, EXEC_TIMEOUT_MS);
    child.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ cannotRun: err.code ?? err.message });
    });
    child.once('exit', (status) => {
      clearTimeout(timer);
      resolve({ status });
    });
  });
}

/**
 * Runs `evaluate` (which reads ssh_config) without blocking the event loop on its `Match exec`
 * commands, for a reload while tunnels serve: each time it asks for a command not run yet, that
 * command runs in a child process, and the evaluation starts again with its outcome known. The
 * evaluation is otherwise pure, so the last run sees what one blocking run would have.
 */
export async function withoutBlockingOnExec<T>(evaluate: () => T): Promise<T> {
  const outcomes = new Map<string, ExecOutcome>();
  for (;;) {
    let pending: string;
    // Set only while `evaluate` runs (synchronously): any other reading meanwhile runs its commands in place.
    known = outcomes;
    try {
      return evaluate();
    } catch (err) {
      if (!(err instanceof PendingExec)) throw err;
      pending = err.line;
    } finally {
      known = undefined;
    }
    outcomes.set(pending, await runAsync(pending));
  }
}
