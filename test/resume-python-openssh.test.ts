/**
 * --resume on a server without perl (RHEL/Alma 9, Amazon Linux 2023 have python3 only): the
 * probe finds python3, its agent runs, and a stream resumes across a killed sshd session.
 */
import t from 'tap';
import fs from 'node:fs';
import { requireSshd } from './fixtures/sshd.js';
import { connect, deadline, echoOn, outcome, startEchoFor } from './fixtures/net.js';
import { nextState } from './fixtures/status.js';
import { tempDir } from './fixtures/tmp.js';
import { agentChecked, killSessions, resumeSshd, resumingSshkeep } from './fixtures/resume.js';
import { agentDir, binWith } from './fixtures/resume-agent.js';
import { agentScript } from '../src/resume/bootstrap.js';

t.test('resume – no perl on the server: the python3 agent runs, and a stream resumes across a killed session', async (t) => {
  if (!requireSshd(t)) return;
  const echo = await startEchoFor(t);
  // PATH: sh and python3 only. HOME: empty, so no shell startup file puts perl back on PATH.
  const { sshd, runtimeDir } = await resumeSshd(t, [], [`PATH=${binWith(t, ['python3'])}`, `HOME=${tempDir(t, 'sshkeep-home-')}`]);
  const { app, bound } = await resumingSshkeep(t, sshd, [`0:127.0.0.1:${echo.port}`]);
  await agentChecked(app);
  t.match(app.report().resume, { available: true }, 'the agent runs', { logs: sshd.logs() });
  const sockets = fs.readdirSync(agentDir(runtimeDir));
  t.ok(sockets.length === 1 && sockets[0]!.startsWith(`agent-${agentScript('python').version}-`), `the Python agent's socket: ${sockets.join(' ')}`);
  const sock = await connect(bound[0]!.port);
  const end = outcome(sock);
  t.equal(await echoOn(sock, 'before'), 'before');
  const back = nextState(app.connection, 'ready', 10_000);
  killSessions(sshd);
  await back;
  t.equal(await deadline(echoOn(sock, 'after'), 5000, 'echo after the resume'), 'after');
  t.match(app.report().resume, { resumed: 1 });
  sock.end();
  t.equal((await deadline(end, 5000, 'the stream to end')).hadError, false, 'no error on the client');
});
