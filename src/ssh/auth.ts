import type { AnyAuthMethod, AuthHandlerMiddleware, AuthenticationType } from 'ssh2';
import type { Identity } from './identities.js';
import type { Prompter } from './prompter.js';

export interface AuthPlan {
  username: string;
  agentSocket: string | undefined;
  identities: Identity[];
  /** Password and keyboard-interactive are offered only when someone can answer. */
  prompter: Prompter | undefined;
  /** The server host, for the password prompt. */
  host: string;
}

/** What was offered, for an AuthError that says what to try next. */
export interface AuthAttempts {
  tried: string[];
}

/**
 * ssh2's authHandler: agent keys, then identity files, then password and
 * keyboard-interactive on a TTY (OpenSSH's order), skipping methods the
 * server no longer lists. A password typed once is reused for reconnects.
 */
/** Server text shown on our terminal: control characters (escape sequences) removed, as OpenSSH does. */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '');
}

interface Step {
  /** The method name the server lists for this step. */
  method: AuthenticationType;
  label: string;
  make(): AnyAuthMethod | Promise<AnyAuthMethod>;
}

export function authHandler(plan: AuthPlan, attempts: AuthAttempts, cache: { password?: string }): AuthHandlerMiddleware {
  const { username } = plan;
  const steps: Step[] = [];
  if (plan.agentSocket) {
    const agent = plan.agentSocket;
    steps.push({ method: 'publickey', label: 'agent', make: () => ({ type: 'agent', username, agent }) });
  }
  for (const id of plan.identities) {
    steps.push({ method: 'publickey', label: `publickey ${id.file}`, make: () => ({ type: 'publickey', username, key: id.key }) });
  }
  const prompter = plan.prompter;
  if (prompter) {
    steps.push({
      method: 'password',
      label: 'password',
      make: async () => {
        cache.password ??= await prompter.ask(`${username}@${plan.host}'s password: `, false);
        return { type: 'password', username, password: cache.password };
      },
    });
    steps.push({
      method: 'keyboard-interactive',
      label: 'keyboard-interactive',
      make: () => ({
        type: 'keyboard-interactive',
        username,
        prompt: (_name, instructions, _lang, prompts, finish) => {
          void (async () => {
            if (instructions) process.stderr.write(`${printable(instructions)}\n`);
            const answers: string[] = [];
            for (const p of prompts) answers.push(await prompter.ask(printable(p.prompt), p.echo ?? false));
            finish(answers);
          })().catch(() => finish([]));
        },
      }),
    });
  }
  let next = 0;
  // ssh2 takes `false` for "no more methods"; its typings omit it.
  return (methodsLeft, _partial, done) => {
    const stop = done as unknown as (m: false) => void;
    void (async () => {
      while (next < steps.length) {
        const step = steps[next++]!;
        if (methodsLeft && !methodsLeft.includes(step.method)) continue;
        attempts.tried.push(step.label);
        return done(await step.make());
      }
      stop(false);
    })().catch(() => stop(false));
  };
}
