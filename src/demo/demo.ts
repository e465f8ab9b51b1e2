import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import type net from 'node:net';
import { resolveTunnel } from '../config/resolve.js';
import type { Logger } from '../log.js';
import { Sshkeep } from '../sshkeep.js';
import { startEmbeddedServer, type EmbeddedServer } from './embedded-server.js';
import { ed25519Pair } from './keygen.js';

export interface Demo {
  /** The local URL that goes through the tunnel. */
  url: string;
  sshPort: number;
  targetPort: number;
  tunnel: Sshkeep;
  server: EmbeddedServer;
  stop(): Promise<number>;
}

/** One GET through the tunnel; resolves with the body. */
export function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers: { connection: 'close' } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

/**
 * A self-contained tunnel: an embedded SSH server, an HTTP target behind it,
 * and sshkeep forwarding a local port to the target through the server,
 * with a throwaway client key and a known_hosts entry so host keys are
 * verified exactly as in real use.
 */
export async function startDemo(logger: Logger, localPort = 0): Promise<Demo> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sshkeep-demo-'));
  const pair = ed25519Pair();
  const identity = path.join(dir, 'id_ed25519');
  const knownHosts = path.join(dir, 'known_hosts');
  fs.writeFileSync(identity, pair.private, { mode: 0o600 });

  const server = await startEmbeddedServer({ authorizedKeys: [pair.public] });
  fs.writeFileSync(knownHosts, `[127.0.0.1]:${server.port} ${server.hostPublicKey}\n`);

  let served = 0;
  const target = http.createServer((req, res) => {
    served++;
    res.setHeader('content-type', 'text/plain');
    res.end(`Hello from the far side of the tunnel: request #${served}, ${req.method} ${req.url}\n`);
  });
  target.listen(0, '127.0.0.1');
  await once(target, 'listening');
  const targetPort = (target.address() as net.AddressInfo).port;

  const config = resolveTunnel(
    {
      destination: 'demo@127.0.0.1',
      port: String(server.port),
      identityFiles: [identity],
      configFile: 'none',
      options: [`UserKnownHostsFile=${knownHosts}`, 'GlobalKnownHostsFile=none', 'IdentitiesOnly=yes'],
      localForwards: [`${localPort}:127.0.0.1:${targetPort}`],
      keepaliveInterval: '2s',
    },
    { home: os.homedir(), localUser: 'demo', authSock: undefined },
  );
  const tunnel = new Sshkeep(config, { logger });
  const bound = await tunnel.start();
  await tunnel.ready();

  return {
    url: `http://127.0.0.1:${bound[0]!.port}/`,
    sshPort: server.port,
    targetPort,
    tunnel,
    server,
    async stop() {
      const cut = await tunnel.stop('demo stopped');
      target.closeAllConnections();
      target.close();
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
      return cut;
    },
  };
}

/**
 * The show: every `everyMs` the demo takes its SSH server down for `outageMs`, sends a
 * request through the tunnel while it is down (held, not refused), and narrates what it
 * does and the held request being served. The tunnel's own story (lost, restored after
 * …) is told once, by the log beside it. Returns a stop function.
 */
export function narrateOutages(demo: Demo, say: (line: string) => void, everyMs = 15_000, outageMs = 3_000): () => void {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const cycle = async () => {
    if (stopped) return;
    say(`cutting the link for ${outageMs / 1000} s (the SSH server drops every connection and refuses new ones)`);
    demo.server.setDown(true);
    const sentAt = performance.now();
    say(`sending a request through the tunnel while it is down: it is held, not refused`);
    const reply = get(demo.url);
    timer = setTimeout(() => {
      say('restoring the link');
      demo.server.setDown(false);
    }, outageMs);
    try {
      const body = await reply;
      const rtt = demo.tunnel.connection.rttMs;
      say(`held request served ${Math.round(performance.now() - sentAt)} ms after it was sent: ${body.trim()}${rtt === undefined ? '' : ` (heartbeat RTT ${rtt.toFixed(2)} ms)`}`);
    } catch (err) {
      if (!stopped) say(`the held request failed: ${(err as Error).message}`);
    }
    if (!stopped) timer = setTimeout(() => void cycle(), everyMs);
  };
  timer = setTimeout(() => void cycle(), everyMs);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
