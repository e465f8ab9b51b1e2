import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { queuedDeadline } from '../src/ssh/deadline.js';
import { REPO_ROOT } from './fixtures/bin.js';
import { deadline } from './fixtures/net.js';

/** Resolves with the order verdicts ran in once `count` of them have. */
function recorder(count: number) {
  const order: string[] = [];
  const firedAt = new Map<string, number>();
  let done!: () => void;
  const all = new Promise<void>((r) => (done = r));
  const verdict = (name: string) => () => {
    order.push(name);
    firedAt.set(name, performance.now());
    if (order.length === count) done();
  };
  return { order, firedAt, all, verdict };
}

t.test('deadlines of one duration run in the order they were set, cancelled ones not at all', async (t) => {
  const r = recorder(3);
  const setAt = performance.now();
  queuedDeadline(r.verdict('a'), 40);
  const cancelB = queuedDeadline(r.verdict('b'), 40);
  queuedDeadline(r.verdict('c'), 40);
  const cancelD = queuedDeadline(r.verdict('d'), 40);
  queuedDeadline(r.verdict('e'), 40);
  cancelB();
  cancelD();
  cancelD(); // twice: no harm
  await deadline(r.all, 5000, 'the verdicts');
  t.same(r.order, ['a', 'c', 'e'], 'b and d were cancelled; the list stayed linked around them');
  t.ok(r.firedAt.get('a')! - setAt >= 39, 'not before its time');
});

t.test('a deadline set later waits its own whole duration: the one timer is armed again for it', async (t) => {
  const first = recorder(1);
  queuedDeadline(first.verdict('first'), 60);
  await new Promise((r) => setTimeout(r, 30)); // the second is set half-way through the first's wait
  const second = recorder(1);
  const setAt = performance.now();
  queuedDeadline(second.verdict('second'), 60);
  await deadline(Promise.all([first.all, second.all]), 5000, 'both verdicts');
  // Not with the first (unless that one came late enough for both): never before its own time.
  t.ok(second.firedAt.get('second')! - setAt >= 59, `the second ran ${Math.round(second.firedAt.get('second')! - setAt)} ms after it was set`);
});

t.test('cancelling the oldest, or one already run, leaves the rest running; a new duration gets its own list', async (t) => {
  const r = recorder(3);
  const cancelOld = queuedDeadline(r.verdict('old'), 30);
  const ranEarly = recorder(1);
  const cancelRun = queuedDeadline(ranEarly.verdict('short'), 10);
  queuedDeadline(r.verdict('next'), 30);
  queuedDeadline(r.verdict('long'), 80);
  cancelOld();
  await deadline(ranEarly.all, 5000, 'the short one');
  cancelRun(); // after it ran: a no-op
  queuedDeadline(r.verdict('after'), 10);
  await deadline(r.all, 5000, 'the rest');
  // Durations do not wait on each other, but how they interleave is the timers' (a loaded machine delays any).
  t.same([...r.order].sort(), ['after', 'long', 'next'], 'the cancelled oldest skipped, the rest run');
  t.ok(r.firedAt.get('long')! > r.firedAt.get('next')!, "within one list's timing: the 80 ms one after the 30 ms one set before it");
});

t.test('cancelling the newest, then setting another, keeps those before it', async (t) => {
  const r = recorder(2);
  queuedDeadline(r.verdict('kept'), 20);
  queuedDeadline(r.verdict('cancelled'), 20)();
  queuedDeadline(r.verdict('added'), 20);
  await deadline(r.all, 5000, 'the verdicts');
  t.same(r.order, ['kept', 'added']);
});

t.test('a waiting deadline does not keep the process up (what it waits for does)', async (t) => {
  const timers = () => process.getActiveResourcesInfo().filter((k) => k === 'Timeout').length;
  const before = timers();
  const cancel = queuedDeadline(() => t.fail('cancelled: must not run'), 10_000);
  t.equal(timers(), before, 'no timer keeping the loop alive');
  cancel();
});

t.test('a verdict that throws does not stop the others due with it; the throw is still uncaught', async (t) => {
  // In a process of its own: tap takes an uncaught exception as the test's failure.
  const script = `
    import { queuedDeadline } from ${JSON.stringify(pathToFileURL(path.join(REPO_ROOT, 'dist/ssh/deadline.js')).href)};
    const ran = [];
    const up = setInterval(() => {}, 60_000); // the deadlines' timer is unref'd: this keeps the process up until all four are in
    const note = (what) => {
      ran.push(what);
      if (ran.length < 4) return;
      clearInterval(up);
      console.log(JSON.stringify(ran));
    };
    process.on('uncaughtException', (err) => note('uncaught ' + err.message));
    queuedDeadline(() => { note('a'); throw new Error('boom'); }, 10);
    queuedDeadline(() => note('b'), 10);
    queuedDeadline(() => note('c'), 10);
    // Set microseconds apart, the three would be due in two batches if the timer fired between
    // a's time and c's: the loop is held past all three, so that they are due together.
    const held = performance.now() + 30;
    while (performance.now() < held);
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 10_000 });
  t.equal(r.status, 0, r.stderr);
  t.same(JSON.parse(r.stdout), ['a', 'b', 'c', 'uncaught boom']);
});
