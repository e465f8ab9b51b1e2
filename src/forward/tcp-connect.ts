import dns from 'node:dns';
import net from 'node:net';
import { errnoError, nodeBinding } from '../stream-wrap.js';
import { TcpClient, tcpClientsSupported, type TcpHandle } from './tcp-client.js';

/** A TCP handle not yet connected, as Node's tcp_wrap binding makes it. */
interface ConnectingHandle {
  connect(req: ConnectReq, address: string, port: number): number;
  connect6(req: ConnectReq, address: string, port: number): number;
  close(cb?: () => void): void;
}
interface ConnectReq {
  oncomplete: (status: number) => void;
}
interface TcpWrap {
  TCP: new (type: number) => ConnectingHandle;
  TCPConnectWrap: new () => ConnectReq;
  constants: { SOCKET: number };
}

/** Node's TCP handles (process.binding('tcp_wrap'), Node 20, DEP0111): what net.Socket connects with. */
const tcpWrap = nodeBinding<TcpWrap>('tcp_wrap', (w) => typeof w.TCP === 'function' && typeof w.TCPConnectWrap === 'function' && typeof w.constants?.SOCKET === 'number');

let supported: boolean | undefined;

/** Can -R's targets be TcpClients here? False: they are net.Sockets (a Node whose internals differ). Found out once. */
export function tcpConnectsSupported(): boolean {
  if (supported === undefined) {
    const probe = tcpWrap && new tcpWrap.TCP(tcpWrap.constants.SOCKET);
    supported = !!probe && typeof probe.connect === 'function' && typeof probe.connect6 === 'function' && tcpClientsSupported(probe);
    probe?.close();
  }
  return supported;
}

/** How a connect that failed is told: as net.Socket tells it (`connect ECONNREFUSED 127.0.0.1:3000`, with errno, code and syscall). */
function connectError(errno: number, address: string, port: number): NodeJS.ErrnoException {
  const err = errnoError(errno, 'connect');
  err.message += ` ${address}:${port}`;
  return err;
}

/**
 * Connects to `host`:`port` and makes the connection a TcpClient, without net.Socket: a -R
 * connection's target, whose net.Socket cost a new connection about a third of its instructions
 * (BENCHMARKS.md, issue 17). A name is looked up as net.connect looks it up (dns.lookup), and each
 * of its addresses tried in turn until one accepts (`localhost` as ::1, then 127.0.0.1); all of it
 * within `timeoutMs`. `done` is called once: with the client, or with the last attempt's errno
 * error (code ECONNREFUSED, ENOTFOUND, ETIMEDOUT…). Only where tcpConnectsSupported().
 */
export function connectTcp(host: string, port: number, highWaterMark: number, timeoutMs: number, done: (err: NodeJS.ErrnoException | undefined, client?: TcpClient) => void): void {
  const { TCP, TCPConnectWrap, constants } = tcpWrap!;
  /** The attempt under way; closed if the time runs out first. */
  let connecting: ConnectingHandle | undefined;
  let finished = false;
  const finish = (err: NodeJS.ErrnoException | undefined, client?: TcpClient) => {
    finished = true;
    clearTimeout(timer);
    done(err, client);
  };
  const timer = setTimeout(() => {
    connecting?.close();
    connecting = undefined;
    finish(Object.assign(new Error(`connect ETIMEDOUT ${host}:${port}`), { code: 'ETIMEDOUT', syscall: 'connect' }));
  }, timeoutMs);

  const attempt = (addresses: dns.LookupAddress[], i: number, lastError?: NodeJS.ErrnoException): void => {
    if (finished) return;
    const next = addresses[i];
    if (!next) return finish(lastError ?? Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND', syscall: 'getaddrinfo' }));
    const handle = new TCP(constants.SOCKET);
    connecting = handle;
    const failed = (errno: number) => {
      connecting = undefined;
      handle.close();
      attempt(addresses, i + 1, connectError(errno, next.address, port));
    };
    const req = new TCPConnectWrap();
    // A handle closed by the timeout completes with ECANCELED: that attempt is over already.
    req.oncomplete = (status) => {
      if (connecting !== handle) return;
      if (status < 0) return failed(status);
      connecting = undefined;
      finish(undefined, new TcpClient(handle as unknown as TcpHandle, highWaterMark));
    };
    const err = next.family === 6 ? handle.connect6(req, next.address, port) : handle.connect(req, next.address, port);
    if (err) failed(err);
  };

  const family = net.isIP(host);
  if (family) return attempt([{ address: host, family }], 0);
  dns.lookup(host, { all: true }, (err, addresses) => {
    if (finished) return;
    if (err) return finish(err);
    attempt(addresses, 0);
  });
}
