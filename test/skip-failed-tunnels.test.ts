/**
 * A fleet with one tunnel whose key the server refuses: by default the whole process ends
 * (exit 3); with --skip-failed-tunnels the others serve, the refused one keeps retrying at the
 * refusal backoff (1 min, doubling), is logged at error once, is not ready, and startup does not wait for it.
 */
import { DEFAULTS } from '../src/config/defaults.js';
import t, { type Test } from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import type { AddressInfo } from 'node:net';
import { deadline, expectEcho, getJson, httpGet, startEchoFor, until } from './fixtures/net.js';
import { inputFor, makeKeys, startServer, LogCapture } from './fixtures/tunnel.js';
import { resolveTunnel } from '../src/config/resolve.js';
import { Fleet } from '../src/fleet.js';
import { Metrics } from '../src/ops/metrics.js';
import { startHealthServer } from '../src/ops/health.js';
import { AuthError, EXIT, exitCodeOf } from '../src/errors.js';
import { createLogger } from '../src/log.js';
import { parseCli } from '../src/cli/program.js';
import { buildSettings } from '../src/config/settings.js';
import { configError } from './fixtures/errors.js';

/** Two tunnels to one embedded server: "good" with an authorized key, "refused" with a key it does not know. */
async function fleetOfTwo(t: Test, skipFailedTunnels: boolean) {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const stranger = makeKeys(t);
  fs.copyFileSync(keys.knownHosts, stranger.knownHosts); // the host key is trusted: only authentication fails
  const echo = await startEchoFor(t);
  const env = { home: os.tmpdir(), localUser: 'tester', authSock: undefined };
  const good = resolveTunnel(inputFor(server, keys, [`0:127.0.0.1:${echo.port}`]), env);
  const refused = resolveTunnel(inputFor(server, stranger, [`0:127.0.0.1:${echo.port}`]), env);
  good.name = 'good';
  refused.name = 'refused';
  const logs = new LogCapture();
  const fleet = new Fleet([good, refused], { maxConnections: 0, maxHeld: 1024 }, { logger: createLogger('debug', 'json', logs), skipFailedTunnels });
  const bound = await fleet.start();
  t.teardown(() => fleet.stop('test over'));
  return { fleet, bound, logs, good: fleet.tunnels[0]!, refused: fleet.tunnels[1]! };
}

t.test('skip failed tunnels – by default a refused key at the first connect ends the fleet with exit 3', async (t) => {
  const { fleet, refused } = await fleetOfTwo(t, false);
  const err = await deadline(fleet.ready().then(() => undefined, (e: unknown) => e), 10_000, 'the fleet to fail');
  t.type(err, AuthError, 'an AuthError');
  t.equal(exitCodeOf(err), EXIT.hostKeyOrAuth, 'exit 3');
  t.equal(refused.connection.state, 'closed', 'the refused tunnel is closed: it does not retry');
  t.notOk(refused.skipped, 'and is not reported as skipped');
});

t.test('skip failed tunnels – with it, the others serve and the refused one retries at the refusal pace, not ready, logged at error once', async (t) => {
  const { fleet, bound, logs, good, refused } = await fleetOfTwo(t, true);
  const health = await startHealthServer({ host: '127.0.0.1', port: 0 }, fleet, new Metrics());
  t.teardown(() => {
    health.closeAllConnections();
    health.close();
  });
  const healthPort = (health.address() as AddressInfo).port;
  let failedReady = false;
  fleet.ready().catch(() => (failedReady = true));

  await deadline(good.ready(), 5000, 'the good tunnel ready');
  await expectEcho(t, bound[0]!.port, 'the good tunnel forwards');
  await until(() => refused.skipped, 5000, 'the refused tunnel to be skipped');
  const failures = () => logs.lines.filter((l) => l.event === 'reconnect' && l.tunnel === 'refused');
  await until(() => failures().length >= 1, 10_000, 'the refused tunnel\'s failed attempt');
  t.not(refused.connection.state, 'closed', 'the refused tunnel is not closed: it will dial again');
  t.ok(Number(failures()[0]!.delayMs) >= DEFAULTS.refusedRetryMinMs, `the next try waits the refusal backoff (${String(failures()[0]!.delayMs)} ms), not a bastion's fail2ban limit`);
  t.equal(failures().filter((l) => l.level === 'error').length, 1, 'the refusal is logged at error');
  t.match(String(failures()[0]!.error), /authentication|rejected|refused/i, 'saying why');
  t.equal(logs.find('skipped').length, 1, 'the skip is said once');
  t.equal(fleet.tunnels.filter((a) => a.skipped).length, 1, 'only the refused tunnel is skipped');

  const ready = await getJson(healthPort, '/readyz');
  t.equal(ready.status, 503, '/readyz: not ready while a tunnel is down');
  const states = Object.fromEntries((ready.body.tunnels as { tunnel: string; state: string }[]).map((r) => [r.tunnel, r.state]));
  t.equal(states.good, 'ready', 'the good tunnel reported ready');
  t.not(states.refused, 'ready', `the refused tunnel reported not ready (${states.refused})`);
  t.strictSame((ready.body.tunnels as { tunnel: string; skipped: boolean }[]).map((r) => [r.tunnel, r.skipped]), [['good', false], ['refused', true]], 'and reported as skipped');
  t.equal((await httpGet(healthPort, '/startupz')).status, 200, '/startupz: started, without waiting for the refused tunnel');
  await expectEcho(t, bound[0]!.port, 'the good tunnel still forwards');
  t.notOk(failedReady, 'the fleet did not fail');
});

/** The process settings of a command line (`--config` files written into the test's directory). */
function processOf(t: Test, argv: string[], file?: Record<string, unknown>) {
  const dir = t.testdir({ home: {} });
  const config = path.join(dir, 'tunnels.yaml');
  if (file) fs.writeFileSync(config, JSON.stringify({ tunnels: [{ destination: 'tester@127.0.0.1', local: '0:127.0.0.1:1' }], ...file }));
  const cli = parseCli([...argv, ...(file ? ['--config', config] : ['-L', '0:127.0.0.1:1', 'tester@127.0.0.1'])], {}, () => {})!;
  return buildSettings(cli, { home: path.join(dir, 'home'), localUser: 'tester', authSock: undefined }, {}, () => {}).process;
}

t.test('skip failed tunnels – the flag and the file key set it; it is off by default', async (t) => {
  t.equal(processOf(t, []).skipFailedTunnels, false, 'off by default');
  t.equal(processOf(t, ['--skip-failed-tunnels']).skipFailedTunnels, true, '--skip-failed-tunnels');
  t.equal(processOf(t, [], { skipFailedTunnels: true }).skipFailedTunnels, true, 'skipFailedTunnels: true at the top of the file');
  t.equal(processOf(t, [], { skipFailedTunnels: 'no' }).skipFailedTunnels, false, 'skipFailedTunnels: no');
  t.equal(processOf(t, ['--skip-failed-tunnels'], { skipFailedTunnels: false }).skipFailedTunnels, true, 'the flag beats the file');
  process.env.SSHKEEP_SKIP_FAILED_TUNNELS = 'no';
  try {
    t.equal(processOf(t, [], { skipFailedTunnels: true }).skipFailedTunnels, false, 'SSHKEEP_SKIP_FAILED_TUNNELS=no beats the file\'s yes');
  } finally {
    delete process.env.SSHKEEP_SKIP_FAILED_TUNNELS;
  }
  const message = configError(t, () => processOf(t, [], { skipFailedTunnels: 'maybe' }), 'skipFailedTunnels: maybe');
  t.match(message, /tunnels\.yaml: skipFailedTunnels: "maybe" must be yes or no/, 'names the file and key');
});
