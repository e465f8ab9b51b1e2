/**
 * --resume against the real OpenSSH sshd and its agent: how streams end across an outage (a reply
 * sent during it, a half-close, a target reset) and the server's policy (PermitOpen) kept.
 */
import net from 'node:net';
import { once } from 'node:events';
import t, { type Test } from 'tap';
import { requireSshd } from './fixtures/sshd.js';
import { connect, deadline, echoOn, listenFor, outcome, startEchoFor, until } from './fixtures/net.js';
import { nextState } from './fixtures/status.js';
import { agentChecked, relayIn, resumeSshd, resumingSshkeep } from './fixtures/resume.js';

/**
 * A target the test drives by hand. The connection that carries a stream is the one that
 * receives bytes: the server policy check (a direct-tcpip open per target) sends none.
 */
async function targetFor(t: Test): Promise<{ port: number; firstToReceive(): Promise<{ sock: net.Socket; text: () => string }> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    let text = '';
    s.on('end', () => text || s.end()); // the policy check's connection, closed at once
    s.on('data', (c: Buffer) => {
      if (!text) server.emit('talking', s, () => text);
      text += c.toString();
    });
  });
  const port = await listenFor(t, server);
  t.teardown(() => sockets.forEach((s) => s.destroy()));
  return {
    port,
    firstToReceive: async () => {
      const [sock, text] = (await once(server, 'talking')) as [net.Socket, () => string];
      return { sock, text };
    },
  };
}

async function main(): Promise<void> {
  if (!requireSshd(t)) return;
  const echo = await startEchoFor(t);

  const cut = async (app: { connection: Parameters<typeof nextState>[0] }, relay: { set(m: 'refuse'): void }) => {
    const lost = nextState(app.connection, 'reconnecting', 5000);
    relay.set('refuse');
    await lost;
  };
  const restore = async (app: { connection: Parameters<typeof nextState>[0] }, relay: { set(m: 'pass'): void }) => {
    const back = nextState(app.connection, 'ready', 10_000);
    relay.set('pass');
    await back;
  };

  /** sshkeep through a relay to a hand-driven target, one client whose `first` bytes reached the target. */
  const clientAtTarget = async (t: Test, first: string) => {
    const { sshd } = await resumeSshd(t);
    const relay = await relayIn(t, sshd);
    const target = await targetFor(t);
    const { app, bound } = await resumingSshkeep(t, sshd, [`0:127.0.0.1:${target.port}`], relay.port);
    await agentChecked(app);
    const client = await connect(bound[0]!.port);
    const end = outcome(client);
    const talking = target.firstToReceive();
    client.write(first);
    const { sock, text } = await deadline(talking, 5000, 'the first bytes at the target');
    await until(() => text() === first, 5000, 'every first byte');
    return { app, relay, client, end, sock };
  };

  t.test('resume – a reply sent during the outage arrives after it; a half-close crosses the resume', async (t) => {
    const { app, relay, client, end, sock } = await clientAtTarget(t, 'request');
    await cut(app, relay);
    sock.write('reply');
    client.end(); // half-close while the link is down
    const targetEnd = once(sock, 'end');
    await restore(app, relay);
    await deadline(targetEnd, 5000, "the client's EOF at the target");
    sock.end('bye');
    const o = await deadline(end, 5000, 'the client to finish');
    t.equal(o.data.toString(), 'replybye', 'the reply sent during the outage, then the rest, once');
    t.equal(o.ended, true, 'a clean end');
    t.equal(o.hadError, false, 'no error');
  });

  t.test('resume – a target reset during the outage resets the client after it', async (t) => {
    const { app, relay, end, sock } = await clientAtTarget(t, 'hello');
    await cut(app, relay);
    sock.resetAndDestroy();
    await restore(app, relay);
    const o = await deadline(end, 5000, 'the client to be reset');
    t.equal(o.ended, false, 'no clean end');
    t.equal(o.errorCode, 'ECONNRESET', 'a reset, as the target gave');
  });

  t.test("resume – the server's PermitOpen holds through the agent: a target it refuses is refused", async (t) => {
    const other = await startEchoFor(t);
    const { sshd } = await resumeSshd(t, [`PermitOpen 127.0.0.1:${echo.port}`]);
    const { app, bound, logs } = await resumingSshkeep(t, sshd, [`0:127.0.0.1:${echo.port}`, `0:127.0.0.1:${other.port}`]);
    await agentChecked(app);
    const allowed = await connect(bound[0]!.port);
    t.equal(await echoOn(allowed, 'allowed'), 'allowed', 'a permitted target, through the agent');
    allowed.destroy();
    const refused = await connect(bound[1]!.port);
    const o = await deadline(outcome(refused), 5000, 'the refused client to be reset');
    t.equal(o.errorCode, 'ECONNRESET', 'reset, as the plain path does');
    t.equal(other.connections, 0, 'the agent never dialled it');
    t.ok(logs.lines.some((l) => l.event === 'conn_end' && l.reason === 'administratively-prohibited'), 'the refusal named');
  });

}

void main();
