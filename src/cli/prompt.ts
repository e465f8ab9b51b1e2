import readline from 'node:readline';
import { Writable } from 'node:stream';
import type { Prompter } from '../ssh/prompter.js';
import { InterruptedError } from '../errors.js';

/** Asks on the terminal, without echo for secrets; undefined when stdin is not a TTY. */
export function ttyPrompter(): Prompter | undefined {
  if (!process.stdin.isTTY) return undefined;
  return {
    ask(question, echo) {
      return new Promise((resolve, reject) => {
        let muted = false;
        const output = new Writable({
          write(chunk, _enc, done) {
            if (!muted) process.stderr.write(chunk);
            done();
          },
        });
        const rl = readline.createInterface({ input: process.stdin, output, terminal: true });
        rl.on('SIGINT', () => {
          rl.close();
          process.stderr.write('\n');
          reject(new InterruptedError('interrupted at the prompt'));
        });
        rl.question(question, (answer) => {
          rl.close();
          if (!echo) process.stderr.write('\n');
          resolve(answer);
        });
        muted = !echo; // the question is out; what is typed next stays hidden
      });
    },
  };
}
