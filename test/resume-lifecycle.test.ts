/**
 * The agent's life as the CLI runs it: gone promptly after a clean stop (GOODBYE), and within
 * the grace after sshkeep is SIGKILLed with a stream open. No agent outlives a test.
 */
import t, { type Test } from 'tap';
import { requireSshd, sshdLogin, type Sshd } from './fixtures/sshd.js';
import { connect, deadline, echoOn, startEchoFor, until } from './fixtures/net.js';
import { logIs, portOf, spawnCliFor } from './fixtures/cli.js';
import { loginArgs } from './fixtures/login.js';
import { agentPids, agentSessions, resumeSshd } from './fixtures/resume.js';

const GRACE_MS = 1000;

/** sshkeep (the CLI) with --resume to `sshd`, a stream open through it, and its agent's pid. */
async function withStream(t: Test, sshd: Sshd, runtimeDir: string, echoPort: number) {
  const args = ['--resume', '--resume-grace', `${GRACE_MS}ms`, '--max-drain', '200ms', '--log-format', 'json', '-L', `0:127.0.0.1:${echoPort}`];
  const cli = spawnCliFor(t, loginArgs(sshdLogin(sshd), args));
  const listen = await cli.waitForLog(logIs('listen'), 10_000, 'the listen line');
  await cli.waitForLog(logIs('state', { to: 'ready' }), 10_000, 'ready');
  const sock = await connect(portOf(listen));
  sock.on('error', () => {});
  t.equal(await echoOn(sock, 'resumable'), 'resumable', 'a stream through the agent');
  const [session] = agentSessions(runtimeDir);
  const pids = agentPids(session!);
  t.equal(pids.length, 1, 'its agent runs');
  return { cli, sock, session: session! };
}

async function main(): Promise<void> {
  if (!requireSshd(t)) return;
  const echo = await startEchoFor(t);

  t.test('resume lifecycle – a clean stop says goodbye: the agent is gone at once', async (t) => {
    const { sshd, runtimeDir } = await resumeSshd(t);
    const { cli, session } = await withStream(t, sshd, runtimeDir, echo.port);
    cli.kill('SIGTERM'); // the open stream is cut after --max-drain
    t.equal((await cli.exited(10_000)).code, 0, 'exit 0');
    const exitedAt = performance.now();
    await until(() => agentPids(session).length === 0, 3000, 'the agent to exit');
    const took = performance.now() - exitedAt;
    t.ok(took < GRACE_MS / 2, `gone ${Math.round(took)} ms after sshkeep exited, well within its grace (${GRACE_MS} ms)`);
    t.same(agentSessions(runtimeDir), [], 'its socket removed');
  });

  t.test('resume lifecycle – sshkeep SIGKILLed: the agent is gone within the grace', async (t) => {
    const { sshd, runtimeDir } = await resumeSshd(t);
    const { cli, sock, session } = await withStream(t, sshd, runtimeDir, echo.port);
    const killedAt = performance.now();
    cli.kill('SIGKILL');
    await cli.exited(5000);
    sock.destroy();
    await deadline(until(() => agentPids(session).length === 0, 2 * GRACE_MS + 3000, 'the agent to exit'), 2 * GRACE_MS + 4000, 'the agent to exit');
    const took = performance.now() - killedAt;
    t.ok(took < GRACE_MS + 1500, `gone ${Math.round(took)} ms after the SIGKILL (grace ${GRACE_MS} ms)`);
  });
}

void main();
