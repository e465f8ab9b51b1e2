/**
 * Remote forwards (-R) against the real OpenSSH sshd: the server-chosen port, a fixed port,
 * re-binding after a forced reconnect, a port held by someone else (retry, ExitOnForwardFailure,
 * /readyz), Unix sockets on either side, and a local target that refuses.
 */
import t from 'tap';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { ListenError } from '../src/errors.js';
import type { RemoteForward, RemoteForwardState } from '../src/forward/remote-forward.js';
import { LeanChannel } from '../src/ssh/lean-channel.js';
import { requireSshd, sshdInput, startSshd, sshdLogin } from './fixtures/sshd.js';
import { connect, deadline, outcome, refusedPort, roundTrip, startEcho, getJson, expectEcho, startEchoFor, until } from './fixtures/net.js';
import { Relay } from './fixtures/relay.js';
import { startSshkeep, type LogCapture } from './fixtures/tunnel.js';
import { logIs, portOf, runCli, spawnCliFor, type LogLine } from './fixtures/cli.js';
import { tempDir } from './fixtures/tmp.js';
import { loginArgs } from './fixtures/login.js';
import { connect4, connectName, echoes, socks5 } from './fixtures/socks-client.js';

type Line = Record<string, unknown>;

const READY_MS = 10_000;
/** A refused -R is asked again every 500 ms at first: bound again well within this. */
const REBIND_MS = 15_000;

/** Resolves with the `n`-th log line (1-based, already logged or still to come) matching `pred`. */
function nthLine(logs: LogCapture, pred: (l: Line) => boolean, n: number, ms: number, what: string): Promise<Line> {
  const hits = () => logs.lines.filter(pred);
  if (hits().length >= n) return Promise.resolve(hits()[n - 1]!);
  let on: ((l: Line) => void) | undefined;
  return deadline(
    new Promise<Line>((resolve) => {
      on = () => {
        const h = hits();
        if (h.length >= n) resolve(h[n - 1]!);
      };
      logs.on('line', on);
    }),
    ms,
    `${what}; logged: ${JSON.stringify(logs.lines)}`,
  ).finally(() => on && logs.off('line', on));
}

/** Resolves once the remote forward is in `state` (now or later), or rejects after `ms`. */
function whenState(rf: RemoteForward, state: RemoteForwardState, ms: number, what: string): Promise<void> {
  if (rf.state === state) return Promise.resolve();
  let on: ((s: RemoteForwardState) => void) | undefined;
  return deadline(
    new Promise<void>((resolve) => {
      on = (s) => s === state && resolve();
      rf.on('state', on);
    }),
    ms,
    `${what} (state now ${rf.state}, error ${rf.report().error})`,
  ).finally(() => on && rf.off('state', on));
}

/** A loopback port free on both 127.0.0.1 and ::1 (sshd binds "localhost" on both families). */
async function freePort(): Promise<number> {
  for (let i = 0; ; i++) {
    const port = await refusedPort();
    try {
      const q = await squat(port);
      await q.close();
      return port;
    } catch (err) {
      if (i > 20) throw err;
    }
  }
}

/**
 * Occupies `port` on 127.0.0.1 and on ::1: with GatewayPorts no, sshd binds "localhost" on both
 * families and counts a forward bound if either bind works, so only both squatted refuse it.
 */
async function squat(port: number): Promise<{ close(): Promise<void> }> {
  const servers: net.Server[] = [];
  const close = () => Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r())))).then(() => undefined);
  try {
    for (const host of ['127.0.0.1', '::1']) {
      const s = net.createServer((c) => c.destroy());
      s.listen({ port, host, ipv6Only: true });
      try {
        await Promise.race([once(s, 'listening'), once(s, 'error').then(([e]) => Promise.reject(e as Error))]);
      } catch (err) {
        // A host without IPv6 loopback: sshd binds 127.0.0.1 only, so that one is enough.
        const code = (err as NodeJS.ErrnoException).code;
        if (host === '::1' && (code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT')) continue;
        throw err;
      }
      servers.push(s);
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { close };
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

type RemoteReport = { spec: string; state: string; port?: number; error?: string };
const remoteOf = (json: Record<string, unknown>): RemoteReport[] =>
  ((json.tunnels as { remoteForwards: RemoteReport[] }[] | undefined)?.[0]?.remoteForwards ?? []);

async function main(): Promise<void> {
  if (!requireSshd(t)) return;
  // sshd notices a dead session within ~3 s (and frees its -R ports); a Unix socket can be bound again.
  const sshd = await startSshd(t, { extraConfig: ['ClientAliveInterval 1', 'ClientAliveCountMax 2', 'StreamLocalBindUnlink yes'] });
  const echo = await startEchoFor(t);

  t.test('-R 0 without a target: a SOCKS proxy on the server (OpenSSH 7.6 remote dynamic forwarding); its clients reach what they ask for, a refused target is answered 0x05', async (t) => {
    const { app, logs } = await startSshkeep(t, sshdInput(sshd, { remoteForwards: ['0'] }));
    await deadline(app.ready(), READY_MS, `tunnel ready\n${sshd.logs()}`);
    await whenState(app.remoteForwards[0]!, 'bound', READY_MS, '-R bound');
    const { port, name } = app.report().remoteForwards[0]!;
    t.equal(name, `remote:localhost:0->socks`);
    // SOCKS5 CONNECT with optimistic data sent before the reply: it reaches the target first.
    const { raw, reply } = await socks5(port!, connect4('127.0.0.1', echo.port), async (r) => void r.sock.write('early '));
    t.same([...reply.subarray(0, 2)], [5, 0], 'succeeded');
    t.equal((await raw.read(6, 5000, 'the early bytes echoed')).toString(), 'early ', 'bytes sent before the reply went first');
    t.equal(await echoes(raw, 'through the server'), 'through the server');
    raw.sock.destroy();
    // By name, IPv6, and a target that refuses.
    const named = await socks5(port!, connectName('localhost', echo.port));
    t.same([...named.reply.subarray(0, 2)], [5, 0], 'a name is resolved here, as ssh -R does');
    t.equal(await echoes(named.raw, 'by name'), 'by name');
    named.raw.sock.destroy();
    const refused = await socks5(port!, connect4('127.0.0.1', await refusedPort()));
    t.same([...refused.reply.subarray(0, 2)], [5, 5], 'connection refused: 0x05');
    await nthLine(logs, (l) => l.event === 'conn_end' && l.side === 'target', 1, 5000, 'the refusal logged');
    refused.raw.sock.destroy();
    const session = app.connection.readySession!;
    await until(() => session.channels === 0, 5000, `the refused channel to stop counting (${session.channels} left)`);
    // A client that is no SOCKS client is closed, and said once.
    const junk = await connect(port!);
    junk.write('GET / HTTP/1.0\r\n\r\n');
    t.match(await deadline(outcome(junk, { closeOnEnd: true }), 5000, 'the non-SOCKS client closed'), { ended: true, data: Buffer.alloc(0) }, 'closed, with no reply');
    await nthLine(logs, (l) => l.event === 'conn_end' && l.reason === 'socks_error', 1, 5000, 'the failed handshake logged');
  });

  t.test('-R of a socket path the server refuses: the warning names the socket file\'s causes, not a port\'s', async (t) => {
    const path_ = path.join(tempDir(t, 'sshkeep-rsock-'), 'no-such-dir', 'r.sock');
    const { logs } = await startSshkeep(t, sshdInput(sshd, { remoteForwards: [`${path_}:127.0.0.1:${echo.port}`] }));
    const refused = await nthLine(logs, (l) => l.event === 'remote_refused' && l.level === 'warn', 1, READY_MS, 'the refusal');
    t.match(refused.msg, /StreamLocalBindUnlink yes/, 'a file left by an earlier session is named, with the sshd option that replaces it');
    t.notMatch(refused.msg, /ClientAliveInterval/, 'not the port\'s cause');
  });

  t.test('-R 0: the server picks a port; echo, 1 MiB intact, half-close carried', async (t) => {
    const { connect: netConnect } = net;
    const toTarget: net.NetConnectOpts[] = [];
    net.connect = ((o: net.NetConnectOpts) => ('port' in o && o.port === echo.port && toTarget.push(o), netConnect(o))) as typeof net.connect;
    t.teardown(() => void (net.connect = netConnect));
    // The server's channels are made lean for the pump, as ours are (src/ssh/lean-channel.ts).
    const { make } = LeanChannel;
    const made = LeanChannel as { make: typeof make };
    let leanFromServer = 0;
    made.make = (client, info) => (info.type === 'forwarded-tcpip' && leanFromServer++, make(client, info));
    t.teardown(() => void (made.make = make));
    // A clean end lets the server close first (its CLOSE in before ours: ssh2 answers it), src/forward/pump.ts.
    const { close } = LeanChannel.prototype;
    const closedFirst: string[] = [];
    LeanChannel.prototype.close = function (this: LeanChannel) {
      closedFirst.push(this.incoming.state === 'closed' ? 'server' : 'sshkeep');
      return close.call(this);
    };
    t.teardown(() => void (LeanChannel.prototype.close = close));
    const { app, logs } = await startSshkeep(t, sshdInput(sshd, { remoteForwards: [`0:127.0.0.1:${echo.port}`] }));
    await deadline(app.ready(), READY_MS, `tunnel ready\n${sshd.logs()}`);
    const rf = app.remoteForwards[0]!;
    await whenState(rf, 'bound', READY_MS, '-R bound');
    const port = app.report().remoteForwards[0]!.port;
    t.type(port, 'number', 'the reported port is a number');
    t.ok(port! > 0, `the server chose port ${port}`);
    const listen = await nthLine(logs, logIs('remote_listen'), 1, 5000, 'remote_listen');
    t.equal(listen.port, port, 'the remote_listen line names the same port');
    t.match(listen.msg, String(port), 'the message names the server-chosen port');
    t.equal(app.report().remoteForwards[0]!.error, undefined, 'no error while bound');

    // A short round trip through sshd's listener; roundTrip half-closes and waits for the echo's end.
    await expectEcho(t, port!, 'the server-chosen port');

    // 1 MiB through sshd's listener and back, checked by sha256.
    const payload = randomBytes(1024 * 1024);
    const sock = await connect(port!);
    const back = await deadline(roundTrip(sock, payload), 10_000, '1 MiB echo');
    t.equal(back.length, payload.length, '1 MiB came back');
    t.equal(sha256(back), sha256(payload), 'sha256 intact');
    const end = await nthLine(logs, (l) => l.event === 'conn_end' && l.bytesUp === payload.length, 1, 5000, 'conn_end of the 1 MiB connection');
    t.match(end, { reset: false, bytesUp: payload.length, bytesDown: payload.length }, 'the connection ended cleanly, every byte counted');

    // Half-close: our end reaches the echo, whose end comes back, while our side stays writable until then.
    const half = await connect(port!);
    const got: Buffer[] = [];
    half.on('data', (c: Buffer) => got.push(c));
    const ended = once(half, 'end');
    half.write('before the half-close');
    half.end();
    await deadline(ended, 5000, 'the echo to end after our half-close');
    t.equal(Buffer.concat(got).toString(), 'before the half-close', 'everything echoed before the end');
    t.equal(toTarget.length, 0, 'the local target is connected without net.Socket: a TcpClient (src/forward/tcp-connect.ts)');
    t.equal(leanFromServer, 3, "each of the three connections' channel was a LeanChannel");
    await until(() => closedFirst.length === 3, 5000, 'the three channels closed');
    // sshd answers within a fraction of a millisecond; a loaded machine may keep one past the 100 ms wait.
    const first = closedFirst.filter((who) => who === 'server').length;
    t.ok(first >= 2, `each ended cleanly, and sshd's CLOSE came first (no 40 ms stall behind ours): ${closedFirst.join(', ')}`);
  });

  t.test('-R counts as the client sees it: up is what its client (on the server side) sends the local target', async (t) => {
    // A target that reads the request to its end, then answers ten times as much.
    const target = net.createServer({ allowHalfOpen: true }, (s) => {
      let got = 0;
      s.on('data', (c: Buffer) => (got += c.length));
      s.on('end', () => s.end(Buffer.alloc(got * 10, 'r')));
    });
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    t.teardown(() => target.close());
    const { app, logs } = await startSshkeep(t, sshdInput(sshd, { remoteForwards: [`0:127.0.0.1:${(target.address() as net.AddressInfo).port}`] }));
    await deadline(app.ready(), READY_MS, `tunnel ready\n${sshd.logs()}`);
    await whenState(app.remoteForwards[0]!, 'bound', READY_MS, '-R bound');
    const answer = await deadline(roundTrip(await connect(app.report().remoteForwards[0]!.port!), Buffer.alloc(100, 'q')), 10_000, 'the answer');
    t.equal(answer.length, 1000, 'the answer came whole');
    const end = await nthLine(logs, logIs('conn_end'), 1, 5000, 'conn_end');
    t.match(end, { side: 'client', reset: false, bytesUp: 100, bytesDown: 1000 }, 'the client ended first; 100 bytes up, 1000 down');
    t.match(app.report().forwards.find((f) => f.kind === 'remote'), { bytesUp: 100, bytesDown: 1000 }, 'the report (and sshkeep_bytes_total) the same way');
  });

  t.test('-R PORT: a fixed port is reachable', async (t) => {
    const port = await freePort();
    const { app, logs } = await startSshkeep(t, sshdInput(sshd, { remoteForwards: [`${port}:127.0.0.1:${echo.port}`] }));
    await deadline(app.ready(), READY_MS, `tunnel ready\n${sshd.logs()}`);
    await whenState(app.remoteForwards[0]!, 'bound', READY_MS, '-R bound');
    const listen = await nthLine(logs, logIs('remote_listen'), 1, 5000, 'remote_listen');
    t.match(listen, { forward: `remote:localhost:${port}->127.0.0.1:${echo.port}` }, 'logged with its forward name');
    t.equal(app.report().remoteForwards[0]!.port, port, 'report names the fixed port');
    await expectEcho(t, port, `fixed port ${port}`);
  });

  t.test('-R PORT is bound again after a forced reconnect (the old flow goes silent)', async (t) => {
    const relay = await new Relay(sshd.port).listen();
    t.teardown(() => relay.close());
    const knownHosts = path.join(sshd.dir, 'known_hosts_relay');
    fs.writeFileSync(knownHosts, `[127.0.0.1]:${relay.port} ${sshd.hostPublicKey}\n`);
    const port = await freePort();
    // Dialled through the relay, trusting sshd's host key under the relay's port.
    const input = sshdInput(
      { ...sshd, knownHostsPath: knownHosts },
      { remoteForwards: [`${port}:127.0.0.1:${echo.port}`], keepaliveInterval: '1s' },
      relay.port,
    );
    const { app, logs } = await startSshkeep(t, input);
    await deadline(app.ready(), READY_MS, `tunnel ready\n${sshd.logs()}`);
    const rf = app.remoteForwards[0]!;
    await whenState(rf, 'bound', READY_MS, '-R bound');
    const firstGeneration = app.connection.generation;
    await expectEcho(t, port, 'the port before the fault');

    // A NAT forgets the flow: the old session hears nothing more; sshd's child still holds the port
    // until its ClientAlive checks give up on it.
    const dropped = Date.now();
    relay.set('drop-existing');
    const second = await nthLine(logs, logIs('remote_listen'), 2, 20_000, 'a second remote_listen');
    t.ok(app.connection.generation > firstGeneration, `bound on a new connection (generation ${firstGeneration} -> ${app.connection.generation})`);
    t.equal(second.port, port, 'the same fixed port');
    t.equal(rf.state, 'bound', 'state bound again');
    t.equal(app.report().remoteForwards[0]!.port, port, 'report names the port again');
    await expectEcho(t, port, 'the port after the reconnect');
    t.ok(Date.now() - dropped < 20_000, `reachable again within 20 s (${Date.now() - dropped} ms)`);
    for (const refused of logs.find('remote_refused')) {
      t.match(refused, { forward: `remote:localhost:${port}->127.0.0.1:${echo.port}`, error: /\S/ }, `a refusal (attempt ${refused.attempt}) says why`);
    }
  });

  t.test('-R PORT held by another process: retried until it is free', async (t) => {
    const port = await freePort();
    const squatter = await squat(port);
    let squatted = true;
    t.teardown(() => (squatted ? squatter.close() : undefined));
    const { app, logs } = await startSshkeep(t, sshdInput(sshd, { remoteForwards: [`${port}:127.0.0.1:${echo.port}`] }));
    await deadline(app.ready(), READY_MS, `tunnel ready\n${sshd.logs()}`);
    const rf = app.remoteForwards[0]!;
    const refused = await nthLine(logs, logIs('remote_refused'), 1, READY_MS, 'remote_refused');
    t.match(refused, { attempt: 1, delayMs: Number, error: /\S/ }, 'the refusal is logged with its attempt, delay and error');
    const report = app.report().remoteForwards[0]!;
    t.equal(report.spec, `${port}:127.0.0.1:${echo.port}`, 'report names the spec');
    t.match(report.state, /^(retrying|requesting)$/, 'not bound');
    t.type(report.error, 'string', 'report carries the refusal');
    t.not(rf.state, 'bound', 'not bound while the port is held');
    t.equal(logs.find('remote_listen').length, 0, 'no remote_listen while the port is held');
    // A request costs one round trip on a live connection: asked again every half second, said once.
    await nthLine(logs, logIs('remote_refused'), 3, READY_MS, 'the third refusal');
    const refusals = logs.find('remote_refused').slice(0, 3);
    t.same(refusals.map((l) => l.delayMs), [500, 500, 500], 'asked again every 500 ms');
    t.same(refusals.map((l) => l.level), ['warn', 'debug', 'debug'], 'warned at the first refusal only');
    t.match(refusals[0]!.msg, /ClientAliveInterval/, 'the warning says what usually holds the port');

    await squatter.close();
    squatted = false;
    await whenState(rf, 'bound', REBIND_MS, 'bound once the port is free');
    t.equal(app.report().remoteForwards[0]!.error, undefined, 'error cleared once bound');
    await expectEcho(t, port, 'the freed port');
  });

  t.test('ExitOnForwardFailure=yes: a refused -R is fatal', async (t) => {
    const port = await freePort();
    const squatter = await squat(port);
    t.teardown(() => squatter.close());
    const spec = `${port}:127.0.0.1:${echo.port}`;

    t.test('in-process: ready() rejects with a ListenError', async (t) => {
      const { app, logs } = await startSshkeep(t, sshdInput(sshd, { remoteForwards: [spec], options: ['ExitOnForwardFailure=yes'] }));
      const err = await deadline(app.ready().then(() => undefined, (e: unknown) => e), READY_MS, 'ready() to settle');
      t.ok(err instanceof ListenError, `a ListenError (${String(err)})`);
      t.match((err as Error).message, `-R ${spec}`, 'the message names the spec');
      t.match((err as Error).message, /ExitOnForwardFailure/, 'and why it is fatal');
      t.equal(logs.find('remote_refused').length, 0, 'no retry was scheduled');
      t.equal(logs.find('remote_listen').length, 0, 'never bound');
    });

    t.test('CLI: exit 4 (could not listen), the reason the JSON log\'s last line, no stack', async (t) => {
      const r = await runCli(loginArgs(sshdLogin(sshd), ['--log-format', 'json', '-R', spec, '-o', 'ExitOnForwardFailure=yes']));
      t.equal(r.code, 4, 'exit 4', { stderr: r.stderr });
      const lines = r.stderr.split('\n').filter((l) => l !== '');
      t.ok(lines.every((l) => l.startsWith('{')), `a JSON log stays JSON:\n${r.stderr}`);
      t.match(JSON.parse(lines.at(-1) ?? '{}'), { event: 'fatal', exitCode: 4, msg: new RegExp(`^-R ${spec}: .*refused.*ExitOnForwardFailure`) }, 'its last line names the spec, the refusal and the option');
      t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
    });
  });

  t.test('/readyz is 503 until the -R is bound, and reports it', async (t) => {
    const port = await freePort();
    const squatter = await squat(port);
    let squatted = true;
    t.teardown(() => (squatted ? squatter.close() : undefined));
    const cli = spawnCliFor(t, loginArgs(sshdLogin(sshd), ['--log-format', 'json', '--health', '127.0.0.1:0', '-R', `${port}:127.0.0.1:${echo.port}`]));
    const health = portOf(await cli.waitForLog(logIs('health'), READY_MS, 'the health line'));
    await cli.waitForLog(logIs('remote_refused'), READY_MS, 'remote_refused');

    // Between attempts the forward is 'retrying'; during one, briefly 'requesting'. Either way, not ready.
    let notReady = await getJson(health, '/readyz');
    for (let i = 0; i < 5 && remoteOf(notReady.body)[0]?.state === 'requesting'; i++) notReady = await getJson(health, '/readyz');
    t.equal(notReady.status, 503, '/readyz 503 while the -R is refused');
    t.match(remoteOf(notReady.body), [{ spec: `${port}:127.0.0.1:${echo.port}`, state: 'retrying', error: /\S/ }], 'reported as retrying, with the error');

    await squatter.close();
    squatted = false;
    const listen: LogLine = await cli.waitForLog(logIs('remote_listen'), REBIND_MS, 'remote_listen once the port is free');
    t.equal(listen.port, port, 'bound on the port');
    const ready = await getJson(health, '/readyz');
    t.equal(ready.status, 200, '/readyz 200 once bound');
    t.match(remoteOf(ready.body), [{ state: 'bound', port }], 'reported as bound on the port');
    t.notOk(remoteOf(ready.body)[0]?.error, 'no error once bound');
    await expectEcho(t, port, 'the port the CLI bound');
  });

  t.test('Unix sockets: -R /remote.sock:host:port and -R 0:/local.sock', async (t) => {
    const dir = tempDir(t, 'sshkeep-rfwd-');
    const remoteSock = path.join(dir, 'remote.sock');
    const localSock = path.join(dir, 'unix-echo.sock');
    const unixEcho = await startEcho({ path: localSock });
    t.teardown(() => unixEcho.close());
    const { app, logs } = await startSshkeep(t, sshdInput(sshd, { remoteForwards: [`${remoteSock}:127.0.0.1:${echo.port}`, `0:${localSock}`] }));
    await deadline(app.ready(), READY_MS, `tunnel ready\n${sshd.logs()}`);
    await whenState(app.remoteForwards[0]!, 'bound', READY_MS, '-R socket path bound');
    await whenState(app.remoteForwards[1]!, 'bound', READY_MS, '-R to a local socket bound');
    t.equal(logs.find('remote_listen').length, 2, 'two remote_listen lines');

    // sshd listens at the path; connecting there comes back to the TCP echo.
    t.ok(fs.statSync(remoteSock).isSocket(), 'sshd created the socket');
    const s1 = net.connect({ path: remoteSock, allowHalfOpen: true });
    await deadline(once(s1, 'connect'), 5000, 'connect to the remote socket');
    const p1 = Buffer.from('via a socket sshd listens on');
    t.same(await deadline(roundTrip(s1, p1), 5000, 'echo via the remote socket'), p1, 'echo via the socket sshd listens on');

    // The server's TCP port comes back to a local Unix socket.
    const port = app.report().remoteForwards[1]!.port;
    t.ok(typeof port === 'number' && port > 0, `the server chose port ${port}`);
    await expectEcho(t, port!, 'a TCP port to a local Unix socket');
  });

  t.test('a local target that refuses: the connection is closed, the next one works', async (t) => {
    const target = await refusedPort();
    const { app, logs } = await startSshkeep(t, sshdInput(sshd, { remoteForwards: [`0:127.0.0.1:${target}`] }));
    await deadline(app.ready(), READY_MS, `tunnel ready\n${sshd.logs()}`);
    const rf = app.remoteForwards[0]!;
    await whenState(rf, 'bound', READY_MS, '-R bound');
    const port = app.report().remoteForwards[0]!.port!;

    const sock = await connect(port);
    const end = await deadline(outcome(sock, { closeOnEnd: true }), 5000, 'sshd to close the refused connection');
    t.equal(end.data.length, 0, 'nothing came back');
    const line = await nthLine(logs, (l) => l.event === 'conn_end' && l.side === 'target', 1, 5000, 'conn_end side target');
    t.match(line, { target: `127.0.0.1:${target}`, error: 'ECONNREFUSED' }, 'logged as refused by the local target');
    t.equal(app.connection.state, 'ready', 'the tunnel is still ready');
    t.equal(rf.state, 'bound', 'the forward is still bound');

    const targetEcho = await startEcho({ port: target, host: '127.0.0.1' });
    t.teardown(() => targetEcho.close());
    await expectEcho(t, port, 'the port once the target listens');
  });
}

void main();
