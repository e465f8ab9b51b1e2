import t from 'tap';
import ssh2 from 'ssh2';
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  appendKnownHost,
  fingerprintSha256,
  keyTypeOf,
  knownHostName,
  knownKeyTypes,
  lookupHostKey,
} from '../src/ssh/known-hosts.js';

interface TestKey {
  /** "type base64" as it appears in known_hosts and .pub files. */
  pub: string;
  blob: Buffer;
}

function makeKey(type: 'ed25519' | 'ecdsa' | 'rsa'): TestKey {
  const pair =
    type === 'ecdsa'
      ? ssh2.utils.generateKeyPairSync('ecdsa', { bits: 256 })
      : type === 'rsa'
        ? ssh2.utils.generateKeyPairSync('rsa', { bits: 2048 })
        : ssh2.utils.generateKeyPairSync('ed25519');
  const parsed = ssh2.utils.parseKey(pair.public);
  if (parsed instanceof Error) throw parsed;
  const blob = parsed.getPublicSSH();
  return { pub: `${keyTypeOf(blob)} ${blob.toString('base64')}`, blob };
}

const ed = makeKey('ed25519');
const ed2 = makeKey('ed25519');
const ec = makeKey('ecdsa');
const rsa = makeKey('rsa');

t.test('known-hosts – knownHostName follows OpenSSH naming', async (t) => {
  t.equal(knownHostName('Example.COM', 22), 'example.com');
  t.equal(knownHostName('example.com', 2222), '[example.com]:2222');
  t.equal(knownHostName('::1', 22), '::1');
  t.equal(knownHostName('::1', 2222), '[::1]:2222');
  t.equal(knownHostName('[::1]', 2222), '[::1]:2222');
});

t.test('known-hosts – keyTypeOf reads the blob type', async (t) => {
  t.equal(keyTypeOf(ed.blob), 'ssh-ed25519');
  t.equal(keyTypeOf(ec.blob), 'ecdsa-sha2-nistp256');
  t.equal(keyTypeOf(rsa.blob), 'ssh-rsa');
  t.throws(() => keyTypeOf(Buffer.from([0, 0, 0, 9, 0x61])));
});

t.test('known-hosts – plain entry matches', async (t) => {
  const dir = t.testdir({ kh: `example.com ${ed.pub}\n` });
  const file = join(dir, 'kh');
  t.same(lookupHostKey([file], ['example.com'], ed.blob), { status: 'match', at: { file, line: 1 } });
  // Host matching is case-insensitive in both directions.
  t.equal(lookupHostKey([file], ['EXAMPLE.com'], ed.blob).status, 'match');
  t.equal(lookupHostKey([file], ['other.com'], ed.blob).status, 'unknown');
});

t.test('known-hosts – [host]:port entry matches only that port', async (t) => {
  const dir = t.testdir({ kh: `[127.0.0.1]:2222 ${ed.pub}\n` });
  const file = join(dir, 'kh');
  t.equal(lookupHostKey([file], [knownHostName('127.0.0.1', 2222)], ed.blob).status, 'match');
  t.equal(lookupHostKey([file], [knownHostName('127.0.0.1', 22)], ed.blob).status, 'unknown');
  t.equal(lookupHostKey([file], [knownHostName('127.0.0.1', 2223)], ed.blob).status, 'unknown');
});

t.test('known-hosts – changed key is a mismatch naming file and line', async (t) => {
  const dir = t.testdir({ kh: `# header\nother.com ${ed.pub}\nexample.com ${ec.pub}\nexample.com ${ed2.pub}\n` });
  const file = join(dir, 'kh');
  t.same(lookupHostKey([file], ['example.com'], ed.blob), {
    status: 'mismatch',
    at: { file, line: 4 },
    knownType: 'ssh-ed25519',
  });
});

t.test('known-hosts – a matching line wins over an earlier different key of the same type', async (t) => {
  const dir = t.testdir({ kh: `example.com ${ed2.pub}\nexample.com ${ed.pub}\n` });
  const file = join(dir, 'kh');
  t.same(lookupHostKey([file], ['example.com'], ed.blob), { status: 'match', at: { file, line: 2 } });
});

t.test('known-hosts – unknown type reports the other known types', async (t) => {
  const dir = t.testdir({ kh: `example.com ${ec.pub}\nexample.com ${rsa.pub}\nexample.com ${ec.pub}\n` });
  const file = join(dir, 'kh');
  t.same(lookupHostKey([file], ['example.com'], ed.blob), {
    status: 'unknown',
    otherTypes: ['ecdsa-sha2-nistp256', 'ssh-rsa'],
  });
  t.same(lookupHostKey([file], ['nowhere.com'], ed.blob), { status: 'unknown', otherTypes: [] });
});

t.test('known-hosts – hashed entries match by recomputing the HMAC', async (t) => {
  const dir = t.testdir({ kh: `example.com ${ed.pub}\n[127.0.0.1]:2222 ${ec.pub}\n` });
  const file = join(dir, 'kh');
  execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' });
  const text = readFileSync(file, 'utf8');
  // Guard: the file really is hashed now, so a pass isn't plain-name matching.
  t.notMatch(text, /example\.com|127\.0\.0\.1/);
  t.match(text, /^\|1\|/);
  t.same(lookupHostKey([file], ['example.com'], ed.blob), { status: 'match', at: { file, line: 1 } });
  t.same(lookupHostKey([file], ['Example.Com'], ed.blob), { status: 'match', at: { file, line: 1 } });
  t.equal(lookupHostKey([file], ['[127.0.0.1]:2222'], ec.blob).status, 'match');
  t.same(lookupHostKey([file], ['other.com'], ed.blob), { status: 'unknown', otherTypes: [] });
  t.equal(lookupHostKey([file], ['127.0.0.1'], ec.blob).status, 'unknown');
});

t.test('known-hosts – wildcard and negated patterns', async (t) => {
  const dir = t.testdir({
    kh: [`*.example.com,!bad.example.com ${ed.pub}`, `host?.lan ${ec.pub}`, `[10.0.0.*]:2222 ${rsa.pub}`, ''].join('\n'),
  });
  const file = join(dir, 'kh');
  t.equal(lookupHostKey([file], ['a.example.com'], ed.blob).status, 'match');
  t.equal(lookupHostKey([file], ['bad.example.com'], ed.blob).status, 'unknown', 'negation vetoes the line');
  t.equal(lookupHostKey([file], ['example.com'], ed.blob).status, 'unknown');
  t.equal(lookupHostKey([file], ['host1.lan'], ec.blob).status, 'match');
  t.equal(lookupHostKey([file], ['host12.lan'], ec.blob).status, 'unknown', '? is exactly one char');
  t.equal(lookupHostKey([file], ['[10.0.0.7]:2222'], rsa.blob).status, 'match');
  t.equal(lookupHostKey([file], ['10.0.0.7'], rsa.blob).status, 'unknown');
  // Negation alone never matches anything.
  const neg = join(t.testdir({ kh: `!bad.com ${ed.pub}\n` }), 'kh');
  t.equal(lookupHostKey([neg], ['good.com'], ed.blob).status, 'unknown');
});

t.test('known-hosts – @revoked wins over a match', async (t) => {
  const dir = t.testdir({
    kh: `example.com ${ed.pub}\n@revoked * ${ed.pub}\n@revoked * ${ed2.pub}\nexample.com ${ec.pub}\n`,
  });
  const file = join(dir, 'kh');
  t.same(lookupHostKey([file], ['example.com'], ed.blob), { status: 'revoked', at: { file, line: 2 } });
  // A revoked other key is neither a match nor a known type for ordering.
  t.equal(lookupHostKey([file], ['example.com'], ec.blob).status, 'match');
  t.same(knownKeyTypes([file], ['example.com']), ['ssh-ed25519', 'ecdsa-sha2-nistp256']);
  const other = join(t.testdir({ kh: `@revoked other.com ${ed.pub}\nexample.com ${ed.pub}\n` }), 'kh');
  t.equal(lookupHostKey([other], ['example.com'], ed.blob).status, 'match', '@revoked honours its host field');
});

t.test('known-hosts – @cert-authority lines are ignored', async (t) => {
  const dir = t.testdir({ kh: `@cert-authority example.com ${ed.pub}\n@cert-authority *.com ${ec.pub}\n` });
  const file = join(dir, 'kh');
  t.same(lookupHostKey([file], ['example.com'], ed.blob), { status: 'unknown', otherTypes: [] });
  t.same(knownKeyTypes([file], ['example.com']), []);
});

t.test('known-hosts – comments, blank and malformed lines are skipped', async (t) => {
  const b64 = ed.blob.toString('base64');
  const dir = t.testdir({
    kh: [
      '# a comment',
      '',
      '   ',
      'example.com',
      'example.com ssh-ed25519',
      'example.com ssh-ed25519 not*base64!',
      `example.com ssh-rsa ${b64}`, // type field disagrees with the blob
      'example.com ssh-ed25519 AAAA',
      `@bogus example.com ${ed.pub}`,
      `|1|garbage|hash ${ed.pub}`,
      '\0\0\0',
      `  example.com\t${ed.pub} trailing comment\r`,
      '',
    ].join('\n'),
  });
  const file = join(dir, 'kh');
  t.same(lookupHostKey([file], ['example.com'], ed.blob), { status: 'match', at: { file, line: 12 } });
  t.same(knownKeyTypes([file], ['example.com']), ['ssh-ed25519']);
});

t.test('known-hosts – several files are searched in order', async (t) => {
  const dir = t.testdir({
    user: `example.com ${ec.pub}\n`,
    global: `# global\nexample.com ${ed.pub}\n`,
  });
  const user = join(dir, 'user');
  const global = join(dir, 'global');
  t.same(lookupHostKey([user, global], ['example.com'], ed.blob), { status: 'match', at: { file: global, line: 2 } });
  t.same(lookupHostKey([user, global], ['example.com'], ec.blob), { status: 'match', at: { file: user, line: 1 } });
  t.same(knownKeyTypes([global, user], ['example.com']), ['ssh-ed25519', 'ecdsa-sha2-nistp256']);
  // Any of several names may match (e.g. alias and real host name).
  t.equal(lookupHostKey([user], ['alias', 'example.com'], ec.blob).status, 'match');
});

t.test('known-hosts – missing files are skipped, other read errors throw', async (t) => {
  const dir = t.testdir({ kh: `example.com ${ed.pub}\n`, sub: {} });
  const file = join(dir, 'kh');
  t.same(lookupHostKey([join(dir, 'nope'), file], ['example.com'], ed.blob), { status: 'match', at: { file, line: 1 } });
  t.same(knownKeyTypes([join(dir, 'nope')], ['example.com']), []);
  t.throws(() => lookupHostKey([join(dir, 'sub')], ['example.com'], ed.blob), { code: 'EISDIR' });
});

t.test('known-hosts – appendKnownHost creates a 0600 file that then matches', async (t) => {
  const dir = t.testdir({});
  const file = join(dir, 'ssh', 'nested', 'known_hosts');
  const name = knownHostName('127.0.0.1', 2222);
  appendKnownHost(file, name, ed.blob);
  t.equal(readFileSync(file, 'utf8'), `[127.0.0.1]:2222 ${ed.pub}\n`);
  t.equal(statSync(file).mode & 0o777, 0o600);
  t.equal(statSync(join(dir, 'ssh', 'nested')).mode & 0o777, 0o700);
  t.same(lookupHostKey([file], [name], ed.blob), { status: 'match', at: { file, line: 1 } });
  appendKnownHost(file, name, ec.blob);
  t.same(lookupHostKey([file], [name], ec.blob), { status: 'match', at: { file, line: 2 } });
});

t.test('known-hosts – appendKnownHost starts a new line when the file lacks one', async (t) => {
  const dir = t.testdir({ kh: `other.com ${ec.pub}` });
  const file = join(dir, 'kh');
  appendKnownHost(file, 'example.com', ed.blob);
  t.equal(readFileSync(file, 'utf8'), `other.com ${ec.pub}\nexample.com ${ed.pub}\n`);
  t.same(lookupHostKey([file], ['example.com'], ed.blob), { status: 'match', at: { file, line: 2 } });
  t.equal(lookupHostKey([file], ['other.com'], ec.blob).status, 'match');
  // An existing empty file gets no leading blank line.
  const empty = join(t.testdir({ kh: '' }), 'kh');
  appendKnownHost(empty, 'example.com', ed.blob);
  t.equal(readFileSync(empty, 'utf8'), `example.com ${ed.pub}\n`);
});

t.test('known-hosts – fingerprintSha256 agrees with ssh-keygen -lf', async (t) => {
  for (const [label, key] of [
    ['ed25519', ed],
    ['ecdsa', ec],
    ['rsa', rsa],
  ] as const) {
    const pubFile = join(t.testdir({ 'key.pub': `${key.pub} test\n` }), 'key.pub');
    const out = execFileSync('ssh-keygen', ['-E', 'sha256', '-lf', pubFile], { encoding: 'utf8' });
    const printed = out.split(' ')[1];
    t.match(printed, /^SHA256:[A-Za-z0-9+/]{43}$/, label);
    t.equal(fingerprintSha256(key.blob), printed, label);
  }
  t.not(fingerprintSha256(ed.blob), fingerprintSha256(ed2.blob));
});

t.test('known-hosts – knownKeyTypes lists types in file order without duplicates', async (t) => {
  const dir = t.testdir({
    kh: `example.com ${rsa.pub}\nother.com ${ed.pub}\nexample.com ${ec.pub}\n*.com ${rsa.pub}\nexample.com ${ed2.pub}\n`,
  });
  const file = join(dir, 'kh');
  t.same(knownKeyTypes([file], ['example.com']), ['ssh-rsa', 'ecdsa-sha2-nistp256', 'ssh-ed25519']);
  t.same(knownKeyTypes([file], ['other.com']), ['ssh-ed25519', 'ssh-rsa']);
  t.same(knownKeyTypes([file], ['[example.com]:2222']), []);
});
