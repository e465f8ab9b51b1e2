import t from 'tap';
import { isLoopbackAddress, parseLocalForward, parsePort } from '../src/config/forward-spec.js';
import { ConfigError } from '../src/errors.js';

t.test('forward-spec – port:host:hostport listens on loopback, bind not explicit', async (t) => {
  t.strictSame(parseLocalForward('15432:db.internal:5432'), {
    bindAddress: '127.0.0.1',
    bindPort: 15432,
    bindExplicit: false,
    targetHost: 'db.internal',
    targetPort: 5432,
    spec: '15432:db.internal:5432',
  });
});

t.test('forward-spec – an explicit bind address is kept and marked explicit', async (t) => {
  t.strictSame(parseLocalForward('0.0.0.0:8080:db:5432'), {
    bindAddress: '0.0.0.0',
    bindPort: 8080,
    bindExplicit: true,
    targetHost: 'db',
    targetPort: 5432,
    spec: '0.0.0.0:8080:db:5432',
  });
  const local = parseLocalForward('localhost:1:h:2');
  t.equal(local.bindAddress, 'localhost');
  t.equal(local.bindPort, 1);
  t.equal(local.bindExplicit, true);
  t.equal(local.targetHost, 'h');
  t.equal(local.targetPort, 2);
});

t.test('forward-spec – * as bind address means all interfaces (0.0.0.0)', async (t) => {
  const f = parseLocalForward('*:8080:db:5432');
  t.equal(f.bindAddress, '0.0.0.0');
  t.equal(f.bindExplicit, true);
  t.equal(f.bindPort, 8080);
  t.equal(f.spec, '*:8080:db:5432', 'spec is kept as written');
});

t.test('forward-spec – bracketed IPv6 bind address and target host lose their brackets', async (t) => {
  const bind = parseLocalForward('[::1]:8080:db:5432');
  t.equal(bind.bindAddress, '::1');
  t.equal(bind.bindPort, 8080);
  t.equal(bind.bindExplicit, true);
  t.equal(bind.targetHost, 'db');
  t.equal(bind.targetPort, 5432);

  const target = parseLocalForward('8080:[fe80::1]:22');
  t.equal(target.bindAddress, '127.0.0.1');
  t.equal(target.bindExplicit, false);
  t.equal(target.bindPort, 8080);
  t.equal(target.targetHost, 'fe80::1');
  t.equal(target.targetPort, 22);

  const both = parseLocalForward('[::]:0:[2001:db8::5]:443');
  t.equal(both.bindAddress, '::');
  t.equal(both.bindPort, 0);
  t.equal(both.targetHost, '2001:db8::5');
  t.equal(both.targetPort, 443);
});

t.test('forward-spec – surrounding whitespace is ignored, the spec is kept as written', async (t) => {
  const f = parseLocalForward('  1:h:2 ');
  t.equal(f.bindPort, 1);
  t.equal(f.targetHost, 'h');
  t.equal(f.targetPort, 2);
  t.equal(f.spec, '  1:h:2 ');
});

t.test('forward-spec – listen port 0 asks the OS for a port; target port 0 is an error', async (t) => {
  t.equal(parseLocalForward('0:h:22').bindPort, 0);
  t.equal(parseLocalForward('127.0.0.1:0:h:22').bindPort, 0);
  t.throws(() => parseLocalForward('1:h:0'), ConfigError);
  t.throws(() => parseLocalForward('1:h:0'), /target port/);
  t.equal(parseLocalForward('65535:h:65535').bindPort, 65535);
  t.equal(parseLocalForward('65535:h:65535').targetPort, 65535);
});

t.test('forward-spec – malformed specs are ConfigErrors naming the spec', async (t) => {
  const bad = [
    '',
    'abc',
    '1:2',
    '1:h',
    '99999:h:1',
    '1:h:0',
    '1:h:65536',
    'x:h:1',
    '[::1:80:h:1',
    '[::1]x:80:h:1',
    'a:b:c:d:e',
    '1::2',
    ':1:h:2',
    '1:h:2:',
    '-1:h:2',
    '1:h:+2',
    '1.5:h:2',
  ];
  for (const spec of bad) {
    let caught: unknown;
    try {
      parseLocalForward(spec);
    } catch (err) {
      caught = err;
    }
    t.type(caught, ConfigError, `${JSON.stringify(spec)} is a ConfigError`);
    t.ok((caught as Error | undefined)?.message.includes(`-L ${spec}:`), `${JSON.stringify(spec)}: message names the spec`);
  }
});

t.test('forward-spec – loopback addresses', async (t) => {
  const cases: [string, boolean][] = [
    ['127.0.0.1', true],
    ['127.1.2.3', true],
    ['::1', true],
    ['localhost', true],
    ['LocalHost', true],
    ['::ffff:127.0.0.1', true],
    ['0.0.0.0', false],
    ['::', false],
    ['10.0.0.1', false],
    ['128.0.0.1', false],
    ['localhost.example.com', false],
    ['1127.0.0.1', false],
  ];
  for (const [address, loopback] of cases) t.equal(isLoopbackAddress(address), loopback, address);
});

t.test('forward-spec – parsePort range and allowZero', async (t) => {
  t.equal(parsePort('22', 'Port', false), 22);
  t.equal(parsePort('1', 'Port', false), 1);
  t.equal(parsePort('65535', 'Port', false), 65535);
  t.equal(parsePort('0', 'listen port', true), 0);
  t.equal(parsePort('00080', 'Port', false), 80);
  t.throws(() => parsePort('0', 'Port', false), ConfigError);
  t.throws(() => parsePort('0', 'Port', false), /1-65535/);
  t.throws(() => parsePort('65536', 'listen port', true), /0-65535/);
  for (const bad of ['', ' 22', '22 ', '-1', '+22', '2.2', '1e3', '0x16', 'ssh', '123456']) {
    t.throws(() => parsePort(bad, 'Port', true), ConfigError, JSON.stringify(bad));
  }
  t.throws(() => parsePort('abc', 'ServerPort', false), /ServerPort: "abc"/, 'message names the option and the value');
});
