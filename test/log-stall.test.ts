/**
 * A log destination that stops taking lines (a FIFO nobody reads, a container's log reader that
 * stalls behind `-E /proc/1/fd/1`, a hung NFS mount) never stops the tunnel: -E's lines are
 * written off the event loop and, past 1 MiB queued, dropped and counted. Before, each line was
 * a synchronous write: once the 64 KiB pipe was full, every client hung and SIGTERM waited.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { connect, deadline, freePorts, roundTrip, startEchoFor } from './fixtures/net.js';
import { makeKeys, startServer } from './fixtures/tunnel.js';
import { cliArgs, spawnCliFor } from './fixtures/cli.js';
import { tempDir } from './fixtures/tmp.js';

/** Per connection at debug, sshkeep logs about 500 bytes: this many fill a 64 KiB pipe twice over. */
const CLIENTS = 300;

t.test('log stall – -E to a FIFO nobody reads: every client is served, and SIGTERM ends the run', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const fifo = path.join(tempDir(t, 'sshkeep-fifo-'), 'log');
  execFileSync('mkfifo', [fifo]);
  // A reader that is there and never reads (opening the FIFO for writing waits for one).
  const reader = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  t.teardown(() => fs.closeSync(reader));
  const [port] = await freePorts(1);
  const cli = spawnCliFor(t, cliArgs(server.port, keys, `${port}:127.0.0.1:${echo.port}`, ['-E', fifo, '--log-level', 'debug']));
  await deadline((async () => {
    for (;;) {
      try {
        if ((await roundTrip(await connect(port!), 'up?')).toString() === 'up?') return;
      } catch {}
      await new Promise((r) => setImmediate(r));
    }
  })(), 10_000, 'the forward to echo');
  for (let i = 0; i < CLIENTS; i++) {
    const reply = await deadline(roundTrip(await connect(port!), `client ${i}`), 5000, `client ${i}'s echo (the log pipe is full after about 120)`);
    if (reply.toString() !== `client ${i}`) t.fail(`client ${i} got ${JSON.stringify(reply.toString())}`);
  }
  t.pass(`${CLIENTS} clients served while the log's reader read nothing`);
  cli.kill('SIGTERM');
  t.equal((await cli.exited(5000)).code, 0, 'SIGTERM: exit 0');
});
