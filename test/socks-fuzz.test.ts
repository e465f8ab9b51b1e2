import t from 'tap';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import net from 'node:net';
import { SocksParser, type SocksOptions, type SocksRequest, type Step } from '../src/forward/socks.js';

/**
 * Seeded, so a run is repeatable. A failure is still reported when the time
 * limit cuts its shrinking short: shrinking a 1200-byte input byte by byte can
 * take many minutes. Passing runs take about a second.
 */
const RUNS = { seed: 42, numRuns: 2000, interruptAfterTimeLimit: 30_000, markInterruptAsFailure: true };
/** The largest message, RFC 1929 auth, is 1 + 1 + 255 + 1 + 255 bytes; nothing may hold more while waiting. */
const MAX_BUFFERED = 600;

interface Outcome {
  /** Everything the parser asked to write, joined. */
  written: Buffer;
  step: Step;
}

/**
 * Feeds the chunks in order, as negotiateSocks does, and checks the parser's
 * invariants on the way. A request's rest includes the chunks never fed, so
 * outcomes of different chunkings of one input compare equal.
 */
function run(options: SocksOptions, chunks: Buffer[]): Outcome {
  const parser = new SocksParser(options);
  const written: Buffer[] = [];
  let step: Step = { type: 'more' };
  let fed = 0;
  while (step.type === 'more' && fed < chunks.length) {
    step = parser.feed(chunks[fed++]!);
    while (step.type === 'write') {
      written.push(step.data);
      step = parser.feed(Buffer.alloc(0));
    }
    if (step.type === 'more') assert.ok(parser.buffered <= MAX_BUFFERED, `${parser.buffered} bytes buffered`);
  }
  if (step.type !== 'more') assert.throws(() => parser.feed(Buffer.alloc(1)), /after the handshake ended/);
  if (step.type === 'request') step.request.rest = Buffer.concat([step.request.rest, ...chunks.slice(fed)]);
  return { written: Buffer.concat(written), step };
}

/** `bytes` cut at the given points (taken modulo its length + 1). */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  return [0, ...at].map((from, i) => bytes.subarray(from, at[i] ?? bytes.length));
}

/** Parses whole, in the given chunks and byte by byte: all three must agree. */
function parseEveryWay(options: SocksOptions, bytes: Buffer, cuts: number[]): Outcome {
  const whole = run(options, [bytes]);
  assert.deepStrictEqual(run(options, split(bytes, cuts)), whole);
  assert.deepStrictEqual(run(options, [...bytes].map((b) => Buffer.from([b]))), whole);
  return whole;
}

// Valid handshakes.

interface Handshake {
  options: SocksOptions;
  bytes: Buffer;
  expected: Omit<SocksRequest, 'rest'>;
}

const u8 = (n: number) => Buffer.from([n]);
const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
/** A length-prefixed field, as SOCKS5 names and RFC 1929 credentials are sent. */
const counted = (data: Buffer) => Buffer.concat([u8(data.length), data]);

const port = fc.integer({ min: 1, max: 65_535 });
const ipv4 = fc.ipV4();
const ipv4Bytes = (host: string) => Buffer.from(host.split('.').map(Number));
const domain = fc.string({
  unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)),
  minLength: 1,
  maxLength: 255,
});
/** A SOCKS4 user id: up to 255 bytes, no NUL. */
const userId = fc.uint8Array({ min: 1, max: 255, maxLength: 255 }).map((b) => Buffer.from(b));
/** A credential: 1 to 255 bytes once UTF-8 encoded. */
const credential = fc.string({ unit: 'binary', minLength: 1, maxLength: 60 }).filter((s) => Buffer.byteLength(s) <= 255);

/** SOCKS5 DST.ADDR with its ATYP, and the host the parser should report. */
const socks5Address = fc.oneof(
  ipv4.map((host) => ({ address: Buffer.concat([u8(1), ipv4Bytes(host)]), host })),
  fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => ({
    address: Buffer.concat([u8(4), b]),
    host: Array.from({ length: 8 }, (_, i) => ((b[2 * i]! << 8) | b[2 * i + 1]!).toString(16)).join(':'),
  })),
  domain.map((host) => ({ address: Buffer.concat([u8(3), counted(Buffer.from(host))]), host })),
);

/** A greeting offering `method` among others, anywhere in the list. */
const greeting = (method: number) =>
  fc
    .tuple(fc.uniqueArray(fc.integer({ min: 0, max: 255 }).filter((m) => m !== method), { maxLength: 12 }), fc.nat())
    .map(([methods, at]) => {
      methods.splice(at % (methods.length + 1), 0, method);
      return Buffer.concat([u8(5), counted(Buffer.from(methods))]);
    });

const socks5 = fc
  .record({ address: socks5Address, port, auth: fc.option(fc.record({ user: credential, pass: credential }), { nil: undefined }) })
  .chain(({ address, port, auth }) =>
    greeting(auth ? 2 : 0).map((hello): Handshake => {
      const request = Buffer.concat([Buffer.from([5, 1, 0]), address.address, u16(port)]);
      const login = auth ? [u8(1), counted(Buffer.from(auth.user)), counted(Buffer.from(auth.pass))] : [];
      const expected: Handshake['expected'] = { version: 5, target: { host: address.host, port } };
      if (auth) expected.user = auth.user;
      return { options: auth ? { auth } : {}, bytes: Buffer.concat([hello, ...login, request]), expected };
    }),
  );

const socks4 = fc
  .record({ host: ipv4.filter((h) => !h.startsWith('0.0.0.') || h === '0.0.0.0'), port, user: fc.option(userId) })
  .map(({ host, port, user }): Handshake => ({
    options: {},
    bytes: Buffer.concat([Buffer.from([4, 1]), u16(port), ipv4Bytes(host), user ?? Buffer.alloc(0), u8(0)]),
    expected: { version: 4, target: { host, port } },
  }));

const socks4a = fc
  .record({ host: domain, port, marker: fc.integer({ min: 1, max: 255 }), user: fc.option(userId) })
  .map(({ host, port, marker, user }): Handshake => ({
    options: {},
    bytes: Buffer.concat([Buffer.from([4, 1]), u16(port), Buffer.from([0, 0, 0, marker]), user ?? Buffer.alloc(0), u8(0), Buffer.from(host), u8(0)]),
    expected: { version: 4, target: { host, port } },
  }));

const handshake = fc.oneof(socks5, socks4, socks4a);
const cuts = fc.array(fc.nat(), { maxLength: 8 });
const bytes = (maxLength: number) => fc.uint8Array({ maxLength }).map((b) => Buffer.from(b));

/** IPv6 hosts may be written in several forms: compare the addresses, not the text. */
function sameHost(actual: string, expected: string): boolean {
  if (!net.isIPv6(expected)) return actual === expected;
  const list = new net.BlockList();
  list.addAddress(expected, 'ipv6');
  return net.isIPv6(actual) && list.check(actual, 'ipv6');
}

t.test('random bytes never throw, and give the same outcome however they are cut', async (t) => {
  // Starts that get random bytes past the first checks, into each phase.
  const starts = [[], [5], [5, 1, 0], [5, 2, 0, 2, 1], [5, 1, 0, 5, 1, 0], [5, 1, 0, 5, 1, 0, 3], [4], [4, 1], [4, 1, 0, 80, 0, 0, 0, 9]];
  // Long tails too (size 'max'), some without NUL or without non-printable bytes, to reach the length limits.
  const tail = fc.oneof(
    ...[{}, { min: 1 }, { min: 0x21, max: 0x7e }].map((range) => fc.uint8Array({ ...range, maxLength: 1200, size: 'max' })),
  );
  const input = fc.tuple(fc.constantFrom(...starts), tail).map(([start, tail]) => Buffer.concat([Buffer.from(start), tail]));
  const options = fc.constantFrom<SocksOptions>({}, { auth: { user: 'u', pass: 'p' } });
  fc.assert(
    fc.property(options, input, cuts, (options, input, cuts) => {
      parseEveryWay(options, input, cuts);
    }),
    RUNS,
  );
  t.pass(`${RUNS.numRuns} runs`);
});

t.test('valid handshakes parse to their target however they are cut', async (t) => {
  fc.assert(
    fc.property(handshake, bytes(64), cuts, ({ options, bytes, expected }, rest, cuts) => {
      const { step } = parseEveryWay(options, Buffer.concat([bytes, rest]), cuts);
      assert.equal(step.type, 'request', step.type === 'fail' ? step.reason : step.type);
      const { request } = step as Extract<Step, { type: 'request' }>;
      assert.ok(sameHost(request.target.host, expected.target.host), `${request.target.host} is ${expected.target.host}`);
      assert.deepStrictEqual({ ...request, target: { ...request.target, host: expected.target.host } }, { ...expected, rest });
    }),
    RUNS,
  );
  t.pass(`${RUNS.numRuns} runs`);
});

type Mutation = { flip: number; to: number } | { truncate: number } | { insert: number; data: Buffer };

function mutate(input: Buffer, mutations: Mutation[]): Buffer {
  let out = Buffer.from(input);
  for (const m of mutations) {
    if ('flip' in m) {
      if (out.length > 0) out[m.flip % out.length] = m.to;
    } else if ('truncate' in m) {
      out = out.subarray(0, m.truncate % (out.length + 1));
    } else {
      const at = m.insert % (out.length + 1);
      out = Buffer.concat([out.subarray(0, at), m.data, out.subarray(at)]);
    }
  }
  return out;
}

t.test('mutated valid handshakes never throw, and give the same outcome however they are cut', async (t) => {
  const mutation: fc.Arbitrary<Mutation> = fc.oneof(
    fc.record({ flip: fc.nat(), to: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ truncate: fc.nat() }),
    fc.record({ insert: fc.nat(), data: bytes(300) }),
  );
  fc.assert(
    fc.property(handshake, fc.array(mutation, { minLength: 1, maxLength: 4 }), cuts, ({ options, bytes }, mutations, cuts) => {
      parseEveryWay(options, mutate(bytes, mutations), cuts);
    }),
    RUNS,
  );
  t.pass(`${RUNS.numRuns} runs`);
});
