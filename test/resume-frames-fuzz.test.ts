import t from 'tap';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import { ERROR_CODE, FrameParser, MAX_DATA, MAX_PAYLOAD, encodeDataInto, encodeFrame } from '../src/resume/frames.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encodeFrames as encoded, frame, frameList as frames, fuzzTargets } from './fixtures/fuzz-properties.js';

/**
 * The frame codec of the resume protocol. The properties live in fixtures/fuzz-properties.ts,
 * shared with test/parsers-fuzz.test.ts's list and scripts/fuzz.ts (`npm run fuzz -- --only
 * resume-frames`); here they run seeded at more length, beside the cases that name each error.
 */
const RUNS = { seed: 42, numRuns: 1000, interruptAfterTimeLimit: 20_000, markInterruptAsFailure: true };

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sshkeep-fuzz-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

for (const target of fuzzTargets(dir).filter((target) => target.parser === 'resume-frames')) {
  t.test(target.name, async (t) => {
    fc.assert(fc.property(target.arbitrary, (input: unknown) => void target.check(input)), RUNS);
    t.pass(`${RUNS.numRuns} runs`);
  });
}

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

t.test('a DATA frame encoded into a reused buffer is the frame encodeFrame gives', async (t) => {
  const target = Buffer.alloc(64 * 1024, 0xee);
  fc.assert(
    fc.property(fc.maxSafeNat(), fc.maxSafeNat(), fc.uint8Array({ minLength: 1, maxLength: 2000 }), (offset, ack, bytes) => {
      const data = Buffer.from(bytes);
      const length = encodeDataInto(target, offset, ack, data);
      assert.deepStrictEqual(target.subarray(0, length), encodeFrame({ type: 'data', offset, ack, data }));
    }),
    RUNS,
  );
  t.throws(() => encodeDataInto(target, 0, 0, Buffer.alloc(0)), RangeError);
  t.throws(() => encodeDataInto(target, 2 ** 53, 0, Buffer.alloc(1)), RangeError);
  t.throws(() => encodeDataInto(target, 0, -1, Buffer.alloc(1)), RangeError);
});
