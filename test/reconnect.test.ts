/**
 * SIGUSR2 and `sshkeep reconnect`: every tunnel makes a new SSH connection before it lets the old
 * one go. The built CLI in a child process (run `npm run build` first).
 */
import { createHash, randomBytes } from 'node:crypto';
import t from 'tap';
import { deadline, outcome, startEchoFor, until, hashedEchoClient, tryConnect } from './fixtures/net.js';
import { makeKeys, startServer } from './fixtures/tunnel.js';
import { cliArgs, logIs, portOf, spawnCliFor } from './fixtures/cli.js';
import { runControl } from '../src/cli/control.js';

t.test('reconnect – SIGUSR2: a second login is made while an open stream runs on the first, intact; new streams go over the new one; the old one closes when its stream ends', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const cli = spawnCliFor(t, cliArgs(server.port, keys, `0:127.0.0.1:${echo.port}`, ['--max-drain', '1s', '--health', '127.0.0.1:0']));
  const port = portOf(await cli.waitForLog(logIs('listen')));
  await cli.waitForLog(logIs('state', { to: 'ready' }));
  const health = `127.0.0.1:${portOf(await cli.waitForLog(logIs('health')))}`;
  t.equal(server.connections, 1);

  const before = await hashedEchoClient(port);
  const halves = [randomBytes(32 * 1024), randomBytes(32 * 1024)];
  await before.send(halves[0]!);
  cli.kill('SIGUSR2');
  const replaced = await cli.waitForLog(logIs('replaced'), 5000, 'the new connection');
  t.match(cli.logs().find(logIs('reconnect_request')), { level: 'info', reason: 'SIGUSR2', active: 1, drainMs: 1000 }, 'one line for the tunnel');
  t.equal(replaced.channels, 1, 'the old connection still carries the open stream');
  t.equal(server.connections, 2, 'the server sees a second login while the first is open');

  const after = await hashedEchoClient(port);
  await after.send(Buffer.from('over the new connection'));
  await before.send(halves[1]!);
  const b = await before.end();
  t.equal(b.up, createHash('sha256').update(Buffer.concat(halves)).digest('hex'));
  t.equal(b.down, b.up, 'the stream open across the reconnect is intact both ways');
  await until(() => server.connections === 1, 5000, 'the old connection to close once its stream ended');
  await after.send(Buffer.from('still flowing after the old connection closed'));
  const a = await after.end();
  t.equal(a.down, a.up, 'the stream opened after the reconnect went over the new connection');
  t.notOk(cli.logs().some(logIs('retire')), 'nothing was cut');

  // sshkeep reconnect: the same through the health server; a stream idle past --max-drain is reset.
  const idle = await hashedEchoClient(port);
  await idle.send(Buffer.from('then idle'));
  const idleEnd = outcome(idle.sock);
  let out = '';
  const code = await runControl('reconnect', ['--health', health], {}, { out: (s) => (out += s), err: (s) => (out += s) });
  t.equal(code, 0, out);
  t.match(out, /^sshkeep reconnect: 127\.0\.0\.1:\d+ is reconnecting 127\.0\.0\.1\n$/);
  await until(() => cli.logs().filter(logIs('replaced')).length === 2, 5000, 'the second replacement');
  const cut = await deadline(idleEnd, 5000, 'the idle stream to be cut after --max-drain');
  t.equal(cut.errorCode, 'ECONNRESET', 'reset, not ended cleanly');
  t.match(cli.logs().find(logIs('retire')), { reason: 'streams still open after 1000 ms (--max-drain)' });
  await until(() => server.connections === 1, 5000, 'one connection left');
  cli.kill('SIGTERM');
  t.equal((await cli.exited(8000)).code, 0);
});

t.test("reconnect – SIGUSR1 (autossh's restart) reconnects as SIGUSR2 does, and never opens node's inspector", async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const cli = spawnCliFor(t, cliArgs(server.port, keys, `0:127.0.0.1:${echo.port}`));
  await cli.waitForLog(logIs('state', { to: 'ready' }));
  cli.kill('SIGUSR1');
  const replaced = await cli.waitForLog(logIs('replaced'), 5000, 'the new connection');
  t.match(cli.logs().find(logIs('reconnect_request')), { level: 'info', reason: 'SIGUSR1' }, 'a reconnect, named by its signal');
  t.equal(replaced.channels, 0);
  await until(() => server.connections === 1, 5000, 'the old connection to close: it carried nothing');
  t.notMatch(cli.stderr(), /Debugger listening|inspector/i, 'no inspector was started');
  const inspector = await tryConnect(9229);
  t.not(inspector, 'connected', 'nothing listens on the inspector port');
  cli.kill('SIGTERM');
  t.equal((await cli.exited(8000)).code, 0);
});
