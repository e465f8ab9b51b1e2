/**
 * --resume when the SSH connection fails in the middle of opening a stream: the agent got the
 * OPEN and dialled the target but its ACCEPT never reached sshkeep; or the OPEN itself stuck on a
 * silent link that comes back later. Either way the client's stream opens again, once, and the
 * target connection of the lost OPEN does not stay open. And clients that arrive while the
 * streams of a lost connection are being re-attached. Real sshd, real agent, the relay.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t, { type Test } from 'tap';
import { requireSshd } from './fixtures/sshd.js';
import { connect, deadline, echoOn, listenFor, until } from './fixtures/net.js';
import { nextState } from './fixtures/status.js';
import { agentChecked, killSessions, relayIn, resumeSshd, resumingSshkeep } from './fixtures/resume.js';
import { AgentChannel, agentDir, ping } from './fixtures/resume-agent.js';

/** What a target connection saw: the bytes, and how it ended. */
interface TargetConn {
  text: string;
  closed: boolean;
  error: string | undefined;
}

/** An echo target that records every connection it accepted (the policy check's included). */
async function recordingEcho(t: Test): Promise<{ port: number; conns: TargetConn[] }> {
  const conns: TargetConn[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    const c: TargetConn = { text: '', closed: false, error: undefined };
    conns.push(c);
    sockets.add(s);
    s.on('data', (b: Buffer) => {
      c.text += b.toString();
      s.write(b);
    });
    s.on('error', (err: NodeJS.ErrnoException) => (c.error = err.code));
    s.on('close', () => {
      c.closed = true;
      sockets.delete(s);
    });
  });
  const port = await listenFor(t, server);
  t.teardown(() => sockets.forEach((s) => s.destroy()));
  return { port, conns };
}

/**
 * Unix socket connections to the listening socket at `socketPath` (sshd's channels to the agent):
 * accepted (state 03) or still waiting for the agent's accept (02). sshd confirms its channel as
 * soon as its connect() returns, before the agent has accepted: counting accepted ones only, the
 * OPEN sent on the confirmed channel could pass a hold meant to stall it.
 */
function unixConnectedTo(socketPath: string): number {
  return fs
    .readFileSync('/proc/net/unix', 'utf8')
    .split('\n')
    .filter((l) => {
      const f = l.trim().split(/\s+/);
      return (f[5] === '03' || f[5] === '02') && f[7] === socketPath;
    }).length;
}

/** TCP connections to 127.0.0.1:`port` that the kernel has established (accepted by the app or not). */
function establishedTo(port: number): number {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return fs
    .readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .filter((l) => {
      const [, local, , state] = l.trim().split(/\s+/);
      return local?.endsWith(hex) && state === '01';
    }).length;
}

/** A client that stays connected through the tunnel, with everything it received and how it ended. */
async function client(port: number) {
  const sock = await connect(port);
  let error: string | undefined;
  let closed = false;
  sock.on('error', (err: NodeJS.ErrnoException) => (error = err.code ?? err.message));
  sock.on('close', () => (closed = true));
  return { sock, error: () => error, closed: () => closed };
}

/** sshkeep --resume through a relay to the real sshd, forwarding to a recording echo; the agent running. */
async function tunnelToRecorder(t: Test, sshdConfig: string[] = []) {
  const { sshd, runtimeDir } = await resumeSshd(t, sshdConfig);
  const relay = await relayIn(t, sshd);
  const target = await recordingEcho(t);
  const { app, bound, logs } = await resumingSshkeep(t, sshd, [`0:127.0.0.1:${target.port}`], relay.port);
  await agentChecked(app);
  const port = bound[0]!.port;
  // The policy check of the target on this connection, out of the way first.
  const warm = await client(port);
  if ((await echoOn(warm.sock, 'warm')) !== 'warm') throw new Error('no first stream through the agent');
  warm.sock.destroy();
  await until(() => target.conns.every((c) => c.closed), 5000, 'the warm-up target connections closed');
  await logs.waitFor((l) => l.event === 'conn_end', 5000, 'the warm-up client ended');
  return { sshd, runtimeDir, relay, target, app, port, logs };
}

async function main(): Promise<void> {
  if (!requireSshd(t)) return;

  t.test('resume – the ACCEPT of an OPEN lost with its connection: the stream opens again, the orphan target is reset, no byte lost or doubled', async (t) => {
    const { sshd, relay, target, app, port, logs } = await tunnelToRecorder(t);
    const before = target.conns.length;

    // From the first packet the server sends once the agent's connection to the target exists
    // (the ACCEPT, or anything after it), nothing more reaches sshkeep; its OPEN went up.
    const baseline = establishedTo(target.port);
    relay.holdDown(() => establishedTo(target.port) > baseline);
    const c = await client(port);
    c.sock.write('hello');
    await until(() => target.conns.length === before + 1, 5000, 'the agent dialled the target');
    killSessions(sshd); // ... and the server ended the session: the ACCEPT is lost for good

    const resumedAt = nextState(app.connection, 'ready', 20_000);
    await resumedAt;
    t.equal(await deadline(new Promise<string>((resolve) => c.sock.once('data', (b: Buffer) => resolve(b.toString()))), 10_000, 'the echo of the first bytes'), 'hello', 'the first bytes reached the target and came back once');
    t.equal(await echoOn(c.sock, ' again'), ' again', 'the stream carries on');
    const orphan = target.conns[before]!;
    const carried = target.conns.filter((x) => !x.closed && x.text.length > 0);
    await until(() => orphan.closed, 5000, 'the target connection of the lost OPEN closed');
    t.equal(orphan.text, '', 'the lost OPEN delivered nothing to its target');
    t.equal(orphan.error, 'ECONNRESET', 'and was reset by the agent, not taken for a clean end');
    t.equal(carried.length, 1, 'one target connection carries the stream');
    t.equal(carried[0]!.text, 'hello again', 'each byte once, in order');
    t.equal(target.conns.filter((x) => !x.closed).length, 1, 'no other target connection stays open');
    t.equal(c.error(), undefined, 'the client saw no error');
    t.notOk(c.closed(), 'the client is still connected');
    t.ok(logs.lines.some((l) => l.event === 'reopen'), 'the open was re-issued on the next connection');
    c.sock.destroy();
  });

  t.test('resume – an OPEN stuck on a silent link that comes back after a spare took over: its target connection is cancelled, not held', async (t) => {
    // The server waits for the link to come back: with its ClientAlive probes (3 s) it could end the
    // session, and close the stuck channel, before sshkeep's spare has taken over (2–3 s).
    const { runtimeDir, relay, target, port } = await tunnelToRecorder(t, ['ClientAliveInterval 0']);
    const before = target.conns.length;
    const dir = agentDir(runtimeDir);
    const socketPath = path.join(dir, fs.readdirSync(dir).find((f) => f.endsWith('.sock'))!);
    await until(() => unixConnectedTo(socketPath) === 0, 5000, 'no channel to the agent open');
    // The connection goes silent both ways from the first thing sshkeep sends once sshd has
    // connected a new channel to the agent: the OPEN, stuck in the link.
    relay.holdOpen(() => unixConnectedTo(socketPath) > 0);
    const c = await client(port);
    c.sock.write('hello');
    t.equal(await deadline(new Promise<string>((resolve) => c.sock.once('data', (b: Buffer) => resolve(b.toString()))), 15_000, 'the echo on the spare'), 'hello', 'the open re-issued on the spare carries the first bytes');
    t.equal(unixConnectedTo(socketPath), 2, "the stuck channel and the spare's at the agent");
    relay.restore(); // the old link comes back: what was stuck (the OPEN first) reaches the agent now
    await until(() => unixConnectedTo(socketPath) === 1, 10_000, 'sshd to close the stuck channel');
    // The agent has read the stuck channel to its end by the time it answers a ping made after.
    const agent = { channel: () => AgentChannel.connect(socketPath) };
    await ping(agent);
    t.equal((await ping(agent)).streams, 1, 'the agent holds only the stream of the re-issued open');
    await until(() => target.conns.filter((x) => !x.closed).length === 1, 5000, 'one target connection open');
    t.same(target.conns.slice(before).filter((x) => x.text).map((x) => x.text), ['hello'], 'each byte once, on the connection of the re-issued open');
    t.equal(c.error(), undefined, 'the client saw no error');
    c.sock.destroy();
  });

  t.test('resume – clients accepted while the streams of a lost connection re-attach: all served, the old stream resumed', async (t) => {
    const { sshd, relay, target, app, port, logs } = await tunnelToRecorder(t);
    const endedBefore = logs.find('conn_end').length; // the warm-up client's
    const old = await client(port);
    t.equal(await echoOn(old.sock, 'before'), 'before', 'a stream open before the outage');

    const lost = nextState(app.connection, 'reconnecting', 5000);
    relay.set('refuse');
    killSessions(sshd);
    await lost;
    const oldEcho = new Promise<string>((resolve) => old.sock.once('data', (b: Buffer) => resolve(b.toString())));
    old.sock.write(' during'); // into the replay buffer
    const held = await client(port); // held until the next connection
    held.sock.write('held');
    const heldEcho = new Promise<string>((resolve) => held.sock.once('data', (b: Buffer) => resolve(b.toString())));
    // One more the moment the new connection is ready: its OPEN goes out while the ATTACH is out.
    const back = new Promise<Awaited<ReturnType<typeof client>>>((resolve) => app.connection.once('session', () => void client(port).then(resolve)));
    relay.set('pass');
    const late = await deadline(back, 20_000, 'the new connection');
    t.equal(await echoOn(late.sock, 'late'), 'late', 'a client accepted during the re-attach is served');
    t.equal(await deadline(heldEcho, 10_000, 'the held client'), 'held', 'the client held during the outage is served');
    t.equal(await deadline(oldEcho, 10_000, 'the resumed stream'), ' during', 'the old stream resumed with its bytes');
    t.match(await logs.waitFor((l) => l.event === 'resume', 5000, 'the resume line'), { resumed: 1, lost: 0 });
    await until(() => target.conns.filter((c) => !c.closed).length === 3, 5000, 'three target connections');
    t.same(target.conns.filter((c) => !c.closed).map((c) => c.text).sort(), ['before during', 'held', 'late'].sort(), 'each byte once, one target connection per client');
    for (const [name, c] of Object.entries({ old, held, late })) t.equal(c.error(), undefined, `${name}: no error`);
    t.equal(logs.find('conn_end').length, endedBefore, 'no client connection ended');
    for (const c of [old, held, late]) c.sock.destroy();
  });

  t.test("resume – a stream that ended both ways, the agent's last ACK lost with its connection: a clean end, not a lost stream", async (t) => {
    const payload = Buffer.alloc(200_000, 'r');
    // The target answers at once, ends, and waits for the client's end.
    const sockets = new Set<net.Socket>();
    const target = net.createServer({ allowHalfOpen: true }, (s) => {
      sockets.add(s.on('error', () => {}).on('close', () => sockets.delete(s)));
      s.on('end', () => s.destroy());
      s.end(payload);
    });
    const port = await listenFor(t, target);
    t.teardown(() => sockets.forEach((s) => s.destroy()));
    const { sshd } = await resumeSshd(t);
    const relay = await relayIn(t, sshd);
    const { app, bound, logs } = await resumingSshkeep(t, sshd, [`0:127.0.0.1:${port}`], relay.port);
    await agentChecked(app);
    const client = await connect(bound[0]!.port);
    let got = 0;
    client.on('data', (c: Buffer) => (got += c.length));
    const ended = new Promise<void>((resolve) => client.once('end', resolve));
    client.write('x');
    await deadline(ended, 5000, "the target's answer and its end");
    t.equal(got, payload.length);
    relay.holdDown(); // from here on, what the server sends is held: the agent's ACK of our EOF among it
    const upBefore = relay.bytes().up;
    client.end();
    await until(() => relay.bytes().up > upBefore, 5000, 'our EOF on its way to the agent');
    const back = nextState(app.connection, 'ready', 15_000);
    killSessions(sshd);
    await back;
    const end = await deadline(new Promise<Record<string, unknown>>((resolve) => {
      const found = () => logs.lines.find((l) => l.event === 'conn_end');
      const poll = setInterval(() => found() && (clearInterval(poll), resolve(found()!)), 20);
    }), 10_000, 'the stream to end');
    t.match(end, { reset: false }, 'ended cleanly: both ways were over');
    t.notOk(logs.lines.some((l) => l.event === 'resume' && Number(l.lost) > 0), 'no stream counted lost');
    t.equal(app.report().resume?.failures.lost ?? 0, 0, 'no failure counted');
  });
}

void main();
