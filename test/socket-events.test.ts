import { EventEmitter, once } from 'node:events';
import fc from 'fast-check';
import t from 'tap';
import { SocketEvents } from '../src/socket-events.js';
import type { SocketEvent } from '../src/local-socket.js';

/**
 * SocketEvents (what a TcpClient emits with) against EventEmitter itself: the same steps on
 * both, listeners that add, remove and emit from inside an emit included, must call the same
 * listeners in the same order with the same `this` and argument, and throw where it throws.
 */

const EVENTS: SocketEvent[] = ['data', 'end', 'drain', 'finish', 'error', 'close'];

type Step =
  | { op: 'on' | 'once' | 'off'; event: SocketEvent; listener: number }
  | { op: 'emit'; event: SocketEvent };

/** A trace of calls on one emitter; the listeners' ids are the same for both emitters. */
function run(emitter: EventEmitter | SocketEvents, steps: Step[]): string[] {
  const trace: string[] = [];
  const e = emitter as SocketEvents; // both have these methods; EventEmitter's signatures are wider
  let depth = 0;
  const listeners: ((this: unknown, arg: unknown) => void)[] = [];
  const record = (id: number, self: unknown, arg: unknown) => trace.push(`${id}:${self === emitter ? 'this' : 'other'}:${String(arg)}`);
  // 0, 1: record; 2: removes 0; 3: adds 1; 4: emits its event again, one level deep; 5: once() of 0.
  listeners[0] = function (arg) { record(0, this, arg); };
  listeners[1] = function (arg) { record(1, this, arg); };
  const nested = (id: number, act: () => void) =>
    function (this: unknown, arg: unknown) {
      record(id, this, arg);
      act();
    };
  const make = (id: number, event: SocketEvent) => {
    if (id === 2) return nested(2, () => e.off(event, listeners[0]!));
    if (id === 3) return nested(3, () => e.on(event, listeners[1]!));
    if (id === 4) {
      return nested(4, () => {
        if (depth > 0) return;
        depth++;
        try {
          emitTraced(event, 'again');
        } finally {
          depth--;
        }
      });
    }
    return nested(5, () => e.once(event, listeners[0]!));
  };
  const byEvent = new Map<string, (this: unknown, arg: unknown) => void>();
  const listenerFor = (id: number, event: SocketEvent) => {
    if (id < 2) return listeners[id]!;
    const key = `${id}/${event}`;
    if (!byEvent.has(key)) byEvent.set(key, make(id, event));
    return byEvent.get(key)!;
  };
  const emitTraced = (event: SocketEvent, arg: string) => {
    try {
      trace.push(`emit ${event} -> ${e.emit(event, event === 'error' ? new Error(arg) : arg)}`);
    } catch (err) {
      trace.push(`emit ${event} threw ${(err as Error).message}`);
    }
  };
  for (const step of steps) {
    if (step.op === 'emit') emitTraced(step.event, 'x');
    else {
      e[step.op](step.event, listenerFor(step.listener, step.event));
      trace.push(`${step.op} ${step.event} ${step.listener}: ${e.listenerCount(step.event)}`);
    }
  }
  return trace;
}

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ op: fc.constantFrom('on' as const, 'once' as const, 'off' as const), event: fc.constantFrom(...EVENTS), listener: fc.integer({ min: 0, max: 5 }) }),
  fc.record({ op: fc.constant('emit' as const), event: fc.constantFrom(...EVENTS) }),
);

t.test('socket events – the same calls as EventEmitter, whatever listeners do while called', async (t) => {
  const details = fc.check(
    fc.property(fc.array(step, { maxLength: 40 }), (steps) => {
      const expected = run(new EventEmitter(), steps);
      const got = run(new SocketEvents(), steps);
      if (JSON.stringify(got) !== JSON.stringify(expected)) throw new Error(`got ${JSON.stringify(got)}, EventEmitter ${JSON.stringify(expected)}`);
    }),
    { seed: 42, numRuns: 2000 },
  );
  t.notOk(details.failed, details.failed ? `${fc.stringify(details.counterexample)}: ${String(details.errorInstance)}` : `${details.numRuns} runs`);
});

t.test('socket events – a once() listener runs once, and off() of the listener removes it before', async (t) => {
  const e = new SocketEvents();
  const calls: unknown[] = [];
  const l = (arg: unknown) => calls.push(arg);
  e.once('close', l);
  t.equal(e.listenerCount('close'), 1);
  e.emit('close', 1);
  e.emit('close', 2);
  t.same(calls, [1]);
  e.once('close', l);
  e.off('close', l);
  t.equal(e.emit('close', 3), false, 'no listener left');
  t.same(calls, [1]);
});

t.test("socket events – an 'error' with no listener throws it; another event without one is not an error", async (t) => {
  const e = new SocketEvents();
  const err = new Error('boom');
  t.throws(() => e.emit('error', err), err);
  t.equal(e.emit('end'), false);
  e.on('error', () => {});
  t.equal(e.emit('error', err), true);
});

t.test('socket events – an event a socket does not have is a named error, not a silent listener', async (t) => {
  const e = new SocketEvents();
  t.throws(() => e.on('connect' as SocketEvent, () => {}), { name: 'TypeError', message: "no 'connect' event: there are data, end, drain, finish, error and close" });
});

t.test('socket events – an event without an argument calls its listeners with none, as EventEmitter does', async (t) => {
  for (const e of [new EventEmitter(), new SocketEvents()] as SocketEvents[]) {
    const counts: number[] = [];
    e.on('end', (...args: unknown[]) => counts.push(args.length));
    e.once('end', (...args: unknown[]) => counts.push(args.length));
    e.on('close', (...args: unknown[]) => counts.push(args.length));
    const ended = once(e as unknown as EventEmitter, 'end');
    e.emit('end');
    e.emit('close', false);
    t.same(counts, [0, 0, 1], `${e.constructor.name}: no argument for 'end', one for 'close'`);
    t.same(await ended, [], `${e.constructor.name}: events.once resolves with no argument`);
  }
});

t.test("socket events – an 'error' with no listener and no Error still throws an Error", async (t) => {
  for (const e of [new EventEmitter(), new SocketEvents()] as SocketEvents[]) {
    t.throws(() => e.emit('error'), { message: /^Unhandled error\. \(undefined\)/ }, e.constructor.name);
  }
});

t.test('socket events – off() removes the one added last, as EventEmitter does', async (t) => {
  for (const e of [new EventEmitter(), new SocketEvents()] as SocketEvents[]) {
    const calls: string[] = [];
    const a = () => calls.push('a');
    const b = () => calls.push('b');
    e.on('data', a).on('data', b).on('data', a).off('data', a);
    e.emit('data');
    t.same(calls, ['a', 'b'], e.constructor.name);
  }
});
