/**
 * --resume against the real OpenSSH sshd and its agent: open streams carried across the death
 * of the SSH session (killed, the link refused, the link silent), over -L, -D and --connections 2.
 */
import t from 'tap';
import { requireSshd } from './fixtures/sshd.js';
import { connect, deadline, echoOn, outcome, startEchoFor, until } from './fixtures/net.js';
import { nextState } from './fixtures/status.js';
import { Metrics } from '../src/ops/metrics.js';
import { connect4, echoes, socks5 } from './fixtures/socks-client.js';
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
    const metrics = new Metrics();
    metrics.watch(app);
    const text = await metrics.text();
    t.match(text, new RegExp(`sshkeep_streams_resumed_total\\{tunnel="${app.name}"\\} 1\\n`), 'the resumed stream counted');
    t.match(text, new RegExp(`sshkeep_resume_available\\{tunnel="${app.name}"\\} 1\\n`));
    t.match(text, /sshkeep_resume_replay_bytes\{tunnel="[^"]+"\} \d+\n/);
    sock.end();
    const done = await deadline(end, 5000, 'the stream to end');
    t.equal(done.hadError, false, 'no error on the client');
  });

  t.test('resume – the link refused for a while after the server ended the session: every client carries on', async (t) => {
    const { sshd } = await resumeSshd(t);
    const relay = await relayIn(t, sshd);
    const { app, bound, logs } = await resumingSshkeep(t, sshd, [`0:127.0.0.1:${echo.port}`], relay.port);
    await agentChecked(app);
    const socks = await Promise.all([1, 2, 3].map(() => connect(bound[0]!.port)));
    const ends = socks.map((s) => outcome(s));
    for (const [i, s] of socks.entries()) t.equal(await echoOn(s, `before ${i}`), `before ${i}`);
    const lost = nextState(app.connection, 'reconnecting', 5000);
    relay.set('refuse');
    await lost;
    const written = socks.map((s, i) => s.write(`during ${i}`));
    t.ok(written.every(Boolean));
    await logs.waitFor((l) => l.event === 'reconnect', 5000, 'a refused reconnect attempt');
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

  /** Cuts the link so that the server ends the session and no new connection gets through; resolves once sshkeep noticed. */
  t.test('resume – --connections 2: streams on both connections carry on when every session is killed', async (t) => {
    const { sshd } = await resumeSshd(t);
    const { app, bound, logs } = await resumingSshkeep(t, sshd, [`0:127.0.0.1:${echo.port}`], sshd.port, { connections: '2' });
    await agentChecked(app);
    await until(() => app.report().sshConnections.ready === 2, 10_000, 'both connections ready');
    const socks = await Promise.all([1, 2, 3, 4].map(() => connect(bound[0]!.port)));
    for (const [i, s] of socks.entries()) t.equal(await echoOn(s, `before ${i}`), `before ${i}`);
    killSessions(sshd);
    await logs.waitFor((l) => l.event === 'resume', 10_000, 'a resume line');
    for (const [i, s] of socks.entries()) t.equal(await deadline(echoOn(s, `after ${i}`), 10_000, `client ${i} after`), `after ${i}`, `client ${i} carries on`);
    t.equal(app.report().resume!.resumed, 4, 'all four resumed');
    for (const s of socks) s.destroy();
  });

  t.test('resume – -D: a SOCKS client carries on across a killed session', async (t) => {
    const { sshd } = await resumeSshd(t);
    const { app, bound } = await resumingSshkeep(t, sshd, [], sshd.port, { dynamicForwards: ['0'] });
    await agentChecked(app);
    const { raw, reply } = await socks5(bound[0]!.port, connect4('127.0.0.1', echo.port));
    t.equal(reply[1], 0, 'SOCKS succeeded');
    t.equal(await echoes(raw, 'before'), 'before');
    const back = nextState(app.connection, 'ready', 10_000);
    killSessions(sshd);
    await back;
    t.equal(await deadline(echoes(raw, 'after'), 5000, 'echo after'), 'after', 'the same SOCKS stream carries on');
    t.equal(raw.errorCode, undefined);
    raw.sock.destroy();
  });

  t.test('resume – the link goes silent: streams move to the spare connection at once, no reset', async (t) => {
    const { sshd } = await resumeSshd(t);
    const relay = await relayIn(t, sshd);
    const { app, bound, logs } = await resumingSshkeep(t, sshd, [`0:127.0.0.1:${echo.port}`], relay.port);
    await agentChecked(app);
    const sock = await connect(bound[0]!.port);
    const end = outcome(sock);
    t.equal(await echoOn(sock, 'before'), 'before');
    const replaced = nextState(app.connection, 'ready', 15_000, (s) => /replaced silent/.test(s.reason));
    relay.hold(1); // the first connection goes silent; the spare gets through
    await replaced;
    await logs.waitFor((l) => l.event === 'resume', 5000, 'the resume line');
    t.equal(await deadline(echoOn(sock, 'after'), 5000, 'echo on the spare'), 'after', 'carried on the spare');
    sock.end();
    t.equal((await deadline(end, 5000, 'end')).hadError, false, 'no error');
  });
}

void main();
