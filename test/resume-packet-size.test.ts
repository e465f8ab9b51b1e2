/**
 * A server whose channels take packets smaller than a resume DATA frame's header and one byte
 * (RFC 4254 sets no minimum; OpenSSH's are 32 KiB), through the in-process ssh2 server: the
 * resumable stream's frames go split over packets by the channel's stream API, where the pump
 * used to wait for room that never came. A packet size of 0 carries nothing at all: the open
 * fails with a message that says why (ssh2 would write empty packets for ever).
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import net from 'node:net';
import t, { type Test } from 'tap';
import type { PumpResult } from '../src/forward/pump.js';
import { silentLogger } from '../src/log.js';
import { DATA_PREFIX, FrameParser } from '../src/resume/frames.js';
import { ResumableStream } from '../src/resume/resumable.js';
import { ReplayBudget, StreamState } from '../src/resume/stream.js';
import { HOST, listenFor, until } from './fixtures/net.js';
import { embeddedSession } from './fixtures/tunnel.js';

interface ProtocolPrototype {
  channelOpenConfirm(remote: number, local: number, window: number, packetSize: number): void;
}

/**
 * Every channel the in-process server confirms from now until the test ends says `packetSize`.
 * Only a server confirms channel opens in these tests (ssh2's Protocol is shared by both ends).
 */
function serverPacketSize(t: Test, packetSize: number): void {
  const proto = (createRequire(import.meta.url)('ssh2/lib/protocol/Protocol.js') as { prototype: ProtocolPrototype }).prototype;
  const confirm = proto.channelOpenConfirm;
  proto.channelOpenConfirm = function (remote, local, window) {
    confirm.call(this, remote, local, window, packetSize);
  };
  t.teardown(() => void (proto.channelOpenConfirm = confirm));
}

/** A listener playing the agent: it parses the frames that arrive on its one connection. */
async function agentEnd(t: Test) {
  const parser = new FrameParser({ dataInPieces: true });
  const data: Buffer[] = [];
  let bytes = 0;
  let parseError: string | undefined;
  const server = net.createServer((sock) => {
    t.teardown(() => sock.destroy());
    sock.on('data', (chunk: Buffer) => {
      const { frames, error } = parser.push(chunk);
      parseError ??= error;
      for (const f of frames) if (f.type === 'data') (data.push(f.data), (bytes += f.data.length));
    });
  });
  const port = await listenFor(t, server);
  return { port, data, bytes: () => bytes, parseError: () => parseError };
}

/** A client socket pair: `app` is the application's end, `client` the accepted one sshkeep carries. */
async function clientPair(t: Test): Promise<{ app: net.Socket; client: net.Socket }> {
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const app = net.connect(await listenFor(t, server), HOST);
  const [client] = await accepted;
  t.teardown(() => (app.destroy(), client.destroy()));
  return { app, client };
}

t.test(`resume – packets of ${DATA_PREFIX} bytes, one short of a DATA frame with a byte: every byte still reaches the agent`, async (t) => {
  serverPacketSize(t, DATA_PREFIX);
  const { session: s } = await embeddedSession(t);
  const agent = await agentEnd(t);
  const channel = await s.openChannel({ kind: 'tcp', host: HOST, port: agent.port }, { address: HOST, port: 0 }, 5000);
  t.equal((channel as unknown as { outgoing: { packetSize: number } }).outgoing.packetSize, DATA_PREFIX, 'the server said so');
  const { app, client } = await clientPair(t);
  let result: PumpResult | undefined;
  const stream = new ResumableStream(client, randomBytes(16), new StreamState(1 << 20, new ReplayBudget(1 << 20)), { chunks: [], bytes: 0, ended: false }, {
    graceMs: 60_000,
    log: silentLogger,
    onDone: (r) => (result = r),
    onDetached: () => {},
  });
  stream.attach({ channel, session: s, parser: new FrameParser() }, 0, []);
  const sent = randomBytes(16 * 1024); // small: each packet carries 21 bytes
  app.write(sent);
  await until(() => agent.bytes() >= sent.length || result !== undefined, 10_000, `${sent.length} bytes in DATA frames at the agent`);
  t.equal(agent.parseError(), undefined, 'the frames parse');
  t.equal(result, undefined, 'the stream lives');
  t.ok(Buffer.concat(agent.data).equals(sent), 'every byte, in order');
});

t.test('resume – a maximum packet size of 0: the channel open fails and says why', async (t) => {
  serverPacketSize(t, 0);
  const { session: s } = await embeddedSession(t);
  const agent = await agentEnd(t);
  await t.rejects(s.openChannel({ kind: 'tcp', host: HOST, port: agent.port }, { address: HOST, port: 0 }, 5000), {
    name: 'ChannelOpenError',
    message: /maximum packet size of 0: nothing could be sent on it/,
  });
  await until(() => s.channels === 0, 5000, 'the channel closed');
  t.pass('closed unused');
});
