/**
 * The passphrase prompt on a real terminal (a pty): every way a person can leave it ends the run
 * with a clear exit, never a silent 0, a hang, or Node's abort on a terminal that is gone.
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import t from 'tap';
import { untracked } from './fixtures/bin.js';
import { CLI_MAIN, ISOLATED } from './fixtures/cli.js';
import { refusedPort } from './fixtures/net.js';
import { tempDir } from './fixtures/tmp.js';

// In a new session on a pty: wait for the prompt, then do ACTION (eof: Ctrl-D; ctrlc: Ctrl-C;
// hup: close the terminal) and print how the process ended, as JSON.
const PTY_PROMPT = `
import json, os, pty, select, sys, time
action = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
seen = b''
deadline = time.time() + 10
while b'passphrase' not in seen and time.time() < deadline:
    if select.select([fd], [], [], 0.1)[0]:
        try: seen += os.read(fd, 4096)
        except OSError: break
prompted = b'passphrase' in seen
if action == 'hup':
    os.close(fd)
else:
    os.write(fd, b'\\x04' if action == 'eof' else b'\\x03')
ended = None
deadline = time.time() + 10
while time.time() < deadline:
    if action != 'hup' and select.select([fd], [], [], 0)[0]:
        try: seen += os.read(fd, 4096)
        except OSError: pass
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        ended = os.waitstatus_to_exitcode(status); break
    time.sleep(0.05)
if ended is None: os.kill(pid, 9)
# What it wrote just before it exited may still be in the pty: read it to the end (EIO once drained).
while action != 'hup' and select.select([fd], [], [], 1)[0]:
    try: chunk = os.read(fd, 4096)
    except OSError: break
    if not chunk: break
    seen += chunk
print(json.dumps({'prompted': prompted, 'ended': ended, 'output': seen.decode(errors='replace')}), flush=True)
`;

interface Outcome {
  prompted: boolean;
  /** The exit code, or minus the signal; null when it was still running 10 s after. */
  ended: number | null;
  output: string;
}

async function atPrompt(action: 'eof' | 'ctrlc' | 'hup'): Promise<Outcome> {
  const dir = tempDir(t);
  const key = path.join(dir, 'id_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'secret words', '-f', key], { stdio: 'ignore' });
  const refused = await refusedPort();
  const args = [process.execPath, CLI_MAIN, ...ISOLATED, '-i', key, '-p', String(refused), '-L', '0:127.0.0.1:1', 'tester@127.0.0.1'];
  const env = { ...process.env, HOME: dir, SSH_AUTH_SOCK: '' };
  const child = spawn(...untracked('python3', ['-c', PTY_PROMPT, action, ...args], env), { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await once(child, 'exit');
  return JSON.parse(out) as Outcome;
}

t.test('prompt – Ctrl-C at the passphrase prompt: exit 130', async (t) => {
  const r = await atPrompt('ctrlc');
  t.ok(r.prompted, 'asked for the passphrase');
  t.equal(r.ended, 130);
  t.match(r.output, /interrupted at the prompt/);
});

// Regression: the prompt waited for an answer only; with nothing else on the event loop, node
// exited 0 as if sshkeep had run and stopped.
t.test('prompt – Ctrl-D (end of input) at the passphrase prompt: exit 130 saying so, not a silent 0', async (t) => {
  const r = await atPrompt('eof');
  t.ok(r.prompted, 'asked for the passphrase');
  t.equal(r.ended, 130);
  t.match(r.output, /no answer at the prompt: its input ended/);
});

// Regression: readline's setRawMode failed with EIO as an unhandled 'error', and node then
// crashed restoring the terminal (SIGSEGV or SIGABRT).
t.test('prompt – the terminal closed at the passphrase prompt: ended by its own SIGKILL (nodejs/node#51519), no crash', async (t) => {
  const r = await atPrompt('hup');
  t.ok(r.prompted, 'asked for the passphrase');
  t.equal(r.ended, -9, 'the exit for a closed terminal: not -6 or -11, and not left running');
});
