/**
 * --resume where a stream cannot be resumed: the grace runs out, the agent is killed, or the
 * server runs no command (ForceCommand): each ends in a reset, never a hang or a clean end.
 */
import net from 'node:net';
import t from 'tap';
import { requireSshd } from './fixtures/sshd.js';
import { connect, deadline, echoOn, listenFor, outcome, startEchoFor, until } from './fixtures/net.js';
import { nextState } from './fixtures/status.js';
import { Metrics } from '../src/ops/metrics.js';
import { agentChecked, agentPids, agentSessions, killSessions, relayIn, resumeSshd, resumingSshkeep } from './fixtures/resume.js';

async function main(): Promise<void> {
  if (!requireSshd(t)) return;
  const echo = await startEchoFor(t);

  t.test('resume limits – grace over: the client is reset within the grace, the agent closes the target', async (t) => {
    const { sshd } = await resumeSshd(t);
    const relay = await relayIn(t, sshd);
    const targets: net.Socket[] = [];
    const target = net.createServer((s) => {
      s.on('error', () => {});
      s.once('data', () => targets.push(s)); // the one carrying the stream (the policy check sends nothing)
      s.on('end', () => s.end());
    });
    const port = await listenFor(t, target);
    t.teardown(() => targets.forEach((s) => s.destroy()));
    const graceMs = 1000;
    const { app, bound } = await resumingSshkeep(t, sshd, [`0:127.0.0.1:${port}`], relay.port, { resumeGrace: `${graceMs}ms` });
    await agentChecked(app);
    const client = await connect(bound[0]!.port);
    const end = outcome(client);
    client.write('x');
    await until(() => targets.length > 0, 5000, 'the target reached');
    const targetClosed = new Promise((r) => targets[0]!.once('close', r)); // with a reset: events.once would reject
    const lost = nextState(app.connection, 'reconnecting', 5000);
    relay.set('refuse'); // the server ends the session, and no connection gets through
    const cutAt = performance.now();
    await lost;
    const o = await deadline(end, graceMs + 3000, 'the client reset after the grace');
    const took = performance.now() - cutAt;
    t.equal(o.errorCode, 'ECONNRESET', 'reset, not a clean end');
    t.ok(took >= graceMs - 50 && took < graceMs + 2000, `reset ${Math.round(took)} ms after the cut (grace ${graceMs} ms)`);
    await deadline(targetClosed, graceMs + 3000, 'the agent to close the target');
    t.match(app.report().resume, { failures: { grace: 1 } });
  });

  t.test('resume limits – the agent killed: its streams are reset, a new one serves new clients', async (t) => {
    const { sshd, runtimeDir } = await resumeSshd(t);
    const { app, bound, logs } = await resumingSshkeep(t, sshd, [`0:127.0.0.1:${echo.port}`]);
    await agentChecked(app);
    const client = await connect(bound[0]!.port);
    const end = outcome(client);
    t.equal(await echoOn(client, 'hi'), 'hi');
    const [session] = agentSessions(runtimeDir);
    const pids = agentPids(session!);
    t.equal(pids.length, 1, 'one agent, found by its command line');
    process.kill(pids[0]!, 'SIGKILL');
    const o = await deadline(end, 5000, 'the client reset');
    t.equal(o.errorCode, 'ECONNRESET', 'reset');
    // Next client: the agent is found gone and started again.
    const again = await connect(bound[0]!.port);
    t.equal(await deadline(echoOn(again, 'again'), 10_000, 'a new client served'), 'again');
    again.destroy();
    t.equal(agentPids(session!).length, 1, 'a new agent runs');
    t.ok(logs.lines.some((l) => l.event === 'conn_end' && l.reset === true && /not resumed|agent/.test(String(l.reason))), 'the reset says why');
  });

  t.test('resume limits – ForceCommand /bin/false: one warning, plain forwarding, reset at the session death', async (t) => {
    const { sshd } = await resumeSshd(t, ['ForceCommand /bin/false']);
    const { app, bound, logs } = await resumingSshkeep(t, sshd, [`0:127.0.0.1:${echo.port}`]);
    await agentChecked(app);
    t.match(app.report().resume, { available: false, reason: 'forced-command' });
    const client = await connect(bound[0]!.port);
    const end = outcome(client);
    t.equal(await echoOn(client, 'plain'), 'plain', 'forwarded plain');
    const back = nextState(app.connection, 'ready', 10_000);
    killSessions(sshd);
    const o = await deadline(end, 5000, 'the plain stream reset');
    t.equal(o.errorCode, 'ECONNRESET', 'reset, as without --resume');
    await back;
    const after = await connect(bound[0]!.port);
    t.equal(await echoOn(after, 'still plain'), 'still plain');
    after.destroy();
    const warnings = logs.lines.filter((l) => l.event === 'resume_unavailable' && l.level === 'warn');
    t.equal(warnings.length, 1, 'one warning, however many reconnects', { warnings });
    t.match(warnings[0]!.msg, /ForceCommand/, 'it names the cause');
    const metrics = new Metrics();
    metrics.watch(app);
    const text = await metrics.text();
    t.match(text, new RegExp(`sshkeep_resume_available\\{tunnel="${app.name}"\\} 0\\n`), 'shown as unavailable');
    t.match(text, new RegExp(`sshkeep_resume_failures_total\\{tunnel="${app.name}",reason="forced-command"\\} [1-9]`), 'and why');
  });
}

void main();
