import os from 'node:os';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { resolveTunnel } from '../src/config/resolve.js';
import { Fleet } from '../src/fleet.js';
import { startHealthServer } from '../src/ops/health.js';
import { createLogger } from '../src/log.js';
import { Metrics } from '../src/ops/metrics.js';
import { connect, deadline, httpGet, roundTrip, startEcho } from './fixtures/net.js';
import { inputFor, LogCapture, makeKeys, startServer } from './fixtures/tunnel.js';

// Regression (issue 13, item 9): `-L 0:host:port` was logged and reported as 127.0.0.1:0->…
// after it had bound a real port.
t.test('forward name – -L 0:… is named by the port it bound, in logs, the report and /readyz', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEcho();
  t.teardown(() => echo.close());
  const logs = new LogCapture();
  const config = resolveTunnel(inputFor(server, keys, [`0:127.0.0.1:${echo.port}`]), { home: os.tmpdir(), localUser: 'tester', authSock: undefined });
  const fleet = new Fleet([config], { maxConnections: 0, maxHeld: 1024 }, { logger: createLogger('debug', 'json', logs) });
  const [bound] = await fleet.start();
  const health = await startHealthServer({ host: '127.0.0.1', port: 0 }, fleet, new Metrics());
  t.teardown(async () => {
    health.closeAllConnections();
    health.close();
    await fleet.stop('test over');
  });
  await deadline(fleet.ready(), 5000, 'tunnel ready');
  const app = fleet.tunnels[0]!;
  const port = bound!.port;
  t.not(port, 0, 'a real port was bound');
  const name = `127.0.0.1:${port}->127.0.0.1:${echo.port}`;
  t.equal(app.forwards[0]!.name, name, 'the forward is named by its bound port');
  t.match(logs.find('listen'), [{ forward: name, port }], 'the listening line names it so');

  t.equal((await roundTrip(await connect(port), 'hi')).toString(), 'hi');
  await logs.waitFor((l) => l.event === 'conn_end', 5000, 'the connection to end');
  const named = logs.lines.filter((l) => l.forward !== undefined);
  t.ok(named.length >= 2 && named.every((l) => l.forward === name), `all ${named.length} lines of the forward name the bound port`);
  t.match(app.report().forwards, [{ name, active: 0, held: 0 }], 'the report names it so');

  const readyz = JSON.parse((await httpGet((health.address() as AddressInfo).port, '/readyz')).body) as { tunnels: { forwards: { name: string }[] }[] };
  t.equal(readyz.tunnels[0]!.forwards[0]!.name, name, '/readyz names it so');
});
