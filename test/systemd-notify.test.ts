/**
 * systemd notify: against a fake NOTIFY_SOCKET (a perl listener), READY=1 once every tunnel is
 * ready, STATUS= on state changes, RELOADING=1 with MONOTONIC_USEC then READY=1, STOPPING=1 and
 * nothing ready after it, WATCHDOG=1 every WATCHDOG_USEC/2, abstract sockets; a socket that does
 * not exist, or no perl and no python3, is one warning and the tunnel runs on.
 */
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { expectEcho, httpGet, listenFor, startEchoFor, until } from './fixtures/net.js';
import { tempDir } from './fixtures/tmp.js';
import { inputFor, makeKeys, startRelay, startServer, LogCapture } from './fixtures/tunnel.js';
import { startNotifySocket } from './fixtures/notify-socket.js';
import { cliArgs, expectCleanStop, logIs, spawnCliFor } from './fixtures/cli.js';
import { resolveTunnel } from '../src/config/resolve.js';
import { Fleet } from '../src/fleet.js';
import { createLogger } from '../src/log.js';
import { SystemdNotifier, statusText } from '../src/ops/notify.js';

const STATUS_INTERVAL_MS = 50;

/** A fleet of tunnels "a" (direct) and, with `twoTunnels`, "b" (through a fault relay), to one embedded server. */
async function fleetFor(t: Test, { twoTunnels = false } = {}) {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const relay = await startRelay(t, keys, server);
  const echo = await startEchoFor(t);
  const env = { home: os.tmpdir(), localUser: 'tester', authSock: undefined };
  const a = resolveTunnel(inputFor(server, keys, [`0:127.0.0.1:${echo.port}`]), env);
  a.name = 'a';
  const configs = [a];
  if (twoTunnels) {
    const b = resolveTunnel(inputFor(relay, keys, [`0:127.0.0.1:${echo.port}`]), env);
    b.name = 'b';
    configs.push(b);
  }
  const logs = new LogCapture();
  const logger = createLogger('debug', 'json', logs);
  const fleet = new Fleet(configs, { maxConnections: 0, maxHeld: 1024 }, { logger });
  t.teardown(() => fleet.stop('test over'));
  return { fleet, relay, logs, logger };
}

function notifierFor(t: Test, env: NodeJS.ProcessEnv, logger: ReturnType<typeof createLogger>): SystemdNotifier {
  const notifier = SystemdNotifier.fromEnv({ PATH: process.env.PATH, ...env }, logger, { statusIntervalMs: STATUS_INTERVAL_MS });
  t.ok(notifier, 'a notifier, as NOTIFY_SOCKET is set');
  t.teardown(() => notifier?.close());
  return notifier!;
}

t.test('systemd notify – READY=1 only once every tunnel is ready, then STATUS= on a state change', async (t) => {
  const socket = await startNotifySocket(t);
  const { fleet, relay, logger } = await fleetFor(t, { twoTunnels: true });
  relay.set('blackhole'); // b's handshake stalls: a is ready long before b
  const notifier = notifierFor(t, { NOTIFY_SOCKET: socket.address }, logger);
  notifier.watch(fleet);
  const bound = await fleet.start();
  await until(() => fleet.tunnels[0]!.connection.state === 'ready' && relay.bytes().up > 0, 10_000, 'a ready while b is still dialling');
  relay.restore();
  const ready = await socket.next('READY', 10_000);
  t.equal(socket.messages.indexOf(ready), 0, 'READY=1 is the first message');
  t.ok(fleet.tunnels.every((a) => a.connection.everReady), 'and by the time it arrives both tunnels have been ready (not when a alone was)');
  t.match(ready.get('STATUS'), /^2\/2 tunnel\(s\) ready; 0 active, 0 held$/, 'with the state in STATUS=');
  await expectEcho(t, bound[0]!.port, 'tunnel a');

  const from = socket.messages.length;
  relay.set('refuse'); // b's SSH connection is cut, and its redials refused
  const down = await socket.next('STATUS', 10_000, { from, value: /^1\/2 tunnel\(s\) ready; b (reconnecting|connecting)/ });
  t.notOk(down.has('READY'), 'a state change after start is STATUS= alone');
});

t.test('systemd notify – READY=1 waits for each -R forward\'s first answer, not only for the connection', async (t) => {
  // The server's answer to tcpip-forward is held back until the test lets it through.
  const { prototype } = createRequire(import.meta.url)('ssh2').Client as { prototype: { forwardIn(...args: unknown[]): unknown } };
  const forwardIn = prototype.forwardIn;
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  prototype.forwardIn = function (this: unknown, ...args: unknown[]) {
    void released.then(() => forwardIn.apply(this, args));
    return this;
  };
  t.teardown(() => {
    prototype.forwardIn = forwardIn;
  });
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const env = { home: os.tmpdir(), localUser: 'tester', authSock: undefined };
  const config = resolveTunnel(inputFor(server, keys, [], { remoteForwards: ['0:127.0.0.1:9'] }), env);
  const logger = createLogger('debug', 'json', new LogCapture());
  const fleet = new Fleet([config], { maxConnections: 0, maxHeld: 1024 }, { logger });
  t.teardown(() => fleet.stop('test over'));
  const socket = await startNotifySocket(t);
  const notifier = notifierFor(t, { NOTIFY_SOCKET: socket.address }, logger);
  notifier.watch(fleet);
  await fleet.start();
  const [tunnel] = fleet.tunnels;
  await until(() => tunnel!.connection.everReady && tunnel!.remoteForwards[0]!.state === 'requesting', 10_000, 'the connection ready, its -R asked');
  t.notOk(fleet.isStarted(), 'not started while the -R request is unanswered');
  t.equal(socket.messages.filter((m) => m.has('READY')).length, 0, 'no READY=1 yet');
  release(); // the embedded server refuses remote forwards: an answer all the same
  await socket.next('READY', 10_000);
  t.ok(tunnel!.remoteForwards[0]!.answered, 'READY=1 once the server answered the -R');
  t.ok(fleet.isStarted(), 'started');
});

t.test('systemd notify – a reload before the first start ends RELOADING=1 without READY=1, which waits for every tunnel', async (t) => {
  const socket = await startNotifySocket(t);
  const { fleet, relay, logger } = await fleetFor(t, { twoTunnels: true });
  relay.set('blackhole'); // b's handshake stalls
  const notifier = notifierFor(t, { NOTIFY_SOCKET: socket.address }, logger);
  notifier.watch(fleet);
  await fleet.start();
  await until(() => fleet.tunnels[0]!.connection.state === 'ready' && relay.bytes().up > 0, 10_000, 'a ready while b is still dialling');
  notifier.reloading();
  notifier.ready();
  const reloading = await socket.next('RELOADING', 5000);
  const after = await socket.next('STATUS', 5000, { from: socket.messages.indexOf(reloading) + 1 });
  t.notOk(after.has('READY'), 'the reload ends with STATUS= alone');
  t.notOk(socket.messages.some((m) => m.has('READY')), 'no READY=1 while b is not ready');
  relay.restore();
  await socket.next('READY', 10_000);
  t.ok(fleet.tunnels.every((a) => a.connection.everReady), 'READY=1 once both tunnels have been ready');
});

t.test('systemd notify – an abstract socket (@name) works as a path does', async (t) => {
  const socket = await startNotifySocket(t, { abstract: true });
  const { fleet, logger } = await fleetFor(t);
  notifierFor(t, { NOTIFY_SOCKET: socket.address }, logger).watch(fleet);
  await fleet.start();
  t.equal((await socket.next('READY', 10_000)).get('READY'), '1', 'READY=1 on the abstract socket');
});

t.test('systemd notify – a reload is RELOADING=1 with MONOTONIC_USEC, then READY=1; after STOPPING=1 nothing says ready', async (t) => {
  const socket = await startNotifySocket(t);
  const { fleet, logger } = await fleetFor(t);
  const notifier = notifierFor(t, { NOTIFY_SOCKET: socket.address, WATCHDOG_USEC: '100000' }, logger);
  notifier.watch(fleet);
  await fleet.start();
  await socket.next('READY', 10_000);

  const from = socket.messages.length;
  const before = process.hrtime.bigint() / 1000n;
  notifier.reloading();
  const after = process.hrtime.bigint() / 1000n;
  notifier.ready();
  const reloading = await socket.next('RELOADING', 5000, { from });
  const usec = BigInt(reloading.get('MONOTONIC_USEC') ?? '-1');
  t.ok(usec >= before && usec <= after, `MONOTONIC_USEC is CLOCK_MONOTONIC in µs at the call (${before} <= ${usec} <= ${after})`);
  const ready = await socket.next('READY', 5000, { from });
  t.ok(socket.messages.indexOf(ready) > socket.messages.indexOf(reloading), 'READY=1 after RELOADING=1');

  notifier.stopping();
  notifier.reloading();
  notifier.ready();
  const stopping = await socket.next('STOPPING', 5000, { from });
  // The pipe to the sender keeps order: a watchdog ping sent after these calls arrives after anything they sent.
  const ping = await socket.next('WATCHDOG', 5000, { from: socket.messages.indexOf(stopping) + 1 });
  const after_ = socket.messages.slice(socket.messages.indexOf(stopping) + 1, socket.messages.indexOf(ping));
  t.same(after_.filter((m) => m.has('READY') || m.has('RELOADING')), [], 'no READY=1 or RELOADING=1 once stopping');
});

t.test('systemd notify – WATCHDOG=1 every WATCHDOG_USEC/2, only when WATCHDOG_PID (if set) is ours', async (t) => {
  const socket = await startNotifySocket(t);
  const { fleet, logger } = await fleetFor(t);
  const notifier = notifierFor(t, { NOTIFY_SOCKET: socket.address, WATCHDOG_USEC: '200000', WATCHDOG_PID: String(process.pid) }, logger);
  const started = performance.now();
  notifier.watch(fleet);
  await until(() => socket.messages.filter((m) => m.has('WATCHDOG')).length >= 4, 5000, 'four watchdog pings');
  const elapsed = performance.now() - started;
  // One at once, then one per 100 ms: four take at least 300 ms.
  t.ok(elapsed >= 290, `pings are paced by WATCHDOG_USEC/2 (4 in ${elapsed.toFixed(0)} ms)`);

  const other = await startNotifySocket(t);
  const elsewhere = notifierFor(t, { NOTIFY_SOCKET: other.address, WATCHDOG_USEC: '200000', WATCHDOG_PID: '1' }, logger);
  elsewhere.watch(fleet);
  elsewhere.stopping(); // a marker: anything watch() sent arrives before it
  const marker = await other.next('STOPPING', 5000);
  t.same(other.messages.slice(0, other.messages.indexOf(marker)).filter((m) => m.has('WATCHDOG')), [], 'no ping when WATCHDOG_PID is another process');
});

t.test('systemd notify – NOTIFY_SOCKET and WATCHDOG_* are taken out of the environment children inherit', async (t) => {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, NOTIFY_SOCKET: '/nonexistent/notify', WATCHDOG_USEC: '1000', WATCHDOG_PID: '1' };
  const notifier = SystemdNotifier.fromEnv(env, createLogger('error', 'json', new LogCapture()));
  t.teardown(() => notifier?.close());
  t.same(env, { PATH: process.env.PATH }, 'only PATH is left');
  t.equal(SystemdNotifier.fromEnv({ PATH: process.env.PATH }, createLogger('error', 'json', new LogCapture())), undefined, 'no NOTIFY_SOCKET: no notifier');
});

t.test('systemd notify – a NOTIFY_SOCKET that does not exist is one warning, and the tunnel runs on', async (t) => {
  const { fleet, logs, logger } = await fleetFor(t);
  const notifier = notifierFor(t, { NOTIFY_SOCKET: '/nonexistent/notify.sock' }, logger);
  notifier.watch(fleet);
  const bound = await fleet.start();
  await fleet.ready();
  notifier.reloading();
  notifier.ready();
  const warning = await logs.waitFor((l) => l.event === 'notify' && l.level === 'warn', 5000, 'the warning');
  t.match(warning.msg, /NOTIFY_SOCKET=\/nonexistent\/notify\.sock: No such file or directory; running on/, 'names the socket and why');
  await logs.waitFor((l) => l.event === 'notify' && l.level === 'debug', 5000, 'the later failures, at debug');
  t.equal(logs.lines.filter((l) => l.event === 'notify' && l.level === 'warn').length, 1, 'one warning, however many messages failed');
  await expectEcho(t, bound[0]!.port, 'the tunnel');
});

t.test('systemd notify – with neither perl nor python3 on PATH: one warning saying so and how to run without', async (t) => {
  const logs = new LogCapture();
  const notifier = SystemdNotifier.fromEnv({ PATH: '/nonexistent', NOTIFY_SOCKET: '/run/notify' }, createLogger('debug', 'json', logs));
  t.teardown(() => notifier?.close());
  notifier!.ready();
  notifier!.stopping();
  const warnings = logs.lines.filter((l) => l.event === 'notify' && l.level === 'warn');
  t.equal(warnings.length, 1, 'one warning');
  t.match(warnings[0]!.msg, /neither perl nor python3 is on PATH.*Type=notify unit will time out.*Type=exec/, 'what is missing, the consequence, the way out');
});

t.test('systemd notify – the python3 sender works where perl is missing', async (t) => {
  // A PATH with python3 and no perl: a directory holding only a link to python3.
  let python: string;
  try {
    python = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
  } catch {
    // .ci/run installs python3 (for ssh2's native binding): under CI its absence is a failure.
    if (process.env.CI === 'true') t.fail('python3 is not installed');
    else t.pass('python3', { skip: 'python3 is not installed' });
    return;
  }
  const dir = tempDir(t);
  fs.symlinkSync(python, path.join(dir, 'python3'));
  const socket = await startNotifySocket(t);
  const { fleet, logger } = await fleetFor(t);
  const notifier = SystemdNotifier.fromEnv({ PATH: dir, NOTIFY_SOCKET: socket.address }, logger);
  t.teardown(() => notifier?.close());
  notifier!.watch(fleet);
  await fleet.start();
  const ready = await socket.next('READY', 10_000);
  t.match(ready.get('STATUS'), /^1\/1 tunnel\(s\) ready/, 'READY=1 and STATUS= through python3');
  notifier!.stopping();
  t.equal((await socket.next('STOPPING', 5000)).get('STOPPING'), '1', 'STOPPING=1 too');
});

t.test('systemd notify – the CLI: READY=1 once the tunnel is up, RELOADING=1/READY=1 around a SIGHUP, STOPPING=1 on SIGTERM, exit 0', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const socket = await startNotifySocket(t);
  const cli = spawnCliFor(t, cliArgs(server.port, keys, `0:127.0.0.1:${echo.port}`), { env: { NOTIFY_SOCKET: socket.address } });
  const ready = await socket.next('READY', 10_000);
  await cli.waitForLog(logIs('state', { to: 'ready' }), 5000, 'the tunnel ready, as READY=1 said');
  t.match(ready.get('STATUS'), /^1\/1 tunnel\(s\) ready/, 'with STATUS=');
  const beforeHup = socket.messages.length;
  cli.child.kill('SIGHUP');
  const reloading = await socket.next('RELOADING', 5000, { from: beforeHup });
  const readyAgain = await socket.next('READY', 5000, { from: socket.messages.indexOf(reloading) + 1 });
  t.ok(readyAgain, 'SIGHUP: RELOADING=1, then READY=1 once the reload is over');
  const from = socket.messages.length;
  const stopped = expectCleanStop(t, cli);
  t.equal((await socket.next('STOPPING', 5000, { from })).get('STOPPING'), '1', 'STOPPING=1 when the drain starts');
  await stopped;
});

t.test('systemd notify – READY=1 waits for --health: a port still held (a previous instance draining) delays it until the endpoints answer', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const socket = await startNotifySocket(t);
  // The old instance: holds the port and drops whoever connects.
  const old = net.createServer((c) => c.destroy());
  const healthPort = await listenFor(t, old);
  const cli = spawnCliFor(t, [...cliArgs(server.port, keys, `0:127.0.0.1:${echo.port}`), '--health', `127.0.0.1:${healthPort}`], { env: { NOTIFY_SOCKET: socket.address } });
  await cli.waitForLog(logIs('state', { to: 'ready' }), 10_000, 'the tunnel ready while the health port is still held');
  t.equal(socket.messages.filter((m) => m.has('READY')).length, 0, 'no READY=1 while --health cannot listen');
  old.close(); // the old instance leaves
  await socket.next('READY', 10_000);
  t.equal((await httpGet(healthPort, '/healthz')).status, 200, 'at READY=1, /healthz answers');
  t.ok(cli.logs().some(logIs('health')), 'the health line came first');
});

t.test('systemd notify – STATUS= is one line: control characters of an error become spaces', async (t) => {
  const line = statusText([
    { tunnel: 'db', state: 'reconnecting', lastError: 'connect ECONNREFUSED\n127.0.0.1:22\r', active: 2, held: 1 },
    { tunnel: 'cache', state: 'ready', lastError: undefined, active: 1, held: 0 },
  ] as Parameters<typeof statusText>[0]);
  t.equal(line, '1/2 tunnel(s) ready; db reconnecting (connect ECONNREFUSED 127.0.0.1:22 ); 3 active, 1 held');
});
