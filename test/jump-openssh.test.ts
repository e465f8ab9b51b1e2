/**
 * Jump hosts (-J / ProxyJump, chained and recursive) and ProxyCommand against real OpenSSH sshd
 * instances: each hop authenticated and host-key-checked with its own ssh_config settings, the
 * session lost with any hop and the chain rebuilt from the first hop, `-J none`, and a
 * ProxyCommand's stdio carrying the connection with its stderr in the log.
 */
import t, { type Test } from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HostKeyError } from '../src/errors.js';
import { requireSshd, sshdInput, startSshd, type Sshd } from './fixtures/sshd.js';
import { connect, deadline, outcome, expectEcho, startEchoFor } from './fixtures/net.js';
import { startSshkeep, type LogCapture } from './fixtures/tunnel.js';
import { ISOLATED_NO_F, logIs, portOf, runCli, spawnCliFor } from './fixtures/cli.js';
import { tempDir } from './fixtures/tmp.js';

type Line = Record<string, unknown>;

const RELAY = fileURLToPath(new URL('./fixtures/stdio-relay.mjs', import.meta.url));
const READY_MS = 10_000;
/** sshd logs direct-tcpip requests only at DEBUG1; per-connection, so a Match block can raise it. */
const DEBUG_LOG = ['Match all', '  LogLevel DEBUG1'];

/** An ssh_config Host block reaching `sshd` with its own user, key and known_hosts. */
function hostBlock(name: string, sshd: Sshd, extra: string[] = [], knownHosts = sshd.knownHostsPath): string {
  return [
    `Host ${name}`,
    '  HostName 127.0.0.1',
    `  Port ${sshd.port}`,
    `  User ${sshd.user}`,
    `  IdentityFile ${sshd.userKeyPath}`,
    `  UserKnownHostsFile ${knownHosts}`,
    '  IdentitiesOnly yes',
    ...extra.map((l) => `  ${l}`),
  ].join('\n');
}

/** Writes an ssh_config of `blocks` (plus `Host *` with no global known_hosts) and returns its path. */
function writeConfig(t: Test, blocks: string[]): string {
  const file = path.join(tempDir(t, 'sshkeep-jump-'), 'ssh_config');
  fs.writeFileSync(file, [...blocks, 'Host *\n  GlobalKnownHostsFile none', ''].join('\n'));
  return file;
}

/** A known_hosts file recording `publicKey` for 127.0.0.1:port. */
function knownHostsWith(t: Test, port: number, publicKey: string): string {
  const file = path.join(tempDir(t, 'sshkeep-jump-'), 'known_hosts');
  fs.writeFileSync(file, `[127.0.0.1]:${port} ${publicKey}\n`);
  return file;
}

/** The part of sshd's log written from now on. */
function logFrom(sshd: Sshd): () => string {
  const from = sshd.logs().length;
  return () => sshd.logs().slice(from);
}

/** sshd (at DEBUG1) logging a direct-tcpip channel to 127.0.0.1:port. */
function directTcpipTo(port: number): RegExp {
  return new RegExp(`server_request_direct_tcpip: originator \\S+ port \\d+, target 127\\.0\\.0\\.1 port ${port}\\b`);
}

/** The rejection of `p`, or null if it resolved. */
async function rejectionOf(p: Promise<unknown>, ms: number, what: string): Promise<unknown> {
  return deadline(
    p.then(
      () => null,
      (err: unknown) => err,
    ),
    ms,
    what,
  );
}

const stateTo = (to: string, extra: (l: Line) => boolean = () => true) => (l: Line) => l.event === 'state' && l.to === to && extra(l);
const dump = (logs: LogCapture) => JSON.stringify(logs.lines.filter((l) => l.level !== 'debug'));

async function main(): Promise<void> {
  if (!requireSshd(t)) return;
  // Shared by the tests that do not kill a server: A is the usual jump host, B the usual target.
  const [A, B] = await Promise.all([startSshd(t, { extraConfig: DEBUG_LOG }), startSshd(t, { extraConfig: DEBUG_LOG })]);
  const echo = await startEchoFor(t);
  const forward = `0:127.0.0.1:${echo.port}`;

  t.test('ProxyJump in ssh_config: a two-hop chain, each hop with its own key and known_hosts', async (t) => {
    const aLog = logFrom(A);
    const bLog = logFrom(B);
    const cfg = writeConfig(t, [hostBlock('hop-a', A), hostBlock('target-b', B, ['ProxyJump hop-a'])]);
    const { app, bound, logs } = await startSshkeep(t, { destination: 'target-b', configFile: cfg, localForwards: [forward] });
    await deadline(app.ready(), READY_MS, `tunnel ready\n${dump(logs)}\nA:\n${aLog()}\nB:\n${bLog()}`);
    await expectEcho(t, bound[0]!.port, 'through A to B');

    // A authenticated us with A's key, then opened the channel that carries the SSH connection to B.
    t.match(aLog(), new RegExp(`Accepted publickey for ${A.user} from 127\\.0\\.0\\.1`), 'A authenticated the client');
    t.match(aLog(), directTcpipTo(B.port), "A forwarded a channel to B's port");
    t.notMatch(aLog(), directTcpipTo(echo.port), 'A did not open the forwarded connection itself');
    // B authenticated us with B's key (each sshd only accepts its own user key) and opened the -L channel.
    t.match(bLog(), new RegExp(`Accepted publickey for ${B.user} from 127\\.0\\.0\\.1`), 'B authenticated the client');
    t.match(bLog(), directTcpipTo(echo.port), 'B opened the forwarded connection to the echo server');
    const ready = await logs.waitFor(stateTo('ready'), 1000, 'state ready');
    t.match(ready.reason, `127.0.0.1:${B.port}`, 'the session is the one with B');
    t.equal(app.connection.generation, 1, 'one connection');
  });

  t.test('-J on the command line: a jump to a host whose Host block has no ProxyJump', async (t) => {
    const cfg = writeConfig(t, [
      hostBlock('hop-a', A),
      // Neither Port nor User: a -J spec of user@host:port supplies them.
      [`Host hop-a-bare`, '  HostName 127.0.0.1', `  IdentityFile ${A.userKeyPath}`, `  UserKnownHostsFile ${A.knownHostsPath}`, '  IdentitiesOnly yes'].join('\n'),
      hostBlock('target-b-direct', B),
    ]);

    await t.test('TunnelInput.jump', async (t) => {
      const aLog = logFrom(A);
      const { app, bound, logs } = await startSshkeep(t, { destination: 'target-b-direct', configFile: cfg, jump: 'hop-a', localForwards: [forward] });
      await deadline(app.ready(), READY_MS, `tunnel ready\n${dump(logs)}`);
      await expectEcho(t, bound[0]!.port, 'jump hop-a');
      t.match(aLog(), directTcpipTo(B.port), "A forwarded a channel to B's port");
    });

    await t.test('TunnelInput.jump user@host:port', async (t) => {
      const aLog = logFrom(A);
      const { app, bound, logs } = await startSshkeep(t, {
        destination: 'target-b-direct',
        configFile: cfg,
        jump: `${A.user}@hop-a-bare:${A.port}`,
        localForwards: [forward],
      });
      await deadline(app.ready(), READY_MS, `tunnel ready\n${dump(logs)}`);
      await expectEcho(t, bound[0]!.port, 'jump user@hop-a-bare:port');
      t.match(aLog(), directTcpipTo(B.port), "A forwarded a channel to B's port");
    });

    await t.test('CLI -F cfg -J hop-a', async (t) => {
      const aLog = logFrom(A);
      const cli = spawnCliFor(t, ['-F', cfg, ...ISOLATED_NO_F, '-J', 'hop-a', '-L', forward, 'target-b-direct']);
      const listen = await cli.waitForLog(logIs('listen'), 10_000, 'listen line');
      await cli.waitForLog(logIs('state', { to: 'ready' }), READY_MS, 'state ready');
      await expectEcho(t, portOf(listen), 'CLI -J hop-a');
      t.match(aLog(), directTcpipTo(B.port), "A forwarded a channel to B's port");
      cli.kill('SIGTERM');
      t.equal((await cli.exited(10_000)).code, 0, 'exits 0 on SIGTERM');
    });
  });

  t.test('recursive ProxyJump: C via hop-b, hop-b via hop-a', async (t) => {
    const C = await startSshd(t, { extraConfig: DEBUG_LOG });
    const aLog = logFrom(A);
    const bLog = logFrom(B);
    const cfg = writeConfig(t, [
      hostBlock('hop-a', A),
      hostBlock('hop-b', B, ['ProxyJump hop-a']),
      hostBlock('target-c', C, ['ProxyJump hop-b']),
    ]);
    const { app, bound, logs } = await startSshkeep(t, { destination: 'target-c', configFile: cfg, localForwards: [forward] });
    await deadline(app.ready(), READY_MS, `tunnel ready\n${dump(logs)}\nA:\n${aLog()}\nB:\n${bLog()}\nC:\n${C.logs()}`);
    await expectEcho(t, bound[0]!.port, 'through A and B to C');
    t.match(aLog(), directTcpipTo(B.port), 'A carried the connection to B');
    t.notMatch(aLog(), directTcpipTo(C.port), 'A did not connect to C directly');
    t.match(bLog(), directTcpipTo(C.port), 'B carried the connection to C');
    t.notMatch(bLog(), directTcpipTo(echo.port), 'B did not open the forwarded connection');
    t.match(C.logs(), new RegExp(`Accepted publickey for ${C.user} from 127\\.0\\.0\\.1`), 'C authenticated the client');
    t.match(C.logs(), directTcpipTo(echo.port), 'C opened the forwarded connection');
    t.match((await logs.waitFor(stateTo('ready'), 1000, 'state ready')).reason, `127.0.0.1:${C.port}`, 'the session is the one with C');
  });

  t.test('host keys are checked per hop', async (t) => {
    await t.test("hop's known_hosts has another key for it: HostKeyError naming the hop", async (t) => {
      const bLog = logFrom(B);
      const wrong = knownHostsWith(t, A.port, B.hostPublicKey);
      const cfg = writeConfig(t, [hostBlock('hop-a', A, [], wrong), hostBlock('target-b', B, ['ProxyJump hop-a'])]);
      const { app } = await startSshkeep(t, { destination: 'target-b', configFile: cfg, localForwards: [forward] });
      const err = await rejectionOf(app.ready(), READY_MS, 'ready() to settle');
      t.ok(err instanceof HostKeyError, `a HostKeyError (${String(err)})`);
      t.match((err as Error).message, `[127.0.0.1]:${A.port}`, "names the hop's host and port");
      t.match((err as Error).message, /MISMATCH/, 'a mismatch');
      t.notMatch(bLog(), /Connection from/, 'B was never reached');

      const res = await runCli(['-F', cfg, ...ISOLATED_NO_F, '-L', forward, 'target-b']);
      t.equal(res.code, 3, 'CLI exits 3', { stderr: res.stderr });
      t.match(res.stderr, `[127.0.0.1]:${A.port}`, "CLI names the hop's host and port");
    });

    await t.test("hop trusted, target's known_hosts has another key: HostKeyError naming the target", async (t) => {
      const aLog = logFrom(A);
      const wrong = knownHostsWith(t, B.port, A.hostPublicKey);
      const cfg = writeConfig(t, [hostBlock('hop-a', A), hostBlock('target-b', B, ['ProxyJump hop-a'], wrong)]);
      const { app } = await startSshkeep(t, { destination: 'target-b', configFile: cfg, localForwards: [forward] });
      const err = await rejectionOf(app.ready(), READY_MS, 'ready() to settle');
      t.ok(err instanceof HostKeyError, `a HostKeyError (${String(err)})`);
      t.match((err as Error).message, `[127.0.0.1]:${B.port}`, "names the target's host and port");
      t.notMatch((err as Error).message, new RegExp(`\\]:${A.port}\\b`), 'not the hop');
      t.match(aLog(), directTcpipTo(B.port), 'the hop was trusted and carried the connection to B');
    });
  });

  t.test('a hop dying mid-session: clients reset, the chain is rebuilt from the first hop', async (t) => {
    const [a, b] = await Promise.all([startSshd(t), startSshd(t)]);
    const cfg = writeConfig(t, [hostBlock('hop-a', a), hostBlock('target-b', b, ['ProxyJump hop-a'])]);
    const { app, bound, logs } = await startSshkeep(t, {
      destination: 'target-b',
      configFile: cfg,
      localForwards: [forward],
      keepaliveInterval: '1s',
    });
    await deadline(app.ready(), READY_MS, `tunnel ready\n${dump(logs)}`);

    // A long-lived connection, proven open by one echo.
    const sock = await connect(bound[0]!.port);
    const end = outcome(sock, { closeOnEnd: true });
    const pong = new Promise<Buffer>((r) => sock.once('data', r));
    sock.write('ping');
    t.equal((await deadline(pong, 5000, 'ping echo')).toString(), 'ping', 'long-lived connection open');

    await a.kill();
    const out = await deadline(end, 5000, 'the open client to be cut');
    t.equal(out.ended, false, "no clean 'end' (a cut stream must not look complete)");
    t.equal(out.errorCode, 'ECONNRESET', 'client reset');
    // Lost with the hop at once, not noticed later by a silent heartbeat.
    const left = await logs.waitFor((l) => l.event === 'state' && l.from === 'ready', 5000, `tunnel to leave ready\n${dump(logs)}`);
    t.match(left, { to: 'reconnecting', reason: /^connection lost/ }, 'lost, not merely suspect');
    t.not(app.connection.state, 'ready', 'tunnel not ready while A is down');

    const aAgain = logFrom(a);
    const bAgain = logFrom(b);
    await a.restart();
    await logs.waitFor(stateTo('ready', (l) => Number(l.generation) >= 2), 15_000, `tunnel ready again\n${dump(logs)}`);
    t.ok(app.connection.generation >= 2, 'a new generation');
    await expectEcho(t, bound[0]!.port, 'after the hop came back');
    t.match(aAgain(), new RegExp(`Accepted publickey for ${a.user}`), 'the new chain authenticated to A again');
    t.match(bAgain(), new RegExp(`Accepted publickey for ${b.user}`), 'and to B over it');
  });

  t.test('heartbeat probes cross the chain: a frozen target with a live hop is suspected', async (t) => {
    const b = await startSshd(t);
    const cfg = writeConfig(t, [hostBlock('hop-a', A), hostBlock('target-b', b, ['ProxyJump hop-a'])]);
    const { app, logs } = await startSshkeep(t, { destination: 'target-b', configFile: cfg, localForwards: [forward], keepaliveInterval: '1s' });
    await deadline(app.ready(), READY_MS, `tunnel ready\n${dump(logs)}`);
    await logs.waitFor((l) => l.event === 'state' && l.to === 'ready', 1000, 'state ready');
    // Freeze B's session processes (not its listener): A keeps answering, B goes silent.
    const frozen = b.pids().slice(1);
    t.ok(frozen.length > 0, "B's session processes found");
    const signal = (sig: NodeJS.Signals) => frozen.forEach((p) => {
      try {
        process.kill(p, sig);
      } catch {}
    });
    signal('SIGSTOP');
    t.teardown(() => signal('SIGCONT'));
    const suspect = await logs.waitFor(stateTo('suspect'), 8000, `tunnel suspect\n${dump(logs)}`);
    t.match(suspect, { from: 'ready', generation: 1 }, 'the connection to B was suspected');
    signal('SIGCONT');
  });

  t.test('-J none ignores the configured ProxyJump and connects straight to the target', async (t) => {
    const [a, b] = await Promise.all([startSshd(t), startSshd(t)]);
    await a.kill(); // a route through A could not work
    const cfg = writeConfig(t, [hostBlock('hop-a', a), hostBlock('target-b', b, ['ProxyJump hop-a'])]);
    const bLog = logFrom(b);
    const { app, bound, logs } = await startSshkeep(t, { destination: 'target-b', configFile: cfg, jump: 'none', localForwards: [forward] });
    await deadline(app.ready(), READY_MS, `tunnel ready without A\n${dump(logs)}`);
    await expectEcho(t, bound[0]!.port, '-J none');
    t.match(bLog(), new RegExp(`Accepted publickey for ${b.user} from 127\\.0\\.0\\.1`), 'B authenticated the client directly');
    t.equal(app.connection.generation, 1, 'first attempt');
  });

  t.test('ProxyCommand', async (t) => {
    await t.test('from ssh_config, with %h %p %r %n: its stdio carries the connection, stderr is logged', async (t) => {
      const bLog = logFrom(B);
      const cfg = writeConfig(t, [hostBlock('target-b-pc', B, [`ProxyCommand ${process.execPath} ${RELAY} %h %p %r %n`])]);
      const { app, bound, logs } = await startSshkeep(t, { destination: 'target-b-pc', configFile: cfg, localForwards: [forward] });
      await deadline(app.ready(), READY_MS, `tunnel ready\n${dump(logs)}`);
      await expectEcho(t, bound[0]!.port, 'over ProxyCommand');
      const line = await logs.waitFor(
        (l) => l.event === 'proxy_command' && l.level === 'warn',
        5000,
        `the relay's stderr line\n${dump(logs)}`,
      );
      t.equal(line.msg, `ProxyCommand: stdio-relay: connected to 127.0.0.1:${B.port} ${B.user} target-b-pc`, 'stderr line logged, tokens expanded');
      t.match(bLog(), new RegExp(`Accepted publickey for ${B.user}`), 'B authenticated the client');
    });

    await t.test('-o ProxyCommand=...', async (t) => {
      const { app, bound, logs } = await startSshkeep(
        t,
        sshdInput(B, { options: [`ProxyCommand=${process.execPath} ${RELAY} %h %p`], localForwards: [forward] }),
      );
      await deadline(app.ready(), READY_MS, `tunnel ready\n${dump(logs)}`);
      await expectEcho(t, bound[0]!.port, 'over -o ProxyCommand');
      const line = await logs.waitFor((l) => l.event === 'proxy_command' && l.level === 'warn', 5000, "the relay's stderr line");
      t.equal(line.msg, `ProxyCommand: stdio-relay: connected to 127.0.0.1:${B.port}`, 'the command ran');
    });

    await t.test('a command that exits at once: its stderr is logged and the tunnel retries', async (t) => {
      const cfg = writeConfig(t, [hostBlock('target-b-bad', B, [`ProxyCommand sh -c 'echo oops-from-proxy >&2; exit 1'`])]);
      const { app, logs } = await startSshkeep(t, { destination: 'target-b-bad', configFile: cfg, localForwards: [forward] });
      let ready = false;
      app.ready().then(
        () => (ready = true),
        () => {},
      );
      const oops = (l: Line) => l.event === 'proxy_command' && l.level === 'warn' && l.msg === 'ProxyCommand: oops-from-proxy';
      await logs.waitFor(oops, 5000, `the command's stderr line\n${dump(logs)}`);
      await logs.waitFor(stateTo('reconnecting'), 5000, `tunnel reconnecting\n${dump(logs)}`);
      await logs.waitFor(() => logs.lines.filter(oops).length >= 2, 8000, `a second attempt ran the command again\n${dump(logs)}`);
      t.equal(ready, false, 'never ready');
      t.not(app.connection.state, 'ready', 'not ready');
      t.equal(app.connection.generation, 0, 'no connection made');
    });
  });
}

await main();
