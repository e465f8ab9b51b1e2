/**
 * -D dynamic SOCKS forwarding against the real OpenSSH sshd: curl (SOCKS5 with and without
 * remote name resolution, SOCKS4a), a raw SOCKS5 client for every reply code sshkeep derives
 * from the server's channel-open failure, username/password authentication, clients held
 * while the tunnel is down, the hold timeout, and the CLI's -D flags.
 */
import t, { type Test } from 'tap';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { execFile } from 'node:child_process';
import type { TunnelInput } from '../src/config/resolve.js';
import { requireSshd, sshdInput, sshdLogin, startSshd, type Sshd } from './fixtures/sshd.js';
import { loginArgs } from './fixtures/login.js';
import { deadline, refusedPort, startEcho, until, listen, startEchoFor } from './fixtures/net.js';
import { startSshkeep, type LogCapture } from './fixtures/tunnel.js';
import { Relay } from './fixtures/relay.js';
import { NO_AUTH_GREETING, RawClient, connect4, connect6loopback, connectName, echoes, portBytes, socks5 } from './fixtures/socks-client.js';
import { logIs, portOf, runCli, spawnCliFor } from './fixtures/cli.js';

type Line = Record<string, unknown>;

const READY_MS = 10_000;

// ---------------------------------------------------------------------------------------------
// curl

interface CurlResult {
  ok: boolean;
  exitCode: number | string | undefined;
  stdout: string;
  stderr: string;
}

/** Runs curl (silent, errors shown, 10 s cap); never rejects. */
function curl(args: string[]): Promise<CurlResult> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '10', ...args], { timeout: 15_000 }, (err, stdout, stderr) => {
      const code = err ? ((err as NodeJS.ErrnoException & { code?: number | string }).code ?? 'failed') : 0;
      resolve({ ok: !err, exitCode: code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

let curlAvailable: Promise<boolean> | undefined;
/** True when curl runs; otherwise a skip test point (a failure under CI, which installs curl). */
async function requireCurl(t: Test): Promise<boolean> {
  curlAvailable ??= new Promise((resolve) => execFile('curl', ['--version'], (err) => resolve(!err)));
  if (await curlAvailable) return true;
  const hint = 'curl not installed (apt-get install -y curl)';
  if (process.env.CI === 'true') t.fail(hint);
  else t.pass('curl', { skip: hint });
  return false;
}

/**
 * Runs curl through a forward whose log is `logs` and waits for that connection's conn_end, which
 * must be a clean close. Waiting also keeps teardown's stop() off a connection still ending: curl
 * may exit before sshkeep ends its side, and Pump.abort()'s resetAndDestroy() in the same loop turn
 * as that end() fails with EINVAL in Node 20, leaking the socket so the process spins at exit.
 */
async function curlThrough(t: Test, logs: { find(event: string): Line[] }, args: string[]): Promise<CurlResult> {
  const before = logs.find('conn_end').length;
  const r = await curl(args);
  if (r.ok) {
    await until(() => logs.find('conn_end').length > before, 5000, `the conn_end of curl ${args.join(' ')}`);
    t.match(logs.find('conn_end')[before], { reset: false, side: /^(client|target)$/ }, 'the connection closed cleanly');
  }
  return r;
}

/** Log lines of refused SOCKS clients, and failed handshakes. */
const refusedWith = (reply: number) => (l: Line) => l.event === 'conn_end' && l.socksReply === reply;
const socksError = (error: RegExp) => (l: Line) => l.event === 'conn_end' && l.reason === 'socks_error' && error.test(String(l.error));

async function main(): Promise<void> {
  if (!requireSshd(t)) return;
  const sshd = await startSshd(t);
  const echo = await startEchoFor(t);

  let hits = 0;
  const web = http.createServer((req, res) => {
    hits++;
    res.setHeader('connection', 'close');
    res.end(`hello through socks ${req.url}`);
  });
  await listen(web);
  const webPort = (web.address() as net.AddressInfo).port;
  t.teardown(() => {
    web.closeAllConnections();
    return new Promise<void>((r) => web.close(() => r()));
  });

  /** sshkeep with one -D listener, ready; its port and logs. */
  const startSocks = async (t: Test, extra: Partial<TunnelInput> = {}, target: Sshd = sshd) => {
    const { app, bound, logs } = await startSshkeep(t, sshdInput(target, { dynamicForwards: ['0'], ...extra }));
    await deadline(app.ready(), READY_MS, `tunnel ready\n${target.logs()}`);
    t.equal(bound[0]!.port > 0, true, `-D listens (port ${bound[0]!.port})`);
    return { app, port: bound[0]!.port, logs };
  };
  const waitLog = (logs: LogCapture, pred: (l: Line) => boolean, ms: number, what: string) =>
    logs.waitFor(pred, ms, `${what}; logged: ${JSON.stringify(logs.lines.filter((l) => l.event !== 'debug'))}`);

  t.test('-D with curl: SOCKS5 with remote names, SOCKS4a, SOCKS5 with a local IPv4', async (t) => {
    const { port, logs } = await startSocks(t);
    if (!(await requireCurl(t))) return;
    const proxy = `127.0.0.1:${port}`;
    const cases: [string, string[], string][] = [
      ['--socks5-hostname', ['--socks5-hostname', proxy, `http://localhost:${webPort}/5h`], `localhost:${webPort}`],
      ['--socks4a', ['--socks4a', proxy, `http://localhost:${webPort}/4a`], `localhost:${webPort}`],
      ['--socks5', ['--socks5', proxy, `http://127.0.0.1:${webPort}/5`], `127.0.0.1:${webPort}`],
    ];
    for (const [flag, args, target] of cases) {
      const before = logs.find('accept').length;
      const r = await curlThrough(t, logs, args);
      t.same({ ok: r.ok, body: r.stdout }, { ok: true, body: `hello through socks ${args[2]!.replace(/^http:\/\/[^/]+/, '')}` }, `${flag}: the body came through (${r.stderr.trim()})`);
      // The accept line names the target as the client sent it: a name for 5h/4a, an address for 5.
      const accept = logs.find('accept').slice(before)[0];
      t.equal(accept?.target, target, `${flag}: the SOCKS request named ${target}`);
    }
    t.equal(hits, 3, 'three requests reached the web server');
  });

  t.test('-D raw SOCKS5: reply codes from the server, IPv6, BIND, bad and cut handshakes', async (t) => {
    const { app, port, logs } = await startSocks(t);

    await t.test('refused port: 0x05 connection refused', async (t) => {
      const closed = await refusedPort();
      const { raw, reply } = await socks5(port, connect4('127.0.0.1', closed));
      t.same([...reply], [5, 0x05, 0, 1, 0, 0, 0, 0, 0, 0], 'reply 0x05, bound address 0.0.0.0:0');
      const end = await raw.end(5000, 'close after the refusal');
      t.equal(end.rest.length, 0, 'nothing after the reply');
      const line = await waitLog(logs, refusedWith(0x05), 5000, 'conn_end with socksReply 5');
      t.match(line, { side: 'target', reason: 'connect-failed', target: `127.0.0.1:${closed}`, reset: false });
    });

    await t.test('unresolvable name (resolved by the server): 0x04 host unreachable', async (t) => {
      const { raw, reply } = await socks5(port, connectName('no-such-host.invalid', 80), undefined, 10_000);
      const line = await waitLog(logs, (l) => l.event === 'conn_end' && l.target === 'no-such-host.invalid:80', 5000, 'conn_end for no-such-host.invalid');
      t.equal(line.reason, 'unresolvable', 'the server could not resolve the name');
      t.equal(reply[1], 0x04, `reply 0x04 host unreachable (got 0x${reply[1]!.toString(16)}; conn_end ${JSON.stringify(line)})`);
      t.equal(line.socksReply, reply[1], 'the log names the reply sent');
      t.equal(line.side, 'target');
      await raw.end(5000, 'close after the refusal');
    });

    await t.test('IPv6 ::1 target: 0x00 and the echo works', async (t) => {
      const port6 = await startEcho({ port: 0, host: '::1' }).then(
        (e) => (t.teardown(() => e.close()), e.port),
        () => undefined,
      );
      if (port6 === undefined) return void t.pass('IPv6', { skip: 'no ::1 on this host' });
      const { raw, reply } = await socks5(port, connect6loopback(port6));
      t.same([...reply], [5, 0, 0, 1, 0, 0, 0, 0, 0, 0], 'reply 0x00 succeeded');
      t.equal(await echoes(raw, 'over ipv6'), 'over ipv6', 'echoed through ::1');
      const accept = logs.find('accept').find((l) => l.target === `[::1]:${port6}` || l.target === `::1:${port6}`);
      t.ok(accept, `the request was for ::1 (${JSON.stringify(logs.find('accept').map((l) => l.target))})`);
      raw.sock.end();
      await raw.end(5000, 'close after the echo');
    });

    await t.test('BIND: 0x07 command not supported, then closed', async (t) => {
      const { raw, reply } = await socks5(port, connect4('127.0.0.1', echo.port, 2));
      t.same([...reply], [5, 0x07, 0, 1, 0, 0, 0, 0, 0, 0], 'reply 0x07');
      const end = await raw.end(5000, 'close after 0x07');
      t.equal(end.rest.length, 0, 'nothing more');
      await waitLog(logs, socksError(/command 2 is not supported/), 5000, 'conn_end socks_error for BIND');
    });

    await t.test('wrong version in the greeting: closed with no reply', async (t) => {
      const raw = await RawClient.connect(port);
      raw.sock.write(Buffer.from([6, 1, 0]));
      const end = await raw.end(5000, 'close after a bad greeting');
      t.equal(end.rest.length, 0, 'no reply at all');
      await waitLog(logs, socksError(/not a SOCKS client \(first byte 0x06\)/), 5000, 'conn_end socks_error for the bad greeting');
    });

    await t.test('truncated handshakes then client close: no crash, the next client works', async (t) => {
      const request = connect4('127.0.0.1', echo.port);
      const named = connectName('localhost', echo.port);
      const cuts: [string, Buffer][] = [
        ['half a greeting', Buffer.from([5])],
        ['greeting listing more methods than sent', Buffer.from([5, 3, 0])],
        ['greeting + request header only', Buffer.concat([NO_AUTH_GREETING, request.subarray(0, 4)])],
        ['greeting + request missing its last port byte', Buffer.concat([NO_AUTH_GREETING, request.subarray(0, request.length - 1)])],
        ['greeting + domain request cut in the name', Buffer.concat([NO_AUTH_GREETING, named.subarray(0, 8)])],
        ['greeting + domain request missing its last port byte', Buffer.concat([NO_AUTH_GREETING, named.subarray(0, named.length - 1)])],
      ];
      for (const [what, bytes] of cuts) {
        const before = logs.find('conn_end').length;
        const raw = await RawClient.connect(port);
        raw.sock.write(bytes);
        raw.sock.end();
        const line = await waitLog(logs, (l) => logs.find('conn_end').indexOf(l) >= before && l.event === 'conn_end', 5000, `conn_end for ${what}`);
        t.match(line, { side: 'client', reason: 'socks_error', error: /closed the connection during the SOCKS handshake/ }, `${what}: a handshake failure, logged`);
        const end = await raw.end(5000, `${what}: close`);
        const gotMethod = end.rest.equals(Buffer.from([5, 0]));
        t.ok(end.rest.length === 0 || gotMethod, `${what}: no reply but the method selection (${end.rest.toString('hex')})`);
      }
      const { raw, reply } = await socks5(port, request);
      t.equal(reply[1], 0, 'the next client is connected');
      t.equal(await echoes(raw, 'still serving'), 'still serving');
      raw.sock.end();
      await raw.end(5000, 'close');
      t.equal(app.forwards[0]!.clients, 0, 'no client left in the handshake');
    });
  });

  t.test('-D with AllowTcpForwarding no: 0x02 not allowed', async (t) => {
    const denying = await startSshd(t, { extraConfig: ['Match all', '  AllowTcpForwarding no'] });
    const { port, logs } = await startSocks(t, {}, denying);
    const { raw, reply } = await socks5(port, connect4('127.0.0.1', echo.port));
    t.equal(reply[1], 0x02, `reply 0x02 connection not allowed by ruleset (got 0x${reply[1]!.toString(16)})`);
    await raw.end(5000, 'close after 0x02');
    const line = await waitLog(logs, (l) => l.event === 'conn_end' && l.side === 'target', 5000, 'conn_end side target');
    t.match(line, { reason: 'administratively-prohibited', socksReply: 0x02 }, 'the reason sshd gave');
  });

  t.test('-D with socksAuth u:p', async (t) => {
    const { port, logs } = await startSocks(t, { socksAuth: 'u:p' });

    await t.test('curl with the right password works', async (t) => {
      if (!(await requireCurl(t))) return;
      const r = await curlThrough(t, logs, ['--socks5-hostname', `127.0.0.1:${port}`, '--proxy-user', 'u:p', `http://localhost:${webPort}/auth`]);
      t.same({ ok: r.ok, body: r.stdout }, { ok: true, body: 'hello through socks /auth' }, `body came through (${r.stderr.trim()})`);
      const r2 = await curlThrough(t, logs, ['-x', `socks5h://u:p@127.0.0.1:${port}`, `http://localhost:${webPort}/url`]);
      t.same({ ok: r2.ok, body: r2.stdout }, { ok: true, body: 'hello through socks /url' }, `socks5h://u:p@ works too (${r2.stderr.trim()})`);
    });

    await t.test('curl with a wrong password fails, logged', async (t) => {
      if (!(await requireCurl(t))) return;
      const before = hits;
      const r = await curl(['-x', `socks5h://u:wrong@127.0.0.1:${port}`, `http://localhost:${webPort}/nope`]);
      t.equal(r.ok, false, `curl fails (exit ${r.exitCode}: ${r.stderr.trim()})`);
      t.equal(hits, before, 'nothing reached the web server');
      await waitLog(logs, socksError(/authentication failed for user "u"/), 5000, 'conn_end socks_error authentication failed');
    });

    await t.test('raw: no-auth greeting refused, wrong password answered 01 01', async (t) => {
      const raw = await RawClient.connect(port);
      raw.sock.write(NO_AUTH_GREETING);
      t.same([...(await raw.read(2, 5000, 'method selection'))], [5, 0xff], 'no acceptable method');
      await raw.end(5000, 'close');

      const bad = await RawClient.connect(port);
      bad.sock.write(Buffer.from([5, 1, 2]));
      t.same([...(await bad.read(2, 5000, 'method selection'))], [5, 2], 'username/password chosen');
      bad.sock.write(Buffer.from([1, 1, ...Buffer.from('u'), 1, ...Buffer.from('x')]));
      t.same([...(await bad.read(2, 5000, 'auth status'))], [1, 1], 'authentication failed status');
      const end = await bad.end(5000, 'close after the failed auth');
      t.equal(end.rest.length, 0, 'nothing more');

      const good = await RawClient.connect(port);
      good.sock.write(Buffer.from([5, 1, 2]));
      await good.read(2, 5000, 'method selection');
      good.sock.write(Buffer.from([1, 1, ...Buffer.from('u'), 1, ...Buffer.from('p')]));
      t.same([...(await good.read(2, 5000, 'auth status'))], [1, 0], 'authenticated');
      good.sock.write(connect4('127.0.0.1', echo.port));
      t.equal((await good.read(10, 5000, 'reply'))[1], 0, 'connected');
      t.equal(await echoes(good, 'authenticated echo'), 'authenticated echo');
      good.sock.end();
      await good.end(5000, 'close');
    });

    await t.test('SOCKS4 is refused (it has no password)', async (t) => {
      const raw = await RawClient.connect(port);
      raw.sock.write(Buffer.from([4, 1, ...portBytes(echo.port), 127, 0, 0, 1, ...Buffer.from('u'), 0]));
      const reply = await raw.read(8, 5000, 'SOCKS4 reply');
      t.same([...reply.subarray(0, 2)], [0, 0x5b], 'request rejected (0x5b)');
      await raw.end(5000, 'close after the rejection');
      await waitLog(logs, socksError(/SOCKS4 has no password/), 5000, 'conn_end socks_error SOCKS4');
      if (!(await requireCurl(t))) return;
      const r = await curl(['--socks4a', `127.0.0.1:${port}`, `http://localhost:${webPort}/4a-auth`]);
      t.equal(r.ok, false, `curl --socks4a fails (exit ${r.exitCode})`);
    });
  });

  t.test('-D clients are held while the tunnel is down, answered once it is back', async (t) => {
    const relay = await new Relay(sshd.port).listen();
    t.teardown(() => relay.close());
    fs.appendFileSync(sshd.knownHostsPath, `[127.0.0.1]:${relay.port} ${sshd.hostPublicKey}\n`);
    const { app, bound, logs } = await startSshkeep(t, sshdInput(sshd, { dynamicForwards: ['0'], keepaliveInterval: '1s' }, relay.port));
    await deadline(app.ready(), READY_MS, 'tunnel ready');
    relay.set('refuse');
    await waitLog(logs, (l) => l.event === 'state' && l.to === 'reconnecting', 5000, 'the tunnel to drop');
    t.not(app.connection.state, 'ready', 'the tunnel is down');

    const { raw, reply } = await socks5(
      bound[0]!.port,
      connect4('127.0.0.1', echo.port),
      async (raw) => {
        // Optimistic data right after the request: kept while held, sent once the channel opens.
        raw.sock.write('early;');
        await until(() => app.forwards[0]!.held === 1, 5000, 'the SOCKS client to be held');
        // One more refused reconnect attempt: time passes with the client held and the tunnel down.
        const attempts = relay.accepted;
        await until(() => relay.accepted > attempts, 8000, 'another reconnect attempt');
        t.equal(raw.unread.length, 0, 'no SOCKS reply while the tunnel is down: the client is held');
        t.equal(raw.isClosed, false, 'still open');
        t.equal(app.report().held, 1, 'reported held');
        relay.set('pass');
      },
      15_000,
    );
    t.same([...reply], [5, 0, 0, 1, 0, 0, 0, 0, 0, 0], 'reply 0x00 once the tunnel is back');
    t.equal(app.connection.state, 'ready', 'the tunnel is ready');
    t.equal((await raw.read(6, 5000, 'the early bytes echoed')).toString(), 'early;', 'bytes sent while held reached the target');
    t.equal(await echoes(raw, 'after the outage'), 'after the outage', 'echo works');
    raw.sock.end();
    await raw.end(5000, 'close');
  });

  t.test('-D hold timeout: 0x03 network unreachable, then closed', async (t) => {
    const relay = await new Relay(sshd.port).listen();
    t.teardown(() => relay.close());
    relay.set('refuse');
    const { app, bound, logs } = await startSshkeep(t, sshdInput(sshd, { dynamicForwards: ['0'], holdTimeout: '500ms' }, relay.port));
    const started = performance.now();
    const { raw, reply } = await socks5(bound[0]!.port, connect4('127.0.0.1', echo.port));
    const took = performance.now() - started;
    t.same([...reply], [5, 0x03, 0, 1, 0, 0, 0, 0, 0, 0], 'reply 0x03');
    t.ok(took >= 450, `answered after the hold timeout (${Math.round(took)} ms)`);
    const end = await raw.end(5000, 'close after 0x03');
    t.equal(end.rest.length, 0, 'nothing more');
    const line = await waitLog(logs, refusedWith(0x03), 5000, 'conn_end with socksReply 3');
    t.match(line, { side: 'tunnel', reason: 'hold_timeout' });
    t.not(app.connection.state, 'ready', 'the tunnel never came up');
  });

  // Regression: -D applied --hold-timeout 0 and --max-held when the client connected, before
  // its request: a client refused then got a TCP reset, not a reply, and clients that connected
  // first and sent their requests later were all held past --max-held.
  t.test('-D with the tunnel down and --hold-timeout 0: 0x03 after the request, not a reset', async (t) => {
    const relay = await new Relay(sshd.port).listen();
    t.teardown(() => relay.close());
    relay.set('refuse');
    const { bound, logs } = await startSshkeep(t, sshdInput(sshd, { dynamicForwards: ['0'], holdTimeout: '0' }, relay.port));
    const { raw, reply } = await socks5(bound[0]!.port, connect4('127.0.0.1', echo.port));
    t.same([...reply], [5, 0x03, 0, 1, 0, 0, 0, 0, 0, 0], 'reply 0x03 network unreachable');
    t.equal((await raw.end(5000, 'close after 0x03')).rest.length, 0, 'then closed');
    t.match(await waitLog(logs, refusedWith(0x03), 5000, 'conn_end with socksReply 3'), { reason: 'not_ready', msg: /--hold-timeout is 0/ });
  });

  t.test('-D --max-held counts a client when its request comes: the one past the limit gets 0x01', async (t) => {
    const relay = await new Relay(sshd.port).listen();
    t.teardown(() => relay.close());
    relay.set('refuse');
    let held = () => 0;
    const limits = { maxConnections: 0, maxHeld: 1, clients: () => held(), held: () => held() };
    const { app, bound, logs } = await startSshkeep(t, sshdInput(sshd, { dynamicForwards: ['0'] }, relay.port), { limits });
    held = () => app.held();
    const port = bound[0]!.port;
    // Both connect while nothing is held yet, then send their requests.
    const first = await RawClient.connect(port);
    const second = await RawClient.connect(port);
    t.teardown(() => {
      first.sock.destroy();
      second.sock.destroy();
    });
    first.sock.write(Buffer.concat([NO_AUTH_GREETING, connect4('127.0.0.1', echo.port)]));
    await until(() => app.held() === 1, 5000, 'the first client to be held');
    second.sock.write(Buffer.concat([NO_AUTH_GREETING, connect4('127.0.0.1', echo.port)]));
    t.same([...(await second.read(12, 5000, 'the second client\'s method and reply'))], [5, 0, 5, 0x01, 0, 1, 0, 0, 0, 0, 0, 0], 'the second: 0x01 general failure');
    t.equal((await second.end(5000, 'close after 0x01')).rest.length, 0, 'then closed');
    t.match(await waitLog(logs, refusedWith(0x01), 5000, 'conn_end with socksReply 1'), { reason: 'limit', msg: /1 clients already held; --max-held raises the limit/ });
    t.equal(app.held(), 1, 'the first is still held');
    t.same([...(await first.read(2, 5000, 'the first client\'s method selection'))], [5, 0], 'the first got its method selection');
    t.equal(first.unread.length, 0, 'and no reply yet: held');
  });

  t.test('CLI -D 0: listens, curl goes through', async (t) => {
    const cli = spawnCliFor(t, loginArgs(sshdLogin(sshd), ['-D', '0']));
    const listen = await cli.waitForLog(logIs('listen'), 10_000, 'the listen line');
    t.equal(listen.address, '127.0.0.1', 'loopback by default');
    const port = portOf(listen);
    await cli.waitForLog(logIs('state', { to: 'ready' }), 10_000, 'the tunnel to be ready');
    if (await requireCurl(t)) {
      const r = await curl(['--socks5-hostname', `127.0.0.1:${port}`, `http://localhost:${webPort}/cli`]);
      t.same({ ok: r.ok, body: r.stdout }, { ok: true, body: 'hello through socks /cli' }, `body came through the CLI (${r.stderr.trim()})`);
      const end = await cli.waitForLog(logIs('conn_end'), 5000, "the curl connection's conn_end");
      t.match(end, { reset: false, side: /^(client|target)$/ }, 'closed cleanly');
    }
    cli.kill('SIGTERM');
    t.equal((await cli.exited()).code, 0, 'exit 0 on SIGTERM');
  });

  t.test('CLI -D 0.0.0.0:0 needs --socks-auth or --allow-open-socks', async (t) => {
    const refused = await runCli(loginArgs(sshdLogin(sshd), ['-D', '0.0.0.0:0']));
    t.equal(refused.code, 2, 'exit 2');
    t.match(refused.stderr, /--socks-auth/, 'the message names --socks-auth');

    const cli = spawnCliFor(t, loginArgs(sshdLogin(sshd), ['-D', '0.0.0.0:0', '--allow-open-socks']));
    const listen = await cli.waitForLog(logIs('listen'), 10_000, 'the listen line');
    t.equal(listen.address, '0.0.0.0', 'listens on every interface, as asked');
    t.equal(listen.level, 'warn', 'with a warning');
    await cli.waitForLog(logIs('state', { to: 'ready' }), 10_000, 'the tunnel to be ready');
    cli.kill('SIGTERM');
    t.equal((await cli.exited()).code, 0, 'exit 0 on SIGTERM');
  });
}

await main();
