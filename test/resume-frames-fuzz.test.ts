import t from 'tap';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import { ERROR_CODE, FrameParser, HEADER_BYTES, MAX_DATA, MAX_PAYLOAD, encodeFrame, type Frame } from '../src/resume/frames.js';
import { bytes, cuts, mutate, mutation, split } from './fixtures/fuzz-properties.js';

/** Seeded, so a run is repeatable; a few seconds in all. */
const RUNS = { seed: 42, numRuns: 1000, interruptAfterTimeLimit: 20_000, markInterruptAsFailure: true };

interface Outcome {
  frames: Frame[];
  error: string | undefined;
}

/** Pushes the chunks in order, checking on the way that it never holds more than one frame. */
function run(chunks: Buffer[]): Outcome {
  const parser = new FrameParser();
  const frames: Frame[] = [];
  let error: string | undefined;
  for (const chunk of chunks) {
    const result = parser.push(chunk);
    frames.push(...result.frames);
    if (result.error !== undefined) {
      assert.ok(error === undefined || error === result.error, 'the error stays the same');
      assert.ok(result.error.trim() !== '' && !/[\r\n]/.test(result.error), `error message ${JSON.stringify(result.error)}`);
      if (error === undefined) error = result.error;
      else assert.equal(result.frames.length, 0, 'no frame after an error');
    }
    assert.ok(parser.buffered <= HEADER_BYTES + MAX_PAYLOAD, `${parser.buffered} bytes buffered`);
  }
  return { frames, error };
}

/** Whole, in the given chunks, and byte by byte: all three agree. */
function parseEveryWay(input: Buffer, at: number[]): Outcome {
  const whole = run([input]);
  assert.deepStrictEqual(run(split(input, at)), whole);
  if (input.length <= 4096) assert.deepStrictEqual(run([...input].map((b) => Buffer.from([b]))), whole);
  return whole;
}

const offset = fc.maxSafeNat();
const id = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Buffer.from(b));
const text = fc.string({ unit: 'grapheme', maxLength: 40 });

/** fc.record makes objects without a prototype; the parser's have Object's. */
const plain = <T extends Frame>(a: fc.Arbitrary<T>): fc.Arbitrary<Frame> => a.map((f) => ({ ...f }));
const frame: fc.Arbitrary<Frame> = fc.oneof(
  plain(fc.record({ type: fc.constant('open' as const), id, graceMs: fc.integer({ min: 0, max: 2 ** 32 - 1 }), port: fc.integer({ min: 1, max: 65535 }), host: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 60 }) })),
  plain(fc.record({ type: fc.constant('attach' as const), id, received: offset })),
  plain(fc.record({ type: fc.constant('accept' as const), received: offset })),
  plain(fc.record({ type: fc.constant('data' as const), offset: fc.integer({ min: 0, max: 2 ** 52 }), ack: offset, data: bytes(300).filter((b) => b.length > 0) })),
  plain(fc.record({ type: fc.constant('ack' as const), ack: offset })),
  plain(fc.record({ type: fc.constant('eof' as const), offset })),
  plain(fc.record({ type: fc.constant('reset' as const), offset, reason: text })),
  plain(fc.record({ type: fc.constant('error' as const), code: fc.integer({ min: 0, max: 255 }), message: text })),
  fc.constant({ type: 'goodbye' as const }),
  fc.constant({ type: 'ping' as const }),
  plain(fc.record({ type: fc.constant('pong' as const), version: fc.stringMatching(/^[0-9a-f]{12}$/), streams: fc.integer({ min: 0, max: 2 ** 32 - 1 }) })),
);
const frames = fc.array(frame, { minLength: 1, maxLength: 6 });
const encoded = (list: Frame[]) => Buffer.concat(list.map(encodeFrame));

t.test('random bytes never throw, and give the same outcome however they are cut', async (t) => {
  // Starts with a valid type byte and small lengths, so random payloads get decoded, not just refused by type.
  const input = fc
    .tuple(fc.integer({ min: 0, max: 12 }), fc.integer({ min: 0, max: 64 }), bytes(600))
    .map(([type, length, tail]) => Buffer.concat([Buffer.from([type, 0, 0, 0, length]), tail]));
  fc.assert(fc.property(fc.oneof(input, bytes(600)), cuts, (bytes, at) => void parseEveryWay(bytes, at)), RUNS);
  t.pass(`${RUNS.numRuns} runs`);
});

t.test('valid frames parse to themselves however they are cut', async (t) => {
  fc.assert(
    fc.property(frames, cuts, (list, at) => {
      assert.deepStrictEqual(parseEveryWay(encoded(list), at), { frames: list, error: undefined });
    }),
    RUNS,
  );
  t.pass(`${RUNS.numRuns} runs`);
});

t.test('mutated valid frames never throw, and give the same outcome however they are cut', async (t) => {
  fc.assert(
    fc.property(frames, fc.array(mutation, { minLength: 1, maxLength: 4 }), cuts, (list, mutations, at) => {
      parseEveryWay(mutate(encoded(list), mutations), at);
    }),
    RUNS,
  );
  t.pass(`${RUNS.numRuns} runs`);
});

t.test('a truncated frame waits, then completes: frames before it come out at once', async (t) => {
  fc.assert(
    fc.property(frames, frame, fc.nat(), (before, last, cut) => {
      const whole = encodeFrame(last);
      const at = cut % whole.length; // at least one byte missing
      const parser = new FrameParser();
      assert.deepStrictEqual(parser.push(Buffer.concat([encoded(before), whole.subarray(0, at)])), { frames: before });
      assert.equal(parser.buffered, at);
      assert.deepStrictEqual(parser.push(whole.subarray(at)), { frames: [last] });
      assert.equal(parser.buffered, 0);
    }),
    RUNS,
  );
  t.pass(`${RUNS.numRuns} runs`);
});

t.test('a huge declared length is an error from its header alone, whatever follows', async (t) => {
  for (const length of [MAX_PAYLOAD + 1, 2 ** 31, 2 ** 32 - 1]) {
    const header = Buffer.from([4, 0, 0, 0, 0]);
    header.writeUInt32BE(length, 1);
    const parser = new FrameParser();
    const result = parser.push(header);
    t.match(result, { frames: [], error: /DATA frame declares \d+ bytes, over the limit of 1048576/ }, `${length}`);
    t.equal(parser.buffered, 0, 'nothing held');
    t.same(parser.push(Buffer.alloc(1000)), { frames: [], error: result.error }, 'later bytes are ignored');
  }
  const exact = new FrameParser().push(encodeFrame({ type: 'data', offset: 0, ack: 0, data: Buffer.alloc(MAX_DATA, 7) }));
  t.equal(exact.frames.length, 1, 'a frame of exactly the limit parses');
});

t.test('malformed payloads are named errors', async (t) => {
  const frameOf = (type: number, payload: number[] | Buffer) => Buffer.concat([Buffer.from([type, 0, 0, 0, payload.length]), Buffer.from(payload)]);
  const cases: [string, Buffer, RegExp][] = [
    ['unknown type', frameOf(0, []), /unknown frame type 0/],
    ['unknown type 12', frameOf(12, []), /unknown frame type 12/],
    ['short ATTACH', frameOf(2, Buffer.alloc(23)), /ATTACH payload of 23 bytes is too short for its received offset/],
    ['long ACK', frameOf(5, Buffer.alloc(9)), /ACK payload of 9 bytes is longer than its 8/],
    ['empty DATA', frameOf(4, Buffer.alloc(16)), /DATA without a byte/],
    ['offset beyond 2^53', frameOf(6, [0x00, 0x20, 0, 0, 0, 0, 0, 0]), /EOF offset 9007199254740992 is beyond 2\^53-1/],
    ['OPEN of port 0', frameOf(1, [...Buffer.alloc(20), 0, 0, 0x61]), /OPEN of port 0/],
    ['OPEN without host', frameOf(1, [...Buffer.alloc(20), 0, 22]), /OPEN with an empty host/],
    ['host not UTF-8', frameOf(1, [...Buffer.alloc(20), 0, 22, 0xff]), /OPEN host is not UTF-8/],
    ['PING with a payload', frameOf(10, [1]), /PING payload of 1 bytes is longer than its 0/],
    ['short PONG', frameOf(11, [1, 2, 3]), /PONG payload of 3 bytes is too short/],
    ['ERROR without code', frameOf(8, []), /ERROR payload of 0 bytes is too short for its code/],
  ];
  for (const [name, input, expected] of cases) t.match(new FrameParser().push(input), { frames: [], error: expected }, name);
});

t.test('the encoder refuses values the wire cannot carry', async (t) => {
  t.throws(() => encodeFrame({ type: 'data', offset: 0, ack: 0, data: Buffer.alloc(0) }), RangeError);
  t.throws(() => encodeFrame({ type: 'data', offset: 0, ack: 0, data: Buffer.alloc(MAX_DATA + 1) }), RangeError);
  t.throws(() => encodeFrame({ type: 'ack', ack: -1 }), RangeError);
  t.throws(() => encodeFrame({ type: 'eof', offset: 2 ** 53 }), RangeError);
  t.throws(() => encodeFrame({ type: 'attach', id: Buffer.alloc(15), received: 0 }), RangeError);
  t.throws(() => encodeFrame({ type: 'open', id: Buffer.alloc(16), graceMs: 1, port: 0, host: 'h' }), RangeError);
  t.same(encodeFrame({ type: 'error', code: ERROR_CODE.offset, message: 'x' }), Buffer.from([8, 0, 0, 0, 2, 3, 0x78]));
  t.same(encodeFrame({ type: 'ack', ack: 2 ** 40 + 1 }), Buffer.from([5, 0, 0, 0, 8, 0, 0, 1, 0, 0, 0, 0, 1]));
});
