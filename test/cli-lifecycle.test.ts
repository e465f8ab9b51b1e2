import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { deadline, refusedPort, startEchoFor } from './fixtures/net.js';
import { makeKeys, startServer, type Keys } from './fixtures/tunnel.js';
import { cliArgs, ISOLATED, ISOLATED_NO_F, logIs, spawnCliFor, startGate, expectForwardWorks } from './fixtures/cli.js';


/** An ssh_config whose `prod-*` block describes the embedded server, followed by a catch-all with a wrong Port. */
function writeConfig(keys: Keys, serverPort: number): string {
  const file = path.join(keys.dir, 'ssh_config');
  fs.writeFileSync(
    file,
    'Host prod-*\n' +
      '  HostName 127.0.0.1\n' +
      `  Port ${serverPort}\n` +
      '  User tester\n' +
      `  IdentityFile ${keys.identity}\n` +
      `  UserKnownHostsFile ${keys.knownHosts}\n` +
      '  IdentitiesOnly yes\n' +
      'Host *\n' +
      '  Port 1\n',
  );
  return file;
}

t.test('cli – an ssh_config Host alias supplies HostName, Port, User, IdentityFile (first match wins)', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const config = writeConfig(keys, server.port);
  const cli = spawnCliFor(t, ['-F', config, ...ISOLATED_NO_F, '-L', `0:127.0.0.1:${echo.port}`, 'prod-bastion']);
  await expectForwardWorks(t, cli, 'via the alias');
  const ready = await cli.waitForLog(logIs('state', { to: 'ready' }), 1000, 'the ready line');
  t.match(String(ready.reason), new RegExp(`127\\.0\\.0\\.1:${server.port}\\b`), 'dialled the first block\'s Port, not the catch-all\'s');
  t.equal(ready.tunnel, 'prod-bastion', 'the tunnel is named after the alias');
  t.equal(echo.connections, 1);
  cli.kill('SIGTERM');
  t.equal((await cli.exited()).code, 0, 'SIGTERM: exit 0');
});

t.test('cli – -p on the command line overrides the ssh_config Port', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const config = writeConfig(keys, server.port);
  const refused = await refusedPort();
  const cli = spawnCliFor(t, ['-F', config, ...ISOLATED_NO_F, '-p', String(refused), '-o', 'ConnectTimeout=2s', '-L', '0:127.0.0.1:1', 'prod-bastion']);
  const failed = await cli.waitForLog(logIs('state', { to: 'reconnecting' }), 10_000, 'the first connect to fail');
  t.match(String(failed.reason), new RegExp(`127\\.0\\.0\\.1:${refused}\\b`), `the connect error names the -p port ${refused}`);
  t.notMatch(String(failed.reason), new RegExp(`:${server.port}\\b`), 'not the ssh_config port');
  t.equal(server.connections, 0, 'the server in ssh_config was never dialled');
  // Stopping while never connected is covered by its own test below.
  cli.kill('SIGTERM');
  await cli.exited();
});

t.test('cli – SIGINT: clean shutdown, a stopped line, exit 0', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const cli = spawnCliFor(t, cliArgs(server.port, keys, `0:127.0.0.1:${echo.port}`));
  await expectForwardWorks(t, cli, 'before SIGINT');
  cli.kill('SIGINT');
  const { code, signal } = await cli.exited();
  t.equal(code, 0, 'exit 0');
  t.equal(signal, null, 'handled the signal and exited by itself');
  const shutdown = cli.logs().find((l) => l.event === 'shutdown');
  t.equal(shutdown?.signal, 'SIGINT', 'logs the shutdown with the signal');
  const stopped = cli.logs().find((l) => l.event === 'stopped');
  t.ok(stopped, 'logs a stopped line');
  t.equal(stopped?.level, 'info');
  t.ok(cli.logs().some((l) => l.event === 'state' && l.to === 'closed'), 'the tunnel went to closed');
  t.notOk(cli.logs().some((l) => l.level === 'error'), 'no error lines');
});

t.test('cli – a second signal during shutdown exits at once', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  // Relay through a gate that can go silent: the polite SSH disconnect then gets no answer,
  // so the first shutdown waits for its close timeout instead of finishing in a millisecond.
  const gate = await startGate(t, server.port);
  fs.writeFileSync(keys.knownHosts, `[127.0.0.1]:${gate.port} ${server.hostPublicKey}\n`);
  const cli = spawnCliFor(t, cliArgs(gate.port, keys, `0:127.0.0.1:${echo.port}`));
  await expectForwardWorks(t, cli, 'before shutdown');
  gate.freeze();
  cli.kill('SIGTERM');
  await cli.waitForLog(logIs('shutdown'), 5000, 'the first shutdown to begin');
  const second = Date.now();
  cli.kill('SIGTERM');
  const { code } = await cli.exited(5000);
  const tookMs = Date.now() - second;
  t.equal(code, 0, 'exit 0');
  t.notOk(cli.logs().some((l) => l.event === 'stopped'), 'left before the orderly shutdown finished (no stopped line)');
  // No 'stopped' line says it left before the orderly shutdown; the bound is loose for a loaded machine.
  t.ok(tookMs < 2500, `exited promptly after the second signal (${tookMs} ms)`);
});

t.test('cli – forwards bind loopback by default', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const cli = spawnCliFor(t, cliArgs(server.port, keys, '0:127.0.0.1:1'));
  const listen = await cli.waitForLog(logIs('listen'), 10_000, 'the listen line');
  t.equal(listen.address, '127.0.0.1', 'listens on 127.0.0.1');
  t.equal(listen.level, 'info', 'an info line: nothing to warn about');
  await cli.waitForLog(logIs('state', { to: 'ready' }), 10_000, 'the tunnel to be ready');
  cli.kill('SIGTERM');
  t.equal((await cli.exited()).code, 0);
});

t.test('cli – an explicit non-loopback bind address logs a warning', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const cli = spawnCliFor(t, cliArgs(server.port, keys, `0.0.0.0:0:127.0.0.1:${echo.port}`));
  const listen = await cli.waitForLog(logIs('listen'), 10_000, 'the listen line');
  t.equal(listen.address, '0.0.0.0', 'listens on every interface, as asked');
  t.equal(listen.level, 'warn', 'a warn-level line');
  t.match(String(listen.msg), /non-loopback/, 'says the address is not loopback');
  await expectForwardWorks(t, cli, 'on 0.0.0.0');
  cli.kill('SIGTERM');
  t.equal((await cli.exited()).code, 0);
});

// Regression: stop() rejects the still-pending ready(), which main() used to report as fatal (exit 1).

t.test('cli – a signal before the first connect exits 0 without an error', async (t) => {
  const refused = await refusedPort();
  const cli = spawnCliFor(t, [...ISOLATED, '-p', String(refused), '-o', 'ConnectTimeout=1s', '-L', '0:127.0.0.1:1', 'tester@127.0.0.1']);
  await cli.waitForLog(logIs('state', { to: 'reconnecting' }), 10_000, 'a failed connect');
  cli.kill('SIGTERM');
  const { code, signal } = await cli.exited();
  t.equal(signal, null, 'handled the signal and exited by itself');
  t.ok(cli.logs().some((l) => l.event === 'stopped'), 'logs a stopped line');
  t.equal(code, 0, 'exit 0');
  t.notOk(cli.logs().some((l) => l.event === 'fatal'), 'no fatal line');
});

// Regression: the listeners were swapped off-then-on as the forwards opened. Node closed the
// signal's watcher in between, and a signal caught but not yet dispatched was dropped with it.
for (const signal of ['SIGTERM', 'SIGHUP'] as const) {
  t.test(`cli – a ${signal} sent the moment the forwards open is not lost`, async (t) => {
    const refused = await refusedPort();
    // Three starts: the signal lands in a different step of the start-up each time.
    for (let round = 1; round <= 3; round++) {
      const cli = spawnCliFor(t, [...ISOLATED, '-p', String(refused), '-o', 'ConnectTimeout=1s', '-L', '0:127.0.0.1:1', 'tester@127.0.0.1']);
      cli.onLog((l) => l.event === 'listen' && cli.kill(signal));
      if (signal === 'SIGTERM') {
        t.strictSame(await cli.exited(10_000), { code: 0, signal: null }, `round ${round}: drained and exited 0`);
        continue;
      }
      // -F none: a SIGHUP has nothing to read again; it must neither end the process nor vanish.
      await cli.waitForLog(logIs('reload'), 10_000, `round ${round}: the SIGHUP handled`);
      t.equal(cli.exitInfo(), undefined, `round ${round}: still running`);
      cli.kill('SIGTERM');
      t.equal((await cli.exited(10_000)).code, 0);
    }
  });
}

// Regression: the listeners were set only once the CLI's modules had loaded (about 0.25 s), and
// a SIGHUP then ended the process. Here the load of one of them is held while the signal comes.
t.test('cli – a SIGHUP while the CLI\'s modules still load neither ends it nor is lost', async (t) => {
  const refused = await refusedPort();
  const cli = spawnCliFor(t, [...ISOLATED, '-p', String(refused), '-o', 'ConnectTimeout=1s', '-L', '0:127.0.0.1:1', 'tester@127.0.0.1'], {
    env: { NODE_OPTIONS: `--import=${pathToFileURL(path.join(import.meta.dirname, 'fixtures', 'slow-imports.mjs')).href}` },
  });
  await deadline(
    new Promise<void>((resolve) => cli.onStderr((s) => s.includes('slow-imports: holding') && resolve())),
    10_000,
    'the CLI\'s imports to be held',
  );
  cli.kill('SIGHUP');
  await cli.waitForLog(logIs('listen'), 10_000, 'the forwards to open');
  await cli.waitForLog(logIs('reload', { trigger: 'SIGHUP' }), 5000, 'the SIGHUP handled once serving');
  cli.kill('SIGTERM');
  t.strictSame(await cli.exited(10_000), { code: 0, signal: null }, 'then a clean stop');
});
