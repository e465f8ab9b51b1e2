/**
 * --resume with bulk traffic both ways: 64 MiB up and the same 64 MiB echoed down, through two
 * deaths of the SSH session in mid-transfer; the sha256 of what came back is that of what went.
 */
import { createHash, randomBytes } from 'node:crypto';
import t from 'tap';
import { requireSshd } from './fixtures/sshd.js';
import { connect, startEchoFor, until } from './fixtures/net.js';
import { nextState } from './fixtures/status.js';
import { agentChecked, killSessions, resumeSshd, resumingSshkeep } from './fixtures/resume.js';

const TOTAL = 64 * 1024 * 1024;
const CHUNK = 256 * 1024;

async function main(): Promise<void> {
  if (!requireSshd(t)) return;
  const echo = await startEchoFor(t);

  t.test('resume bulk – 64 MiB each way through two session deaths: same sha256, no error', async (t) => {
    const { sshd } = await resumeSshd(t);
    const { app, bound, logs } = await resumingSshkeep(t, sshd, [`0:127.0.0.1:${echo.port}`]);
    await agentChecked(app);
    const sock = await connect(bound[0]!.port);
    const sent = createHash('sha256');
    const got = createHash('sha256');
    let received = 0;
    let written = 0;
    let error: Error | undefined;
    const started = performance.now();
    /** When each step was reached, and where the bytes stood then. */
    const marks: string[] = [];
    const mark = (step: string) => marks.push(`${((performance.now() - started) / 1000).toFixed(2)} s ${step}: ${received} back, ${written} written`);
    /** A wait that fails says where the bytes stood, the steps so far and what sshkeep logged last (a stall seen once in CI, 2026-12-05). */
    const waitFor = (done: () => boolean, ms: number, what: string) =>
      until(done, ms, what).catch((err: Error) => {
        const tail = logs.lines.slice(-40).map((l) => JSON.stringify(l)).join('\n');
        throw new Error(`${err.message}: ${received} of ${TOTAL} bytes back, ${written} written; steps:\n${marks.join('\n')}\nsshkeep's last log lines:\n${tail}`);
      });
    sock.on('error', (err) => (error = err));
    sock.on('data', (c: Buffer) => {
      got.update(c);
      received += c.length;
    });
    const writing = (async () => {
      const block = randomBytes(CHUNK);
      for (let n = 0; n < TOTAL / CHUNK; n++) {
        block.writeUInt32BE(n, 0); // each chunk differs: a repeated or skipped one changes the hash
        sent.update(block);
        const more = sock.write(Buffer.from(block));
        written += CHUNK;
        if (!more) await new Promise((r) => sock.once('drain', r));
      }
    })();
    for (const at of [TOTAL / 3, (2 * TOTAL) / 3]) {
      await waitFor(() => received >= at || error !== undefined, 30_000, `${at} bytes back`);
      mark(`${at} bytes back`);
      const back = nextState(app.connection, 'ready', 10_000);
      killSessions(sshd);
      await back;
      mark('ready again');
    }
    await writing;
    mark('all written');
    await waitFor(() => received >= TOTAL || error !== undefined, 60_000, 'every byte back');
    const seconds = (performance.now() - started) / 1000;
    t.equal(error, undefined, 'no error on the client');
    t.equal(received, TOTAL, 'as many bytes back as sent');
    t.equal(got.digest('hex'), sent.digest('hex'), 'the same sha256');
    const resumes = logs.lines.filter((l) => l.event === 'resume');
    t.same(resumes.map((l) => [l.resumed, l.lost]), [[1, 0], [1, 0]], 'resumed twice, nothing lost');
    t.comment(`${TOTAL / 2 ** 20} MiB each way in ${seconds.toFixed(1)} s, two resumes included`);
    sock.destroy();
  });
}

void main();
