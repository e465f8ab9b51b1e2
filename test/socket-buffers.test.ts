/**
 * The local socket of every forwarded connection buffers DEFAULTS.localSocketHighWaterMarkBytes
 * both ways: Node 20's default is half an SSH packet, which paused the channel once per packet
 * (BENCHMARKS.md). The sockets are private to the forwards, so node:net's factories are wrapped
 * to see them; this also checks that Node honours the option on servers and on connects. -L's
 * clients and -R's TCP targets are TcpClients (no read buffer: each read is handed on), seen as the
 * forwards set them up.
 */
import t, { type Test } from 'tap';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { DEFAULTS } from '../src/config/defaults.js';
import { TcpClient } from '../src/forward/tcp-client.js';
import { connect, deadline, roundTrip, until, startEchoFor } from './fixtures/net.js';
import { requireSshd, sshdInput, startSshd } from './fixtures/sshd.js';
import { inputFor, makeKeys, startEchoTunnel, startServer, startSshkeep } from './fixtures/tunnel.js';
import { tempDir } from './fixtures/tmp.js';

const WANT = DEFAULTS.localSocketHighWaterMarkBytes;

/** Every socket node:net's `createServer` servers accept and every socket `connect` makes, from now until teardown. */
function watchSockets(t: Test) {
  const seen = {
    accepted: [] as Array<{ server: net.Server; socket: net.Socket }>,
    connected: [] as Array<{ options: net.NetConnectOpts; socket: net.Socket }>,
  };
  const { createServer, connect: netConnect } = net;
  net.createServer = ((...args: Parameters<typeof net.createServer>) => {
    const server = createServer(...args);
    server.on('connection', (socket: net.Socket) => seen.accepted.push({ server, socket }));
    return server;
  }) as typeof net.createServer;
  net.connect = ((options: net.NetConnectOpts) => {
    const socket = netConnect(options);
    seen.connected.push({ options, socket });
    return socket;
  }) as typeof net.connect;
  t.teardown(() => {
    net.createServer = createServer;
    net.connect = netConnect;
  });
  return seen;
}

const buffers = (s: net.Socket) => ({ readable: s.readableHighWaterMark, writable: s.writableHighWaterMark });

/** Every TcpClient the forwards set up from now until teardown (each is given setNoDelay as it is). */
function watchTcpClients(t: Test): TcpClient[] {
  const made: TcpClient[] = [];
  const { setNoDelay } = TcpClient.prototype;
  TcpClient.prototype.setNoDelay = function (this: TcpClient, enable?: boolean) {
    made.push(this);
    return setNoDelay.call(this, enable);
  };
  t.teardown(() => void (TcpClient.prototype.setNoDelay = setNoDelay));
  return made;
}

t.test(`-L: the accepted client (a TcpClient) takes ${WANT} bytes to write before it says wait`, async (t) => {
  const made = watchTcpClients(t); // the forward sets setNoDelay on each client it accepts
  const { app, bound } = await startEchoTunnel(t);
  await deadline(app.ready(), 5000, 'tunnel ready');
  const sock = await connect(bound[0]!.port);
  t.equal((await deadline(roundTrip(sock, 'x'), 5000, 'echo')).toString(), 'x');
  t.equal(made.length, 1, 'one client accepted by the forward');
  t.equal(made[0]!.writableHighWaterMark, WANT);
});

t.test(`-L on a Unix socket: the accepted client (a net.Socket) buffers ${WANT} bytes both ways`, async (t) => {
  const seen = watchSockets(t);
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const file = path.join(tempDir(t, 'sshkeep-buffers-'), 'l.sock');
  const { app } = await startSshkeep(t, inputFor(server, keys, [`${file}:127.0.0.1:${echo.port}`]));
  await deadline(app.ready(), 5000, 'tunnel ready');
  const sock = net.connect(file);
  await once(sock, 'connect');
  t.teardown(() => sock.destroy());
  t.equal((await deadline(roundTrip(sock, 'x'), 5000, 'echo')).toString(), 'x');
  const mine = seen.accepted.filter(({ server }) => server.address() === file);
  t.equal(mine.length, 1, 'one client accepted by the forward');
  t.strictSame(buffers(mine[0]!.socket), { readable: WANT, writable: WANT });
  const other = seen.accepted.find(({ server }) => server.address() !== file);
  t.ok(other && buffers(other.socket).writable < WANT, "another server's socket (the SSH server's or the echo target's) keeps Node's default: the check tells them apart");
});

/** sshkeep with one -R to `target` through a real sshd; one round trip through it. */
async function remoteRoundTrip(t: Test, target: string): Promise<void> {
  const sshd = await startSshd(t);
  const { app } = await startSshkeep(t, sshdInput(sshd, { remoteForwards: [`0:${target}`] }));
  await deadline(app.ready(), 10_000, `tunnel ready\n${sshd.logs()}`);
  await until(() => app.report().remoteForwards[0]?.port !== undefined, 10_000, `-R bound\n${sshd.logs()}`);
  const sock = await connect(app.report().remoteForwards[0]!.port!);
  t.equal((await deadline(roundTrip(sock, 'y'), 5000, 'echo through sshd')).toString(), 'y');
}

t.test(`-R: the connection to a TCP target (a TcpClient) takes ${WANT} bytes to write before it says wait`, async (t) => {
  if (!requireSshd(t)) return;
  const echo = await startEchoFor(t);
  const seen = watchSockets(t);
  const made = watchTcpClients(t);
  await remoteRoundTrip(t, `127.0.0.1:${echo.port}`);
  t.equal(seen.connected.filter(({ options }) => 'port' in options && options.port === echo.port).length, 0, 'no net.Socket to the target');
  t.equal(made.length, 1, 'one connection to the local target');
  t.equal(made[0]!.writableHighWaterMark, WANT);
});

t.test(`-R: the connection to a Unix socket target (a net.Socket) buffers ${WANT} bytes both ways`, async (t) => {
  if (!requireSshd(t)) return;
  const file = path.join(tempDir(t, 'sshkeep-buffers-'), 'target.sock');
  await startEchoFor(t, { path: file });
  const seen = watchSockets(t);
  await remoteRoundTrip(t, file);
  const toTarget = seen.connected.filter(({ options }) => 'path' in options && options.path === file);
  t.equal(toTarget.length, 1, 'one connection to the local target');
  t.strictSame(buffers(toTarget[0]!.socket), { readable: WANT, writable: WANT });
});
