/**
 * SIGHUP is a reload for a daemon, but sshkeep run from a terminal that is then closed must end
 * as `ssh -L` does, not live on unseen: the terminal's hangup drains, then the process ends
 * (by SIGKILL of its own: Node 20 aborts at exit once its terminal is gone, nodejs/node#51519).
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { untracked } from './fixtures/bin.js';
import { startEchoFor } from './fixtures/net.js';
import { tempDir } from './fixtures/tmp.js';
import { makeKeys, startServer } from './fixtures/tunnel.js';
import { CLI_MAIN, cliArgs } from './fixtures/cli.js';

// In a new session on a pty: wait for the tunnel to be ready (its -E log file, else the
// terminal, says so), then close the terminal (the kernel sends SIGHUP to the session leader,
// sshkeep) and print how sshkeep ended: -9 is its own SIGKILL at the end of the drain, while a
// crash writing to the dead terminal would be -6 or -11.
const PTY_RUN = `
import os, pty, sys, time, select
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
log = os.environ.get('LOG_FILE')
seen = b''
def ready():
    if log: return os.path.exists(log) and '-> ready' in open(log).read()
    return b'ready' in seen
deadline = time.time() + 10
while not ready() and time.time() < deadline:
    if select.select([fd], [], [], 0.1)[0]:
        try: seen += os.read(fd, 4096)
        except OSError: break
if not ready():
    print('never ready', flush=True); os.kill(pid, 9); sys.exit(3)
os.close(fd)
deadline = time.time() + 10
while time.time() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print('ended', os.waitstatus_to_exitcode(status), flush=True); sys.exit(0)
    time.sleep(0.05)
os.kill(pid, 9); print('still running 10 s after the terminal closed', flush=True); sys.exit(4)
`;

t.test('terminal hangup – closing the terminal sshkeep runs in drains and ends it; it is not taken for a reload', async (t) => {
  const log = path.join(tempDir(t), 'sshkeep.log');
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const child = spawn(...untracked('python3', ['-c', PTY_RUN, process.execPath, CLI_MAIN, ...cliArgs(server.port, keys, `0:127.0.0.1:${echo.port}`, ['-E', log])]), {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, LOG_FILE: log },
  });
  t.teardown(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const [code] = (await once(child, 'exit')) as [number];
  t.equal(out.trim(), 'ended -9', 'sshkeep drained and ended itself once its terminal was closed');
  t.equal(code, 0, 'the pty runner saw it end');
  const lines = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event?: string; signal?: string });
  t.ok(lines.some((l) => l.event === 'shutdown' && l.signal === 'SIGHUP (terminal closed)'), 'the SIGTERM path, for the terminal hangup');
  t.ok(lines.some((l) => l.event === 'stopped'), 'drained to the end');
  t.notOk(lines.some((l) => l.event === 'reload'), 'not a reload');
});

t.test('terminal hangup – without -E, the log to the dead terminal does not crash the drain', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const child = spawn(...untracked('python3', ['-c', PTY_RUN, process.execPath, CLI_MAIN, ...cliArgs(server.port, keys, `0:127.0.0.1:${echo.port}`)]), {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await once(child, 'exit');
  t.equal(out.trim(), 'ended -9', 'ended by its own SIGKILL after the drain, not by SIGABRT or SIGSEGV');
});

// Regression: a terminal's descriptors without a controlling terminal (setsid(1) inside a pty)
// were taken for a terminal since closed, and every exit became the SIGKILL above (137).
t.test('terminal hangup – a terminal\'s stdio but no controlling terminal (setsid) is not a closed terminal: a normal exit', async (t) => {
  const child = spawn(...untracked('script', ['-qec', `setsid -w ${process.execPath} ${CLI_MAIN} --version`, '/dev/null']), { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const [code] = (await once(child, 'exit')) as [number];
  t.match(out, /^sshkeep \d/m, 'printed its version');
  t.equal(code, 0, 'exit 0, not 137');
});
