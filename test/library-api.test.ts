/** The exported library API: names renamed in 0.2 still work, as deprecated aliases of the new ones. */
import t from 'tap';
import os from 'node:os';
import { EventEmitter, once } from 'node:events';
import * as sshkeep from '../src/index.js';
import { currentLimits } from '../src/deprecated.js';
import type { SshSession } from '../src/ssh/adapter.js';
import fs from 'node:fs';
import { deadline, expectEcho, startEchoFor, until } from './fixtures/net.js';
import { inputFor, makeKeys, startServer, startSshkeep } from './fixtures/tunnel.js';
import { Relay } from './fixtures/relay.js';

const config = () =>
  sshkeep.resolveTunnel(
    { destination: 'tester@127.0.0.1', configFile: 'none', options: ['GlobalKnownHostsFile=none', 'IdentitiesOnly=yes'], localForwards: ['0:127.0.0.1:9'], connections: '2' },
    { home: os.tmpdir(), localUser: 'tester', authSock: undefined },
  );

/** Enough of an SSH session for a connection with a heartbeat: it answers every probe. */
class AnsweringSession extends EventEmitter<{ close: [string] }> {
  readonly description = 'fake';
  closed = false;
  lastInboundAt = () => performance.now();
  sendProbe = (onReply: () => void) => setImmediate(onReply);
  end = () => this.destroy();
  destroy = () => {
    this.closed = true;
    this.emit('close', 'ended');
  };
}

t.test('library API – Tunnel, built with 0.1 options, is a working SshConnection; TunnelState is ConnectionState', async (t) => {
  let dials = 0;
  const tunnel = new sshkeep.Tunnel({
    logger: sshkeep.silentLogger,
    heartbeat: { intervalMs: 60_000 },
    dial: async () => {
      if (++dials === 1) throw new sshkeep.ConnectError('refused');
      return new AnsweringSession() as unknown as SshSession;
    },
  });
  t.ok(tunnel instanceof sshkeep.SshConnection);
  await deadline(tunnel.start(), 5000, 'ready after one retry with the default backoff');
  await deadline(once(tunnel, 'rtt'), 5000, 'a heartbeat with the default timings');
  const state: sshkeep.TunnelState = tunnel.state;
  const same: sshkeep.ConnectionState = state;
  t.equal(same, 'ready');
  await tunnel.stop('test');
});

t.test('library API – 0.1 limits (connections() for clients()) still work', async (t) => {
  const legacy = { maxConnections: 3, maxHeld: 2, connections: () => 5, held: () => 1 };
  const limits = currentLimits(legacy);
  t.equal(limits.clients(), 5);
  t.equal(limits.held(), 1);
  t.match(limits, { maxConnections: 3, maxHeld: 2 });
  t.doesNotThrow(() => new sshkeep.Sshkeep(config(), { limits: legacy }));
});

t.test('library API – Sshkeep.tunnel, .tunnels and .connections() answer as .connection, .sshConnections and .clients()', async (t) => {
  const tunnel = new sshkeep.Sshkeep(config());
  t.equal(tunnel.tunnel, tunnel.connection);
  t.equal(tunnel.tunnels, tunnel.sshConnections);
  t.equal(tunnel.sshConnections.length, 2, '--connections 2');
  t.equal(tunnel.connections(), tunnel.clients());
});

t.test('library API – Fleet.apps and .connections() answer as .tunnels and .clients()', async (t) => {
  const fleet = new sshkeep.Fleet([config()], { maxConnections: 0, maxHeld: 1 });
  t.equal(fleet.apps, fleet.tunnels);
  t.equal(fleet.tunnels.length, 1);
  t.equal(fleet.connections(), fleet.clients());
});

t.test('library API – start() twice is one start; start() after stop() and ready() before start() are clear ConfigErrors', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const { app, bound } = await startSshkeep(t, inputFor(server, keys, [`0:127.0.0.1:${echo.port}`]));
  t.equal(await app.start(), await app.start(), 'a second start() answers as the first: the same listeners');
  await app.ready();
  await expectEcho(t, bound[0]!.port, 'one listener, working');
  await app.stop();
  await t.rejects(app.start(), { name: 'ConfigError', message: /start\(\) after stop\(\); a stopped tunnel does not start again/ });

  const fresh = new sshkeep.Sshkeep(sshkeep.resolveTunnel(inputFor(server, keys, ['0:127.0.0.1:9']), { home: os.tmpdir(), localUser: 'tester', authSock: undefined }));
  await t.rejects(fresh.ready(), { name: 'ConfigError', message: /ready\(\) before start\(\); call start\(\) first/ });
  const starting = fresh.start();
  await deadline(fresh.ready(), 10_000, 'ready() called while start() is still running waits for it');
  await starting;
  await fresh.stop();
});

t.test('library API – a fatal first connect leaves its error in report().lastError', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  fs.writeFileSync(keys.knownHosts, ''); // the host key is unknown: fatal at the first connect
  const app = new sshkeep.Sshkeep(sshkeep.resolveTunnel(inputFor(server, keys, ['0:127.0.0.1:9']), { home: os.tmpdir(), localUser: 'tester', authSock: undefined }), { logger: sshkeep.silentLogger });
  t.teardown(() => app.stop());
  await app.start();
  await t.rejects(deadline(app.ready(), 10_000, 'the host key check'), sshkeep.HostKeyError);
  t.match(app.report().lastError, /host key/i, 'the report says why');
});

t.test('library API – stop() settles within about a second when the server never answers the close (a dead link, a stopped sshd)', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const relay = await new Relay(server.port, { halfOpen: true }).listen();
  t.teardown(() => relay.close());
  fs.appendFileSync(keys.knownHosts, `[127.0.0.1]:${relay.port} ${server.hostPublicKey}\n`);
  const { app } = await startSshkeep(t, inputFor(relay, keys, ['0:127.0.0.1:9'], { keepaliveInterval: '60s' }));
  await app.ready();
  relay.set('blackhole'); // our FIN is held: the server's answer (its FIN) never comes
  const started = performance.now();
  await deadline(app.stop(), 5000, 'stop() with the link dead');
  const tookMs = performance.now() - started;
  t.ok(tookMs < 3000, `stopped in ${tookMs.toFixed(0)} ms: the socket is dropped after 1 s of waiting`);
  t.equal(relay.ends.up, 1, 'our end was sent (and held by the link)');
});

t.test('library API – with --connections 2, the tunnel is ready (state, report, /readyz) while either connection is', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const config = sshkeep.resolveTunnel(inputFor(server, keys, [`0:127.0.0.1:${echo.port}`], { connections: '2' }), { home: os.tmpdir(), localUser: 'tester', authSock: undefined });
  const fleet = new sshkeep.Fleet([config], { maxConnections: 0, maxHeld: 1024 }, { logger: sshkeep.silentLogger });
  t.teardown(() => fleet.stop('test over'));
  const [bound] = await fleet.start();
  await deadline(fleet.ready(), 10_000, 'ready');
  const app = fleet.tunnels[0]!;
  await until(() => app.sshConnections.every((c) => c.state === 'ready'), 10_000, 'both connections ready');
  await app.sshConnections[0]!.stop('test: the first connection gone');
  t.equal(app.state, 'ready', 'the tunnel is ready on its second connection');
  t.match(app.report(), { state: 'ready', sshConnections: { ready: 1, total: 2 } });
  t.ok(fleet.isReady(), 'ready for traffic');
  await expectEcho(t, bound!.port, 'served by the second connection');
});

t.test('library API – a Fleet of two tunnels with one name is refused, at construction and at reconfigure()', async (t) => {
  const env = { home: os.tmpdir(), localUser: 'tester', authSock: undefined };
  const a = sshkeep.resolveTunnel({ destination: 'tester@127.0.0.1', configFile: 'none', localForwards: ['0:127.0.0.1:9'] }, env);
  const b = sshkeep.resolveTunnel({ destination: 'other@127.0.0.1', configFile: 'none', localForwards: ['0:127.0.0.1:8'] }, env);
  const limits = { maxConnections: 0, maxHeld: 1 };
  t.throws(() => new sshkeep.Fleet([a, b], limits), { name: 'ConfigError', message: /Two tunnels are named "127\.0\.0\.1"; give each a distinct name .*TunnelConfig\.name/ });
  const fleet = new sshkeep.Fleet([a, { ...b, name: 'other' }], limits);
  await t.rejects(fleet.reconfigure([a, b], { ...limits, maxDrainMs: 0 }), { name: 'ConfigError', message: /Two tunnels are named/ });
  t.strictSame(fleet.tunnels.map((x) => x.name), ['127.0.0.1', 'other'], 'the fleet as it was');
});

t.test('library API – resolveTunnel() from JavaScript: wrong shapes are one clear ConfigError; numbers and booleans read as ssh writes them', async (t) => {
  const env = { home: os.tmpdir(), localUser: 'tester', authSock: undefined };
  const resolve = (input: unknown) => sshkeep.resolveTunnel(input as sshkeep.TunnelInput, env);
  const base = { destination: 'tester@127.0.0.1', configFile: 'none', localForwards: ['0:127.0.0.1:9'] };
  const refused: [unknown, RegExp][] = [
    [null, /^resolveTunnel: expected an object with at least a destination, got null\.$/],
    [{ ...base, destination: undefined }, /^resolveTunnel: destination is required/],
    [{ ...base, destination: ['tester@127.0.0.1'] }, /^resolveTunnel: destination: expected a string, got an array\.$/],
    [{ ...base, localForwards: '8080:db:5432' }, /^resolveTunnel: localForwards: expected an array of strings, got a string\.$/],
    [{ ...base, identityFiles: [{}] }, /^resolveTunnel: identityFiles\[0\]: expected a string, got an object\.$/],
    [{ ...base, lcoalForwards: ['1:h:2'] }, /^resolveTunnel: unknown key "lcoalForwards" \(did you mean localForwards\?\); the keys are /],
    [{ ...base, port: Number.NaN }, /^resolveTunnel: port: expected a string, got a number\.$/],
  ];
  for (const [input, message] of refused) t.throws(() => resolve(input), { name: 'ConfigError', message }, JSON.stringify(input));
  const config = resolve({ ...base, port: 2222, connections: 2, holdTimeout: 5, resume: false });
  t.match(config, { port: 2222, connections: 2, holdTimeoutMs: 5000, resume: false }, 'port: 2222, connections: 2, holdTimeout: 5 (seconds, as ssh), resume: false');
});
