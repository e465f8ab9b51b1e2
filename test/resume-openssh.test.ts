/**
 * --resume against the real OpenSSH sshd and its agent: open streams carried across the death
 * of the SSH session, with the fault relay cutting the link.
 */
import t from 'tap';
import { requireSshd } from './fixtures/sshd.js';
import { connect, deadline, echoOn, outcome, startEchoFor } from './fixtures/net.js';
import { nextState } from './fixtures/status.js';
import { agentChecked, killSessions, relayIn, resumeSshd, resumingSshkeep } from './fixtures/resume.js';

async function main(): Promise<void> {
  if (!requireSshd(t)) return;
  const echo = await startEchoFor(t);

  t.test('resume – the sshd session killed: an open stream carries on, nothing lost, no error', async (t) => {
    const { sshd } = await resumeSshd(t);
    const { app, bound, logs } = await resumingSshkeep(t, sshd, [`0:127.0.0.1:${echo.port}`]);
    await agentChecked(app);
    t.match(app.report().resume, { available: true }, 'the agent runs', { logs: logs.lines.filter((l) => String(l.event).startsWith('resume')) });
    const sock = await connect(bound[0]!.port);
    const end = outcome(sock);
    t.equal(await echoOn(sock, 'before'), 'before');
    const generation = app.connection.generation;
    const back = nextState(app.connection, 'ready', 10_000);
    killSessions(sshd);
    await back;
    t.ok(app.connection.generation > generation, 'a new SSH connection');
    t.equal(await deadline(echoOn(sock, 'after'), 5000, 'echo after the resume'), 'after');
    const line = await logs.waitFor((l) => l.event === 'resume', 5000, 'the reconnect line');
    t.match(line, { resumed: 1, lost: 0 });
    t.match(app.report().resume, { resumed: 1, resumable: 1 });
    sock.end();
    const done = await deadline(end, 5000, 'the stream to end');
    t.equal(done.hadError, false, 'no error on the client');
  });

  t.test('resume – the link refused for a while after the server ended the session: every client carries on', async (t) => {
    const { sshd } = await resumeSshd(t);
    const relay = await relayIn(t, sshd);
    const { app, bound } = await resumingSshkeep(t, sshd, [`0:127.0.0.1:${echo.port}`], relay.port);
    await agentChecked(app);
    const socks = await Promise.all([1, 2, 3].map(() => connect(bound[0]!.port)));
    const ends = socks.map((s) => outcome(s));
    for (const [i, s] of socks.entries()) t.equal(await echoOn(s, `before ${i}`), `before ${i}`);
    const lost = nextState(app.connection, 'reconnecting', 5000);
    relay.set('refuse');
    await lost;
    const written = socks.map((s, i) => s.write(`during ${i}`));
    t.ok(written.every(Boolean));
    await new Promise((r) => setTimeout(r, 1500));
    const back = nextState(app.connection, 'ready', 10_000);
    relay.set('pass');
    await back;
    for (const [i, s] of socks.entries()) s.end(` after ${i}`);
    for (const [i, e] of ends.entries()) {
      const o = await deadline(e, 5000, `client ${i} to end`);
      t.equal(o.data.toString(), `before ${i}during ${i} after ${i}`, `client ${i}: every byte once, in order`);
      t.equal(o.hadError, false, `client ${i}: no error`);
    }
  });
}

void main();
