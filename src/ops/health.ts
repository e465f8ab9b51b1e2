import http from 'node:http';
import { once } from 'node:events';
import { ListenError } from '../errors.js';
import type { Fleet } from '../fleet.js';
import type { Metrics } from './metrics.js';

/**
 * `--health`: /healthz (liveness: answering at all means the event loop runs),
 * /readyz (every tunnel ready, not draining, not full), /startupz (every tunnel
 * ready once, but for those --skip-failed-tunnels skipped) and /metrics. No secrets and no key material in any body.
 */
export async function startHealthServer(where: { host: string; port: number }, fleet: Fleet, metrics: Metrics): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(`${JSON.stringify(body)}\n`);
    };
    switch (path) {
      case '/healthz':
        return json(200, { status: 'alive' });
      case '/readyz': {
        const ready = fleet.isReady();
        return json(ready ? 200 : 503, { status: ready ? 'ready' : fleet.draining ? 'draining' : 'not ready', tunnels: fleet.reports() });
      }
      case '/startupz': {
        const started = fleet.isStarted();
        return json(started ? 200 : 503, { status: started ? 'started' : 'starting', tunnels: fleet.reports() });
      }
      case '/metrics':
        metrics.text().then(
          (text) => {
            res.writeHead(200, { 'content-type': metrics.registry.contentType });
            res.end(text);
          },
          (err: Error) => json(500, { error: err.message }),
        );
        return;
      default:
        return json(404, { error: 'not found', endpoints: ['/healthz', '/readyz', '/startupz', '/metrics'] });
    }
  });
  server.listen(where.port, where.host);
  try {
    await once(server, 'listening');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ListenError(`--health ${where.host}:${where.port}: cannot listen (${e.code === 'EADDRINUSE' ? 'already in use' : e.code ?? e.message}).`);
  }
  return server;
}
