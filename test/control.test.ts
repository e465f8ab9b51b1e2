import t, { type Test } from 'tap';
import os from 'node:os';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect, deadline, httpGet, httpPost, refusedPort, startEchoFor, until } from './fixtures/net.js';
import { inputFor, makeKeys, startServer, LogCapture } from './fixtures/tunnel.js';
import { cliArgs, logIs, portOf, runCli, spawnCliFor } from './fixtures/cli.js';
import { resolveTunnel } from '../src/config/resolve.js';
import { Fleet } from '../src/fleet.js';
import { Metrics } from '../src/ops/metrics.js';
import { startHealthServer } from '../src/ops/health.js';
import { createLogger } from '../src/log.js';
import { ConfigError } from '../src/errors.js';
import { ago, runControl, statusTable, type ControlCommand } from '../src/cli/control.js';
import type { TunnelReport } from '../src/sshkeep.js';

/** One tunnel with its health server, ready unless `server` refuses; `requestShutdown` given means --admin. */
async function instance(t: Test, requestShutdown?: () => void, host = '127.0.0.1', down = false, maxConnections = 0) {
  const keys = makeKeys(t);
  const server = down ? { port: await refusedPort() } : await startServer(t, keys);
  const echo = await startEchoFor(t);
  const config = resolveTunnel(inputFor(server, keys, [`0:127.0.0.1:${echo.port}`]), { home: os.tmpdir(), localUser: 'tester', authSock: undefined });
  const fleet = new Fleet([config], { maxConnections, maxHeld: 1024 }, { logger: createLogger('debug', 'json', new LogCapture()) });
  const bound = await fleet.start();
  const health = await startHealthServer({ host, port: 0 }, fleet, new Metrics(), requestShutdown);
  t.teardown(async () => {
    health.closeAllConnections();
    health.close();
    await fleet.stop('test over');
  });
  if (!down) await deadline(fleet.ready(), 5000, 'ready');
  return { fleet, port: (health.address() as AddressInfo).port, forwardPort: bound[0]!.port };
}

/** Runs a command in process: its exit code and what it wrote. */
/** An HTTP server on a loopback port that answers with `handler` (by default never); its port. */
async function httpServer(t: Test, handler: http.RequestListener = () => {}): Promise<number> {
  const server = http.createServer(handler);
  server.listen(0, '127.0.0.1');
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  await new Promise((resolve) => server.once('listening', resolve));
  return (server.address() as AddressInfo).port;
}

async function control(name: ControlCommand, argv: string[], env: NodeJS.ProcessEnv = {}) {
  let out = '';
  let err = '';
  const code = await runControl(name, argv, env, { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

t.test('control – status prints one row per tunnel and exits 0 when all are ready; --json is /readyz as is; SSHKEEP_HEALTH serves as --health', async (t) => {
  const { port } = await instance(t);
  const table = await control('status', ['--health', `127.0.0.1:${port}`]);
  t.equal(table.code, 0, table.err);
  const [header, row, ...rest] = table.out.trimEnd().split('\n');
  t.match(header, /^TUNNEL\s+STATE\s+RTT\s+CLIENTS \(ACTIVE\/HELD\)\s+RECONNECTS\s+REMOTE FORWARDS/);
  t.match(row, /^127\.0\.0\.1\s+ready for \d+s\s+(\d+ ms|-)\s+0\/0\s+0\s+-\s+-$/);
  t.same(rest, [], 'one row for the one tunnel');
  const json = await control('status', ['--json'], { SSHKEEP_HEALTH: String(port) });
  t.equal(json.code, 0);
  const body = JSON.parse(json.out);
  t.equal(body.status, 'ready');
  t.equal(body.tunnels[0].state, 'ready');
});

t.test('control – --health :port is every interface, IPv6 and IPv4 (an IPv6 pod IP is probed too); the control commands reach it', async (t) => {
  const { port } = await instance(t, undefined, '::');
  for (const host of ['127.0.0.1', '::1']) {
    const status = await new Promise<number>((resolve, reject) => http.get({ host, port, path: '/healthz', agent: false, timeout: 5000 }, (res) => (res.resume(), resolve(res.statusCode ?? 0))).on('error', reject));
    t.equal(status, 200, `/healthz answers on ${host}`);
  }
  const table = await control('status', ['--health', `:${port}`]);
  t.equal(table.code, 0, `sshkeep status --health :${port} reaches it: ${table.err}`);
});

t.test('control – at --max-connections every row reads ready, and status says why it exits 1 above the table; /readyz says so too', async (t) => {
  const { fleet, port, forwardPort } = await instance(t, undefined, '127.0.0.1', false, 1);
  const client = await connect(forwardPort);
  t.teardown(() => client.destroy());
  await until(() => fleet.clients() === 1, 5000, 'the one client counted');
  const readyz = await httpGet(port, '/readyz');
  t.equal(readyz.status, 503);
  t.equal(JSON.parse(readyz.body).status, 'at --max-connections');
  const res = await control('status', ['--health', `127.0.0.1:${port}`]);
  t.equal(res.code, 1, 'exit 1');
  t.match(res.out, /^sshkeep: at --max-connections\nTUNNEL/, 'the reason first');
  t.match(res.out, /\s+ready for /, 'though the row reads ready');
});

t.test('control – status of a tunnel not ready exits 1; the table reads remote forwards bound/total and relative times', async (t) => {
  const report = { tunnel: 'db', state: 'connecting', since: new Date(1_000).toISOString(), rttMs: undefined, reconnects: 3, active: 1, held: 2, lastError: 'connect ECONNREFUSED 10.0.0.1:22' };
  const remote = [{ state: 'bound' }, { state: 'retrying' }];
  const table = statusTable([{ ...report, remoteForwards: remote } as unknown as TunnelReport], 1_000 + 192_000);
  t.match(table, /db\s+connecting for 3m12s\s+-\s+1\/2\s+3\s+1\/2\s+connect ECONNREFUSED 10\.0\.0\.1:22\n/);
  t.equal(ago(90_061_000), '1d1h');
  t.equal(ago(400), '0s');
  // A /readyz that says 503: exit 1, the table still printed.
  const server = http.createServer((_req, res) => {
    res.writeHead(503);
    res.end(JSON.stringify({ status: 'not ready', tunnels: [{ ...report, remoteForwards: [] }] }));
  });
  server.listen(0, '127.0.0.1');
  t.teardown(() => server.close());
  await new Promise((resolve) => server.once('listening', resolve));
  const res = await control('status', ['--health', String((server.address() as AddressInfo).port)]);
  t.equal(res.code, 1, 'not ready: exit 1');
  t.match(res.out, /db\s+connecting for/);
});

t.test('control – status of a tunnel whose server refuses: exit 1, its row says why the last connect failed', async (t) => {
  const { fleet, port } = await instance(t, undefined, '127.0.0.1', true);
  await until(() => fleet.reports()[0]!.lastError !== undefined, 5000, 'a failed connect');
  const res = await control('status', ['--health', String(port)]);
  t.equal(res.code, 1);
  t.match(res.out.split('\n')[1], /^127\.0\.0\.1\s+(connecting|reconnecting) for \d+s .*ECONNREFUSED/);
});

t.test('control – wait exits 0 once /startupz is 200, and 1 after --timeout saying what it saw last', async (t) => {
  const { port } = await instance(t);
  t.equal((await control('wait', ['--health', String(port)])).code, 0);
  const nothing = await refusedPort();
  const started = Date.now();
  const res = await control('wait', ['--health', String(nothing), '--timeout', '600ms']);
  t.equal(res.code, 1);
  t.match(res.err, new RegExp(`^sshkeep wait: not started after 600ms; last seen at 127\\.0\\.0\\.1:${nothing}: connection refused\\n$`));
  t.ok(Date.now() - started < 3000, 'bounded by the timeout');
  // A server that never answers: the request's own timeout is cut to what is left of the wait.
  const silent = await httpServer(t);
  const hung = Date.now();
  const res2 = await control('wait', ['--health', String(silent), '--timeout', '300ms']);
  t.equal(res2.code, 1);
  t.match(res2.err, /: no answer within \d+ms\n$/);
  t.ok(Date.now() - hung < 1500, 'a hanging instance does not stretch the wait past --timeout');
});

// Regression: an answer that was JSON but not sshkeep's (another service on the port, a proxy)
// crashed the command with a TypeError and "this is a bug"; and reload --timeout 0 never gave up.
t.test('control – another server answering on the port: exit 1 saying so, never a crash', async (t) => {
  let reply: { status: number; body: string } = { status: 200, body: '' };
  const other = await httpServer(t, (_req, res) => {
    res.writeHead(reply.status, { 'content-type': 'application/json' });
    res.end(reply.body);
  });
  const at = ['--health', String(other)];
  const cases: [ControlCommand, number, string, RegExp][] = [
    ['reconnect', 202, 'ok', /^sshkeep reconnect: 127\.0\.0\.1:\d+ did not accept: 202\n$/],
    ['reconnect', 202, '{}', /^sshkeep reconnect: 127\.0\.0\.1:\d+ did not accept: 202\n$/],
    ['reconnect', 202, '{"tunnels":[1]}', /did not accept: 202\n$/],
    ['status', 200, '{"tunnels":[{}]}', /^sshkeep status: no sshkeep at 127\.0\.0\.1:\d+: 200\n$/],
    ['status', 200, '{"tunnels":[null]}', /^sshkeep status: no sshkeep at/],
    ['status', 200, '[1,2]', /^sshkeep status: no sshkeep at/],
    ['reload', 200, '{"status":"applied"}', /^sshkeep reload: 127\.0\.0\.1:\d+ did not reload: 200 applied\n$/],
    ['reload', 200, '{"status":"refused"}', /did not reload: 200 refused\n$/],
    ['reload', 200, 'null', /did not reload: 200\n$/],
  ];
  for (const [name, status, body, said] of cases) {
    reply = { status, body };
    const res = await control(name, at);
    t.equal(res.code, 1, `${name} answered ${status} ${body}: exit 1`);
    t.match(res.err, said, `${name} answered ${body}: says what it saw`);
  }
  const silent = await httpServer(t);
  const res = await deadline(control('reload', ['--health', String(silent), '--timeout', '0']), 5000, 'reload --timeout 0 to give up');
  t.equal(res.code, 1, 'reload --timeout 0 against a server that never answers: exit 1');
  t.match(res.err, /did not reload: no answer within/);
});

t.test('control – a server trickling its answer is given up at the timeout; one answering without end is cut off, never buffered', async (t) => {
  const timers: NodeJS.Timeout[] = [];
  t.teardown(() => timers.forEach(clearInterval));
  // A byte every 200 ms: never idle long enough for a socket's idle timeout, never done.
  const trickling = await httpServer(t, (_req, res) => {
    res.writeHead(503, { 'content-type': 'application/json' });
    res.write('{');
    timers.push(setInterval(() => res.write(' '), 200));
  });
  for (const [name, argv, said] of [
    ['wait', ['--timeout', '1s'], /^sshkeep wait: not started after 1s; last seen at 127\.0\.0\.1:\d+: no answer within /],
    ['reload', ['--timeout', '1s'], /did not reload: no answer within 1s\n$/],
    ['status', [], /no answer within 2s/],
  ] as [ControlCommand, string[], RegExp][]) {
    const res = await deadline(control(name, ['--health', String(trickling), ...argv]), 5000, `${name} to give up`);
    t.equal(res.code, 1, `${name}: exit 1`);
    t.match(res.err, said, `${name}: says it had no answer`);
  }
  const chunk = Buffer.alloc(1 << 20, 0x20);
  const endless = await httpServer(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    const more = () => {
      while (!res.destroyed && res.write(chunk));
      if (!res.destroyed) res.once('drain', more);
    };
    more();
  });
  // reload with a long timeout: the cap, not the deadline, ends it.
  const res = await deadline(control('reload', ['--health', String(endless), '--timeout', '20s']), 25_000, 'reload to give up on an endless body');
  t.equal(res.code, 1, 'an endless body: exit 1');
  t.match(res.err, /did not reload: answered with more than 64 MiB: not an sshkeep instance/);
});

t.test('control – POST /quitquitquit: 405 for other methods, 403 naming --admin when off, 202 and one shutdown request with it', async (t) => {
  const off = await instance(t);
  const refused = await httpPost(off.port, '/quitquitquit');
  t.equal(refused.status, 403);
  t.match(refused.body, /--admin to enable it/);
  const cmd = await control('shutdown', ['--health', String(off.port)]);
  t.equal(cmd.code, 1, 'shutdown refused: exit 1');
  t.match(cmd.err, /^sshkeep shutdown: 127\.0\.0\.1:\d+ did not accept: 403 POST \/quitquitquit is off: start sshkeep with --admin to enable it\n$/);

  let requests = 0;
  const on = await instance(t, () => requests++);
  t.equal((await httpGet(on.port, '/quitquitquit')).status, 405, 'GET: 405');
  t.equal(requests, 0);
  const accepted = await control('shutdown', ['--health', `127.0.0.1:${on.port}`]);
  t.equal(accepted.code, 0, accepted.err);
  t.equal(requests, 1, 'the shutdown was requested');
  const gone = await control('shutdown', ['--health', String(await refusedPort())]);
  t.equal(gone.code, 1);
  t.match(gone.err, /did not accept: connection refused/);
});

const external = Object.values(os.networkInterfaces())
  .flat()
  .find((i) => i?.family === 'IPv4' && !i.internal);

t.test('control – POST /quitquitquit from a peer off loopback is refused with 403, even with --admin', { skip: external ? false : 'no non-loopback IPv4 address on this machine' }, async (t) => {
  if (!external) return;
  let requests = 0;
  const { port } = await instance(t, () => requests++, '0.0.0.0');
  const res = await httpPost(port, '/quitquitquit', external.address, external.address);
  t.equal(res.status, 403);
  t.match(res.body, /loopback only/);
  t.equal(requests, 0);
});

t.test('control – usage: no health address, an unknown flag or a bad timeout are one-line ConfigErrors (exit 2)', async (t) => {
  await t.rejects(control('status', []), new ConfigError('status needs --health [host:]port of a running instance (or SSHKEEP_HEALTH).'));
  await t.rejects(control('wait', ['--health', '9', '--bogus']), { name: 'ConfigError', message: /unknown option '--bogus'\. Run sshkeep wait --help for usage\.$/ });
  await t.rejects(control('shutdown', ['--json', '--health', '9']), { name: 'ConfigError', message: /unknown option '--json'/ });
  await t.rejects(control('wait', ['--health', '9', '--timeout', 'soon']), { name: 'ConfigError', message: /--timeout/ });
  await t.rejects(control('status', ['--health', 'nope:x']), { name: 'ConfigError', message: /^--health: "nope:x" must be \[host:\]port/ });
  await t.rejects(control('wait', [], { SSHKEEP_HEALTH: 'off' }), { name: 'ConfigError', message: /^wait: SSHKEEP_HEALTH is off, so the instance serves nothing to ask/ });
  const help = await control('status', ['--help']);
  t.equal(help.code, 0);
  t.match(help.out, /exit codes: 0 every tunnel is ready, 1 some tunnel is not/i);
});

t.test('control – sshkeep shutdown ends an instance run with --admin: it drains as on SIGTERM and exits 0; without a running one, status exits 1', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const cli = spawnCliFor(t, cliArgs(server.port, keys, `0:127.0.0.1:${echo.port}`, ['--admin', '--health', '127.0.0.1:0']));
  const health = `127.0.0.1:${portOf(await cli.waitForLog(logIs('health'), 10_000, 'health endpoints'))}`;
  await cli.waitForLog(logIs('state', { to: 'ready' }), 10_000, 'ready');
  const down = await runCli(['shutdown'], { env: { SSHKEEP_HEALTH: health } });
  t.equal(down.code, 0, down.stderr);
  t.match(down.stdout, /is draining/);
  await cli.waitForLog(logIs('shutdown', { signal: 'POST /quitquitquit' }), 5000, 'the drain');
  t.equal((await cli.exited()).code, 0, 'the instance exits 0');
  const after = await runCli(['status', '--health', health]);
  t.equal(after.code, 1);
  t.match(after.stderr, /^sshkeep status: no sshkeep at 127\.0\.0\.1:\d+: connection refused\n$/);
});

// Regression: a signal ended a control command with exit 0, so `sshkeep wait && deploy` went on
// after a Ctrl-C.
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  t.test(`control – ${signal} interrupts a command: exit ${code}, not 0`, async (t) => {
    let asked!: () => void;
    const askedOnce = new Promise<void>((resolve) => (asked = resolve));
    const silent = http.createServer(() => asked()); // never answers: the wait goes on
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    t.teardown(() => {
      silent.closeAllConnections();
      silent.close();
    });
    const cli = spawnCliFor(t, ['wait', '--health', String((silent.address() as AddressInfo).port), '--timeout', '30s']);
    await deadline(askedOnce, 10_000, 'the wait to ask the instance');
    cli.kill(signal);
    t.strictSame(await cli.exited(5000), { code, signal: null });
  });
}
