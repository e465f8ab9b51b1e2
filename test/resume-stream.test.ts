import t from 'tap';
import fc from 'fast-check';
import { ACK_EVERY_BYTES, ReplayBudget, StreamState } from '../src/resume/stream.js';

const b = (s: string) => Buffer.from(s);

t.test('resume stream – acks free the replay buffer and the process budget', async (t) => {
  const budget = new ReplayBudget(1000);
  const s = new StreamState(8, budget);
  t.equal(s.send(b('hello')), 0);
  t.equal(s.send(b('world')), 5);
  t.equal(s.replayBytes, 10);
  t.equal(budget.usedBytes, 10);
  t.ok(s.full, 'over the per-stream limit: stop reading the client');
  s.onAck(7);
  t.equal(s.replayBytes, 3);
  t.equal(budget.usedBytes, 3);
  t.notOk(s.full);
  t.throws(() => s.onAck(11), { name: 'OffsetError' }, 'an ack beyond what was sent');
  s.release();
  t.equal(budget.usedBytes, 0);
});

t.test('resume stream – the process cap stops reading too', async (t) => {
  const budget = new ReplayBudget(6);
  const a = new StreamState(100, budget);
  const c = new StreamState(100, budget);
  a.send(b('abcd'));
  t.notOk(c.full);
  c.send(b('ef'));
  t.ok(a.full && c.full);
});

t.test('resume stream – a stream stopped by the process cap alone is woken when another frees room', async (t) => {
  const budget = new ReplayBudget(6);
  const a = new StreamState(100, budget);
  const c = new StreamState(100, budget);
  a.send(b('abcdef'));
  let woken = 0;
  c.whenBudgetRoom(() => woken++);
  a.onAck(2);
  t.equal(woken, 1, 'woken once the cap has room');
  a.onAck(4);
  t.equal(woken, 1, 'once only');
  const own = new StreamState(1, new ReplayBudget(100));
  own.send(b('xy'));
  own.whenBudgetRoom(() => woken++);
  t.equal(woken, 1, 'a stream full of its own bytes waits for its own acks instead');
});

t.test('resume stream – received bytes are delivered once, a gap is an offset error', async (t) => {
  const s = new StreamState(100, new ReplayBudget(100));
  t.same(s.onData(0, b('abc')), b('abc'));
  t.equal(s.onData(0, b('abc')), undefined, 'a whole resend delivers nothing');
  t.same(s.onData(1, b('bcde')), b('de'), 'an overlapping resend delivers only what is new');
  t.throws(() => s.onData(9, b('x')), { name: 'OffsetError' });
  t.equal(s.received, 5);
  t.ok(s.owesAck);
  t.equal(s.ack(), 5);
  t.notOk(s.owesAck);
  t.ok(s.onEof(5));
  t.equal(s.received, 6, 'EOF takes a number');
  t.notOk(s.onEof(5), 'a resent EOF is nothing new');
  t.throws(() => s.onData(6, b('x')), { name: 'OffsetError' }, 'no data after EOF');
});

t.test('resume stream – a bare ack is due every 256 KiB received', async (t) => {
  const s = new StreamState(100, new ReplayBudget(100));
  s.onData(0, Buffer.alloc(ACK_EVERY_BYTES - 1));
  t.notOk(s.ackDue);
  s.onData(ACK_EVERY_BYTES - 1, Buffer.alloc(1));
  t.ok(s.ackDue);
  s.send(b('x'));
  t.ok(s.ackDue, 'recording bytes to send acknowledges nothing');
  t.equal(s.ack(), ACK_EVERY_BYTES, 'the DATA frame carrying them takes the ack');
  t.notOk(s.ackDue, 'the ack rode on data');
});

/** What a sender frames from `from` (its replay buffer read with bytesAt(), at most `max` bytes a frame), as the pump does. */
function framesFrom(s: StreamState, from: number, max = 1 << 20): { offset: number; bytes: Buffer }[] {
  const frames: { offset: number; bytes: Buffer }[] = [];
  for (let offset = from; offset < s.sent; ) {
    const bytes = s.bytesAt(offset, max);
    frames.push({ offset, bytes });
    offset += bytes.length;
  }
  return frames;
}

t.test('resume stream – resuming resends from the peer offset, EOF included', async (t) => {
  const s = new StreamState(100, new ReplayBudget(100));
  s.send(b('abc'));
  s.send(b('def'));
  s.onAck(2);
  t.equal(s.sendEof(), 6);
  t.same(framesFrom(s, 2, 2).map((c) => [c.offset, c.bytes.toString()]), [[2, 'c'], [3, 'de'], [5, 'f']], 'at most 2 bytes a frame, none across chunks');
  t.throws(() => s.bytesAt(1, 2), 'below the replay buffer');
  t.throws(() => s.bytesAt(6, 2), 'at or beyond what was sent');
  const r = s.resumeFrom(4);
  t.same(framesFrom(s, 4).map((c) => [c.offset, c.bytes.toString()]), [[4, 'ef']]);
  t.ok(r.eof);
  t.throws(() => s.resumeFrom(3), { name: 'OffsetError' }, 'below what the buffer still holds');
  t.throws(() => s.resumeFrom(8), { name: 'OffsetError' }, 'beyond what was sent');
  const done = s.resumeFrom(7);
  t.same(done, { eof: false }, 'the peer has the EOF too');
  t.notOk(s.finished, 'the peer has not ended its direction');
  s.onEof(0);
  t.ok(s.finished);
});

t.test('resume stream – resends of any overlapping window deliver each byte exactly once', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 200 }), fc.array(fc.tuple(fc.nat(5), fc.boolean()), { maxLength: 40 }), (data, rounds) => {
      const sender = new StreamState(1 << 20, new ReplayBudget(1 << 20));
      const receiver = new StreamState(1 << 20, new ReplayBudget(1 << 20));
      const bytes = Buffer.from(data);
      for (let at = 0; at < bytes.length; at += 7) sender.send(bytes.subarray(at, at + 7));
      const got: Buffer[] = [];
      let acked = 0;
      const deliver = (chunks: { offset: number; bytes: Buffer }[]) => {
        for (const c of chunks) {
          const d = receiver.onData(c.offset, c.bytes);
          if (d) got.push(d);
        }
      };
      // Each round resends a prefix of what is unacknowledged (overlapping what arrived), and maybe acks.
      for (const [count, ack] of rounds) {
        sender.resumeFrom(acked);
        deliver(framesFrom(sender, acked, 5).slice(0, count));
        if (ack) sender.onAck((acked = receiver.ack()));
      }
      sender.resumeFrom(receiver.received);
      deliver(framesFrom(sender, receiver.received, 5));
      return Buffer.concat(got).equals(bytes);
    }),
  );
  t.pass('no byte lost or repeated');
});
