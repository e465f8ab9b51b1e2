/**
 * How a stream ends when sshkeep stops with its tail still on the way: every byte arrives and the
 * stream ends cleanly, or the peer is reset. Never a clean end after a truncated stream. The
 * slow readers are Python clients with a small receive buffer, so the tail really waits in
 * sshkeep's or the server's buffers (a Node client's own socket would take it all).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import t, { type Test } from 'tap';
import { untracked } from './fixtures/bin.js';
import { cliArgs, logIs, portOf, spawnCliFor, type SpawnedCli } from './fixtures/cli.js';
import { loginArgs } from './fixtures/login.js';
import { deadline, listen } from './fixtures/net.js';
import { resumeSshd } from './fixtures/resume.js';
import { requireSshd, sshdLogin, startSshd } from './fixtures/sshd.js';
import { makeKeys, startServer } from './fixtures/tunnel.js';

// Connects with a 32 KiB receive buffer, sends SEND bytes (then half-closes if asked), waits
// DELAY s, then reads to the end: prints what came and how it ended.
const SLOW_CLIENT = `
import json, socket, sys, time
port, send, half, delay = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == '1', float(sys.argv[4])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
s.connect(('127.0.0.1', port))
s.sendall(b'x' * send)
if half: s.shutdown(socket.SHUT_WR)
print('connected', flush=True)
time.sleep(delay)
got, end = 0, None
s.settimeout(15)
try:
    while True:
        b = s.recv(65536)
        if not b: end = 'EOF'; break
        got += len(b)
except Exception as e:
    end = type(e).__name__
print(json.dumps({'got': got, 'end': end}), flush=True)
`;

interface Read {
  got: number;
  end: string;
}

/** Starts the slow client; `connected` once it has sent, `result` once it read to the end. */
function slowClient(t: Test, port: number, send: number, halfClose: boolean, delayS: number): { connected: Promise<void>; result: Promise<Read> } {
  const child = spawn(...untracked('python3', ['-c', SLOW_CLIENT, String(port), String(send), halfClose ? '1' : '0', String(delayS)]), { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  let out = '';
  let connected!: () => void;
  const isConnected = new Promise<void>((resolve) => (connected = resolve));
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.includes('connected')) connected();
  });
  const result = once(child, 'exit').then(() => JSON.parse(out.split('\n').find((l) => l.startsWith('{')) ?? '{}') as Read);
  return { connected: isConnected, result };
}

/** A target that answers every connection with `size` bytes and its EOF; `served` once it has written them all. */
async function bigReplies(t: Test, size: number, afterRequestEnds = false): Promise<{ port: number; served: Promise<void> }> {
  let served!: () => void;
  const done = new Promise<void>((resolve) => (served = resolve));
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    const reply = () => s.end(Buffer.alloc(size, 7), () => served());
    if (afterRequestEnds) s.on('end', reply);
    else reply();
    s.resume();
  });
  await listen(server);
  t.teardown(() => server.close());
  return { port: (server.address() as net.AddressInfo).port, served: done };
}

async function forwardPort(cli: SpawnedCli): Promise<number> {
  const port = portOf(await cli.waitForLog(logIs('listen'), 10_000, 'the listen line'));
  await cli.waitForLog(logIs('state', { to: 'ready' }), 10_000, 'the tunnel to be ready');
  return port;
}

// Regression: the client's socket had the reply's EOF queued behind bytes it had not taken, and
// the process exited at the end of the drain: the kernel sent what it held, then a clean FIN.
t.test('stream ends – a complete reply still being written when the drain ends: the client is reset, not ended cleanly', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const size = 4_200_000;
  const target = await bigReplies(t, size);
  const cli = spawnCliFor(t, cliArgs(server.port, keys, `0:127.0.0.1:${target.port}`, ['--max-drain', '500ms']));
  const client = slowClient(t, await forwardPort(cli), 0, false, 4);
  await deadline(target.served, 10_000, 'the target to write its whole reply');
  cli.kill('SIGTERM');
  t.strictSame(await cli.exited(10_000), { code: 0, signal: null });
  const read = await deadline(client.result, 30_000, 'the client to read to the end');
  t.ok(read.got < size, `the client got ${read.got} of ${size} bytes: the drain ended first`);
  t.equal(read.end, 'ConnectionResetError', 'so it is reset');
});

// Regression: the connection counted as ended once the client closed, with the upload's tail
// still on its way to the target; the drain ended then, and the SSH connection closed under it.
// The real sshd: it answers our CLOSE once it has written everything to the target (the embedded
// server drops what it still holds for the target when the channel closes).
t.test('stream ends – the upload\'s tail still on the way when the client closes: the drain waits, the target gets all of it', async (t) => {
  if (!requireSshd(t)) return;
  const sshd = await startSshd(t);
  const size = 20_000_000;
  let got = 0;
  let ended!: (how: string) => void;
  const end = new Promise<string>((resolve) => (ended = resolve));
  // Answers at once and half-closes, then reads slowly: 20 ms in every 100.
  const target = net.createServer({ allowHalfOpen: true }, (s) => {
    s.end('ok\n');
    s.pause();
    const tick = setInterval(() => {
      s.resume();
      setTimeout(() => s.pause(), 20);
    }, 100);
    s.on('data', (d: Buffer) => (got += d.length));
    s.on('end', () => ended('EOF'));
    s.on('error', (err: NodeJS.ErrnoException) => ended(err.code ?? err.message));
    s.on('close', () => clearInterval(tick));
  });
  await listen(target);
  t.teardown(() => target.close());
  const cli = spawnCliFor(t, loginArgs(sshdLogin(sshd), ['--max-drain', '30s', '-L', `0:127.0.0.1:${(target.address() as net.AddressInfo).port}`]));
  const client = slowClient(t, await forwardPort(cli), size, true, 0);
  await deadline(client.result, 30_000, 'the client to upload and read the answer');
  cli.kill('SIGTERM');
  t.strictSame(await cli.exited(30_000), { code: 0, signal: null });
  t.equal(await deadline(end, 5000, 'the target to see the end'), 'EOF');
  t.equal(got, size, 'the target got every byte of the upload');
  t.equal(cli.logs().find(logIs('stopped'))?.connectionsCut, 0, 'nothing cut');
});

// Regression (--resume): the stream counted as ended once the agent had acknowledged both EOFs,
// before the client had taken the reply's tail; the drain ended at once.
t.test('stream ends – --resume: the reply\'s tail still being written to the client: the drain waits for it', async (t) => {
  if (!requireSshd(t)) return;
  const { sshd } = await resumeSshd(t);
  const size = 4_200_000;
  const target = await bigReplies(t, size, true);
  const cli = spawnCliFor(t, loginArgs(sshdLogin(sshd), ['-v', '--resume', '--max-drain', '30s', '-L', `0:127.0.0.1:${target.port}`]));
  const port = await forwardPort(cli);
  await cli.waitForLog(logIs('resume_agent'), 10_000, 'the agent to be checked');
  const client = slowClient(t, port, 10, true, 3);
  await deadline(target.served, 10_000, 'the target to write its whole reply');
  cli.kill('SIGTERM');
  const read = await deadline(client.result, 30_000, 'the client to read to the end');
  t.strictSame(read, { got: size, end: 'EOF' }, 'every byte, then a clean end');
  t.strictSame(await cli.exited(10_000), { code: 0, signal: null });
  t.equal(cli.logs().find(logIs('stopped'))?.connectionsCut, 0, 'nothing cut');
});
