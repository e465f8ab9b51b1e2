import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { once } from 'node:events';
import t, { type Test } from 'tap';
import { connect, deadline, roundTrip, tryConnect, getJson, httpPost, startEchoFor, listen } from './fixtures/net.js';
import { makeKeys, startServer } from './fixtures/tunnel.js';
import { tempDir } from './fixtures/tmp.js';
import { cliArgs, logIs, portOf, spawnCliFor, type SpawnedCli } from './fixtures/cli.js';


/** Waits for the listen line and the tunnel to be ready; returns the forward's local port. */
async function upAndReady(cli: SpawnedCli): Promise<number> {
  const listen = await cli.waitForLog(logIs('listen'), 10_000, 'the listen line');
  await cli.waitForLog(logIs('state', { to: 'ready' }), 10_000, 'the tunnel to be ready');
  return portOf(listen);
}

/**
 * A target that answers slowly: it replies (and ends) `delayMs` after the first bytes of a
 * request arrive. The delay is the scenario — a stream still in flight when SIGTERM comes —
 * so it is a timer on the target's side, not a wait in the test.
 */
async function startSlowTarget(t: Test, delayMs: number, reply: string): Promise<{ port: number; gotRequest: Promise<string> }> {
  let gotRequest!: (req: string) => void;
  const requested = new Promise<string>((r) => (gotRequest = r));
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    s.once('data', (c: Buffer) => {
      gotRequest(c.toString());
      const timer = setTimeout(() => {
        timers.delete(timer);
        s.end(reply);
      }, delayMs);
      timers.add(timer);
    });
    s.resume();
  });
  await listen(server);
  t.teardown(async () => {
    for (const timer of timers) clearTimeout(timer);
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return { port: (server.address() as net.AddressInfo).port, gotRequest: requested };
}

/** How a socket's stream ended: a clean 'end' (then 'close') or an error such as ECONNRESET. */
function endingOf(sock: net.Socket): Promise<{ how: 'end' | 'error'; code?: string; at: number }> {
  return new Promise((resolve) => {
    sock.once('end', () => resolve({ how: 'end', at: performance.now() }));
    sock.once('error', (err: NodeJS.ErrnoException) => resolve({ how: 'error', code: err.code ?? err.message, at: performance.now() }));
  });
}

/** Resolves after `ms`: only for a delay that is part of a scenario (never to wait for an effect). */
function scenarioDelay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

t.test('cli drain – SIGTERM with an open stream that finishes within the drain', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const reply = 'slow reply: ' + 'x'.repeat(64 * 1024) + ' :end';
  const target = await startSlowTarget(t, 300, reply);
  const cli = spawnCliFor(t, cliArgs(server.port, keys, `0:127.0.0.1:${target.port}`, ['--max-drain', '5s']));
  const port = await upAndReady(cli);

  const sock = await connect(port);
  const chunks: Buffer[] = [];
  sock.on('data', (c: Buffer) => chunks.push(c));
  const ending = endingOf(sock);
  sock.end('GET /slow\n'); // the whole request, then half-close, as an HTTP/1.0 client would
  // The request is in flight through the tunnel once the target has it; SIGTERM right then,
  // 300 ms before the target answers.
  t.equal(await deadline(target.gotRequest, 5000, 'the target to get the request'), 'GET /slow\n');
  cli.kill('SIGTERM');

  await cli.waitForLog(logIs('drain', { phase: 'max' }), 3000, 'the drain to stop accepting');
  t.equal(await tryConnect(port), 'ECONNREFUSED', 'a new connection after SIGTERM is refused: the listener is closed');

  const end = await deadline(ending, 5000, 'the slow reply to end');
  t.equal(end.how, 'end', 'the stream ends cleanly, not with a reset');
  t.equal(Buffer.concat(chunks).toString(), reply, 'the reply arrives complete');

  const { code, signal } = await cli.exited(8000);
  t.equal(code, 0, 'exit 0');
  t.equal(signal, null);
  const stopped = cli.logs().find((l) => l.event === 'stopped');
  t.ok(stopped, 'a stopped line');
  t.equal(stopped?.connectionsCut, 0, 'no connection was cut');
});

t.test('cli drain – SIGTERM with a stream that would outlive the drain: reset when it ends', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const cli = spawnCliFor(t, cliArgs(server.port, keys, `0:127.0.0.1:${echo.port}`, ['--max-drain', '500ms']));
  const port = await upAndReady(cli);

  // An open connection, known to be through to the target (one echo), then left idle.
  const sock = await connect(port);
  sock.write('ping');
  await deadline(once(sock, 'data'), 5000, 'the first echo');
  const ending = endingOf(sock);

  const sent = performance.now();
  cli.kill('SIGTERM');
  const end = await deadline(ending, 5000, 'the idle client to be cut');
  const afterMs = end.at - sent;
  t.equal(end.how, 'error', 'not a clean end');
  t.equal(end.code, 'ECONNRESET', 'the client is reset');
  t.ok(afterMs >= 400, `not before the drain ends (${Math.round(afterMs)} ms after SIGTERM)`);
  t.ok(afterMs < 3000, `soon after the drain ends (${Math.round(afterMs)} ms after SIGTERM)`);

  const { code } = await cli.exited(5000);
  t.equal(code, 0, 'exit 0');
  const stopped = cli.logs().find((l) => l.event === 'stopped');
  t.equal(stopped?.connectionsCut, 1, 'the stopped line counts one cut connection');
});

t.test('cli drain – --min-drain keeps accepting and forwarding for a while, then stops accepting', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const cli = spawnCliFor(t, cliArgs(server.port, keys, `0:127.0.0.1:${echo.port}`, ['--min-drain', '1s', '--max-drain', '5s']));
  const port = await upAndReady(cli);

  const sent = performance.now();
  cli.kill('SIGTERM');
  const min = await cli.waitForLog(logIs('drain', { phase: 'min' }), 3000, 'the min-drain phase');
  t.equal(min.ms, 1000);
  // The scenario: a client that arrives 200 ms into the drain (an endpoint not yet updated).
  await scenarioDelay(Math.max(0, 200 - (performance.now() - sent)));
  const sock = await deadline(connect(port), 2000, 'a connection during the min-drain');
  const reply = await deadline(roundTrip(sock, 'during min-drain'), 3000, 'the echo during the min-drain');
  t.equal(reply.toString(), 'during min-drain', 'served through the tunnel 200 ms after SIGTERM');

  await cli.waitForLog(logIs('drain', { phase: 'max' }), 3000, 'the drain to stop accepting');
  const stoppedAcceptingMs = performance.now() - sent;
  t.ok(stoppedAcceptingMs >= 900, `accepted for about a second (${Math.round(stoppedAcceptingMs)} ms)`);
  // The process may already be gone (nothing open): refused either way.
  t.equal(await tryConnect(port), 'ECONNREFUSED', 'then refuses new connections');

  const { code } = await cli.exited(6000);
  t.equal(code, 0, 'exit 0');
  t.equal(echo.connections, 1, 'the target saw the min-drain connection');
  t.equal(cli.logs().find((l) => l.event === 'stopped')?.connectionsCut, 0);
});

t.test('cli drain – a second SIGTERM during the drain exits at once', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const cli = spawnCliFor(t, cliArgs(server.port, keys, `0:127.0.0.1:${echo.port}`, ['--max-drain', '10s']));
  const port = await upAndReady(cli);

  // An idle open connection keeps the drain going for its full 10 s.
  const sock = await connect(port);
  sock.write('ping');
  await deadline(once(sock, 'data'), 5000, 'the first echo');
  const ending = endingOf(sock);

  cli.kill('SIGTERM');
  await cli.waitForLog(logIs('drain', { phase: 'max' }), 3000, 'the drain to begin');
  const second = performance.now();
  cli.kill('SIGTERM');
  const { code, signal } = await cli.exited(5000);
  const tookMs = performance.now() - second;
  t.equal(code, 0, 'exit 0');
  t.equal(signal, null, 'exited by itself');
  t.ok(tookMs < 1500, `exited at once after the second signal (${Math.round(tookMs)} ms), not after --max-drain`);
  t.notOk(cli.logs().some((l) => l.event === 'stopped' && l.level === 'info'), 'left before the drain finished');
  // Regression: the second signal used to exit with the sockets open, so the kernel sent a FIN
  // and a cut stream looked complete.
  const end = await deadline(ending, 3000, 'the open client to be closed');
  t.equal(end.how === 'error' ? end.code : end.how, 'ECONNRESET', 'the open client is reset, not ended cleanly');
});

t.test('cli drain – a second SIGTERM during --min-drain removes a -L Unix socket\'s file before it exits', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const socketPath = path.join(tempDir(t, 'sshkeep-drain-'), 'db.sock');
  const cli = spawnCliFor(t, cliArgs(server.port, keys, `${socketPath}:127.0.0.1:${echo.port}`, ['--min-drain', '10s']));
  await cli.waitForLog(logIs('state', { to: 'ready' }), 10_000, 'the tunnel to be ready');
  t.ok(fs.existsSync(socketPath), 'the socket file is there');
  cli.kill('SIGTERM');
  await cli.waitForLog(logIs('drain', { phase: 'min' }), 3000, 'the min drain to begin (still accepting)');
  cli.kill('SIGTERM');
  t.equal((await cli.exited(5000)).code, 0, 'exit 0 on the second signal');
  t.notOk(fs.existsSync(socketPath), 'the socket file is gone: nobody is told to connect to a process that left');
});

t.test('cli drain – --health: /readyz answers 503 "draining" during the drain, /healthz still 200', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  // Port 0: the health line names the port actually bound.
  const cli = spawnCliFor(t, cliArgs(server.port, keys, `0:127.0.0.1:${echo.port}`, ['--health', '127.0.0.1:0', '--max-drain', '10s']));
  const port = await upAndReady(cli);
  const health = await cli.waitForLog(logIs('health'), 5000, 'the health line');
  t.equal(health.address, '127.0.0.1', 'the health line names the bound address');
  t.type(health.port, 'number');
  t.not(health.port, 0, `the health line names the bound port, not the configured 0 (got ${String(health.port)})`);
  const healthPort = Number(health.port);

  const before = await getJson(healthPort, '/readyz');
  t.equal(before.status, 200, '/readyz 200 before SIGTERM');
  t.equal(before.body.status, 'ready');

  // An idle open connection keeps the drain going until the test closes it.
  const sock = await connect(port);
  sock.write('ping');
  await deadline(once(sock, 'data'), 5000, 'the first echo');

  cli.kill('SIGTERM');
  await cli.waitForLog(logIs('drain'), 3000, 'the drain to begin');
  const ready = await getJson(healthPort, '/readyz');
  t.equal(ready.status, 503, '/readyz 503 during the drain');
  t.equal(ready.body.status, 'draining', 'status "draining"');
  const alive = await getJson(healthPort, '/healthz');
  t.equal(alive.status, 200, '/healthz still 200 during the drain');
  t.equal(alive.body.status, 'alive');

  // Closing the last connection ends the drain early.
  const ended = roundTrip(sock, '');
  await deadline(ended, 3000, 'the client to close');
  const { code } = await cli.exited(5000);
  t.equal(code, 0, 'exit 0');
  t.equal(cli.logs().find((l) => l.event === 'stopped')?.connectionsCut, 0, 'the drain ended with the last connection');
  t.equal(await tryConnect(healthPort), 'ECONNREFUSED', 'the health server is gone with the process');
});

/** A port some other process holds: whatever sshkeep binds there waits (up to 5 s) for it. */
async function takenPort(t: Test): Promise<number> {
  const holder = net.createServer();
  await listen(holder);
  t.teardown(() => holder.close());
  return (holder.address() as net.AddressInfo).port;
}

/**
 * While `cli` still waits for a port, with an idle client through `port` (one echo done):
 * SIGTERM drains (the --max-drain of 500 ms the CLI runs with), then resets that client and exits 0.
 */
async function expectDrainWhileBinding(t: Test, cli: SpawnedCli, port: number): Promise<void> {
  await cli.waitForLog(logIs('listen_wait'), 5000, 'the port waited for');
  const sock = await connect(port);
  sock.write('ping');
  await deadline(once(sock, 'data'), 5000, 'the first echo');
  const ending = endingOf(sock);

  cli.kill('SIGTERM');
  await cli.waitForLog(logIs('shutdown'), 3000, 'the shutdown line');
  const end = await deadline(ending, 5000, 'the idle client to be cut at the end of the drain');
  t.equal(end.how === 'error' ? end.code : end.how, 'ECONNRESET', 'the open client is reset when the drain ends, not ended cleanly');
  t.strictSame(await cli.exited(5000), { code: 0, signal: null }, 'exit 0');
  t.equal(cli.logs().find((l) => l.event === 'stopped')?.connectionsCut, 1, 'drained, then one client cut');
  t.notOk(cli.logs().some(logIs('fatal')), 'the bind the drain stopped is no failure');
}

// Regression: the drain was set up only once the health port was bound, so a SIGTERM while
// that port was still retried (up to 5 s) ended the process at once, its clients cut.
t.test('cli drain – SIGTERM while the --health port is still retried: the forwards drain, the port is given up', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const taken = await takenPort(t);
  const cli = spawnCliFor(t, cliArgs(server.port, keys, `0:127.0.0.1:${echo.port}`, ['--health', `127.0.0.1:${taken}`, '--max-drain', '500ms']));
  await expectDrainWhileBinding(t, cli, await upAndReady(cli));
  t.notOk(cli.logs().some(logIs('health')), 'the health endpoints never came up');
});

// Regression: the drain was set up only once every tunnel of a --config file had bound, so a
// SIGTERM while a later tunnel's port was still retried ended the process at once, and the
// client the first tunnel already served was neither drained nor reset.
t.test('cli drain – SIGTERM while a later tunnel still waits for its port: the first tunnel drains, the rest never starts', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const taken = await takenPort(t);
  const tunnel = (name: string, local: string) =>
    `  - name: ${name}\n    destination: tester@127.0.0.1\n    port: ${server.port}\n    sshConfig: none\n    local: [${local}]\n` +
    `    options: [IdentityFile=${keys.identity}, UserKnownHostsFile=${keys.knownHosts}, GlobalKnownHostsFile=none, IdentitiesOnly=yes]\n`;
  const file = path.join(keys.dir, 'tunnels.yaml');
  fs.writeFileSync(file, `tunnels:\n${tunnel('first', `0:127.0.0.1:${echo.port}`)}${tunnel('second', `${taken}:127.0.0.1:${echo.port}`)}`);
  const cli = spawnCliFor(t, ['--config', file, '--max-drain', '500ms']);
  await expectDrainWhileBinding(t, cli, await upAndReady(cli));
  t.notOk(cli.logs().some((l) => l.event === 'listen' && l.port === taken), 'the second tunnel never listened');
});

// A sidecar's app calls /quitquitquit as it stops, and Kubernetes sends its SIGTERM in the same
// moments: that SIGTERM is the first signal, not a second one cutting the drain short.
t.test('cli drain – POST /quitquitquit, then SIGTERM: the drain goes on; a second SIGTERM cuts it', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const cli = spawnCliFor(t, cliArgs(server.port, keys, `0:127.0.0.1:${echo.port}`, ['--health', '127.0.0.1:0', '--admin', '--max-drain', '10s']));
  const port = await upAndReady(cli);
  const healthPort = Number((await cli.waitForLog(logIs('health'), 5000, 'the health line')).port);
  const sock = await connect(port);
  sock.write('ping');
  await deadline(once(sock, 'data'), 5000, 'the first echo');
  const ending = endingOf(sock);

  t.equal((await httpPost(healthPort, '/quitquitquit')).status, 202, 'accepted');
  await cli.waitForLog(logIs('drain', { phase: 'max' }), 3000, 'the drain to begin');
  cli.kill('SIGTERM');
  sock.write('still served');
  const [echoed] = (await deadline(once(sock, 'data'), 3000, 'an echo after the SIGTERM')) as [Buffer];
  t.equal(echoed.toString(), 'still served', 'the open client is still served after the SIGTERM');
  t.equal(cli.exitInfo(), undefined, 'still draining');
  t.notOk(cli.logs().some(logIs('second_signal')), 'not taken for a second signal');

  cli.kill('SIGTERM');
  t.strictSame(await cli.exited(5000), { code: 0, signal: null }, 'the second SIGTERM: exit 0 at once');
  t.ok(cli.logs().some(logIs('second_signal')), 'logged as the second signal');
  const end = await deadline(ending, 3000, 'the open client to be cut');
  t.equal(end.how === 'error' ? end.code : end.how, 'ECONNRESET', 'the open client is reset');
});
