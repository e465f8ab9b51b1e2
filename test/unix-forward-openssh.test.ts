/**
 * -L with Unix sockets against the real OpenSSH sshd: a local Unix listener (mode 0600, removed
 * on stop, a stale socket file replaced, a live socket or another file refused) and Unix socket
 * targets on the server (direct-streamlocal), including one that does not exist.
 */
import t from 'tap';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { ListenError } from '../src/errors.js';
import { untracked } from './fixtures/bin.js';
import { requireSshd, sshdInput, startSshd } from './fixtures/sshd.js';
import { connect, deadline, outcome, roundTrip, until, startEchoFor } from './fixtures/net.js';
import { startSshkeep } from './fixtures/tunnel.js';
import { tempDir } from './fixtures/tmp.js';

type Line = Record<string, unknown>;

const READY_MS = 10_000;

/** Connects to a Unix socket. */
async function connectUnix(socketPath: string): Promise<net.Socket> {
  const s = net.connect({ path: socketPath, allowHalfOpen: true });
  await deadline(once(s, 'connect'), 5000, `connect to ${socketPath}`);
  return s;
}

/** Leaves a socket file nobody listens on: a child listens at `socketPath` and is SIGKILLed. */
async function leaveStaleSocket(socketPath: string): Promise<void> {
  const child = spawn(...untracked(process.execPath, ['-e', "require('net').createServer().listen(process.argv[1], () => console.log('listening'))", socketPath]), {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = once(child, 'exit');
  try {
    let out = '';
    child.stdout!.setEncoding('utf8');
    await deadline(
      new Promise<void>((resolve) =>
        child.stdout!.on('data', (s: string) => {
          out += s;
          if (out.includes('listening')) resolve();
        }),
      ),
      5000,
      'the child to listen',
    );
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
}

/** The error start() rejected with, or undefined if it started. */
async function startFails(started: Promise<unknown>): Promise<Error | undefined> {
  try {
    await started;
    return undefined;
  } catch (err) {
    return err as Error;
  }
}

const isSocket = (p: string) => {
  try {
    return fs.lstatSync(p).isSocket();
  } catch {
    return false;
  }
};

async function main(): Promise<void> {
  if (!requireSshd(t)) return;
  const sshd = await startSshd(t);
  const echo = await startEchoFor(t);

  t.test('-L /path.sock:host:port: round trip, mode 0600, removed on stop', async (t) => {
    const dir = tempDir(t, 'sshkeep-unix-');
    const sock = path.join(dir, 'x.sock');
    const umask = process.umask();
    const { app, bound, logs } = await startSshkeep(t, sshdInput(sshd, { localForwards: [`${sock}:127.0.0.1:${echo.port}`] }));
    t.same(bound, [{ spec: `${sock}:127.0.0.1:${echo.port}`, address: sock, port: 0 }], 'bound to the path, port 0');
    t.equal(process.umask(), umask, 'the process umask is restored');
    t.ok(isSocket(sock), 'a socket file exists at the path');
    t.equal(fs.statSync(sock).mode & 0o777, 0o600, 'mode 0600: only this user can connect');
    t.match(logs.find('listen')[0], { address: sock, port: 0 }, 'a listen line names the path');
    await deadline(app.ready(), READY_MS, `tunnel ready\n${sshd.logs()}`);

    const client = await connectUnix(sock);
    const payload = 'over a unix socket \u00e9'.repeat(100);
    t.equal((await deadline(roundTrip(client, payload), 5000, 'echo')).toString(), payload, 'echoed byte for byte');
    const end = await logs.waitFor((l) => l.event === 'conn_end', 5000, 'conn_end');
    t.match(end, { side: 'client', reset: false, bytesUp: Buffer.byteLength(payload), bytesDown: Buffer.byteLength(payload) });

    await app.stop();
    await until(() => !fs.existsSync(sock), 2000, 'the socket file to be removed');
    t.notOk(fs.existsSync(sock), 'the socket file is gone after stop()');
    t.notOk(logs.lines.some((l: Line) => l.event === 'stale_socket'), 'nothing was stale');
  });

  t.test('-L over a stale socket file from a crashed run: replaced, logged stale_socket', async (t) => {
    const dir = tempDir(t, 'sshkeep-unix-');
    const sock = path.join(dir, 'stale.sock');
    await leaveStaleSocket(sock);
    t.ok(isSocket(sock), 'a socket file was left behind');
    const { app, logs } = await startSshkeep(t, sshdInput(sshd, { localForwards: [`${sock}:127.0.0.1:${echo.port}`] }));
    t.match(logs.find('stale_socket'), [{ path: sock, level: 'info' }], 'one stale_socket line with the path');
    t.equal(fs.statSync(sock).mode & 0o777, 0o600, 'the new socket is 0600');
    await deadline(app.ready(), READY_MS, 'tunnel ready');
    const client = await connectUnix(sock);
    t.equal((await deadline(roundTrip(client, 'after stale'), 5000, 'echo')).toString(), 'after stale', 'the new listener serves');
  });

  t.test('-L over a live socket: ListenError "in use", the other listener untouched', async (t) => {
    const dir = tempDir(t, 'sshkeep-unix-');
    const sock = path.join(dir, 'live.sock');
    const other = await startEchoFor(t, { path: sock });
    const err = await startFails(startSshkeep(t, sshdInput(sshd, { localForwards: [`${sock}:127.0.0.1:${echo.port}`] })));
    t.type(err, ListenError, 'a ListenError (exit 4)');
    t.match(err?.message, /in use/, 'says the path is in use');
    t.match(err?.message, sock, 'names the path');
    t.ok(isSocket(sock), 'the socket file is still there');
    const before = other.connections;
    const client = await connectUnix(sock);
    t.equal((await deadline(roundTrip(client, 'still mine'), 5000, 'echo')).toString(), 'still mine', 'the other listener still answers');
    t.ok(other.connections > before, 'reached the other listener');
  });

  // Regression: libuv reports the missing directory as EACCES, which read "permission denied".
  t.test('-L in a directory that does not exist: a ListenError saying so', async (t) => {
    const sock = path.join(tempDir(t, 'sshkeep-unix-'), 'absent', 'x.sock');
    const err = await startFails(startSshkeep(t, sshdInput(sshd, { localForwards: [`${sock}:127.0.0.1:${echo.port}`] })));
    t.type(err, ListenError, 'a ListenError (exit 4)');
    t.match(err?.message, `the directory of ${sock} does not exist`);
  });

  t.test('-L over a regular file: rejected, the file untouched', async (t) => {
    const dir = tempDir(t, 'sshkeep-unix-');
    const file = path.join(dir, 'notes.sock');
    fs.writeFileSync(file, 'precious data\n', { mode: 0o644 });
    const err = await startFails(startSshkeep(t, sshdInput(sshd, { localForwards: [`${file}:127.0.0.1:${echo.port}`] })));
    t.type(err, ListenError, 'a ListenError (exit 4)');
    t.match(err?.message, /not a socket/, 'says it is not a socket');
    t.equal(fs.readFileSync(file, 'utf8'), 'precious data\n', 'content untouched');
    t.ok(fs.lstatSync(file).isFile(), 'still a regular file');
    t.equal(fs.statSync(file).mode & 0o777, 0o644, 'mode untouched');
  });

  t.test('-L 0:/remote.sock (direct-streamlocal): round trip to a Unix socket on the server', async (t) => {
    const dir = tempDir(t, 'sshkeep-unix-');
    const remote = path.join(dir, 'remote.sock');
    const target = await startEchoFor(t, { path: remote });
    const { app, bound, logs } = await startSshkeep(t, sshdInput(sshd, { localForwards: [`0:${remote}`] }));
    t.equal(bound[0]!.address, '127.0.0.1', 'TCP listener on loopback');
    await deadline(app.ready(), READY_MS, 'tunnel ready');
    const client = await connect(bound[0]!.port);
    const payload = Buffer.from(Array.from({ length: 4096 }, (_, i) => i & 0xff));
    t.same(await deadline(roundTrip(client, payload), 5000, `echo\n${sshd.logs()}`), payload, 'echoed byte for byte');
    t.equal(target.connections, 1, 'the Unix echo server got the connection');
    const end = await logs.waitFor((l) => l.event === 'conn_end', 5000, 'conn_end');
    t.match(end, { side: 'client', reset: false, bytesUp: payload.length });
  });

  t.test('-L /a.sock:/b.sock: Unix to Unix', async (t) => {
    const dir = tempDir(t, 'sshkeep-unix-');
    const a = path.join(dir, 'a.sock');
    const b = path.join(dir, 'b.sock');
    const target = await startEchoFor(t, { path: b });
    const { app, bound } = await startSshkeep(t, sshdInput(sshd, { localForwards: [`${a}:${b}`] }));
    t.same(bound, [{ spec: `${a}:${b}`, address: a, port: 0 }], 'bound to the local path');
    t.equal(fs.statSync(a).mode & 0o777, 0o600, 'mode 0600');
    await deadline(app.ready(), READY_MS, 'tunnel ready');
    const results = await deadline(
      Promise.all(['one', 'two', 'three'].map(async (m) => (await roundTrip(await connectUnix(a), `unix to unix ${m}`)).toString())),
      5000,
      'three echoes',
    );
    t.same(results, ['unix to unix one', 'unix to unix two', 'unix to unix three'], 'each got its own echo');
    t.equal(target.connections, 3, 'three connections reached b.sock');
  });

  t.test('-L to a remote Unix socket that does not exist: client reset, conn_end side target', async (t) => {
    const dir = tempDir(t, 'sshkeep-unix-');
    const missing = path.join(dir, 'missing.sock');
    const { app, bound, logs } = await startSshkeep(t, sshdInput(sshd, { localForwards: [`0:${missing}`] }));
    await deadline(app.ready(), READY_MS, 'tunnel ready');
    const client = await connect(bound[0]!.port);
    const done = outcome(client, { closeOnEnd: true });
    client.write('hello?');
    const end = await deadline(done, 5000, 'the client to be closed');
    t.equal(end.data.length, 0, 'no data');
    t.equal(end.ended, false, "no clean 'end' (it would look like an empty reply)");
    t.equal(end.errorCode, 'ECONNRESET', 'reset');
    const line = await logs.waitFor((l) => l.event === 'conn_end', 5000, 'conn_end');
    t.match(line, { side: 'target', reset: true, target: missing, reason: 'connect-failed' });
    t.equal(app.connection.state, 'ready', 'the tunnel is still ready');
  });
}

await main();
