import readline from 'node:readline';
import { Writable } from 'node:stream';
import type { Prompter } from '../ssh/prompter.js';
import { InterruptedError } from '../errors.js';

/** Asks on the terminal, without echo for secrets; undefined when stdin is not a TTY. */
export function ttyPrompter(): Prompter | undefined {
  if (!process.stdin.isTTY) return undefined;
  return {
    say(text) {
      process.stderr.write(`${text}\n`);
    },
    ask(question, echo) {
      return new Promise((resolve, reject) => {
        let muted = false;
        let settled = false;
        const output = new Writable({
          write(chunk, _enc, done) {
            if (!muted) process.stderr.write(chunk);
            done();
          },
        });
        const rl = readline.createInterface({ input: process.stdin, output, terminal: true });
        // Once: an answer, Ctrl-C, the end of input (Ctrl-D) or the terminal gone. Nothing else
        // waits on the event loop at a start-up prompt: unsettled, node would just exit 0.
        const settle = (answer: string | InterruptedError) => {
          if (settled) return;
          settled = true;
          rl.close();
          if (!echo || typeof answer !== 'string') process.stderr.write('\n');
          if (typeof answer === 'string') resolve(answer);
          else reject(answer);
        };
        rl.on('SIGINT', () => settle(new InterruptedError('interrupted at the prompt')));
        rl.on('close', () => settle(new InterruptedError('no answer at the prompt: its input ended')));
        // The terminal hung up: setRawMode fails with EIO.
        rl.on('error', (err) => settle(new InterruptedError(`no answer at the prompt: the terminal is gone (${err.message})`)));
        rl.question(question, settle);
        muted = !echo; // the question is out; what is typed next stays hidden
      });
    },
  };
}
