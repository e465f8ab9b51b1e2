/**
 * The CLI as a child process, the way a laptop lives: the process is suspended (SIGSTOP, as
 * a lid close or a debugger would), the network changes under it, and it is resumed.
 */
import t, { type Test } from 'tap';
import net from 'node:net';
import { connect, deadline, echoOn, roundTrip, startEchoFor, until } from './fixtures/net.js';
import { makeKeys, startRelay, startServer } from './fixtures/tunnel.js';
import { ISOLATED, logIs, portOf, spawnCliFor, type LogLine } from './fixtures/cli.js';

/** How long the process stays suspended: more than the wake watch's 2 s lateness threshold. */
const SUSPENDED_MS = 4000;

/** sshkeep through the fault relay to the in-process server, one -L to an echo target, ready and echoing once. */
async function startThroughRelay(t: Test, keepaliveInterval: string) {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const relay = await startRelay(t, keys, server);
  const echo = await startEchoFor(t);
  const targets: net.Socket[] = []; // the echo's side of each forwarded connection
  echo.server.on('connection', (s: net.Socket) => targets.push(s));
  const cli = spawnCliFor(t, [
    ...ISOLATED,
    '-p', String(relay.port),
    '-i', keys.identity,
    '-o', `UserKnownHostsFile=${keys.knownHosts}`,
    '--keepalive-interval', keepaliveInterval,
    '--log-level', 'debug',
    '-L', `0:127.0.0.1:${echo.port}`,
    'tester@127.0.0.1',
  ]);
  const port = portOf(await cli.waitForLog(logIs('listen'), 10_000, 'the listen line'));
  const first = await cli.waitForLog(logIs('state', { to: 'ready' }), 10_000, 'the tunnel to be ready');
  t.equal(first.generation, 1);
  const warm = await connect(port);
  t.equal((await deadline(roundTrip(warm, 'warm-up'), 5000, 'warm-up echo')).toString(), 'warm-up', 'tunnel works');
  return { relay, echo, cli, port, targets };
}

/** SIGSTOP for SUSPENDED_MS while `meanwhile` changes the world, then SIGCONT. */
async function suspend(t: Test, pid: number, meanwhile: () => unknown): Promise<void> {
  process.kill(pid, 'SIGSTOP');
  // Should an assertion fail while it is stopped, resume it so teardown's SIGKILL and exit wait are ordinary.
  t.teardown(() => {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {}
  });
  await meanwhile();
  // The scenario: the process stays suspended this long (a sleeping laptop); not a synchronisation.
  await new Promise((r) => setTimeout(r, SUSPENDED_MS));
  process.kill(pid, 'SIGCONT');
}

t.test('cli resilience – suspended while the link changed: on resume a spare takes over and a new client is served at once', async (t) => {
  const { relay, echo, cli, port } = await startThroughRelay(t, '2s');
  const linesBefore = cli.logs().length;
  // The link changed while it was stopped: the old flow is gone for good.
  await suspend(t, cli.child.pid!, () => relay.set('drop-existing'));

  const resumedAt = performance.now();
  const sock = await connect(port);
  const reply = await deadline(roundTrip(sock, 'right after resume'), 5000, `the echo after resume; stderr:\n${cli.stderr()}`);
  const took = performance.now() - resumedAt;
  t.equal(reply.toString(), 'right after resume', `client served ${Math.round(took)} ms after resume`);

  const replaced = await cli.waitForLog(
    (l) => l.event === 'state' && l.to === 'ready' && (/replaced/.test(String(l.reason)) || l.generation === 2),
    2000,
    'the spare to take over',
  );
  t.match(replaced, { from: 'suspect', generation: 2, reason: /replaced silent generation 1/ }, 'a spare replaced the dead connection');
  const after = cli.logs().slice(linesBefore);
  const suspect = after.find(logIs('state', { to: 'suspect' }));
  t.ok(suspect, 'the dead connection was found by a probe after resume', { suspect });
  t.comment(`suspect: ${String(suspect?.reason)}`);
  // Its last-chance probe deadline runs after the spare already serves: wait for it.
  t.ok(await cli.waitForLog(logIs('retire', { generation: 1 }), 15_000, 'the dead connection to be closed'), 'the dead connection was closed');
  t.same(
    after.filter((l: LogLine) => l.event === 'conn_end' && l.reset === true),
    [],
    'the new client was not reset (its channel open moved to the new connection)',
  );
  t.ok(relay.accepted >= 2, 'the spare went through the changed link');
  t.equal(echo.connections, 2, 'the warm-up and the new client reached the target');

  cli.kill('SIGTERM');
  const exit = await cli.exited(10_000);
  t.equal(exit.code, 0, 'SIGTERM: exit 0');
  t.ok(cli.logs().some(logIs('stopped')), 'a stopped line');
});

t.test('cli resilience – woken with no client and no keepalive due: the wake watch alone probes, and the dead link is replaced', async (t) => {
  // 10 min: no keepalive probe falls in this test, and no client comes after the suspension, so
  // only the wake can send one. The warm-up echo went after the initial round-trip probe, so that
  // probe's reply came first (SSH is in order): it cannot be the one left unanswered.
  const { relay, cli, port, targets } = await startThroughRelay(t, '10m');
  const open = await connect(port); // a client that stays: its target can still send
  await deadline(echoOn(open, 'still here'), 5000, 'the open client\'s echo');
  await suspend(t, cli.child.pid!, async () => {
    // Bytes that reach sshkeep's socket while it is stopped, before the link dies: on waking it
    // reads them just after its probe went out, and they are no reply to it.
    const before = relay.bytes().down;
    targets[1]!.write('sent before the link died');
    await until(() => relay.bytes().down > before, 5000, 'the bytes to reach the stopped sshkeep');
    relay.set('drop-existing');
  });

  const wake = await cli.waitForLog(logIs('wake'), 5000, 'the wake line');
  t.ok(Number(wake.pausedMs) >= SUSPENDED_MS - 1500, `away ${String(wake.pausedMs)} ms`);
  const suspect = await cli.waitForLog(logIs('state', { to: 'suspect' }), 15_000, 'the wake probe to go unanswered');
  t.match(suspect.reason, /timers fired \d+ ms late/, 'the probe that found the dead link was the wake\'s');
  t.ok(await cli.waitForLog(logIs('state', { to: 'ready', generation: 2 }), 15_000, 'a spare to take over'), 'a new connection through the changed link');
});
