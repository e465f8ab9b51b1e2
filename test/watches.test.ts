import t from 'tap';
import { Clock } from 'clock-mock';
import { watchForWake } from '../src/ssh/wake-watch.js';
import { watchNetwork } from '../src/ssh/network-watch.js';

t.test('wake watch – a wall-clock jump (laptop slept) is reported; punctual ticks are not', async (t) => {
  const clock = new Clock();
  t.teardown(clock.enter());
  let slept = 0;
  const wakes: number[] = [];
  const stop = watchForWake((ms) => wakes.push(ms), { mono: () => performance.now(), wall: () => Date.now() + slept });
  t.teardown(stop);
  for (let i = 0; i < 10; i++) clock.advance(1000); // one advance fires an interval once
  t.same(wakes, [], 'ten punctual ticks');
  slept = 60_000; // the monotonic clock stops during system suspend; the wall clock does not
  clock.advance(1000);
  t.equal(wakes.length, 1);
  t.ok(wakes[0]! >= 59_000, `reports the gap (${wakes[0]} ms)`);
});

t.test('wake watch – a late monotonic tick (process stopped) is reported', async (t) => {
  const clock = new Clock();
  t.teardown(clock.enter());
  let frozen = 0;
  const wakes: number[] = [];
  const stop = watchForWake((ms) => wakes.push(ms), { mono: () => performance.now() + frozen, wall: () => Date.now() });
  t.teardown(stop);
  frozen = 5_000;
  clock.advance(1000);
  t.equal(wakes.length, 1);
  stop();
  clock.advance(10_000);
  t.equal(wakes.length, 1, 'nothing after stop');
});

t.test('network watch – an address change is reported once', async (t) => {
  const clock = new Clock();
  t.teardown(clock.enter());
  let addrs = 'eth0/10.0.0.2';
  const changes: string[] = [];
  const stop = watchNetwork((before, after) => changes.push(`${before} -> ${after}`), undefined, () => addrs);
  t.teardown(stop);
  for (let i = 0; i < 5; i++) clock.advance(2000);
  t.same(changes, []);
  addrs = 'wlan0/192.168.1.5';
  clock.advance(2_000);
  clock.advance(2_000);
  t.same(changes, ['eth0/10.0.0.2 -> wlan0/192.168.1.5']);
});

t.test('network watch – a reading that fails (EMFILE: no file descriptor left for getifaddrs) is skipped, never thrown', async (t) => {
  const clock = new Clock();
  t.teardown(clock.enter());
  let addrs: string | Error = new Error('uv_interface_addresses returned Unknown system error 24');
  const changes: string[] = [];
  const read = () => {
    if (addrs instanceof Error) throw addrs;
    return addrs;
  };
  const unreadable: string[] = [];
  const stop = watchNetwork((before, after) => changes.push(`${before} -> ${after}`), (err) => unreadable.push(err.message), read);
  t.teardown(stop);
  t.same(unreadable, ['uv_interface_addresses returned Unknown system error 24'], 'told, not thrown');
  clock.advance(2_000);
  addrs = 'eth0/10.0.0.2';
  clock.advance(2_000);
  t.same(changes, [], 'the first reading that works is the baseline');
  addrs = new Error('EMFILE');
  clock.advance(2_000);
  addrs = 'wlan0/192.168.1.5';
  clock.advance(2_000);
  t.same(changes, ['eth0/10.0.0.2 -> wlan0/192.168.1.5'], 'compared with the last reading that worked');
});
