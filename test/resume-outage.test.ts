/**
 * --resume through the outage: request/response clients on persistent connections
 * (a stand-in for pgbench's), an 8 s outage in which the link goes silent, sshd's ClientAlive
 * ends the old session and no new connection gets through; then the link is restored. Every
 * client carries on: no error, every reply once, in order.
 */
import net from 'node:net';
import t from 'tap';
import { requireSshd } from './fixtures/sshd.js';
import { connect, deadline, listenFor, until } from './fixtures/net.js';
import { nextState } from './fixtures/status.js';
import { agentChecked, relayIn, resumeSshd, resumingSshkeep } from './fixtures/resume.js';

const OUTAGE_MS = 8000;
const CLIENTS = 4;

/** A stand-in server: answers each line `req N` with `resp N`. */
function startResponder(): net.Server {
  return net.createServer((s) => {
    s.on('error', () => {});
    let pending = '';
    s.on('data', (c: Buffer) => {
      pending += c.toString();
      for (let end = pending.indexOf('\n'); end >= 0; end = pending.indexOf('\n')) {
        s.write(`resp ${pending.slice(4, end)}\n`);
        pending = pending.slice(end + 1);
      }
    });
  });
}

/** One client's loop: a request, wait for its reply, check it, again, until `stop()`; `done` resolves with what it saw. */
function requestLoop(sock: net.Socket, stop: () => boolean) {
  let n = 0;
  let buffer = '';
  let waiting: ((line: string) => void) | undefined;
  let error: string | undefined;
  sock.on('data', (c: Buffer) => {
    buffer += c.toString();
    const end = buffer.indexOf('\n');
    if (end >= 0 && waiting) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + 1);
      waiting(line);
    }
  });
  sock.on('error', (err: NodeJS.ErrnoException) => (error = err.code ?? err.message));
  sock.on('close', () => (error ??= 'closed'));
  const done = (async () => {
    let wrong = 0;
    let longestMs = 0;
    while (!stop() && !error) {
      const reply = new Promise<string>((resolve) => (waiting = resolve));
      const sentAt = performance.now();
      sock.write(`req ${++n}\n`);
      const line = await Promise.race([reply, until(() => error !== undefined, 60_000, 'a reply').then(() => '')]);
      if (error) break;
      if (line !== `resp ${n}`) wrong++;
      longestMs = Math.max(longestMs, performance.now() - sentAt);
    }
    return { requests: n, wrong, error, longestMs, unread: buffer };
  })();
  return { done, answered: () => n };
}

async function main(): Promise<void> {
  if (!requireSshd(t)) return;

  t.test(`resume outage – ${CLIENTS} request/response clients across an ${OUTAGE_MS / 1000} s outage that ended the session: all carry on`, async (t) => {
    const { sshd } = await resumeSshd(t);
    const relay = await relayIn(t, sshd);
    const port = await listenFor(t, startResponder());
    const { app, bound, logs } = await resumingSshkeep(t, sshd, [`0:127.0.0.1:${port}`], relay.port);
    await agentChecked(app);
    const socks = await Promise.all(Array.from({ length: CLIENTS }, () => connect(bound[0]!.port)));
    t.teardown(() => socks.forEach((s) => s.destroy()));
    let stopping = false;
    const loops = socks.map((s) => requestLoop(s, () => stopping));
    await until(() => logs.lines.filter((l) => l.event === 'conn_end').length === 0 && app.report().resume!.resumable === CLIENTS, 5000, 'every client through the agent');

    relay.set('blackhole'); // silent both ways, new connections included
    const outageAt = performance.now();
    await deadline(logs.waitFor((l) => l.event === 'state' && l.to === 'suspect', 5000, 'the link found silent'), 6000, 'suspect');
    await until(() => /Timeout, client not responding/.test(sshd.logs()), OUTAGE_MS, "sshd's ClientAlive ending the old session");
    const sessionEndedMs = Math.round(performance.now() - outageAt);
    await until(() => performance.now() - outageAt >= OUTAGE_MS, OUTAGE_MS + 1000, 'the outage to last');
    const back = nextState(app.connection, 'ready', 20_000);
    relay.restore();
    await back;
    const resumedLine = await logs.waitFor((l) => l.event === 'resume', 10_000, 'the resume line');
    // A few more round trips each after the outage, then stop.
    const before = loops.map((l) => l.answered());
    await until(() => loops.every((l, i) => l.answered() >= before[i]! + 3), 10_000, 'round trips after the outage');
    stopping = true;
    const results = await deadline(Promise.all(loops.map((l) => l.done)), 30_000, 'every loop to finish');
    t.comment(`sshd ended the old session ${sessionEndedMs} ms into the outage; ${results.map((r) => r.requests).join(', ')} requests per client`);
    t.match(resumedLine, { resumed: CLIENTS, lost: 0 }, 'every stream resumed');
    for (const [i, r] of results.entries()) {
      t.equal(r.error, undefined, `client ${i}: no error`);
      t.equal(r.wrong, 0, `client ${i}: every reply the one asked for`);
      t.equal(r.unread, '', `client ${i}: no reply twice`);
      t.ok(r.longestMs >= OUTAGE_MS - 1000, `client ${i}: one request waited through the outage (${Math.round(r.longestMs)} ms) and completed`);
    }
    t.equal(logs.lines.filter((l) => l.event === 'conn_end').length, 0, 'no client connection ended');
  });
}

void main();
