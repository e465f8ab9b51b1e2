/**
 * resetSocket(): a TCP peer sees a reset; a Unix socket (which cannot be reset: resetAndDestroy
 * throws on it) is closed; a socket whose FIN is already queued is flushed and closed instead of
 * failing with EINVAL and leaking its handle (regression: Pump.abort after a clean target end).
 */
import t, { type Test } from 'tap';
import net from 'node:net';
import path from 'node:path';
import { once } from 'node:events';
import { resetSocket } from '../src/forward/reset-socket.js';
import { deadline, outcome } from './fixtures/net.js';
import { tempDir } from './fixtures/tmp.js';

/** A connected pair: `ours` is the server side we reset, `peer` the client that observes. */
async function pair(t: Test, where: { port: number } | { path: string }, server: net.Server) {
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const peer = net.connect({ ...where, allowHalfOpen: true } as net.NetConnectOpts);
  peer.on('error', () => {});
  const [ours] = await accepted;
  await once(peer, 'connect').catch(() => {});
  t.teardown(() => {
    peer.destroy();
    ours.destroy();
  });
  return { ours, peer };
}

/** How the peer finished (a clean end answered with ours, so the connection can close), within 5 s. */
const observe = (peer: net.Socket) => deadline(outcome(peer, { closeOnEnd: true }), 5000, 'the peer to close');

t.test('TCP: the peer sees ECONNRESET, not a clean end', async (t) => {
  const server = net.createServer({ allowHalfOpen: true }).listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const { ours, peer } = await pair(t, { port: (server.address() as net.AddressInfo).port }, server);
  const seen = observe(peer);
  resetSocket(ours);
  const r = await seen;
  t.equal(r.errorCode, 'ECONNRESET');
  t.equal(r.ended, false, 'no clean end');
});

t.test('Unix socket: closed without throwing (no RST exists there)', async (t) => {
  const dir = tempDir(t, 'sshkeep-reset-');
  const file = path.join(dir, 's.sock');
  const server = net.createServer({ allowHalfOpen: true }).listen(file);
  await once(server, 'listening');
  t.teardown(() => server.close());
  const { ours, peer } = await pair(t, { path: file }, server);
  const seen = observe(peer);
  t.doesNotThrow(() => resetSocket(ours));
  await seen;
  t.equal(ours.destroyed, true, 'our side is destroyed');
});

t.test('TCP with its FIN already queued: the complete stream is flushed, then the socket closes (no EINVAL, no leaked handle)', async (t) => {
  const server = net.createServer({ allowHalfOpen: true }).listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const { ours, peer } = await pair(t, { port: (server.address() as net.AddressInfo).port }, server);
  const seen = observe(peer);
  const payload = Buffer.alloc(4 * 1024 * 1024, 7); // more than the socket buffers take at once
  ours.end(payload);
  const closed = deadline(once(ours, 'close'), 5000, 'our socket to close');
  resetSocket(ours);
  await closed;
  const r = await seen;
  t.equal(r.data.length, payload.length, 'every byte arrived');
  t.equal(r.ended, true, 'then the clean end that was already promised');
  t.equal(r.errorCode, undefined, 'no error on the peer');
});
