import { EventEmitter } from 'node:events';
import { setImmediate as tick } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { AuthError, ConnectError, HostKeyError } from '../src/errors.js';
import { createLogger, silentLogger, type LogFields, type Logger } from '../src/log.js';
import type { SshSession } from '../src/ssh/adapter.js';
import { SshConnection, type ConnectionState, type ConnectionStatus } from '../src/ssh/connection.js';
import { until } from './fixtures/net.js';
import { nextState } from './fixtures/status.js';
import { LogCapture } from './fixtures/tunnel.js';

/** Stands in for an SshSession: the connection only uses these members. */
class FakeSession extends EventEmitter<{ close: [reason: string] }> {
  closed = false;
  closeReason = '';
  ended = 0;
  destroyed = 0;
  constructor(readonly description: string) {
    super();
  }
  /** The connection drops, as ssh2 reports it. */
  drop(reason = 'connection reset'): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    this.emit('close', reason);
  }
  end(): void {
    this.ended++;
    setImmediate(() => this.drop('ended by client'));
  }
  destroy(): void {
    this.destroyed++;
    this.drop('destroyed');
  }
}

interface Gate {
  promise: Promise<FakeSession>;
  open(s: FakeSession): void;
  fail(e: Error): void;
  /** When true the dial does not give up on abort (a dial that ignores its signal). */
  ignoreAbort?: boolean;
}

function gate(ignoreAbort = false): Gate {
  let open!: (s: FakeSession) => void;
  let fail!: (e: Error) => void;
  const promise = new Promise<FakeSession>((res, rej) => {
    open = res;
    fail = rej;
  });
  return { promise, open, fail, ignoreAbort };
}

/** One scripted dial outcome: a session, an error, a gate the test opens, or 'hang' until aborted. */
type Step = FakeSession | Error | Gate | 'hang';

interface Dialer {
  dial(signal: AbortSignal): Promise<SshSession>;
  calls: number;
  inFlight: number;
  maxInFlight: number;
  signals: AbortSignal[];
}

function scriptedDial(steps: Step[]): Dialer {
  const d: Dialer = {
    calls: 0,
    inFlight: 0,
    maxInFlight: 0,
    signals: [],
    dial(signal) {
      d.calls++;
      d.inFlight++;
      d.maxInFlight = Math.max(d.maxInFlight, d.inFlight);
      d.signals.push(signal);
      const step = steps.shift() ?? 'hang';
      return new Promise<SshSession>((resolve, reject) => {
        let settled = false;
        const settle = (fn: () => void) => {
          if (settled) return;
          settled = true;
          d.inFlight--;
          signal.removeEventListener('abort', onAbort);
          fn();
        };
        const onAbort = () => settle(() => reject(new ConnectError('dial aborted')));
        const ignoresAbort = typeof step === 'object' && 'promise' in step && step.ignoreAbort === true;
        if (!ignoresAbort) {
          if (signal.aborted) return onAbort();
          signal.addEventListener('abort', onAbort);
        }
        if (step === 'hang') return;
        if (step instanceof Error) {
          setImmediate(() => settle(() => reject(step)));
        } else if (step instanceof FakeSession) {
          setImmediate(() => settle(() => resolve(step as unknown as SshSession)));
        } else {
          step.promise.then(
            (s) => settle(() => resolve(s as unknown as SshSession)),
            (e: Error) => settle(() => reject(e)),
          );
        }
      });
    },
  };
  return d;
}

const LEGAL: Record<ConnectionState, readonly ConnectionState[]> = {
  idle: ['connecting', 'closed'],
  connecting: ['ready', 'reconnecting', 'closed'],
  ready: ['suspect', 'reconnecting', 'closed'],
  suspect: ['ready', 'reconnecting', 'closed'],
  reconnecting: ['connecting', 'closed'],
  closed: [],
};

/** The tuning the composition root passes, for tests that do not look at it. */
const TUNING = { heldRetryCapMs: 250, outageSummaryMs: 30_000, refusedBackoff: () => 0 };

/** Every connection's status events, checked for legality by the last test in this file. */
const everyRun: { name: string; events: ConnectionStatus[] }[] = [];

/** A connection over `steps`, its recorded status events and fatal errors; stopped at teardown. */
function setup(t: Test, steps: Step[], extra: { backoff?: (n: number) => number; logger?: Logger } = {}) {
  const dialer = scriptedDial(steps);
  const connection = new SshConnection({ ...TUNING, dial: (s) => dialer.dial(s), logger: extra.logger ?? silentLogger, backoff: extra.backoff ?? (() => 0) });
  const events: ConnectionStatus[] = [];
  const fatals: Error[] = [];
  connection.on('status', (s) => events.push(s));
  connection.on('fatal', (e) => fatals.push(e));
  everyRun.push({ name: t.name, events });
  t.teardown(() => connection.stop('teardown'));
  return { connection, dialer, events, fatals };
}

const moves = (events: ConnectionStatus[]) => events.map((e) => `${e.from}>${e.to}`);

t.test('connection-state – whenReady (deprecated library API) gives the ready session, times out while down, rejects once closed', async (t) => {
  const s1 = new FakeSession('s1');
  const { connection } = setup(t, [s1, 'hang']);
  const first = connection.whenReady(5000);
  await connection.start();
  t.equal(await first, s1 as unknown as SshSession, 'a waiter gets the session when it is ready');
  t.equal(await connection.whenReady(0), s1 as unknown as SshSession, 'and at once while it is');
  const reconnecting = nextState(connection, 'reconnecting', 5000);
  s1.drop();
  await reconnecting;
  await t.rejects(connection.whenReady(20), /no SSH connection ready within 20 ms/, 'a deadline while the redial hangs');
  const aborted = new AbortController();
  const waiting = connection.whenReady(5000, aborted.signal);
  aborted.abort();
  await t.rejects(waiting, /no longer waiting/, 'an abort stops the wait');
  const pending = connection.whenReady(5000);
  await connection.stop('test');
  await t.rejects(pending, ConnectError, 'stop rejects a waiter');
  await t.rejects(connection.whenReady(0), ConnectError, 'a closed connection is never ready');
});


async function settle(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await tick();
}

t.test('connection-state – a new connection is idle with generation 0', async (t) => {
  const { connection, dialer } = setup(t, []);
  t.equal(connection.state, 'idle');
  t.equal(connection.generation, 0);
  t.equal(dialer.calls, 0, 'nothing dials before start()');
});

t.test('connection-state – idle → connecting → ready; start() resolves on the first ready', async (t) => {
  const s1 = new FakeSession('s1');
  const { connection, dialer, events, fatals } = setup(t, [s1]);
  const started = connection.start();
  t.equal(connection.state, 'connecting', 'connecting as soon as start() is called');
  t.equal(dialer.calls, 1);
  t.equal(await started, undefined);
  t.equal(connection.state, 'ready');
  t.equal(connection.generation, 1);
  t.strictSame(moves(events), ['idle>connecting', 'connecting>ready']);
  t.match(events[1], { type: 'state', from: 'connecting', to: 'ready', generation: 1 });
  t.match(events[1]!.reason, /s1/, 'the ready reason names the session');
  t.equal(connection.readySession, s1, 'new clients are given the ready session');
  t.strictSame(fatals, []);

  await connection.stop();
  t.equal(connection.state, 'closed');
  t.strictSame(moves(events), ['idle>connecting', 'connecting>ready', 'ready>closed']);
  t.equal(s1.ended, 1, 'stop() ends the session');
  t.equal(connection.readySession, undefined, 'a closed connection serves nobody');
  await t.rejects(connection.start(), ConnectError, 'a closed connection is never ready');
});

for (const ErrorClass of [HostKeyError, AuthError]) {
  t.test(`connection-state – ${ErrorClass.name} on the first connect is fatal`, async (t) => {
    const error = new ErrorClass('server said no');
    const { connection, dialer, events, fatals } = setup(t, [error, new FakeSession('never')]);
    let caught: unknown;
    await connection.start().catch((e: unknown) => (caught = e));
    t.equal(caught, error, 'start() rejects with that very error');
    t.equal(connection.state, 'closed');
    t.strictSame(fatals, [error], 'one fatal event with the error');
    t.strictSame(moves(events), ['idle>connecting', 'connecting>closed']);
    await settle();
    t.equal(dialer.calls, 1, 'not retried');
    await t.rejects(connection.start(), ConnectError);
  });
}

t.test('connection-state – a ConnectError (or any other error) on the first connect is retried', async (t) => {
  const s1 = new FakeSession('s1');
  const attempts: number[] = [];
  const { connection, dialer, events, fatals } = setup(t, [new ConnectError('ECONNREFUSED'), new Error('EHOSTUNREACH'), s1], {
    backoff: (n) => (attempts.push(n), 0),
  });
  await connection.start();
  t.equal(dialer.calls, 3, 'dialled again after each failure');
  t.equal(connection.state, 'ready');
  t.equal(connection.generation, 1);
  t.strictSame(attempts, [1, 2], 'backoff asked with growing attempt numbers');
  t.strictSame(moves(events), [
    'idle>connecting',
    'connecting>reconnecting',
    'reconnecting>connecting',
    'connecting>reconnecting',
    'reconnecting>connecting',
    'connecting>ready',
  ]);
  t.match(events[1]!.reason, /ECONNREFUSED/);
  t.strictSame(fatals, []);
});

t.test('connection-state – session close → reconnecting → new dial → ready, generation incremented', async (t) => {
  const s1 = new FakeSession('s1');
  const s2 = new FakeSession('s2');
  const { connection, dialer, events } = setup(t, [s1, s2]);
  await connection.start();
  t.equal(connection.generation, 1);

  const ready = nextState(connection, 'ready');
  s1.drop('keepalive timeout');
  t.equal(connection.state, 'connecting', 'redialling at once (first retry is immediate)');
  t.equal(dialer.calls, 2);
  const lost = events.find((e) => e.from === 'ready' && e.to === 'reconnecting');
  t.ok(lost, 'went through reconnecting');
  t.match(lost!.reason, /connection lost: keepalive timeout/);
  const status = await ready;
  t.equal(status.generation, 2);
  t.equal(connection.generation, 2);
  t.equal(connection.state, 'ready');
  t.equal(connection.readySession, s2, 'new clients are now given the new session');
  t.strictSame(moves(events), ['idle>connecting', 'connecting>ready', 'ready>reconnecting', 'reconnecting>connecting', 'connecting>ready']);
});

t.test('connection-state – since: an outage counts from its start, however often its retries flip between connecting and reconnecting', async (t) => {
  const s1 = new FakeSession('s1');
  const { connection, events } = setup(t, [s1, new ConnectError('ECONNREFUSED'), new ConnectError('ECONNREFUSED'), 'hang'], { backoff: () => 5 });
  await connection.start();
  const readySince = connection.since;
  s1.drop('keepalive timeout');
  const lostAt = connection.since;
  t.ok(lostAt >= readySince, 'leaving ready starts a new since');
  await until(() => moves(events).filter((m) => m === 'reconnecting>connecting').length >= 3, 5000, 'three retries');
  t.equal(connection.since, lostAt, 'unchanged through the retries');
});

t.test('connection-state – a close from a superseded session changes nothing', async (t) => {
  const s1 = new FakeSession('s1');
  const s2 = new FakeSession('s2');
  const { connection, dialer, events } = setup(t, [s1, s2, new FakeSession('s3')]);
  await connection.start();
  const ready = nextState(connection, 'ready');
  s1.drop();
  await ready;
  const before = events.length;

  s1.emit('close', 'late close from the old connection');
  await settle();
  t.equal(events.length, before, 'no status event');
  t.equal(connection.state, 'ready');
  t.equal(connection.generation, 2);
  t.equal(dialer.calls, 2, 'no new dial');
  t.equal(connection.readySession, s2, 'the current session is still s2');
});

t.test('connection-state – a hanging dial leaves the connection connecting, serving nobody, until stop() aborts it', async (t) => {
  const { connection, dialer } = setup(t, ['hang']);
  const started = connection.start();
  started.catch(() => {});
  await settle();
  t.equal(connection.state, 'connecting');
  t.equal(connection.readySession, undefined);
  t.equal(dialer.calls, 1);
  await connection.stop();
  t.equal(dialer.signals[0]!.aborted, true, 'stop() aborts the hanging dial');
  await t.rejects(started, ConnectError, 'start() is rejected by stop()');
});

t.test('connection-state – stop() during a pending dial resolves promptly; state closed', async (t) => {
  const { connection, dialer, events } = setup(t, ['hang']);
  const started = connection.start();
  started.catch(() => {});
  t.equal(dialer.calls, 1);
  const t0 = Date.now();
  await connection.stop('user asked');
  t.ok(Date.now() - t0 < 2000, 'promptly');
  t.equal(connection.state, 'closed');
  t.equal(dialer.inFlight, 0, 'the dial settled');
  t.strictSame(moves(events), ['idle>connecting', 'connecting>closed']);
  t.equal(events[1]!.reason, 'user asked');
  await t.rejects(started, /connection user asked/);
  await settle();
  t.equal(dialer.calls, 1, 'no dial after stop');
  await connection.stop();
  t.equal(events.length, 2, 'a second stop() is a no-op');
});

t.test('connection-state – stop() during the backoff sleep resolves promptly', async (t) => {
  const { connection, dialer } = setup(t, [new ConnectError('refused')], { backoff: () => 60_000 });
  connection.start().catch(() => {});
  await nextState(connection, 'reconnecting');
  const t0 = Date.now();
  await connection.stop();
  t.ok(Date.now() - t0 < 2000, 'did not wait out the 60 s backoff');
  t.equal(connection.state, 'closed');
  await settle();
  t.equal(dialer.calls, 1);
});

t.test('connection-state – a session that arrives after stop() is destroyed, never adopted', async (t) => {
  const g = gate(true);
  const late = new FakeSession('late');
  const { connection, events } = setup(t, [g]);
  connection.start().catch(() => {});
  const stopped = connection.stop();
  g.open(late);
  await stopped;
  t.equal(late.destroyed, 1);
  t.equal(connection.state, 'closed');
  t.equal(connection.generation, 0);
  t.notOk(events.some((e) => e.to === 'ready'), 'never ready');
});

t.test('connection-state – only one dial runs at a time', async (t) => {
  const s1 = new FakeSession('s1');
  const g2 = gate();
  const s2 = new FakeSession('s2');
  const { connection, dialer } = setup(t, [s1, g2, new FakeSession('s3'), new FakeSession('s4')]);

  const a = connection.start();
  const b = connection.start();
  t.equal(dialer.calls, 1, 'two start() calls share one dial');
  await Promise.all([a, b]);

  s1.emit('close', 'first');
  s1.emit('close', 'second');
  t.equal(dialer.calls, 2, 'two rapid closes cause one redial');
  const again = connection.start();
  t.equal(dialer.calls, 2, 'start() while redialling joins the running dial');
  const ready = nextState(connection, 'ready');
  g2.open(s2);
  await ready;
  await again;
  t.equal(connection.generation, 2);

  const ready3 = nextState(connection, 'ready');
  s2.emit('close', 'x');
  s2.emit('close', 'y');
  await ready3;
  t.equal(dialer.calls, 3);
  t.equal(connection.generation, 3);
  t.equal(dialer.maxInFlight, 1, 'never two dials in flight');
});

t.test('connection-state – auth and host-key failures after a good first connect are retried, not fatal', async (t) => {
  const s1 = new FakeSession('s1');
  const s2 = new FakeSession('s2');
  const errors: string[] = [];
  const logger: Logger = { ...silentLogger, error: (msg: string, f?: LogFields) => errors.push(`${msg}: ${String(f?.error)}`) };
  const { connection, dialer, events, fatals } = setup(t, [s1, new AuthError('key rotated'), new HostKeyError('host key changed'), s2], { logger });
  await connection.start();
  const ready = nextState(connection, 'ready');
  s1.drop();
  await ready;
  t.equal(connection.state, 'ready');
  t.equal(connection.generation, 2);
  t.equal(dialer.calls, 4);
  t.strictSame(fatals, [], 'no fatal event');
  t.equal(errors.length, 2, 'each failed attempt is logged as an error');
  t.match(errors[0], /key rotated/);
  t.match(errors[1], /host key changed/);
  t.strictSame(moves(events).slice(2), [
    'ready>reconnecting',
    'reconnecting>connecting',
    'connecting>reconnecting',
    'reconnecting>connecting',
    'connecting>reconnecting',
    'reconnecting>connecting',
    'connecting>ready',
  ]);
});

t.test('connection-state – backoff attempts keep counting across a short-lived connection', async (t) => {
  const attempts: number[] = [];
  const s1 = new FakeSession('s1');
  const { connection } = setup(t, [new ConnectError('a'), s1, new ConnectError('b'), new FakeSession('s2')], {
    backoff: (n) => (attempts.push(n), 0),
  });
  await connection.start();
  const ready = nextState(connection, 'ready');
  s1.drop();
  await ready;
  t.strictSame(attempts, [1, 2], 'a connection that dropped at once does not reset the backoff');
});

t.test('connection-state – a connection that stayed up 10 s resets the backoff', async (t) => {
  const attempts: number[] = [];
  const s1 = new FakeSession('s1');
  const { connection } = setup(t, [new ConnectError('a'), s1, new ConnectError('b'), new FakeSession('s2')], {
    backoff: (n) => (attempts.push(n), 0),
  });
  await connection.start();
  const realNow = Date.now;
  const later = realNow() + 11_000;
  Date.now = () => later;
  t.teardown(() => {
    Date.now = realNow;
  });
  const ready = nextState(connection, 'ready');
  s1.drop();
  Date.now = realNow;
  await ready;
  t.strictSame(attempts, [1, 1], 'counting starts over after a stable connection');
});

t.test('connection-state – a long story has only legal transitions and no self-transitions', async (t) => {
  const s1 = new FakeSession('s1');
  const s2 = new FakeSession('s2');
  const s3 = new FakeSession('s3');
  const { connection, events } = setup(t, [new ConnectError('x'), s1, new AuthError('y'), s2, s3]);
  await connection.start();
  let ready = nextState(connection, 'ready');
  s1.drop();
  await ready;
  ready = nextState(connection, 'ready');
  s2.drop();
  s1.emit('close', 'stale');
  await ready;
  await connection.stop();
  t.equal(connection.generation, 3);
  t.ok(events.length >= 10, `${events.length} events`);
  for (const [i, e] of events.entries()) {
    t.not(e.from, e.to, `event ${i}: ${e.from} -> ${e.to} is a move`);
    t.ok(LEGAL[e.from].includes(e.to), `event ${i}: ${e.from} -> ${e.to} is legal`);
    if (i > 0) t.equal(e.from, events[i - 1]!.to, `event ${i} starts where event ${i - 1} ended`);
  }
  t.equal(events.at(-1)!.to, 'closed');
});

// Regression: the dial loop used to clear its in-progress flag a few microtasks after
// announcing `ready`, so a close in that window started no redial and the connection hung in
// 'reconnecting'.
t.test(
  'connection-state – a close right after ready still redials',
  async (t) => {
    const s1 = new FakeSession('s1');
    const { connection, dialer } = setup(t, [s1, new FakeSession('s2')]);
    const ready = nextState(connection, 'ready');
    connection.start().catch(() => {});
    await ready;
    s1.drop('dropped at once');
    t.equal(dialer.calls, 2, 'a redial started');
    await nextState(connection, 'ready', 500).catch(() => {});
    t.equal(connection.state, 'ready', `recovered (state ${connection.state})`);
  },
);

t.test('connection-state – no connection in this file ever made an illegal or self transition', async (t) => {
  t.ok(everyRun.length >= 16, `${everyRun.length} tunnels observed`);
  let checked = 0;
  for (const { name, events } of everyRun) {
    for (const e of events) {
      checked++;
      if (e.from === e.to || !LEGAL[e.from].includes(e.to)) t.fail(`${name}: ${e.from} -> ${e.to}`);
    }
    if (events.length > 0) t.equal(events.at(-1)!.to, 'closed', `${name}: ends closed after stop()`);
  }
  t.ok(checked > 50, `${checked} transitions checked`);
});

/** A session whose server never answers probes: the heartbeat finds it silent. */
class SilentSession extends FakeSession {
  lastInboundAt(): number {
    return 0;
  }
  sendProbe(): void {}
}

/** A connection over `dialer` whose heartbeat suspects a link silent for 40 ms. */
function heartbeatConnection(dialer: Dialer): SshConnection {
  return new SshConnection({
    dial: (s) => dialer.dial(s),
    ...TUNING,
    logger: silentLogger,
    backoff: () => 0,
    heartbeat: { intervalMs: 20, timeoutMs: 20, graceMs: 10_000, onDemandQuietMs: 1000, adaptive: { minMs: 1000, maxMs: 10_000, initialMs: 3000 } },
  });
}

// Regression: a spare dialled while suspect that completed after the old connection closed
// made the illegal move reconnecting -> ready (an unhandled rejection that killed the CLI).
t.test('connection-state – a spare that completes after the silent connection closed is adopted legally', async (t) => {
  const old = new SilentSession('old');
  const spare = gate();
  const dialer = scriptedDial([old, spare]);
  const connection = heartbeatConnection(dialer);
  const events: ConnectionStatus[] = [];
  connection.on('status', (s) => events.push(s));
  t.teardown(() => connection.stop('teardown'));
  await connection.start();
  await nextState(connection, 'suspect', 2000);
  t.equal(dialer.calls, 2, 'a spare is being dialled');
  const reconnecting = nextState(connection, 'reconnecting', 2000);
  old.drop('reset by peer');
  await reconnecting;
  const ready = nextState(connection, 'ready', 2000);
  spare.open(new SilentSession('spare'));
  const s = await ready;
  t.equal(s.from, 'connecting', 'through connecting, as the table allows');
  t.equal(connection.state, 'ready');
  for (const e of events) t.ok(LEGAL[e.from].includes(e.to), `${e.from} -> ${e.to} is legal`);
});

t.test('connection-state – a suspect session keeps its pending opens; a spare taking its place supersedes it', async (t) => {
  const old = new SilentSession('old');
  const spare = gate();
  const dialer = scriptedDial([old, spare]);
  const connection = heartbeatConnection(dialer);
  t.teardown(() => connection.stop('teardown'));
  await connection.start();
  const signal = connection.supersededSignal(old as unknown as SshSession)!;
  t.ok(signal, 'the session in service has a signal');
  await nextState(connection, 'suspect', 2000);
  t.notOk(signal.aborted, 'suspect is not superseded: the session may answer yet');
  const ready = nextState(connection, 'ready', 2000);
  const s2 = new SilentSession('spare');
  spare.open(s2);
  await ready;
  t.ok(signal.aborted, 'superseded once the spare is in service');
  t.notOk(connection.supersededSignal(s2 as unknown as SshSession)!.aborted, 'the spare is not');
  t.equal(connection.supersededSignal(new SilentSession('stranger') as unknown as SshSession), undefined, 'nothing for a session of another connection');
});

/** Log lines of `logs` above debug, as "level msg". */
const loud = (logs: LogCapture) => logs.lines.filter((l) => l.level !== 'debug').map((l) => `${String(l.level)} ${String(l.msg)}`);

/** Date.now() moved by hand: each backoff call is 10 s of outage, so the 30 s summary is exercised as configured. */
function steppedClock(t: Test): { backoff: () => number } {
  const realNow = Date.now;
  let now = realNow();
  Date.now = () => now;
  t.teardown(() => {
    Date.now = realNow;
  });
  return { backoff: () => ((now += 10_000), 0) };
}

t.test('connection-state – an outage is logged once at warn, a summary every 30 s, and its end at info; every attempt at debug', async (t) => {
  const logs = new LogCapture();
  const { backoff } = steppedClock(t);
  const s1 = new FakeSession('s1');
  const failures = Array.from({ length: 7 }, (_, i) => new ConnectError(`refused ${i + 1}`));
  const { connection, events } = setup(t, [s1, ...failures, new FakeSession('s2')], { backoff, logger: createLogger('debug', 'json', logs) });
  await connection.start();
  const ready = nextState(connection, 'ready');
  s1.drop('reset by peer');
  await ready;
  t.strictSame(loud(logs), [
    'info idle -> connecting (start)',
    'info connecting -> ready (connected to s1)',
    'warn ready -> reconnecting (connection lost: reset by peer)',
    'warn still unreachable after 30 s, 3 attempts, last error: refused 3',
    'warn still unreachable after 60 s, 6 attempts, last error: refused 6',
    'info connecting -> ready (connected to s2): restored after 70.0 s, 8 attempts',
  ]);
  t.equal(logs.find('reconnect').length, 7, 'each failed attempt has its line');
  t.ok(logs.find('reconnect').every((l) => l.level === 'debug'), 'at debug');
  t.equal(logs.find('state').filter((l) => l.level === 'debug').length, 15, 'the connecting/reconnecting flapping at debug');
  t.equal(events.length, 2 + 1 + 15 + 1, 'every move is still a status event');
  t.match(logs.find('state').at(-1), { outageMs: 70_000, attempts: 8 });
});

t.test('connection-state – a failed first connect starts the outage at warn; its end says connected, not restored', async (t) => {
  const logs = new LogCapture();
  const { connection } = setup(t, [new ConnectError('refused'), new ConnectError('refused'), new FakeSession('s1')], {
    logger: createLogger('debug', 'json', logs),
  });
  await connection.start();
  t.match(loud(logs), [
    'info idle -> connecting (start)',
    'warn connecting -> reconnecting (refused)',
    /^info connecting -> ready \(connected to s1\): connected after \d+\.\d s, 3 attempts$/,
  ]);
  t.equal(loud(logs).length, 3);
});

t.test('connection-state – an auth failure after a good first connect is an error line once per message, not per attempt', async (t) => {
  const logs = new LogCapture();
  const s1 = new FakeSession('s1');
  const { connection } = setup(t, [s1, new AuthError('key rotated'), new AuthError('key rotated'), new AuthError('key rotated'), new FakeSession('s2')], {
    logger: createLogger('debug', 'json', logs),
  });
  await connection.start();
  const ready = nextState(connection, 'ready');
  s1.drop();
  await ready;
  const failed = logs.find('reconnect');
  t.strictSame(failed.map((l) => l.level), ['error', 'debug', 'debug']);
});

t.test('connection-state – a held client cuts a long backoff short, and keeps retries prompt while it waits', async (t) => {
  const delays: number[] = [];
  const { connection, dialer } = setup(t, [new ConnectError('a'), new ConnectError('b'), new ConnectError('c'), new FakeSession('s1')], {
    backoff: () => 60_000,
  });
  connection.start().catch(() => {});
  await until(() => dialer.calls === 1 && connection.state === 'reconnecting', 2000, 'the first failure');
  const slept = performance.now();
  const done = connection.clientWaiting();
  await until(() => dialer.calls === 2, 2000, 'a retry at once when a client is held');
  delays.push(performance.now() - slept);
  await nextState(connection, 'ready', 3000);
  t.ok(delays[0]! < 1000, `the 60 s sleep ended when the client came (${Math.round(delays[0]!)} ms)`);
  t.equal(dialer.calls, 4, 'the later retries came within the 250 ms cap, not 60 s');
  done();
  done();
});

t.test('connection-state – however many clients arrive during a backoff, dials stay one per held-retry cap', async (t) => {
  const steps: Step[] = Array.from({ length: 6 }, (_, i) => new ConnectError(`refused ${i}`));
  const { connection, dialer } = setup(t, [...steps, 'hang'], { backoff: () => 60_000 });
  const dialedAt: number[] = [];
  const dial = dialer.dial.bind(dialer);
  dialer.dial = (s) => (dialedAt.push(performance.now()), dial(s));
  connection.start().catch(() => {});
  await until(() => dialer.calls === 1 && connection.state === 'reconnecting', 2000, 'the first failure');
  const releases = Array.from({ length: 50 }, () => connection.clientWaiting()); // a pool opening 50 clients at once
  await until(() => dialer.calls === 5, 5000, 'four more dials');
  const gaps = dialedAt.slice(1).map((at, i) => at - dialedAt[i]!);
  t.ok(gaps.every((g) => g >= TUNING.heldRetryCapMs - 5), `no two dials closer than the cap (${gaps.map(Math.round).join(', ')} ms)`);
  for (const done of releases) done();
});

t.test('connection-state – refusals that need a person wait the refusal backoff, counted in a row; any other failure resets the count', async (t) => {
  const s1 = new FakeSession('s1');
  const dialer = scriptedDial([s1, new AuthError('no'), new HostKeyError('changed'), new ConnectError('refused'), new AuthError('no'), new FakeSession('s2')]);
  const refusals: number[] = [];
  const connection = new SshConnection({ ...TUNING, dial: (s) => dialer.dial(s), logger: silentLogger, backoff: () => 0, refusedBackoff: (n) => (refusals.push(n), 0) });
  t.teardown(() => connection.stop('teardown'));
  await connection.start();
  const ready = nextState(connection, 'ready', 5000);
  s1.drop();
  await ready;
  t.strictSame(refusals, [1, 2, 1], 'auth, host key: 1, 2; a plain connect failure in between resets the count');
});
