/**
 * An in-process SSH server that only does direct-tcpip forwarding: the
 * no-setup target for `sshkeep demo` and the fast test fixture.
 */
import net from 'node:net';
import { once } from 'node:events';
import { createHash, timingSafeEqual } from 'node:crypto';
import ssh2 from 'ssh2';
import type { AuthContext, AuthenticationType, Connection, ParsedKey, ServerChannel, TcpipRequestInfo } from 'ssh2';

import { ed25519Pair } from './keygen.js';

const { Server, utils } = ssh2;

export interface EmbeddedServerOptions {
  host?: string;
  port?: number;
  /** OpenSSH-format private key; default: a fresh ed25519 key. */
  hostKey?: string | Buffer;
  /** Public keys ("ssh-ed25519 AAAA..." lines) accepted for any username. */
  authorizedKeys?: (string | Buffer)[];
  password?: { username: string; password: string };
  /** 'deny' rejects every direct-tcpip open with reason 1 (administratively prohibited). */
  forwarding?: 'allow' | 'deny';
}

export interface EmbeddedServer {
  readonly host: string;
  readonly port: number;
  readonly hostPublicKey: string;
  readonly hostKeyBlob: Buffer;
  readonly connections: number;
  readonly channelsOpened: number;
  /** Abruptly destroys every client connection's socket (simulates a server crash / network loss), keeps listening. */
  dropConnections(): void;
  /** While down, every SSH connection is dropped and new ones are reset: a server or link outage. */
  setDown(down: boolean): void;
  /** Stops listening and destroys every connection and forwarded socket. Idempotent. */
  close(): Promise<void>;
}

function parseKey(data: string | Buffer, what: string): ParsedKey {
  // Typed ParsedKey | Error, but an OpenSSH file holding zero keys yields undefined.
  const key: ParsedKey | Error | undefined = utils.parseKey(data);
  if (!key || key instanceof Error) throw new Error(`cannot parse ${what}: ${key?.message ?? 'no key found'}`);
  return key;
}

// Hash first so timingSafeEqual gets equal lengths and leaks nothing about them.
function secretEquals(a: string, b: string): boolean {
  const h = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(h(a), h(b));
}

export async function startEmbeddedServer(options: EmbeddedServerOptions = {}): Promise<EmbeddedServer> {
  const hostKey = parseKey(options.hostKey ?? ed25519Pair().private, 'hostKey');
  if (!hostKey.isPrivateKey()) throw new Error('hostKey must be a private key');
  const hostKeyBlob = hostKey.getPublicSSH();
  const hostPublicKey = `${hostKey.type} ${hostKeyBlob.toString('base64')}`;

  const authorized = (options.authorizedKeys ?? []).map((k, i) => parseKey(k, `authorizedKeys[${i}]`));
  const password = options.password;
  const methods: AuthenticationType[] = [];
  if (authorized.length > 0) methods.push('publickey');
  if (password) methods.push('password');

  const clientSockets = new Set<net.Socket>();
  const targetSockets = new Set<net.Socket>();
  let connections = 0;
  let channelsOpened = 0;

  const authenticate = (ctx: AuthContext): void => {
    if (ctx.method === 'publickey') {
      // Blob comparison covers the key type; ctx.key.algo may be e.g. rsa-sha2-256 for an ssh-rsa key.
      const key = authorized.find((k) => k.getPublicSSH().equals(ctx.key.data));
      if (!key) return ctx.reject(methods);
      // No signature yet: the client is asking whether this key would do (answered with PK_OK).
      if (!ctx.signature) return ctx.accept();
      if (ctx.blob && key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true) return ctx.accept();
      return ctx.reject(methods);
    }
    if (ctx.method === 'password' && password) {
      // Evaluate both so a wrong username costs the same as a wrong password.
      const userOk = secretEquals(ctx.username, password.username);
      const passOk = secretEquals(ctx.password, password.password);
      if (userOk && passOk) return ctx.accept();
    }
    ctx.reject(methods);
  };

  const sshServer = new Server({ hostKeys: [{ key: hostKey }] }, (client: Connection) => {
    connections++;
    let closed = false;
    const targets = new Set<net.Socket>();
    client.on('error', () => {}); // always followed by 'close'; library code has nobody to print to
    client.on('authentication', authenticate);
    client.on('close', () => {
      // ssh2 has torn down its protocol state by now: never touch this client's channels again.
      // Destroying pending targets too means their 'connect'/'error' never fire after this.
      closed = true;
      connections--;
      for (const t of targets) t.destroy();
    });

    const forward = (accept: () => ServerChannel, reject: () => void, info: TcpipRequestInfo): void => {
      const target = net.connect({ host: info.destIP, port: info.destPort, allowHalfOpen: true });
      target.setNoDelay(true);
      targets.add(target);
      targetSockets.add(target);
      target.on('close', () => {
        targets.delete(target);
        targetSockets.delete(target);
      });

      // ssh2's reject() for a direct-tcpip open always sends OPEN_CONNECT_FAILED (2).
      target.once('error', reject);
      target.once('connect', () => {
        target.off('error', reject);
        const channel = accept();
        channelsOpened++;

        channel.on('error', () => target.destroy());
        channel.on('close', () => target.destroy());
        target.on('error', () => {}); // 'close' (hadError) follows and tears the channel down
        target.on('close', (hadError) => {
          if (closed) return;
          if (hadError) channel.destroy();
          else channel.end();
        });

        channel.pipe(target); // client EOF -> end the target's write side
        target.pipe(channel, { end: false });
        target.on('end', () => {
          // A server-side ssh2 channel's end() sends EOF *and* CLOSE. Send a bare EOF instead,
          // after queued data (an empty write completes in order), so the client can keep
          // writing, as with sshd. The channel closes when the target socket closes.
          channel.write(Buffer.alloc(0), () => {
            if (!closed) channel.eof();
          });
        });
      });
    };

    client.on('ready', () => {
      // Without a 'tcpip' listener ssh2 rejects direct-tcpip with ADMINISTRATIVELY_PROHIBITED (1);
      // likewise session channels (no 'session' listener) and global requests like tcpip-forward.
      if (options.forwarding !== 'deny') client.on('tcpip', forward);
    });
  });

  // Own the listening socket (rather than Server.listen) so every raw client socket is tracked,
  // including ones that never finish the SSH handshake.
  let down = false;
  const listener = net.createServer((socket) => {
    if (down) {
      socket.on('error', () => {});
      socket.resetAndDestroy();
      return;
    }
    clientSockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => clientSockets.delete(socket));
    sshServer.injectSocket(socket);
  });
  const host = options.host ?? '127.0.0.1';
  listener.listen(options.port ?? 0, host);
  await once(listener, 'listening'); // rejects on a listen error (EADDRINUSE etc.)
  listener.on('error', () => {});
  const port = (listener.address() as net.AddressInfo).port;

  const destroyAll = () => {
    for (const s of clientSockets) s.destroy();
    for (const s of targetSockets) s.destroy();
  };
  let closing: Promise<void> | undefined;

  return {
    host,
    port,
    hostPublicKey,
    hostKeyBlob,
    get connections() {
      return connections;
    },
    get channelsOpened() {
      return channelsOpened;
    },
    dropConnections() {
      for (const s of clientSockets) s.destroy();
    },
    setDown(value) {
      down = value;
      if (down) for (const s of clientSockets) s.destroy();
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        listener.close(() => resolve());
        destroyAll();
      });
      return closing;
    },
  };
}
