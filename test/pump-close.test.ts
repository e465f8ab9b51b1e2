/**
 * Who closes a -R connection's channel (src/forward/pump.ts): once both EOFs have crossed, the
 * server's CLOSE is waited for (ssh2 answers it), and ours goes only if it has not come within
 * SERVER_CLOSE_WAIT_MS; -L closes at once, and so does -R when the server has not sent its EOF.
 * Through OpenSSH's sshd, test/remote-forward-openssh.test.ts sees the server close first.
 */
import { EventEmitter, once } from 'node:events';
import net from 'node:net';
import t, { type Test } from 'tap';
import { Pump, SERVER_CLOSE_WAIT_MS, type PumpResult } from '../src/forward/pump.js';
import type { ForwardChannel, SshSession } from '../src/ssh/adapter.js';
import { queuedDeadline } from '../src/ssh/deadline.js';
import { connect, deadline, listenFor, until } from './fixtures/net.js';

/** A channel as link() drives it without ssh2 (its events): records our close(). */
class FakeChannel extends EventEmitter {
  readableLength = 0;
  writableFinished = false;
  closedByUs = 0;
  write(): boolean {
    return true;
  }
  end(): void {
    this.writableFinished = true;
    queueMicrotask(() => this.emit('finish'));
  }
  close(): void {
    this.closedByUs++;
    this.serverCloses();
  }
  /** The server's CLOSE (or its answer to ours): the channel is closed. */
  serverCloses(): void {
    queueMicrotask(() => this.emit('close'));
  }
  resume(): void {}
  pause(): void {}
}

const session = Object.assign(new EventEmitter(), { closed: false, coalesceWrites: () => {} }) as unknown as SshSession;

/** A pump of `side` between a fake channel and one end of a TCP pair; `peer` is the other end (the target for -R). */
async function pumpOf(t: Test, side: 'client' | 'target') {
  const accepted: net.Socket[] = [];
  const port = await listenFor(t, net.createServer({ allowHalfOpen: true }, (s) => accepted.push(s)));
  const local = await connect(port);
  t.teardown(() => local.destroy());
  await until(() => accepted.length === 1, 5000, 'the pair');
  const peer = accepted[0]!;
  t.teardown(() => peer.destroy());
  const channel = new FakeChannel();
  let result: PumpResult | undefined;
  new Pump(local, channel as unknown as ForwardChannel, session, { chunks: [], bytes: 0, ended: false }, (r) => (result = r), side);
  return { local, peer, channel, result: () => result };
}

/** The server's EOF, then the local socket's end: both EOFs cross and the local socket closes. */
async function bothEnd(local: net.Socket, peer: net.Socket, channel: FakeChannel): Promise<void> {
  channel.emit('end'); // the server's EOF: the pump ends the local socket
  peer.resume();
  await deadline(once(peer, 'end'), 5000, 'our FIN at the peer');
  peer.end(); // the peer's FIN: the pump sends our EOF, and the local socket closes
  await deadline(once(local, 'close'), 5000, 'the local socket closed');
}

t.test('-R, both EOFs crossed: the server closes first, and ours is not sent', async (t) => {
  const { local, peer, channel, result } = await pumpOf(t, 'target');
  await bothEnd(local, peer, channel);
  t.ok(channel.writableFinished, 'our EOF is out');
  t.equal(channel.closedByUs, 0, 'no CLOSE of ours yet: the server is waited for');
  t.equal(result(), undefined, 'not reported before the channel is closed');
  channel.serverCloses();
  await until(() => result() !== undefined, 5000, 'the report');
  // A deadline of the same duration set now fires after the one the pump set would have.
  await deadline(new Promise<void>((resolve) => queuedDeadline(resolve, SERVER_CLOSE_WAIT_MS)), 5000, 'a later deadline of the same duration');
  t.equal(channel.closedByUs, 0, 'the wait ended with the server\'s CLOSE: ours never sent (ssh2 answers the server\'s)');
  t.match(result(), { reset: false }, 'a clean end');
});

t.test('-R, a server that waits for our CLOSE: sent after the wait', async (t) => {
  const { local, peer, channel, result } = await pumpOf(t, 'target');
  await bothEnd(local, peer, channel);
  const waitFrom = Date.now();
  await until(() => channel.closedByUs === 1, 5000, 'our CLOSE after the wait');
  t.ok(Date.now() - waitFrom >= SERVER_CLOSE_WAIT_MS - 20, `sent after about ${SERVER_CLOSE_WAIT_MS} ms (${Date.now() - waitFrom} ms)`);
  await until(() => result() !== undefined, 5000, 'the report');
  t.match(result(), { reset: false }, 'a clean end');
});

t.test('-L, both EOFs crossed: our CLOSE at once, as before', async (t) => {
  const { local, peer, channel } = await pumpOf(t, 'client');
  await bothEnd(local, peer, channel);
  await until(() => channel.closedByUs === 1, SERVER_CLOSE_WAIT_MS / 2, 'our CLOSE, well before the -R wait would end');
  t.equal(channel.closedByUs, 1, 'closed by us');
});
