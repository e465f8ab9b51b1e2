import t, { type Test } from 'tap';
import { Clock } from 'clock-mock';
import { Heartbeat, type HeartbeatLink, type HeartbeatOptions } from '../src/ssh/heartbeat.js';
import { RttEstimator } from '../src/ssh/rtt.js';

/** A scripted link: probes are recorded; the test answers them and injects traffic. */
class FakeLink implements HeartbeatLink {
  last = performance.now();
  pending: (() => void)[] = [];
  sent = 0;
  lastInboundAt() {
    return this.last;
  }
  sendProbe(onReply: () => void) {
    this.sent++;
    this.pending.push(onReply);
  }
  /** The server answers every outstanding probe (and that is inbound traffic). */
  answer() {
    this.traffic();
    for (const r of this.pending.splice(0)) r();
  }
  traffic() {
    this.last = performance.now();
  }
}

/** Grace and on-demand quiet time long enough to stay out of the way unless a test sets them. */
const BOUNDS = { minMs: 1000, maxMs: 10_000, initialMs: 3000 };
const QUIET = { graceMs: 60_000, onDemandQuietMs: 1000, adaptive: BOUNDS };

function setup(t: Test, given: Partial<HeartbeatOptions> & { intervalMs: number }) {
  const options: HeartbeatOptions = { ...QUIET, ...given };
  const clock = new Clock();
  t.teardown(clock.enter());
  const link = new FakeLink();
  const hb = new Heartbeat(link, options);
  const events: string[] = [];
  hb.on('dead', (why) => events.push(`dead: ${why}`));
  hb.on('alive', () => events.push('alive'));
  hb.on('expired', (why) => events.push(`expired: ${why}`));
  hb.on('rtt', (ms) => events.push(`rtt ${Math.round(ms)}`));
  t.teardown(() => hb.stop());
  return { clock, link, hb, events };
}

t.test('heartbeat – the first probe measures the round trip', async (t) => {
  const { clock, link, hb, events } = setup(t, { intervalMs: 15_000 });
  hb.start();
  t.equal(link.sent, 1, 'a probe goes out at start');
  clock.advance(40);
  link.answer();
  t.same(events, ['rtt 40']);
  t.equal(hb.rtt.lastMs, 40);
});

t.test('heartbeat – any inbound traffic postpones probes; silence triggers one', async (t) => {
  const { clock, link, hb } = setup(t, { intervalMs: 1000 });
  hb.start();
  link.answer();
  for (let i = 0; i < 10; i++) {
    clock.advance(900);
    link.traffic(); // a busy link: data keeps arriving
  }
  t.equal(link.sent, 1, 'no probe while traffic flows');
  clock.advance(1000);
  t.equal(link.sent, 2, 'a probe after an interval of silence');
});

t.test('heartbeat – a missed adaptive deadline makes the link suspect; traffic brings it back', async (t) => {
  const { clock, link, hb, events } = setup(t, { intervalMs: 2000 });
  hb.start();
  clock.advance(10);
  link.answer(); // RTT 10 ms: the adaptive deadline is the 1 s floor
  t.equal(hb.probeTimeoutMs(), 1000);
  clock.advance(2000);
  t.equal(link.sent, 2, 'probe after 2 s of silence');
  clock.advance(999);
  t.same(events.filter((e) => e.startsWith('dead')), [], 'not yet');
  clock.advance(1);
  t.match(events.at(-1), /^dead: no reply to a probe/, 'suspect at interval + deadline');
  t.equal(hb.state, 'dead');
  clock.advance(500);
  t.equal(link.sent, 2, 'no probe while the last one may still be answered');
  clock.advance(500);
  t.equal(link.sent, 3, 'another probe each deadline while suspect: the first may have been lost');
  link.answer(); // the late reply arrives
  clock.advance(100);
  t.equal(events.at(-1), 'alive');
  t.not(hb.state, 'dead');
});

t.test('heartbeat – replies past their deadline still measure the round trip: a link that slowed after the start stops being suspected', async (t) => {
  const { clock, link, hb, events } = setup(t, { intervalMs: 15_000 });
  hb.start();
  clock.advance(20);
  link.answer(); // a fast start: the deadline goes to its 1 s floor
  t.equal(hb.probeTimeoutMs(), 1000);
  let suspected = 0;
  // The link now takes 1.2 s a round trip: each probe is answered after its deadline.
  for (let i = 0; i < 12 && hb.probeTimeoutMs() <= 1200; i++) {
    hb.probeNow('test');
    const deadline = hb.probeTimeoutMs();
    clock.advance(deadline);
    if (hb.state === 'dead') suspected++;
    clock.advance(1200 - deadline);
    link.answer();
    clock.advance(200); // the recovery poll sees the traffic: alive again
  }
  t.ok(hb.probeTimeoutMs() > 1200, `the deadline grew past the round trip (${hb.probeTimeoutMs()} ms) after ${suspected} suspicions`);
  t.ok(events.includes('rtt 1200'), 'late replies were sampled');
  hb.probeNow('test');
  clock.advance(1200);
  link.answer();
  t.equal(hb.state, 'watching', `a 1.2 s round trip is now answered in time (${events.join(', ')})`);
  t.equal(hb.rtt.isPlausible(10_001), false, 'a reply slower than the ceiling (an outage\'s) is not taken');
});

t.test('heartbeat – traffic that arrives after the probe counts as a reply', async (t) => {
  const { clock, link, hb, events } = setup(t, { intervalMs: 1000, timeoutMs: 500 });
  hb.start();
  clock.advance(100);
  link.traffic(); // bulk data, the reply is queued behind it
  clock.advance(500);
  t.notOk(events.some((e) => e.startsWith('dead')));
  t.not(hb.state, 'dead');
});

t.test('heartbeat – ServerAliveCountMax: one probe per interval, death after countMax unanswered (as OpenSSH)', async (t) => {
  const { clock, link, hb, events } = setup(t, { intervalMs: 1000, countMax: 3 });
  hb.start();
  link.answer();
  clock.advance(1000); // silence: probe 2 out
  clock.advance(1000); // miss 1; probe 3 out at once, its deadline the next interval
  t.equal(link.sent, 3);
  clock.advance(1000); // miss 2; probe 4 out
  clock.advance(999);
  t.not(hb.state, 'dead', 'two misses are not enough');
  clock.advance(1); // miss 3, four intervals after the last reply
  t.equal(hb.state, 'dead');
  t.match(events.at(-1), /no reply to 3 probes/);
});

t.test('heartbeat – ServerAliveCountMax with interval 0 falls back to the adaptive deadline', async (t) => {
  const { link, hb } = setup(t, { intervalMs: 0, countMax: 3 });
  t.equal(hb.probeTimeoutMs(), 3000, 'never a zero deadline');
  hb.start();
  link.answer();
  t.not(hb.state, 'dead');
});

t.test('heartbeat – probeNow sends at once, once', async (t) => {
  const { link, hb } = setup(t, { intervalMs: 15_000 });
  hb.start();
  link.answer();
  hb.probeNow('new client');
  hb.probeNow('another client');
  t.equal(link.sent, 2, 'one probe for both');
});

t.test('heartbeat – stop cancels every timer', async (t) => {
  const { clock, link, hb, events } = setup(t, { intervalMs: 1000 });
  hb.start();
  hb.stop();
  clock.advance(60_000);
  t.equal(link.sent, 1);
  t.same(events, []);
});

/** With interval 1000 and deadline 500: a second and a half of silence, a probe and its missed deadline. */
function silence(clock: Clock): void {
  clock.advance(1000); // silence: a probe
  clock.advance(500); // its deadline
}

t.test('heartbeat – state: watching, probing while a probe is out, dead past its deadline, stopped at the end', async (t) => {
  const { clock, link, hb } = setup(t, { intervalMs: 1000, timeoutMs: 500 });
  t.equal(hb.state, 'watching');
  hb.start();
  t.equal(hb.state, 'probing');
  link.answer();
  t.equal(hb.state, 'watching');
  silence(clock);
  t.equal(hb.state, 'dead');
  hb.stop();
  t.equal(hb.state, 'stopped');
});

t.test('heartbeat – a link dead for the whole grace period expires, once', async (t) => {
  const { clock, link, hb, events } = setup(t, { intervalMs: 1000, timeoutMs: 500, graceMs: 3000 });
  hb.start();
  link.answer();
  silence(clock);
  t.match(events.at(-1), /^dead:/);
  clock.advance(2999);
  t.notOk(events.some((e) => e.startsWith('expired')), 'not before the grace is over');
  clock.advance(1);
  t.match(events.at(-1), /^expired: no reply to a probe .*still silent after the 3000 ms grace period/);
  t.equal(hb.state, 'stopped', 'an expired heartbeat watches no more');
  clock.advance(60_000);
  t.equal(events.filter((e) => e.startsWith('expired')).length, 1);
});

t.test('heartbeat – traffic within the grace period: alive, and the grace starts over next time', async (t) => {
  const { clock, link, hb, events } = setup(t, { intervalMs: 1000, timeoutMs: 500, graceMs: 3000 });
  hb.start();
  link.answer();
  silence(clock);
  clock.advance(2000);
  link.answer();
  clock.advance(100);
  t.equal(events.at(-1), 'alive');
  silence(clock); // silent again
  t.equal(hb.state, 'dead');
  clock.advance(2999);
  t.notOk(events.some((e) => e.startsWith('expired')), 'a full grace again');
  clock.advance(1);
  t.match(events.at(-1), /^expired:/);
});

t.test('heartbeat – a last chance: one probe and one probe deadline to answer, not the whole grace', async (t) => {
  const { clock, link, hb, events } = setup(t, { intervalMs: 1000, timeoutMs: 500, graceMs: 60_000 });
  hb.start();
  link.answer();
  silence(clock);
  const sent = link.sent;
  hb.lastChance();
  t.equal(link.sent, sent + 1, 'a probe at once');
  clock.advance(499);
  t.notOk(events.some((e) => e.startsWith('expired')));
  clock.advance(1);
  t.match(events.at(-1), /^expired: still silent 500 ms after a spare took over/);
});

t.test('heartbeat – a last chance answered: alive, watched on', async (t) => {
  const { clock, link, hb, events } = setup(t, { intervalMs: 1000, timeoutMs: 500, graceMs: 60_000 });
  hb.start();
  link.answer();
  silence(clock);
  hb.lastChance();
  clock.advance(200);
  link.answer();
  clock.advance(100);
  t.equal(events.at(-1), 'alive');
  clock.advance(5000);
  t.notOk(events.some((e) => e.startsWith('expired')), 'the shortened deadline went with the silence');
});

t.test('heartbeat – a new client probes only a link quiet for longer than the on-demand quiet time', async (t) => {
  const { clock, link, hb } = setup(t, { intervalMs: 15_000, onDemandQuietMs: 1000 });
  hb.start();
  link.answer();
  clock.advance(1000);
  hb.noteNewClient();
  t.equal(link.sent, 1, 'not after exactly the quiet time');
  clock.advance(1);
  hb.noteNewClient();
  t.equal(link.sent, 2, 'a probe once it is longer');
});

t.test('rtt – smoothed like TCP and clamped to [1 s, 10 s]', async (t) => {
  const r = new RttEstimator(BOUNDS);
  t.equal(r.timeoutMs(), 3000, 'before any sample');
  r.sample(100);
  t.equal(r.smoothedMs, 100);
  t.equal(r.timeoutMs(), 1000, 'floor');
  r.sample(300);
  t.equal(r.smoothedMs, 125);
  r.sample(20_000);
  t.equal(r.timeoutMs(), 10_000, 'ceiling');
  const slow = new RttEstimator(BOUNDS);
  slow.sample(800);
  t.equal(slow.timeoutMs(), 800 + 4 * 400);
});

t.test('heartbeat – a probe that only its own reply answers: traffic read after it (a wake, a network change) does not count', async (t) => {
  const { clock, link, hb, events } = setup(t, { intervalMs: 600_000 });
  hb.start();
  clock.advance(10);
  link.answer(); // the 1 s adaptive floor from here on

  // Any probe: bytes read after it went out are taken as the link alive (its reply queued behind them).
  hb.probeNow('a new client');
  clock.advance(5);
  link.traffic();
  clock.advance(1000);
  t.same(events.filter((e) => e.startsWith('dead')), [], 'traffic after an ordinary probe: alive');
  link.pending.splice(0);

  // Woken: what is read just after the probe may have sat in the socket since before the sleep.
  hb.probeNow('woke from sleep', true);
  clock.advance(5);
  link.traffic();
  clock.advance(1000);
  t.match(events.filter((e) => e.startsWith('dead')), [/^dead: no reply to a probe \(woke from sleep\) within \d+ ms/], 'only its own reply would have done');
});

t.test('heartbeat – a wake while a probe is out: that probe too counts only its own reply', async (t) => {
  const { clock, link, hb, events } = setup(t, { intervalMs: 600_000 });
  hb.start();
  clock.advance(10);
  link.answer();
  hb.probeNow('a new client');
  clock.advance(5);
  hb.probeNow('woke from sleep', true);
  t.equal(link.sent, 2, 'no second probe while one is out');
  link.traffic();
  clock.advance(1000);
  t.match(events.filter((e) => e.startsWith('dead')), [/^dead: no reply to a probe \(a new client\)/], 'the bytes read after it did not answer it');
});

t.test('heartbeat – a dead link heard from just as its grace runs out (the loop blocked across it) recovers instead of expiring', async (t) => {
  const { clock, link, hb, events } = setup(t, { intervalMs: 1000, graceMs: 5000 });
  hb.start();
  clock.advance(10);
  link.answer();
  clock.advance(1000); // a probe after 1 s of silence
  clock.advance(1000); // unanswered: dead, 5 s of grace from here
  t.match(events.filter((e) => e.startsWith('dead')), [/^dead: /]);
  clock.advance(4999);
  // The server's bytes are read now, in the same turn as the grace timer (after it, libuv's
  // order after a blocked loop); no recovery poll runs in between.
  link.traffic();
  clock.advance(1);
  t.same(events.filter((e) => e.startsWith('expired')), [], 'not given up');
  t.ok(events.includes('alive'), 'alive again');
});
