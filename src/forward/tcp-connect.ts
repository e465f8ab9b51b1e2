import dns from 'node:dns';
import net from 'node:net';
import { errnoError, nodeBinding } from '../stream-wrap.js';
import { queuedDeadline } from '../ssh/deadline.js';
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

/** How long an address gets before the next is tried too (Node 20's autoSelectFamilyAttemptTimeout). */
const ATTEMPT_MS = 250;

let supported: boolean | undefined;

/** Can -R's targets be TcpClients here? False: they are net.Sockets (a Node whose internals differ). Found out once. */
export function tcpConnectsSupported(): boolean {
  if (supported === undefined) {
    try {
      const probe = tcpWrap && new tcpWrap.TCP(tcpWrap.constants.SOCKET);
      supported = !!probe && typeof probe.connect === 'function' && typeof probe.connect6 === 'function' && tcpClientsSupported(probe);
      probe?.close();
    } catch {
      supported = false;
    }
  }
  return supported;
}

/** IPv6 and IPv4 addresses taken in turn, starting with the family of the first, as net.connect's autoSelectFamily orders them. */
export function interleaved(addresses: dns.LookupAddress[]): dns.LookupAddress[] {
  const first = addresses[0]?.family;
  const same = addresses.filter((a) => a.family === first);
  const other = addresses.filter((a) => a.family !== first);
  const out: dns.LookupAddress[] = [];
  for (let i = 0; i < Math.max(same.length, other.length); i++) {
    if (same[i]) out.push(same[i]!);
    if (other[i]) out.push(other[i]!);
  }
  return out;
}

/** How a connect that failed is told: as net.Socket tells it (`connect ECONNREFUSED 127.0.0.1:3000`, with errno, code and syscall). */
function connectError(errno: number, address: string, port: number): NodeJS.ErrnoException {
  const err = errnoError(errno, 'connect');
  err.message += ` ${address}:${port}`;
  return err;
}

/** A connect given up, as net.Socket says it. */
const timedOut = (where: string): NodeJS.ErrnoException => Object.assign(new Error(`connect ETIMEDOUT ${where}`), { code: 'ETIMEDOUT', syscall: 'connect' });

/**
 * Connects to `host`:`port` and makes the connection a TcpClient, without net.Socket: a -R
 * connection's target, whose net.Socket cost a new connection about a third of its instructions
 * (BENCHMARKS.md, issue 17). A name is looked up as net.connect looks it up (dns.lookup, all
 * addresses, ADDRCONFIG), and its addresses are tried as Node 20's autoSelectFamily tries them:
 * IPv6 and IPv4 in turn, the next when one refuses or has not answered within 250 ms (the one
 * before given up), the last until `timeoutMs`, which bounds all of it. `done` is called once:
 * with the client, or with the last attempt's errno error (code ECONNREFUSED, ENOTFOUND,
 * ETIMEDOUT…). Only where tcpConnectsSupported().
 */
export function connectTcp(host: string, port: number, highWaterMark: number, timeoutMs: number, done: (err: NodeJS.ErrnoException | undefined, client?: TcpClient) => void): void {
  const { TCP, TCPConnectWrap, constants } = tcpWrap!;
  /** The attempt under way; closed if the time runs out first. */
  let connecting: ConnectingHandle | undefined;
  /** Moves on to the next address while this one has not answered. */
  let attemptTimer: NodeJS.Timeout | undefined;
  let finished = false;
  const finish = (err: NodeJS.ErrnoException | undefined, client?: TcpClient) => {
    finished = true;
    cancelTimeout();
    clearTimeout(attemptTimer);
    done(err, client);
  };
  // A timer per duration shared by every connect (src/ssh/deadline.ts): one per -R connection otherwise.
  const cancelTimeout = queuedDeadline(() => {
    connecting?.close();
    connecting = undefined;
    finish(timedOut(`${host}:${port}`));
  }, timeoutMs);

  const attempt = (addresses: dns.LookupAddress[], i: number, lastError?: NodeJS.ErrnoException): void => {
    if (finished) return;
    const next = addresses[i];
    if (!next) return finish(lastError ?? Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND', syscall: 'getaddrinfo' }));
    const handle = new TCP(constants.SOCKET);
    connecting = handle;
    const failed = (error: NodeJS.ErrnoException) => {
      clearTimeout(attemptTimer);
      connecting = undefined;
      handle.close();
      attempt(addresses, i + 1, error);
    };
    const req = new TCPConnectWrap();
    // A handle closed by a timer completes with ECANCELED: that attempt is over already.
    req.oncomplete = (status) => {
      if (connecting !== handle) return;
      if (status < 0) return failed(connectError(status, next.address, port));
      connecting = undefined;
      finish(undefined, new TcpClient(handle as unknown as TcpHandle, highWaterMark));
    };
    const err = next.family === 6 ? handle.connect6(req, next.address, port) : handle.connect(req, next.address, port);
    if (err) return failed(connectError(err, next.address, port));
    if (i < addresses.length - 1) attemptTimer = setTimeout(() => failed(timedOut(`${next.address}:${port}`)), ATTEMPT_MS);
  };

  const family = net.isIP(host);
  if (family) return attempt([{ address: host, family }], 0);
  dns.lookup(host, { all: true, hints: dns.ADDRCONFIG }, (err, addresses) => {
    if (finished) return;
    if (err) return finish(err);
    attempt(interleaved(addresses), 0);
  });
}
