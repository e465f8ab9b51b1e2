import t, { type Test } from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ERROR_CODE, MAX_PAYLOAD, type Frame } from '../src/resume/frames.js';
import { agentScript } from '../src/resume/bootstrap.js';
import { deadline, listenFor, outcome, refusedPort, until, type Outcome } from './fixtures/net.js';
import { AgentChannel, agentGone, ping, startAgent, type LocalAgent } from './fixtures/resume-agent.js';

/** The agent's replay buffer per stream (agent/sshkeep-agent.pl REPLAY_MAX). */
const REPLAY_MAX = 4 * 1024 * 1024;
const CHUNK = 64 * 1024;

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A target server: each connection's outcome (everything received, how it ended), and a hook to act on it. */
async function startTarget(t: Test, onConnection: (sock: net.Socket) => void = () => {}) {
  const outcomes: Promise<Outcome>[] = [];
  const sockets: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    sockets.push(sock);
    outcomes.push(outcome(sock));
    onConnection(sock);
  });
  const port = await listenFor(t, server);
  t.teardown(() => sockets.forEach((s) => s.destroy()));
  const accepted = (n: number) => until(() => outcomes.length >= n, 5000, `connection ${n} at the target`);
  return { port, outcomes, sockets, accepted };
}

/**
 * sshkeep's side of one stream, as plainly as a test can do it: everything it sends is kept
 * (for resends after a re-attach), everything it receives is appended in order.
 */
class Peer {
  readonly id = randomBytes(16);
  readonly received: Buffer[] = [];
  receivedBytes = 0;
  eof = false;
  reset: string | undefined;
  acked = 0;
  #lastAckSent = 0;

  constructor(
    public channel: AgentChannel,
    readonly outgoing: Buffer = Buffer.alloc(0),
  ) {}

  /** received as the protocol counts it: bytes, plus one once the EOF came. */
  get count(): number {
    return this.receivedBytes + (this.eof ? 1 : 0);
  }

  /** DATA frames for outgoing[from, to), each acknowledging what we have. */
  sendData(from: number, to = this.outgoing.length): void {
    for (let at = from; at < to; at += CHUNK) {
      this.channel.send({ type: 'data', offset: at, ack: this.count, data: this.outgoing.subarray(at, Math.min(to, at + CHUNK)) });
    }
    this.#lastAckSent = this.count;
  }

  /** Takes frames until `done()` holds; checks that DATA arrives in order with nothing missing. */
  async take(done: () => boolean, what: string, ms = 10_000): Promise<void> {
    while (!done()) {
      const frame = await this.channel.next(ms, what);
      if (!frame) throw new Error(`the channel closed before ${what}`);
      this.#handle(frame);
    }
  }

  #handle(frame: Frame): void {
    switch (frame.type) {
      case 'data': {
        if (frame.offset !== this.receivedBytes) throw new Error(`DATA at ${frame.offset}, expected ${this.receivedBytes}`);
        this.received.push(frame.data);
        this.receivedBytes += frame.data.length;
        this.acked = Math.max(this.acked, frame.ack);
        if (this.count - this.#lastAckSent >= 256 * 1024) this.ack();
        return;
      }
      case 'ack':
        this.acked = Math.max(this.acked, frame.ack);
        return;
      case 'eof':
        if (frame.offset !== this.receivedBytes) throw new Error(`EOF at ${frame.offset}, expected ${this.receivedBytes}`);
        this.eof = true;
        return;
      case 'reset':
        this.reset = frame.reason;
        return;
      default:
        throw new Error(`unexpected ${JSON.stringify(frame).slice(0, 200)}`);
    }
  }

  ack(): void {
    this.channel.send({ type: 'ack', ack: this.count });
    this.#lastAckSent = this.count;
  }

  get data(): Buffer {
    return Buffer.concat(this.received);
  }
}

async function openStream(agent: LocalAgent, port: number, outgoing?: Buffer, graceMs = 5000): Promise<Peer> {
  const peer = new Peer(await agent.channel(), outgoing);
  peer.channel.send({ type: 'open', id: peer.id, graceMs, port, host: '127.0.0.1' });
  const accept = await peer.channel.expect('accept');
  if (accept.received !== 0) throw new Error(`ACCEPT(${accept.received}) after OPEN`);
  return peer;
}

/** A new channel for the peer's stream: ATTACH with what it received; resolves with the agent's received. */
async function reattach(agent: LocalAgent, peer: Peer): Promise<number> {
  peer.channel = await agent.channel();
  peer.channel.send({ type: 'attach', id: peer.id, received: peer.count });
  return (await peer.channel.expect('accept')).received;
}

t.test('the bootstrap: one ready line, the agent detached under its name, its socket in a 0700 directory', async (t) => {
  const agent = await startAgent(t);
  const [pid, ...more] = agent.pids();
  t.equal(more.length, 0, 'one agent process');
  t.match(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' '), `sshkeep-agent ${agentScript().version} ${agent.session}`);
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const [, , , session] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  t.equal(Number(session), pid, 'a session of its own (setsid)');
  t.equal(agent.socketPath, path.join(agent.runtimeDir, 'sshkeep', `agent-${agentScript().version}-${agent.session}.sock`));
  t.equal(fs.statSync(path.dirname(agent.socketPath)).mode & 0o777, 0o700);
  t.same(await ping(agent), { version: agentScript().version, streams: 0 });
});

t.test('data both ways with sha256, then half-close each way: the stream ends cleanly', async (t) => {
  const up = randomBytes(3 * 1024 * 1024);
  const down = randomBytes(3 * 1024 * 1024 + 17);
  const tail = Buffer.from('written after our EOF reached the target');
  // The target answers our EOF with more data, then its own EOF: each direction half-closes on its own.
  const target = await startTarget(t, (sock) => {
    sock.write(down);
    sock.on('end', () => sock.end(tail));
  });
  const agent = await startAgent(t);
  const peer = await openStream(agent, target.port, up);
  peer.sendData(0);
  peer.channel.send({ type: 'eof', offset: up.length });
  await peer.take(() => peer.eof, "the target's bytes and EOF");
  t.equal(sha256(peer.data), sha256(Buffer.concat([down, tail])), 'sshkeep got every byte from the target, once, in order');
  await peer.take(() => peer.acked === up.length + 1, 'the agent to acknowledge our EOF');
  peer.ack(); // acknowledges the agent's EOF: the stream is finished
  await deadline(peer.channel.closed, 5000, "the agent to close a finished stream's channel");
  const result = await target.outcomes[0]!;
  t.equal(sha256(result.data), sha256(up), 'the target got every byte, once, in order');
  t.ok(result.ended && result.errorCode === undefined, 'the target saw a clean EOF');
  t.equal((await ping(agent)).streams, 0, 'the stream is forgotten');
});
