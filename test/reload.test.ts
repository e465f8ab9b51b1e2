/**
 * Reload without dropping anything (SIGHUP, `sshkeep reload`), as a user runs it: the built CLI in
 * a child process (run `npm run build` first) with a --config file, streams through it checked
 * byte for byte across the reload.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import t from 'tap';
import { deadline, freePorts, httpGet, httpPost, outcome, refusedPort, startEchoFor, tryConnect, until, hashedEchoClient } from './fixtures/net.js';
import { LogCapture, inputFor, makeKeys, startServer, type Keys } from './fixtures/tunnel.js';
import { logIs, spawnCliFor, type LogLine, type SpawnedCli } from './fixtures/cli.js';
import { runControl } from '../src/cli/control.js';
import { parseCli } from '../src/cli/program.js';
import { buildSettings, type Settings } from '../src/config/settings.js';
import { processEnv, resolveTunnel, type TunnelInput } from '../src/config/resolve.js';
import { Fleet } from '../src/fleet.js';
import { Metrics } from '../src/ops/metrics.js';
import { startHealthServer, type Control } from '../src/ops/health.js';
import { createLogger, silentLogger } from '../src/log.js';
import { Reloader, type ReloadOutcome } from '../src/reload.js';
import type { FleetChange } from '../src/fleet.js';


for (const k of Object.keys(process.env)) if (k.startsWith('SSHKEEP_')) delete process.env[k];

interface Entry {
  name: string;
  /** The -L spec. */
  local: string;
  holdTimeout?: string;
}

/** A --config file of tunnels through the embedded server at `port`, isolated from ~/.ssh. */
function configText(keys: Keys, port: number, tunnels: Entry[], top: Record<string, string> = {}): string {
  const options = { UserKnownHostsFile: keys.knownHosts, GlobalKnownHostsFile: 'none', IdentitiesOnly: 'yes' };
  const entries = tunnels.map((e) => ({ destination: 'tester@127.0.0.1', port, sshConfig: 'none', identityFiles: [keys.identity], options, ...e, local: [e.local] }));
  return JSON.stringify({ maxDrain: '3s', ...top, tunnels: entries }, null, 2);
}

/** `sshkeep reload` in process: its exit code and what it wrote. */
async function control(argv: string[], env: NodeJS.ProcessEnv = {}) {
  let out = '';
  let err = '';
  const code = await runControl('reload', argv, env, { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

const ready = (name: string) => logIs('state', { to: 'ready', tunnel: name });

async function readyAll(cli: SpawnedCli, names: string[]): Promise<void> {
  for (const n of names) await cli.waitForLog(ready(n), 10_000, `${n} to be ready`);
}

/** The `reload` log line of the `n`th reload (1-based). */
async function nthReload(cli: SpawnedCli, n: number): Promise<LogLine> {
  await until(() => cli.logs().filter(logIs('reload')).length >= n, 10_000, `reload ${n}`);
  return cli.logs().filter(logIs('reload'))[n - 1]!;
}

t.test('reload – SIGHUP starts an added tunnel, drains a removed one, replaces a changed one on its listener; the unchanged one and its stream are untouched', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const [keepPort, gonePort, changePort, addedPort] = await freePorts(4);
  const to = (p: number) => `127.0.0.1:${p}:127.0.0.1:${echo.port}`;
  const file = path.join(t.testdir({}), 'tunnels.json');
  fs.writeFileSync(file, configText(keys, server.port, [
    { name: 'keep', local: to(keepPort!) },
    { name: 'gone', local: to(gonePort!) },
    { name: 'change', local: to(changePort!), holdTimeout: '30s' },
  ]));
  const cli = spawnCliFor(t, ['--config', file]);
  await readyAll(cli, ['keep', 'gone', 'change']);

  // Streams open across the reload: through the unchanged, the removed and the changed tunnel.
  const half = () => randomBytes(32 * 1024);
  const [kept, removed, replaced] = await Promise.all([hashedEchoClient(keepPort!), hashedEchoClient(gonePort!), hashedEchoClient(changePort!)]);
  const sentKept = [half(), half()];
  await Promise.all([kept.send(sentKept[0]!), removed.send(half()), replaced.send(half())]);

  fs.writeFileSync(file, configText(keys, server.port, [
    { name: 'keep', local: to(keepPort!) },
    { name: 'change', local: to(changePort!), holdTimeout: '20s' },
    { name: 'added', local: to(addedPort!) },
  ]));
  // A client connecting to the changed tunnel's address at any moment of the reload is accepted.
  let connecting = true;
  const outcomes: string[] = [];
  const knocking = (async () => {
    while (connecting) outcomes.push(await tryConnect(changePort!));
  })();
  cli.kill('SIGHUP');
  const line = await nthReload(cli, 1);
  await cli.waitForLog(ready('added'), 10_000, 'the added tunnel to be ready');
  connecting = false;
  await knocking;
  t.match(line, { level: 'info', status: 'applied', trigger: 'SIGHUP', added: ['added'], removed: ['gone'], changed: ['change'], unchanged: ['keep'] });
  t.match(line.msg, /^reloaded: added added; removed gone; changed change; unchanged keep$/);
  t.ok(outcomes.length > 0 && outcomes.every((o) => o === 'connected'), `no client refused during the reload (${outcomes.length} tries: ${[...new Set(outcomes)].join(', ')})`);
  t.ok(cli.logs().some(logIs('listen', { tunnel: 'change', port: changePort!, takenOver: true })), "the new 'change' took over the old one's listener");
  t.equal(cli.logs().filter(ready('keep')).length, 1, 'the unchanged tunnel did not reconnect');

  // The streams opened before the reload carry on to their end, byte for byte.
  await kept.send(sentKept[1]!);
  const k = await kept.end();
  t.equal(k.up, createHash('sha256').update(Buffer.concat(sentKept)).digest('hex'), 'unchanged tunnel: what was sent is what was hashed');
  t.equal(k.down, k.up, 'unchanged tunnel: what came back is what was sent');
  for (const [what, c] of [['removed', removed], ['changed', replaced]] as const) {
    await c.send(half());
    const r = await c.end();
    t.equal(r.down, r.up, `the ${what} tunnel's open stream finishes within the drain, intact`);
  }
  await cli.waitForLog(logIs('state', { to: 'closed', tunnel: 'gone' }), 5000, "the removed tunnel's SSH connection to close once its stream ended");
  t.notOk(cli.logs().some(logIs('drain_end')), 'nothing was cut');

  // New clients: the removed address refuses, the others serve through the tunnels now configured.
  t.equal(await tryConnect(gonePort!), 'ECONNREFUSED', 'the removed tunnel no longer listens');
  for (const p of [keepPort!, changePort!, addedPort!]) {
    const c = await hashedEchoClient(p);
    await c.send(Buffer.from('after the reload'));
    t.equal((await c.end()).bytes, 'after the reload'.length, `port ${p} serves after the reload`);
  }
  cli.kill('SIGTERM');
  t.equal((await cli.exited(8000)).code, 0);
});

t.test('reload – a broken file is refused with the text sshkeep check prints, and everything keeps running; sshkeep reload exits 1, then 0 once it is fixed', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const [port, other] = await freePorts(2);
  const file = path.join(t.testdir({}), 'tunnels.json');
  const good = configText(keys, server.port, [{ name: 'db', local: `127.0.0.1:${port}:127.0.0.1:${echo.port}` }]);
  fs.writeFileSync(file, good);
  const cli = spawnCliFor(t, ['--config', file, '--health', '127.0.0.1:0']);
  await readyAll(cli, ['db']);
  const health = `127.0.0.1:${(await cli.waitForLog(logIs('health'))).port as number}`;
  const stream = await hashedEchoClient(port!);
  await stream.send(randomBytes(16 * 1024));

  fs.writeFileSync(file, good.replace('"name": "db"', '"name": "db", "holdTimout": "5s"'));
  cli.kill('SIGHUP');
  const refused = await nthReload(cli, 1);
  t.match(refused, { level: 'error', status: 'refused' });
  // What `sshkeep check` prints after "sshkeep: ": the same parse, here in process.
  const checked = (() => {
    try {
      buildSettings(parseCli(['--config', file], {})!, processEnv(), {}, () => {});
    } catch (err) {
      return (err as Error).message;
    }
  })();
  t.match(checked, /holdTimout: unknown key/);
  t.equal(refused.error, checked, 'the same text as sshkeep check');
  t.equal(refused.msg, `reload refused, the running configuration stays: ${checked}`);

  const viaControl = await control(['--health', health]);
  t.equal(viaControl.code, 1, 'sshkeep reload of a broken file: exit 1');
  t.equal(viaControl.err, `sshkeep reload: refused, the running configuration stays: ${checked}\n`);
  await stream.send(randomBytes(16 * 1024));
  const s = await stream.end();
  t.equal(s.down, s.up, 'the open stream ran through both refused reloads');

  // Fixed, with one more tunnel, and a setting read at start only: applied, that setting kept.
  fs.writeFileSync(file, configText(keys, server.port, [
    { name: 'db', local: `127.0.0.1:${port}:127.0.0.1:${echo.port}` },
    { name: 'cache', local: `127.0.0.1:${other}:127.0.0.1:${echo.port}` },
  ], { logLevel: 'debug' }));
  const applied = await control([], { SSHKEEP_HEALTH: health });
  t.equal(applied.code, 0, applied.err);
  t.equal(applied.out, 'sshkeep reload: applied: added cache; unchanged db\n--log-level changed but only a restart applies it; kept as started\n');
  t.match(cli.logs().find(logIs('reload_kept')), { level: 'warn', kept: ['--log-level'] }, 'one warning line names it');
  await cli.waitForLog(ready('cache'), 10_000, 'the added tunnel');

  await t.rejects(control(['--health', health, '--bogus']), { name: 'ConfigError', message: "unknown option '--bogus'. Run sshkeep reload --help for usage." }, 'a usage error (exit 2)');
  cli.kill('SIGTERM');
  t.equal((await cli.exited(8000)).code, 0);
  const nothing = await control(['--health', health]);
  t.equal(nothing.code, 1, 'nothing running: exit 1');
  t.match(nothing.err, /^sshkeep reload: 127\.0\.0\.1:\d+ did not reload: connection refused\n$/);
});

t.test('reload – SIGHUP without a file (-F none, no --config): nothing to reload, and the process runs on', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const args = ['-F', 'none', '-o', 'GlobalKnownHostsFile=none', '-o', `UserKnownHostsFile=${keys.knownHosts}`, '-p', String(server.port), '-i', keys.identity];
  const cli = spawnCliFor(t, [...args, '--health', '127.0.0.1:0', '-L', `0:127.0.0.1:${echo.port}`, 'tester@127.0.0.1']);
  const listen = await cli.waitForLog(logIs('listen'));
  await cli.waitForLog(logIs('state', { to: 'ready' }));
  cli.kill('SIGHUP');
  const line = await nthReload(cli, 1);
  t.match(line, { level: 'info', status: 'nothing', msg: /^nothing to reload: started without --config and with -F none/ });
  const c = await hashedEchoClient(listen.port as number);
  await c.send(Buffer.from('still here'));
  t.equal((await c.end()).bytes, 'still here'.length, 'still forwarding');
  const health = `127.0.0.1:${(await cli.waitForLog(logIs('health'))).port as number}`;
  const res = await control(['--health', health]);
  t.equal(res.code, 0);
  t.match(res.out, /^sshkeep reload: nothing to reload: /);
  cli.kill('SIGTERM');
  t.strictSame(await cli.exited(8000), { code: 0, signal: null }, 'SIGHUP did not end it');
});

t.test('reload – SIGHUP with ssh_config only (the case of the systemd unit): a changed LocalForward of the alias moves, the command line keeps its precedence', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const [first, second] = await freePorts(2);
  const sshConfig = path.join(t.testdir({}), 'ssh_config');
  const alias = (port: number) =>
    `Host bastion\n  HostName 127.0.0.1\n  Port ${server.port}\n  User tester\n  IdentityFile ${keys.identity}\n  UserKnownHostsFile ${keys.knownHosts}\n` +
    `  LocalForward 127.0.0.1:${port} 127.0.0.1:${echo.port}\n  ServerAliveInterval 30\n`;
  fs.writeFileSync(sshConfig, alias(first!));
  // -o ServerAliveInterval on the command line wins over the file's, before and after the reload.
  const cli = spawnCliFor(t, ['-F', sshConfig, '-o', 'GlobalKnownHostsFile=none', '-o', 'IdentitiesOnly=yes', '-o', 'ServerAliveInterval=20', 'bastion']);
  await readyAll(cli, ['bastion']);
  fs.writeFileSync(sshConfig, alias(second!).replace('ServerAliveInterval 30', 'ServerAliveInterval 40'));
  cli.kill('SIGHUP');
  t.match(await nthReload(cli, 1), { status: 'applied', changed: ['bastion'] }, 'the forward moved: the tunnel is replaced');
  await until(() => cli.logs().filter(ready('bastion')).length === 2, 10_000, 'the new tunnel to be ready');
  const c = await hashedEchoClient(second!);
  await c.send(Buffer.from('through the new LocalForward'));
  t.equal((await c.end()).bytes, 'through the new LocalForward'.length);
  t.equal(await tryConnect(first!), 'ECONNREFUSED', 'the old LocalForward no longer listens');
  // Only ServerAliveInterval differs in the file now: the command line's wins, so nothing changes.
  fs.writeFileSync(sshConfig, alias(second!).replace('ServerAliveInterval 30', 'ServerAliveInterval 50'));
  cli.kill('SIGHUP');
  t.match(await nthReload(cli, 2), { status: 'applied', unchanged: ['bastion'], changed: [] });
  cli.kill('SIGTERM');
  t.equal((await cli.exited(8000)).code, 0);
});

t.test('reload – ssh_config\'s Match exec runs without stalling what serves: during a reload waiting on it, /healthz answers and the forward carries data', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const [port] = await freePorts(1);
  const dir = t.testdir({});
  const gate = path.join(dir, 'gate');
  const running = path.join(dir, 'running');
  const sshConfig = path.join(dir, 'ssh_config');
  // The command says it runs, then returns once the gate exists: the test decides how long the reload waits on it.
  fs.writeFileSync(sshConfig,
    `Match exec "touch ${running}; while [ ! -e ${gate} ]; do sleep 0.05; done"\n  ServerAliveInterval 30\n` +
    `Host bastion\n  HostName 127.0.0.1\n  Port ${server.port}\n  User tester\n  IdentityFile ${keys.identity}\n  UserKnownHostsFile ${keys.knownHosts}\n` +
    `  LocalForward 127.0.0.1:${port} 127.0.0.1:${echo.port}\n`);
  fs.writeFileSync(gate, '');
  const cli = spawnCliFor(t, ['-F', sshConfig, '-o', 'GlobalKnownHostsFile=none', '-o', 'IdentitiesOnly=yes', '--health', '127.0.0.1:0', 'bastion']);
  await readyAll(cli, ['bastion']);
  const health = Number((await cli.waitForLog(logIs('health'))).port);
  fs.rmSync(gate);
  fs.rmSync(running);
  cli.kill('SIGHUP');
  await until(() => fs.existsSync(running), 5000, 'the reload to run the Match exec command');
  const started = performance.now();
  t.equal((await httpGet(health, '/healthz', 2000)).status, 200, '/healthz answers while the reload waits on Match exec');
  const c = await hashedEchoClient(port!);
  await c.send(Buffer.from('during the reload'));
  t.equal((await deadline(c.end(), 2000, 'the echo during the reload')).bytes, 'during the reload'.length, 'the forward carries data meanwhile');
  t.ok(performance.now() - started < 2000, 'both within 2 s');
  t.notOk(cli.logs().some(logIs('reload')), 'the reload is still waiting on the command');
  fs.writeFileSync(gate, '');
  t.match(await nthReload(cli, 1), { status: 'applied', unchanged: ['bastion'] }, 'then it completes, once the command returns');
  cli.kill('SIGTERM');
  t.equal((await cli.exited(8000)).code, 0);
});

t.test('reload – one at a time: requests during a reload share one more run after it, which reads the file then', async (t) => {
  let loads = 0;
  let release: (() => void) | undefined;
  /** Lets the reconfigure in progress finish, once the reload has come that far (its load is awaited first). */
  const releaseNext = async () => {
    await until(() => release !== undefined, 2000, 'a reload to reconfigure');
    const r = release!;
    release = undefined;
    r();
  };
  const change: FleetChange = { added: [], removed: [], changed: [], unchanged: ['a'] };
  const fleet = {
    draining: false,
    reconfigure: () => new Promise<FleetChange>((resolve) => (release = () => resolve(change))),
  } as unknown as Fleet;
  const settings = { tunnels: [], process: { maxDrainMs: 1 } } as unknown as Settings;
  const reloader = new Reloader(fleet, settings, async () => (loads++, settings), silentLogger);
  const events: string[] = [];
  reloader.on('reloading', (trigger) => events.push(`reloading ${trigger}`));
  reloader.on('reloaded', (o) => events.push(`reloaded ${o.status}`));
  const first = reloader.request('SIGHUP');
  const during = [reloader.request('SIGHUP'), reloader.request('POST /reload')];
  t.equal(loads, 1, 'the first reload read the file');
  await releaseNext();
  await first;
  await until(() => loads === 2, 2000, 'the second run');
  await releaseNext();
  const outcomes: ReloadOutcome[] = await Promise.all(during);
  t.equal(loads, 2, 'two requests during the first reload made one more run, not two');
  t.equal(outcomes[0], outcomes[1], 'both got the outcome of that run');
  t.strictSame(events, ['reloading SIGHUP', 'reloaded applied', 'reloading SIGHUP', 'reloaded applied']);
});

t.test('reload – a new tunnel that cannot start undoes it all: the listener handed over goes back, the running tunnel and its stream are untouched; limits apply live', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const [port] = await freePorts(1);
  const spec = `127.0.0.1:${port}:127.0.0.1:${echo.port}`;
  const env = { home: t.testdir({}), localUser: 'tester', authSock: undefined };
  const config = (name: string, extra: Partial<TunnelInput> = {}, forward = spec) => ({ ...resolveTunnel(inputFor(server, keys, [forward], extra), env), name });
  const fleet = new Fleet([config('db')], { maxConnections: 0, maxHeld: 1024 }, { logger: createLogger('debug', 'json', new LogCapture()) });
  t.teardown(() => fleet.stop('test over'));
  await fleet.start();
  await deadline(fleet.ready(), 5000, 'ready');
  const db = fleet.tunnels[0]!;
  const stream = await hashedEchoClient(port!);
  await stream.send(randomBytes(8 * 1024));

  // db changed (it would take over the listener), and a new tunnel whose key file is no key.
  const limits = { maxConnections: 2, maxHeld: 1024, maxDrainMs: 1000 };
  const notAKey = path.join(env.home, 'not_a_key');
  fs.writeFileSync(notAKey, 'not a key\n', { mode: 0o600 });
  await t.rejects(fleet.reconfigure([config('db', { holdTimeout: '5s' }), config('broken', { identityFiles: [notAKey] }, `127.0.0.1:0:127.0.0.1:${echo.port}`)], limits), { message: new RegExp(`${notAKey}: not a private key`) });
  t.equal(fleet.tunnels.length, 1);
  t.equal(fleet.tunnels[0], db, 'the running tunnel is the same object');
  const second = await hashedEchoClient(port!);
  await second.send(Buffer.from('served by the running tunnel'));
  t.equal(db.clients(), 2, 'the listener went back to the running tunnel: it took the new client');
  const third = await hashedEchoClient(port!);
  await third.send(Buffer.from('no limit yet'));
  t.equal((await third.end()).bytes, 'no limit yet'.length, 'the refused reload did not set --max-connections 2');

  const change = await fleet.reconfigure([config('db')], limits);
  t.strictSame(change, { added: [], removed: [], changed: [], unchanged: ['db'] });
  t.equal(fleet.tunnels[0], db, 'unchanged: the same object');
  const over = net.connect({ port: port!, host: '127.0.0.1' });
  t.equal((await deadline(outcome(over), 5000, 'the third client to be reset')).errorCode, 'ECONNRESET', '--max-connections 2 applies from now: with two open, a third is reset');
  for (const s of [stream, second]) {
    const r = await s.end();
    t.equal(r.down, r.up, 'open streams intact through both reconfigurations');
  }
});

t.test('reload – a tunnel that never connected, replaced by a reload that fixes its address: the fleet is ready once the new one is, nothing fails', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const env = { home: t.testdir({}), localUser: 'tester', authSock: undefined };
  const forward = `127.0.0.1:0:127.0.0.1:${echo.port}`;
  const wrong = { ...resolveTunnel(inputFor({ port: await refusedPort() }, keys, [forward]), env), name: 'db' };
  const logs = new LogCapture();
  const fleet = new Fleet([wrong], { maxConnections: 0, maxHeld: 1024 }, { logger: createLogger('debug', 'json', logs) });
  t.teardown(() => fleet.stop('test over'));
  await fleet.start();
  const ready = fleet.ready();
  await until(() => fleet.reports()[0]!.lastError !== undefined, 5000, 'a refused connect');
  const change = await fleet.reconfigure([{ ...resolveTunnel(inputFor(server, keys, [forward]), env), name: 'db' }], { maxConnections: 0, maxHeld: 1024, maxDrainMs: 100 });
  t.strictSame(change.changed, ['db']);
  await deadline(ready, 5000, 'ready() to resolve with the new tunnel');
  t.equal(fleet.tunnels[0]!.connection.state, 'ready', 'resolved because the tunnel configured now is ready');
  t.equal(logs.find('tunnel_failed').length, 0, 'the old one stopping is no failure');
});

t.test('reload – POST /reload answers once done (409 with the error when refused), POST only; /reconnect 202 with the tunnels; without them, 404', async (t) => {
  const fleet = new Fleet([], { maxConnections: 0, maxHeld: 1 });
  const refusedOutcome: ReloadOutcome = { status: 'refused', error: 'tunnels.yaml: tunnels[0].destination: required' };
  const serve = async (control?: Control) => {
    const server = await startHealthServer({ host: '127.0.0.1', port: 0 }, fleet, new Metrics(), undefined, control);
    t.teardown(() => server.close());
    return (server.address() as net.AddressInfo).port;
  };
  const port = await serve({ reload: async () => refusedOutcome, reconnect: () => ['db'] });
  t.equal((await httpGet(port, '/reload')).status, 405, 'GET /reload: 405');
  const reload = await httpPost(port, '/reload');
  t.equal(reload.status, 409);
  t.strictSame(JSON.parse(reload.body), refusedOutcome);
  const reconnect = await httpPost(port, '/reconnect');
  t.equal(reconnect.status, 202);
  t.strictSame(JSON.parse(reconnect.body), { status: 'reconnecting', tunnels: ['db'] });
  const bare = await serve();
  t.equal((await httpPost(bare, '/reload')).status, 404, 'a health server given no control: 404');
});

t.test('reload – a started fleet stays started (/startupz) when a reload adds a tunnel that cannot connect', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const env = { home: t.testdir({}), localUser: 'tester', authSock: undefined };
  const good = { ...resolveTunnel(inputFor(server, keys, [`127.0.0.1:0:127.0.0.1:${echo.port}`]), env), name: 'db' };
  const fleet = new Fleet([good], { maxConnections: 0, maxHeld: 1024 }, { logger: silentLogger });
  t.teardown(() => fleet.stop('test over'));
  await fleet.start();
  await deadline(fleet.ready(), 5000, 'the good tunnel ready');
  t.ok(fleet.isStarted(), 'started');
  const bad = { ...resolveTunnel(inputFor({ port: await refusedPort() }, keys, ['127.0.0.1:0:127.0.0.1:9']), env), name: 'new' };
  await fleet.reconfigure([good, bad], { maxConnections: 0, maxHeld: 1024, maxDrainMs: 100 });
  await until(() => fleet.reports().find((r) => r.tunnel === 'new')?.lastError !== undefined, 5000, 'the added tunnel refused');
  t.ok(fleet.isStarted(), 'still started: a startup probe never goes back');
  t.notOk(fleet.isReady(), 'not ready: the added tunnel is down');
});
