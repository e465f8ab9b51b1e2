/**
 * Resilience against the real OpenSSH sshd: the server killed and restarted, a silent link
 * (blackhole through a fault relay), and sshd frozen (SIGSTOP) then resumed.
 */
import t, { type Test } from 'tap';
import fs from 'node:fs';
import { once } from 'node:events';
import { requireSshd, sshdInput, startSshd, type Sshd } from './fixtures/sshd.js';
import { connect, deadline, outcome, roundTrip, echoOn, startEchoFor } from './fixtures/net.js';
import { nextState, blackholeUntilSuspect } from './fixtures/status.js';
import { Relay } from './fixtures/relay.js';
import { startSshkeep } from './fixtures/tunnel.js';
import { signalAll } from './fixtures/proc.js';

type Line = Record<string, unknown>;

const READY_MS = 10_000;

/** A fault relay in front of sshd, trusted (with sshd's host key) under its own port. */
async function relayFor(t: Test, sshd: Sshd): Promise<Relay> {
  const relay = await new Relay(sshd.port).listen();
  t.teardown(() => relay.close());
  fs.appendFileSync(sshd.knownHostsPath, `[127.0.0.1]:${relay.port} ${sshd.hostPublicKey}\n`);
  return relay;
}

/** sshkeep in-process through `port` (default sshd's), probing after 1 s of silence, ready, with its first round trip measured. */
async function tunnelTo(t: Test, sshd: Sshd, echoPort: number, port = sshd.port) {
  const { app, bound, logs } = await startSshkeep(t, sshdInput(sshd, { localForwards: [`0:127.0.0.1:${echoPort}`], keepaliveInterval: '1s' }, port));
  // The adaptive probe deadline (≥ 1 s) is set by a measured round trip; before that it is 3 s.
  const firstRtt = once(app.connection, 'rtt');
  await deadline(app.ready(), READY_MS, `tunnel ready\n${sshd.logs()}`);
  await deadline(firstRtt, 5000, 'first round-trip measurement');
  return { app, port: bound[0]!.port, logs };
}

/** The old connection recovered, or a spare took over and the old one drains, or it was closed. */
const recoveredOrDrained = (l: Line) =>
  (l.event === 'state' && l.to === 'ready' && /answered again/.test(String(l.reason))) || l.event === 'drain' || l.event === 'retire';

/**
 * SIGSTOPs sshd's listener and every session process under it (the per-connection sshd children,
 * found via /proc by the fixture), repeating until no new process appears. Returns what it froze.
 */
function freeze(sshd: Sshd): number[] {
  const frozen = new Set<number>();
  for (let size = -1; size !== frozen.size; ) {
    size = frozen.size;
    for (const pid of sshd.pids()) {
      if (frozen.has(pid)) continue;
      signalAll([pid], 'SIGSTOP');
      frozen.add(pid);
    }
  }
  return [...frozen];
}

async function main(): Promise<void> {
  if (!requireSshd(t)) return;
  const echo = await startEchoFor(t);

  t.test('openssh resilience – sshd killed and restarted: open stream reset, held client served by a new connection', async (t) => {
    const sshd = await startSshd(t);
    const { app, port, logs } = await tunnelTo(t, sshd, echo.port);
    const open = await connect(port);
    t.equal(await echoOn(open, 'before'), 'before', 'stream open and flowing');
    const openEnd = outcome(open, { closeOnEnd: true });
    const generation = app.connection.generation;

    const reconnecting = nextState(app.connection, 'reconnecting', 5000);
    await deadline(sshd.kill(), 15_000, 'sshd (and its sessions) killed');
    const lost = await reconnecting;
    t.match(lost.reason, /connection lost/, 'the tunnel noticed the loss');
    const cut = await deadline(openEnd, 5000, 'the open stream to be cut');
    t.equal(cut.ended, false, "never a clean 'end' (a cut stream must not look complete)", { cut });
    t.equal(cut.hadError, true, 'closed with an error', { cut });
    t.match(cut.errorCode, /^(ECONNRESET|EPIPE)$/, 'reset', { cut });

    // The outage as the dialler sees it: at least one refused reconnect attempt.
    await logs.waitFor((l) => l.event === 'reconnect', 5000, 'a failed reconnect attempt');
    const held = await connect(port); // accepted and held, not refused
    held.write('sent during the outage');
    const accepted = await logs.waitFor((l) => l.event === 'accept' && l.state !== 'ready', 5000, 'the held client accepted');
    t.not(accepted.state, 'ready', `accepted while the tunnel was ${String(accepted.state)}`);
    t.equal(app.forwards[0]!.held, 1, 'the client is held');

    const ready = nextState(app.connection, 'ready', 15_000);
    const restartedAt = performance.now();
    await deadline(sshd.restart(), 15_000, 'sshd restart');
    const up = await ready;
    const took = performance.now() - restartedAt;
    t.ok(up.generation > generation, `a new connection: generation ${up.generation} after ${generation}`);
    t.ok(took < 10_000, `ready ${Math.round(took)} ms after the restart (backoff capped at 5 s)`);
    const reply = await deadline(roundTrip(held, ' and after'), 5000, 'the held client to be served');
    t.equal(reply.toString(), 'sent during the outage and after', 'held client served, bytes intact');
    const resets = logs.find('conn_end').filter((l) => l.reset === true);
    t.equal(resets.length, 1, 'only the stream open at the kill was reset', { resets });
    t.match(resets[0], { side: 'tunnel', reason: /^SSH connection lost/ });
  });

  t.test('openssh resilience – blackhole through a relay: suspect in time, restore keeps the stream, no reset', async (t) => {
    const sshd = await startSshd(t);
    const relay = await relayFor(t, sshd);
    const { app, port, logs } = await tunnelTo(t, sshd, echo.port, relay.port);
    const sock = await connect(port);
    t.equal(await echoOn(sock, 'before'), 'before');
    const sockEnd = outcome(sock, { closeOnEnd: true });
    let closed = false;
    void sockEnd.then(() => (closed = true));

    const { status: s, ms: took } = await blackholeUntilSuspect(app.connection, relay);
    t.match(s.reason, /no reply to a probe/);
    t.ok(took < 4000, `suspect after ${Math.round(took)} ms (interval 1 s + adaptive deadline ≥ 1 s)`);

    relay.restore();
    const outcomeLine = await logs.waitFor(recoveredOrDrained, 5000, 'the old connection to recover or drain');
    t.not(outcomeLine.event, 'retire', 'the old connection was not closed', { outcomeLine });
    t.comment(`recovery path: ${outcomeLine.event === 'drain' ? 'a spare took over, the old connection drains' : String(outcomeLine.reason)}`);
    if (app.connection.state !== 'ready') await nextState(app.connection, 'ready', 5000);
    t.equal(app.connection.state, 'ready');
    t.equal(await echoOn(sock, 'after'), 'after', 'the stream carries on');
    t.notOk(closed, 'the stream is still open');
    t.same(logs.find('conn_end').filter((l) => l.reset === true), [], 'nobody was reset');
    sock.destroy();
  });

  t.test('openssh resilience – a bit flipped on the way from sshd (a broken middlebox): Invalid MAC, the open stream reset, a new connection serves', async (t) => {
    const sshd = await startSshd(t);
    const relay = await relayFor(t, sshd);
    const { app, port, logs } = await tunnelTo(t, sshd, echo.port, relay.port);
    const open = await connect(port);
    t.equal(await echoOn(open, 'before'), 'before', 'stream open and flowing');
    const openEnd = outcome(open, { closeOnEnd: true });
    const generation = app.connection.generation;

    const reconnecting = nextState(app.connection, 'reconnecting', 5000);
    relay.corruptDown();
    open.write('corrupted on its way back');
    const lost = await reconnecting;
    t.match(lost.reason, /Invalid MAC/, 'the tunnel names the fault', { lost });
    const cut = await deadline(openEnd, 5000, 'the open stream to be cut');
    t.equal(cut.ended, false, "never a clean 'end': its reply was lost", { cut });
    t.match(cut.errorCode, /^(ECONNRESET|EPIPE)$/, 'reset', { cut });

    const up = app.connection.state === 'ready' ? app.connection : await nextState(app.connection, 'ready', 15_000);
    t.ok(up.generation > generation, `a new SSH connection: generation ${up.generation} after ${generation}`);
    const fresh = await connect(port);
    t.equal(await echoOn(fresh, 'after'), 'after', 'a new client is served, bytes intact');
    fresh.destroy();
    const resets = logs.find('conn_end').filter((l) => l.reset === true);
    t.equal(resets.length, 1, 'only the stream open at the fault was reset', { resets });
  });

  t.test('openssh resilience – sshd frozen (SIGSTOP) ~3 s then resumed: the stream survives, no reset', async (t) => {
    const sshd = await startSshd(t);
    const { app, port, logs } = await tunnelTo(t, sshd, echo.port);
    const sock = await connect(port);
    t.equal(await echoOn(sock, 'before'), 'before');
    const sockEnd = outcome(sock, { closeOnEnd: true });
    let closed = false;
    void sockEnd.then(() => (closed = true));
    const before = sshd.pids();
    t.ok(before.length >= 2, `the listener and the session processes serving us: ${before.join(', ')}`);

    const suspect = nextState(app.connection, 'suspect', 5000);
    const frozenAt = performance.now();
    const frozen = freeze(sshd);
    // If an assertion below throws while frozen, thaw so teardown's stop() finds a normal tree.
    t.teardown(() => signalAll(frozen, 'SIGCONT'));
    const s = await suspect;
    t.match(s.reason, /no reply to a probe/, `suspect ${Math.round(performance.now() - frozenAt)} ms into the freeze`);
    // The scenario: sshd stays frozen about 3 s in all, longer than the probe deadline, shorter than
    // the suspect grace period (10 s); this wait is the outage itself, not a synchronisation.
    const left = 3000 - (performance.now() - frozenAt);
    if (left > 0) await new Promise((r) => setTimeout(r, left));
    signalAll(frozen, 'SIGCONT');

    const outcomeLine = await logs.waitFor(recoveredOrDrained, 8000, 'the old connection to recover or drain');
    t.not(outcomeLine.event, 'retire', 'the old connection was not closed', { outcomeLine });
    t.comment(`recovery path: ${outcomeLine.event === 'drain' ? 'a spare took over, the old connection drains' : String(outcomeLine.reason)}`);
    t.equal(await echoOn(sock, 'after'), 'after', 'the stream carries on');
    t.equal(app.connection.state, 'ready');
    t.notOk(closed, 'the stream is still open');
    t.same(logs.find('conn_end').filter((l) => l.reset === true), [], 'nobody was reset');
    sock.destroy();
  });
}

await main();
