import net from 'node:net';
import http from 'node:http';
import { once } from 'node:events';
import { ListenError } from '../errors.js';
import { bindWithRetry, type BindAttempts, type ListenRetry } from '../listen-retry.js';
import { formatEndpoint, isLoopbackAddress } from '../config/forward-spec.js';
import type { AddressRange } from '../config/host-port.js';
import type { Fleet } from '../fleet.js';
import type { Metrics } from './metrics.js';
import type { ReloadOutcome } from '../reload.js';

/**
 * Who may POST to the control endpoints: a peer on loopback, or in one of `from` (--admin-from).
 * An IPv4 peer of a dual-stack listener arrives mapped into IPv6 (`::ffff:10.1.2.3`): it is
 * judged as IPv4.
 */
export function adminPeers(from: AddressRange[]): (address: string | undefined) => boolean {
  const allowed = new net.BlockList();
  for (const r of from) allowed.addSubnet(r.address, r.prefix, r.family);
  return (address) => {
    if (!address) return false;
    const plain = address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
    return isLoopbackAddress(plain) || allowed.check(plain, net.isIP(plain) === 6 ? 'ipv6' : 'ipv4');
  };
}

/** Who may POST (adminPeers()), and how to say it when refused. */
interface AdminPeers {
  allowed(address: string | undefined): boolean;
  described: string;
}

type Reply = (status: number, body: unknown) => void;

/**
 * The state-changing endpoints take POST from a loopback peer (or one --admin-from writes out),
 * whatever address --health listens on: a sidecar's Job shares the pod's loopback, and nothing
 * else off the host should be able to stop, reload or reconnect the process. True when `req`
 * was answered with a refusal.
 */
function refused(req: http.IncomingMessage, json: Reply, path: string, peers: AdminPeers): boolean {
  if (req.method !== 'POST') json(405, { error: `use POST ${path}` });
  else if (!peers.allowed(req.socket.remoteAddress)) json(403, { error: `POST ${path} is accepted from ${peers.described}, not from ${req.socket.remoteAddress}` });
  else return false;
  return true;
}

/** POST /quitquitquit (cloud-sql-proxy's name), with --admin only: the same drain as SIGTERM. */
function quitquitquit(req: http.IncomingMessage, json: Reply, requestShutdown: (() => void) | undefined, peers: AdminPeers): void {
  if (req.method === 'POST' && !requestShutdown) return json(403, { error: 'POST /quitquitquit is off: start sshkeep with --admin to enable it' });
  if (refused(req, json, '/quitquitquit', peers)) return;
  json(202, { status: 'shutting down' });
  requestShutdown!();
}

/**
 * POST /reload (SIGHUP's reload, for `sshkeep reload`): answered once the reload is done, 200
 * applied or nothing to reload, 409 refused with the file's error. No --admin needed: it can
 * only apply what the configuration file already says.
 */
function reload(req: http.IncomingMessage, json: Reply, control: Control | undefined, peers: AdminPeers): void {
  if (!control) return json(404, { error: 'POST /reload: this instance cannot reload' });
  if (refused(req, json, '/reload', peers)) return;
  control.reload().then(
    (outcome) => json(outcome.status === 'refused' ? 409 : 200, outcome),
    (err: Error) => json(500, { error: err.message }),
  );
}

/** POST /reconnect (SIGUSR2, for `sshkeep reconnect`): every tunnel reconnects make-before-break. */
function reconnect(req: http.IncomingMessage, json: Reply, control: Control | undefined, peers: AdminPeers): void {
  if (!control) return json(404, { error: 'POST /reconnect: this instance cannot reconnect' });
  if (refused(req, json, '/reconnect', peers)) return;
  json(202, { status: 'reconnecting', tunnels: control.reconnect() });
}

/** What the health server may ask of the running process besides a shutdown. */
export interface Control {
  reload(): Promise<ReloadOutcome>;
  /** Starts reconnecting every tunnel; returns their names. */
  reconnect(): string[];
}

/**
 * `--health`: /healthz (liveness: answering at all means the event loop runs),
 * /readyz (every tunnel ready, not draining, not full), /startupz (every tunnel
 * ready once, but for those --skip-failed-tunnels skipped), /metrics, POST /reload and
 * /reconnect (with `control`), and with --admin (a `requestShutdown`) POST /quitquitquit. No
 * secrets and no key material in any body.
 */
export async function startHealthServer(
  where: { host: string; port: number },
  fleet: Fleet,
  metrics: Metrics,
  requestShutdown?: () => void,
  control?: Control,
  adminFrom: AddressRange[] = [],
  /** A port in use is tried again, as the forwards' are: a previous instance keeps /readyz up while it drains. */
  retry: ListenRetry & Pick<BindAttempts, 'logger' | 'stopped'> = { retryMs: 0, intervalMs: 0 },
): Promise<http.Server> {
  const peers: AdminPeers = {
    allowed: adminPeers(adminFrom),
    described: adminFrom.length ? 'loopback and --admin-from' : 'loopback only (--admin-from allows more)',
  };
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
        const status = fleet.readiness();
        return json(status === 'ready' ? 200 : 503, { status, tunnels: fleet.reports() });
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
      case '/quitquitquit':
        return quitquitquit(req, json, requestShutdown, peers);
      case '/reload':
        return reload(req, json, control, peers);
      case '/reconnect':
        return reconnect(req, json, control, peers);
      default:
        return json(404, { error: 'not found', endpoints: ['/healthz', '/readyz', '/startupz', '/metrics', 'POST /reload', 'POST /reconnect', 'POST /quitquitquit'] });
    }
  });
  const at = formatEndpoint({ kind: 'tcp', ...where });
  try {
    await bindWithRetry(
      async () => {
        // `::` is node's own default: dual-stack, or 0.0.0.0 where the host has no IPv6.
        server.listen(where.port, where.host === '::' ? undefined : where.host);
        await once(server, 'listening');
      },
      retry,
      { what: `--health ${at}`, logger: retry.logger, fields: { health: at }, stopped: retry.stopped },
    );
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ListenError(`--health ${at}: cannot listen (${e.code === 'EADDRINUSE' ? 'already in use' : e.code ?? e.message}).`);
  }
  return server;
}
