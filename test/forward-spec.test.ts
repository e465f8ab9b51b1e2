import t, { type Test } from 'tap';
import {
  formatEndpoint,
  forwardName,
  isLocalOnly,
  isLoopbackAddress,
  parseDynamicForward,
  parseLocalForward,
  parsePort,
  parseRemoteForward,
} from '../src/config/forward-spec.js';
import type { Endpoint } from '../src/config/types.js';
import { ConfigError } from '../src/errors.js';
import { configError } from './fixtures/errors.js';

const tcp = (host: string, port: number): Endpoint => ({ kind: 'tcp', host, port });
const unix = (path: string): Endpoint => ({ kind: 'unix', path });

t.test('forward-spec – port:host:hostport listens on loopback, bind not explicit', async (t) => {
  t.strictSame(parseLocalForward('15432:db.internal:5432'), {
    type: 'local',
    listen: tcp('127.0.0.1', 15432),
    bindExplicit: false,
    target: tcp('db.internal', 5432),
    spec: '15432:db.internal:5432',
  });
});

t.test('forward-spec – * or an empty bind address is every interface, as ssh has it: here 0.0.0.0 marked for ::, the server\'s wildcard for -R', async (t) => {
  for (const spec of ['*:8080:db:5432', ':8080:db:5432', '[]:8080:db:5432']) {
    t.strictSame(parseLocalForward(spec), { type: 'local', listen: tcp('0.0.0.0', 8080), bindExplicit: true, bindEverywhere: true, target: tcp('db', 5432), spec }, spec);
  }
  t.strictSame(parseLocalForward(':8080:/run/db.sock').target, { kind: 'unix', path: '/run/db.sock' }, 'with a socket target');
  t.strictSame(parseRemoteForward(':8080:localhost:3000').listen, tcp('', 8080), '-R: the server chooses');
});

t.test('forward-spec – an explicit bind address is kept and marked explicit', async (t) => {
  t.strictSame(parseLocalForward('0.0.0.0:8080:db:5432'), {
    type: 'local',
    listen: tcp('0.0.0.0', 8080),
    bindExplicit: true,
    target: tcp('db', 5432),
    spec: '0.0.0.0:8080:db:5432',
  });
  const local = parseLocalForward('localhost:1:h:2');
  t.strictSame(local.listen, tcp('localhost', 1));
  t.equal(local.bindExplicit, true);
  t.strictSame(local.target, tcp('h', 2));
});

t.test('forward-spec – * as bind address means all interfaces (0.0.0.0)', async (t) => {
  const f = parseLocalForward('*:8080:db:5432');
  t.strictSame(f.listen, tcp('0.0.0.0', 8080));
  t.equal(f.bindExplicit, true);
  t.equal(f.spec, '*:8080:db:5432', 'spec is kept as written');
});

t.test('forward-spec – bracketed IPv6 bind address and target host lose their brackets', async (t) => {
  const bind = parseLocalForward('[::1]:8080:db:5432');
  t.strictSame(bind.listen, tcp('::1', 8080));
  t.equal(bind.bindExplicit, true);
  t.strictSame(bind.target, tcp('db', 5432));

  const target = parseLocalForward('8080:[fe80::1]:22');
  t.strictSame(target.listen, tcp('127.0.0.1', 8080));
  t.equal(target.bindExplicit, false);
  t.strictSame(target.target, tcp('fe80::1', 22));

  const both = parseLocalForward('[::]:0:[2001:db8::5]:443');
  t.strictSame(both.listen, tcp('::', 0));
  t.strictSame(both.target, tcp('2001:db8::5', 443));
});

t.test('forward-spec – surrounding whitespace is ignored, the spec is kept as written', async (t) => {
  const f = parseLocalForward('  1:h:2 ');
  t.strictSame(f.listen, tcp('127.0.0.1', 1));
  t.strictSame(f.target, tcp('h', 2));
  t.equal(f.spec, '  1:h:2 ');
});

/** The TCP port of an endpoint (fails the test for a Unix socket). */
function portOf(t: Test, e: Endpoint): number | undefined {
  if (e.kind !== 'tcp') {
    t.fail(`expected a TCP endpoint, got ${JSON.stringify(e)}`);
    return undefined;
  }
  return e.port;
}

t.test('forward-spec – listen port 0 asks the OS for a port; target port 0 is an error', async (t) => {
  t.equal(portOf(t, parseLocalForward('0:h:22').listen), 0);
  t.equal(portOf(t, parseLocalForward('127.0.0.1:0:h:22').listen), 0);
  t.throws(() => parseLocalForward('1:h:0'), ConfigError);
  t.throws(() => parseLocalForward('1:h:0'), /target port/);
  t.equal(portOf(t, parseLocalForward('65535:h:65535').listen), 65535);
  t.equal(portOf(t, parseLocalForward('65535:h:65535').target), 65535);
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
    ':1:h:',
    ':/x.sock:h:2',
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

t.test('forward-spec – -L with Unix socket paths (a part with / stands for address and port)', async (t) => {
  t.strictSame(parseLocalForward('/tmp/x.sock:db:5432'), {
    type: 'local',
    listen: unix('/tmp/x.sock'),
    bindExplicit: true,
    target: tcp('db', 5432),
    spec: '/tmp/x.sock:db:5432',
  }, 'socket path:host:hostport');
  t.strictSame(parseLocalForward('8080:/run/app.sock'), {
    type: 'local',
    listen: tcp('127.0.0.1', 8080),
    bindExplicit: false,
    target: unix('/run/app.sock'),
    spec: '8080:/run/app.sock',
  }, 'port:socket path listens on loopback');
  t.strictSame(parseLocalForward('bind:8080:/run/app.sock'), {
    type: 'local',
    listen: tcp('bind', 8080),
    bindExplicit: true,
    target: unix('/run/app.sock'),
    spec: 'bind:8080:/run/app.sock',
  }, 'bind:port:socket path');
  t.strictSame(parseLocalForward('*:8080:/run/app.sock').listen, tcp('0.0.0.0', 8080), '* with a socket target');
  t.strictSame(parseLocalForward('[::1]:8080:/run/a.sock').listen, tcp('::1', 8080), '[v6] bind with a socket target');
  t.strictSame(parseLocalForward('/a.sock:/b.sock'), {
    type: 'local',
    listen: unix('/a.sock'),
    bindExplicit: true,
    target: unix('/b.sock'),
    spec: '/a.sock:/b.sock',
  }, 'socket path to socket path');
  t.strictSame(parseLocalForward('/x.sock:[::1]:22').target, tcp('::1', 22), 'socket listen, [v6] target');
  t.strictSame(parseLocalForward(' ./rel/x.sock:h:1 ').listen, unix('./rel/x.sock'), 'a relative path has a / too; whitespace trimmed');
});

// Regression: a longer path was cut short by the kernel, silently: the log named the path
// asked for, the socket appeared at a shorter one and stayed behind after exit.
t.test('forward-spec – a local socket path longer than the kernel takes (107 bytes) is refused, naming its length', async (t) => {
  const fits = `/tmp/${'x'.repeat(97)}.sock`; // 107 bytes
  const long = `/tmp/${'x'.repeat(98)}.sock`;
  t.equal(parseLocalForward(`${fits}:db:5432`).listen.kind, 'unix', '107 bytes: accepted');
  t.throws(() => parseLocalForward(`${long}:db:5432`), { name: 'ConfigError', message: /^-L .*: the socket path is 108 bytes long; a Unix socket path is at most 107 bytes/ });
  t.throws(() => parseRemoteForward(`8080:${long}`), { name: 'ConfigError', message: /^-R .*: the socket path is 108 bytes long/ }, "-R's local target too");
  t.equal(parseRemoteForward(`${long}:localhost:80`).listen.kind, 'unix', "-R's listen path is the server's to judge");
});

t.test('forward-spec – malformed -L specs with Unix socket paths', async (t) => {
  const bad = [
    '/a.sock:8080:db:5432', // a path cannot be a bind address
    '8080:/x.sock:5432', // a path cannot be a target host
    '/a:/b:/c',
    'a/b:1:h:2',
    '1:h/x:2',
    'db:/run/app.sock', // the listen port is not a port
    '8080:db:/x.sock', // bind 8080, port "db"
    '/a.sock:',
    ':/b.sock',
    '/a.sock',
  ];
  for (const spec of bad) {
    const message = configError(t, () => parseLocalForward(spec), JSON.stringify(spec));
    t.ok(message.startsWith(`-L ${spec}:`), `${JSON.stringify(spec)}: message names the flag and the spec: ${message}`);
  }
});

t.test('forward-spec – -R binds localhost by default; * is every address ("")', async (t) => {
  t.strictSame(parseRemoteForward('8080:localhost:3000'), {
    type: 'remote',
    listen: tcp('localhost', 8080),
    target: tcp('localhost', 3000),
    spec: '8080:localhost:3000',
  });
  t.strictSame(parseRemoteForward('*:8080:localhost:3000').listen, tcp('', 8080), '* asks the server for every address');
  t.strictSame(parseRemoteForward('0.0.0.0:8080:h:1').listen, tcp('0.0.0.0', 8080), 'an explicit bind address is kept');
  t.strictSame(parseRemoteForward('[::]:8080:[::1]:1'), {
    type: 'remote',
    listen: tcp('::', 8080),
    target: tcp('::1', 1),
    spec: '[::]:8080:[::1]:1',
  }, 'brackets are dropped on both sides');
  t.strictSame(parseRemoteForward('0:localhost:3000').listen, tcp('localhost', 0), 'port 0: the server picks the port');
  t.equal(parseRemoteForward(' 1:h:2 ').spec, ' 1:h:2 ', 'the spec is kept as written');
  t.equal('bindExplicit' in parseRemoteForward('1:h:2'), false, '-R has no bindExplicit');
});

t.test('forward-spec – -R with Unix socket paths', async (t) => {
  t.strictSame(parseRemoteForward('/run/remote.sock:localhost:3000'), {
    type: 'remote',
    listen: unix('/run/remote.sock'),
    target: tcp('localhost', 3000),
    spec: '/run/remote.sock:localhost:3000',
  });
  t.strictSame(parseRemoteForward('8080:/run/app.sock'), {
    type: 'remote',
    listen: tcp('localhost', 8080),
    target: unix('/run/app.sock'),
    spec: '8080:/run/app.sock',
  });
  t.strictSame(parseRemoteForward('0.0.0.0:8080:/run/app.sock').listen, tcp('0.0.0.0', 8080));
  t.strictSame(parseRemoteForward('/a.sock:/b.sock'), { type: 'remote', listen: unix('/a.sock'), target: unix('/b.sock'), spec: '/a.sock:/b.sock' });
});

t.test('forward-spec – -R [bind_address:]port alone is remote dynamic forwarding (SOCKS on the server), as OpenSSH 7.6 reads it', async (t) => {
  t.strictSame(parseRemoteForward('1080'), { type: 'remote', listen: tcp('localhost', 1080), target: undefined, spec: '1080' });
  t.strictSame(parseRemoteForward('127.0.0.1:1080').listen, tcp('127.0.0.1', 1080));
  t.strictSame(parseRemoteForward('*:1080').listen, tcp('', 1080), '* asks the server for every address');
  t.strictSame(parseRemoteForward('[::1]:0').listen, tcp('::1', 0), 'port 0: the server picks the port');
  t.equal(forwardName(parseRemoteForward('1080')), 'remote:localhost:1080->socks');
});

t.test('forward-spec – malformed -R specs are ConfigErrors naming -R and the spec', async (t) => {
  const bad = [
    '',
    'abc',
    '1:h',
    '8080:h:0',
    '8080:h:65536',
    '99999:h:1',
    'x:h:1',
    'a:b:c:d:e',
    '1::2',
    ':1:h:',
    '1:h:2:',
    '/a.sock:8080:db:5432',
    '8080:/x.sock:5432',
    '/a:/b:/c',
  ];
  for (const spec of bad) {
    const message = configError(t, () => parseRemoteForward(spec), JSON.stringify(spec));
    t.ok(message.startsWith(`-R ${spec}:`), `${JSON.stringify(spec)}: message names the flag and the spec: ${message}`);
  }
  t.match(configError(t, () => parseRemoteForward('8080:h:0'), 'target port 0'), /target port/);
});

t.test('forward-spec – -D [bind_address:]port', async (t) => {
  t.strictSame(parseDynamicForward('1080'), { type: 'dynamic', listen: tcp('127.0.0.1', 1080), bindExplicit: false, spec: '1080' });
  t.strictSame(parseDynamicForward('127.0.0.1:1080'), { type: 'dynamic', listen: tcp('127.0.0.1', 1080), bindExplicit: true, spec: '127.0.0.1:1080' });
  t.strictSame(parseDynamicForward('*:1080'), { type: 'dynamic', listen: tcp('0.0.0.0', 1080), bindExplicit: true, bindEverywhere: true, spec: '*:1080' }, '* is every interface (bindAs adds ::)');
  t.strictSame(parseDynamicForward(':1080'), { type: 'dynamic', listen: tcp('0.0.0.0', 1080), bindExplicit: true, bindEverywhere: true, spec: ':1080' }, 'an empty address is every interface, as *');
  t.strictSame(parseDynamicForward('[::]:1080').listen, tcp('::', 1080), 'brackets dropped');
  t.strictSame(parseDynamicForward('localhost:1080').listen, tcp('localhost', 1080));
  t.strictSame(parseDynamicForward('0').listen, tcp('127.0.0.1', 0), 'port 0 asks the OS');
  t.equal(parseDynamicForward(' 1080 ').spec, ' 1080 ', 'the spec is kept as written');
});

t.test('forward-spec – malformed -D specs are ConfigErrors naming -D and the spec', async (t) => {
  const bad = ['', 'abc', '/x.sock', 'h:/x.sock', '1:2:3', 'localhost:99999', '-1', '1080:', ':', '[::1]x:1080', '[::1:1080', 'h:p'];
  for (const spec of bad) {
    const message = configError(t, () => parseDynamicForward(spec), JSON.stringify(spec));
    t.ok(message.startsWith(`-D ${spec}:`), `${JSON.stringify(spec)}: message names the flag and the spec: ${message}`);
  }
});

t.test('forward-spec – formatEndpoint', async (t) => {
  t.equal(formatEndpoint(tcp('127.0.0.1', 8080)), '127.0.0.1:8080');
  t.equal(formatEndpoint(tcp('db.internal', 5432)), 'db.internal:5432');
  t.equal(formatEndpoint(tcp('::1', 8080)), '[::1]:8080', 'IPv6 in brackets');
  t.equal(formatEndpoint(tcp('2001:db8::5', 443)), '[2001:db8::5]:443');
  t.equal(formatEndpoint(unix('/run/app.sock')), '/run/app.sock', 'a socket is its path');
});

t.test('forward-spec – forwardName', async (t) => {
  t.equal(forwardName(parseLocalForward('15432:db.internal:5432')), '127.0.0.1:15432->db.internal:5432');
  t.equal(forwardName(parseLocalForward('[::1]:8080:[fe80::1]:22')), '[::1]:8080->[fe80::1]:22');
  t.equal(forwardName(parseLocalForward('/tmp/x.sock:/run/y.sock')), '/tmp/x.sock->/run/y.sock');
  t.equal(forwardName(parseDynamicForward('1080')), '127.0.0.1:1080->socks');
  t.equal(forwardName(parseDynamicForward('[::]:1080')), '[::]:1080->socks');
  t.equal(forwardName(parseRemoteForward('8080:localhost:3000')), 'remote:localhost:8080->localhost:3000');
  t.equal(forwardName(parseRemoteForward('/run/r.sock:/run/app.sock')), 'remote:/run/r.sock->/run/app.sock');
  const names = [forwardName(parseLocalForward('8080:h:1')), forwardName(parseRemoteForward('127.0.0.1:8080:h:1'))];
  t.not(names[0], names[1], 'a -R and a -L with the same ends have different names');
});

t.test('forward-spec – isLocalOnly: loopback addresses and Unix sockets', async (t) => {
  const cases: [Endpoint, boolean][] = [
    [tcp('127.0.0.1', 1), true],
    [tcp('127.9.9.9', 1), true],
    [tcp('::1', 1), true],
    [tcp('localhost', 1), true],
    [unix('/run/app.sock'), true],
    [unix('./rel.sock'), true],
    [tcp('0.0.0.0', 1), false],
    [tcp('::', 1), false],
    [tcp('', 1), false],
    [tcp('10.0.0.1', 1), false],
    [tcp('db.example', 1), false],
  ];
  for (const [e, local] of cases) t.equal(isLocalOnly(e), local, JSON.stringify(e));
  t.equal(isLocalOnly(parseLocalForward('1:h:2').listen), true, 'the default -L bind');
  t.equal(isLocalOnly(parseDynamicForward('*:1080').listen), false, '-D *:port');
});
