import t from 'tap';
import fc from 'fast-check';
import { ByteRing, READ_BYTES, RING_MIN_BYTES } from '../src/resume/ring.js';

const KIB = 1024;

/** `n` bytes numbered from `from` (mod 251, so no two nearby runs look alike). */
const bytes = (from: number, n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (from + i) % 251));

/** Everything the ring holds from `at`, read view by view as the pump reads it. */
function readAll(ring: ByteRing, at = 0, max = Infinity): Buffer[] {
  const views: Buffer[] = [];
  while (at < ring.length) {
    const v = ring.view(at, max);
    views.push(v);
    at += v.length;
  }
  return views;
}

t.test('resume ring – bytes written past the end wrap to the start; a view stops at the end', async (t) => {
  const ring = new ByteRing(1024 * KIB);
  ring.push(bytes(0, 10 * KIB));
  ring.drop(8 * KIB);
  ring.push(bytes(10 * KIB, 10 * KIB));
  t.equal(ring.capacity, RING_MIN_BYTES, 'room was found at the start: no growth');
  t.equal(ring.length, 12 * KIB);
  const views = readAll(ring);
  t.same(
    views.map((v) => v.length),
    [RING_MIN_BYTES - 8 * KIB, 12 * KIB - (RING_MIN_BYTES - 8 * KIB)],
    'two views: to the end, then from the start',
  );
  t.ok(Buffer.concat(views).equals(bytes(8 * KIB, 12 * KIB)), 'in order');
  t.ok(ring.view(3 * KIB, 2 * KIB).equals(bytes(11 * KIB, 2 * KIB)), 'a view at most `max` long');
  ring.drop(10 * KIB);
  t.ok(Buffer.concat(readAll(ring)).equals(bytes(18 * KIB, 2 * KIB)), 'an ack across the wrap point leaves the rest from the start');
});

t.test('resume ring – growth doubles up to the limit and one read, then takes what is needed, keeping the order of a wrapped ring', async (t) => {
  const ring = new ByteRing(40 * KIB);
  ring.push(bytes(0, 12 * KIB));
  ring.drop(10 * KIB);
  ring.push(bytes(12 * KIB, 12 * KIB)); // wraps
  ring.push(bytes(24 * KIB, 4 * KIB)); // 18 KiB held: grows while wrapped
  t.equal(ring.capacity, 2 * RING_MIN_BYTES, 'doubled');
  t.ok(Buffer.concat(readAll(ring)).equals(bytes(10 * KIB, 18 * KIB)), 'the wrapped bytes kept their order');
  ring.push(bytes(28 * KIB, 16 * KIB));
  t.equal(ring.capacity, 40 * KIB + READ_BYTES, 'doubling stops at the limit plus one read, what a full stream may hold');
  ring.push(bytes(44 * KIB, 40 * KIB + READ_BYTES - 34 * KIB));
  t.equal(ring.capacity, 40 * KIB + READ_BYTES, 'filled without growing');
  ring.push(bytes(50 * KIB + READ_BYTES, 1));
  t.equal(ring.capacity, 40 * KIB + READ_BYTES + 1, 'beyond that: only what is needed');
  t.ok(Buffer.concat(readAll(ring)).equals(bytes(10 * KIB, 40 * KIB + READ_BYTES + 1)));
  const first = new ByteRing(1024 * KIB);
  first.push(bytes(0, 64 * KIB));
  t.equal(first.capacity, 64 * KIB, 'a first read larger than the start size is taken whole');
});

t.test('resume ring – an emptied large ring is given back, a small one kept', async (t) => {
  const ring = new ByteRing(1024 * KIB);
  ring.push(bytes(0, 100));
  ring.drop(60);
  ring.drop(40);
  t.equal(ring.capacity, RING_MIN_BYTES, 'a small ring stays for the next bytes');
  ring.push(bytes(0, RING_MIN_BYTES));
  t.ok(ring.view(0, Infinity).equals(bytes(0, RING_MIN_BYTES)), 'an emptied ring starts again at its start: one view');
  ring.push(bytes(0, 1));
  t.equal(ring.capacity, 2 * RING_MIN_BYTES);
  ring.drop(RING_MIN_BYTES);
  t.equal(ring.capacity, 2 * RING_MIN_BYTES, 'kept while it holds bytes');
  ring.drop(1);
  t.equal(ring.capacity, 0, 'given back once empty');
  ring.push(bytes(5, 3));
  t.equal(ring.capacity, RING_MIN_BYTES, 'a new small ring for the next bytes');
  ring.clear();
  t.equal(ring.length, 0);
  t.equal(ring.capacity, 0, 'clear() gives it back too');
});

t.test('resume ring – any sequence of pushes, drops and reads returns the bytes pushed, in order', async (t) => {
  const op = fc.oneof(fc.record({ push: fc.nat(20 * KIB) }), fc.record({ drop: fc.double({ min: 0, max: 1, noNaN: true }) }));
  fc.assert(
    fc.property(fc.array(op, { maxLength: 30 }), fc.integer({ min: 1, max: 9 * KIB }), (ops, max) => {
      const ring = new ByteRing(24 * KIB);
      let dropped = 0;
      let pushed = 0;
      for (const o of ops) {
        if ('push' in o) {
          ring.push(bytes(pushed, o.push));
          pushed += o.push;
        } else {
          const n = Math.floor(o.drop * ring.length);
          ring.drop(n);
          dropped += n;
        }
        if (ring.length !== pushed - dropped) return false;
        const from = Math.floor(ring.length / 3);
        const views = readAll(ring, from, max);
        if (views.some((v) => v.length === 0 || v.length > max)) return false;
        if (!Buffer.concat(views).equals(bytes(dropped + from, ring.length - from))) return false;
      }
      return true;
    }),
  );
  t.pass('no byte lost, repeated or out of order');
});
