/**
 * The resume agent on SIGTERM (docs/resume-protocol.md: "On SIGTERM it resets what it holds and
 * removes its socket"), each agent: with streams attached and held, it answers each channel
 * ERROR 6 and closes it, resets every target, removes its socket file and exits, promptly.
 * Then the race the Perl agent's self-pipe is for: a SIGTERM handled after the loop looked at
 * its flag and before select() waits, made deterministic by an LD_PRELOAD shim that raises the
 * signal in the times() call in between (test/fixtures/term-at-times.c). And a SIGTERM sent the
 * moment the agent says ready, its child held in set-up by test/fixtures/slow-chdir.c.
 */
import t, { type Test } from 'tap';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ERROR_CODE } from '../src/resume/frames.js';
import { deadline, listenFor, outcome, until, type Outcome } from './fixtures/net.js';
import { signalAll } from './fixtures/proc.js';
import { TESTED_INTERPRETERS, agentGone, startAgent, type AgentChannel, type LocalAgent } from './fixtures/resume-agent.js';
import { shim } from './fixtures/shim.js';
import { tempDir } from './fixtures/tmp.js';

/** Long enough that no grace or idle exit ends the agent during a test: only the signal does. */
const GRACE_MS = 60_000;
/** What "promptly" means here: the agent's own deadlines are a minute away. */
const EXIT_MS = 3000;

/** A target that keeps each connection's socket and its outcome; `paused` ones read nothing. */
async function startTarget(t: Test, paused = false) {
  const sockets: net.Socket[] = [];
  const outcomes: Promise<Outcome>[] = [];
  const server = net.createServer((sock) => {
    sockets.push(sock);
    if (paused) sock.pause();
    else outcomes.push(outcome(sock));
  });
  const port = await listenFor(t, server);
  t.teardown(() => sockets.forEach((s) => s.destroy()));
  return { port, sockets, outcomes };
}

/** A stream on its own channel: OPEN, then the agent's ACCEPT. */
async function open(agent: LocalAgent, port: number): Promise<{ channel: AgentChannel; id: Buffer }> {
  const channel = await agent.channel();
  const id = randomBytes(16);
  channel.send({ type: 'open', id, graceMs: GRACE_MS, port, host: '127.0.0.1' });
  await channel.expect('accept');
  return { channel, id };
}

for (const interpreter of TESTED_INTERPRETERS) {
  t.test(`the ${interpreter} agent on SIGTERM`, async (t) => {
    t.test('streams attached, one blocked on a full target, one held: ERROR 6 on each channel, every target reset, socket removed, exit', async (t) => {
      const target = await startTarget(t);
      const full = await startTarget(t, true);
      const agent = await startAgent(t, { interpreter, graceMs: GRACE_MS });

      const idle = await open(agent, target.port);
      const held = await open(agent, target.port);
      held.channel.close();
      const busy = await open(agent, full.port);
      // More than the target's socket and the agent take: the agent holds bytes it cannot write,
      // waits for the target to be writable, and stops reading the channel.
      const chunk = randomBytes(64 * 1024);
      const sent = 16 * 1024 * 1024;
      for (let at = 0; at < sent; at += chunk.length) busy.channel.send({ type: 'data', offset: at, ack: 0, data: chunk });
      await until(() => busy.channel.socket.writableLength > 0 && full.sockets.length === 1, 10_000, 'the agent to stop reading a channel whose target is full');
      await until(() => target.outcomes.length === 2, 5000, 'both targets of the idle streams connected');

      signalAll(agent.pids(), 'SIGTERM');
      await agentGone(agent, EXIT_MS, `the ${interpreter} agent to exit on SIGTERM and remove its socket`);
      t.pass('the agent exited and removed its socket');

      t.match(await idle.channel.expect('error'), { code: ERROR_CODE.shuttingDown }, 'an idle attached channel is told the agent is shutting down');
      await deadline(idle.channel.closed, EXIT_MS, 'the idle channel to close');
      await deadline(busy.channel.closed, EXIT_MS, 'the busy channel to close');
      t.pass('every channel closed');

      const results = await deadline(Promise.all(target.outcomes), EXIT_MS, 'the idle targets to be reset');
      t.same(results.map((r) => r.errorCode), ['ECONNRESET', 'ECONNRESET'], 'the targets of the attached idle stream and the held one are reset');
      // With unread bytes in the socket, libuv reports the reset as an EOF about half of the time.
      const cut = await deadline(outcome(full.sockets[0]!.resume()), EXIT_MS, 'the full target to be cut');
      t.ok(cut.errorCode === 'ECONNRESET' || cut.ended, `the full target's connection ends (${cut.errorCode ?? 'EOF'})`);
      t.ok(cut.data.length < sent, `with fewer bytes than were sent (${cut.data.length} of ${sent})`);
    });

    // Nothing held, no ack owed: select() waits with no timeout, so only the signal can end the wait.
    // Python retries a select() a signal interrupted (PEP 475): its agent wakes on the pipe that
    // signal.set_wakeup_fd has the C-level handler write, wherever the signal lands.
    t.test('idle attached streams, no deadline anywhere: a SIGTERM during select() ends the agent', async (t) => {
      const target = await startTarget(t);
      const agent = await startAgent(t, { interpreter, graceMs: GRACE_MS });
      const streams = [await open(agent, target.port), await open(agent, target.port)];
      await until(() => target.outcomes.length === 2, 5000, 'both targets connected');
      signalAll(agent.pids(), 'SIGTERM');
      await agentGone(agent, EXIT_MS, `the ${interpreter} agent to exit on SIGTERM`);
      for (const s of streams) t.match(await s.channel.expect('error'), { code: ERROR_CODE.shuttingDown }, 'ERROR 6 on the channel');
      const results = await deadline(Promise.all(target.outcomes), EXIT_MS, 'the targets to be reset');
      t.same(results.map((r) => r.errorCode), ['ECONNRESET', 'ECONNRESET'], 'both targets reset');
    });

    // The detached child is held 300 ms after its fork, before its handlers and (Perl) its name:
    // the agent says ready only once it has them, so a SIGTERM sent on "ready" is handled.
    t.test('SIGTERM the moment it says ready: it is found by its name, exits and removes its socket', async (t) => {
      const so = await shim(t, 'slow-chdir');
      if (!so) return;
      const agent = await startAgent(t, { interpreter, graceMs: GRACE_MS, env: { LD_PRELOAD: so, SSHKEEP_SLOW_CHDIR_MS: '300' } });
      const pids = agent.pids();
      t.equal(pids.length, 1, 'one agent of that name');
      signalAll(pids, 'SIGTERM');
      await agentGone(agent, EXIT_MS, `the ${interpreter} agent to exit on a SIGTERM sent on ready and remove its socket`);
      t.pass('exited and removed its socket');
    });

    if (interpreter !== 'perl') return; // Python's wakeup pipe is written wherever the signal lands: no such window
    t.test('the race: SIGTERM handled between the check of its flag and select(): the self-pipe wakes select', async (t) => {
      const so = await shim(t, 'term-at-times');
      if (!so) return;
      const target = await startTarget(t);
      const trigger = path.join(tempDir(t, 'sshkeep-term-'), 'now');
      const agent = await startAgent(t, { interpreter, graceMs: GRACE_MS, env: { LD_PRELOAD: so, SSHKEEP_TERM_AT_TIMES: trigger } });
      const held = await open(agent, target.port);
      held.channel.close();
      await until(() => target.sockets.length === 1, 5000, 'the held stream to connect');
      // Now the agent has no channel and one held stream: it waits in select() until the grace runs
      // out, a minute away. At its next turn the loop checks its flag, then timers() reads the clock
      // (times()), then select() waits: the shim raises SIGTERM in that times(), so Perl runs the
      // handler just after the check. Without the self-pipe the select would wait out the minute.
      fs.writeFileSync(trigger, '');
      // A turn: the target sends a byte, which the held stream keeps; nothing in that turn reads the clock.
      target.sockets[0]!.write('x');
      await agentGone(agent, EXIT_MS, 'the agent to exit on a SIGTERM that came after its flag was checked');
      t.pass('exited at once');
    });
  });
}
