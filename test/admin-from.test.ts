/**
 * --admin-from: POST /quitquitquit is loopback-only unless other peers are written out, as
 * addresses or CIDR networks (or `any`), from the flag, SSHKEEP_ADMIN_FROM or the file's
 * `adminFrom`; it needs --admin, and opening it beyond loopback is a warning at start.
 */
import t, { type Test } from 'tap';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { parseCli } from '../src/cli/program.js';
import { parseAddressRanges, type AddressRange } from '../src/config/host-port.js';
import { buildSettings } from '../src/config/settings.js';
import { resolveTunnel } from '../src/config/resolve.js';
import { ConfigError } from '../src/errors.js';
import { Fleet } from '../src/fleet.js';
import { adminPeers, startHealthServer } from '../src/ops/health.js';
import { Metrics } from '../src/ops/metrics.js';
import { configError } from './fixtures/errors.js';

/** The settings of a command line, with `env` as its environment and `file` as the top of a --config file; warnings collected. */
function settingsOf(t: Test, argv: string[], { env = {}, file }: { env?: Record<string, string>; file?: Record<string, unknown> } = {}) {
  // commander reads SSHKEEP_* from process.env itself: set them for this call only.
  const saved = Object.entries(process.env).filter(([k]) => k.startsWith('SSHKEEP_'));
  for (const [k] of saved) delete process.env[k];
  Object.assign(process.env, env);
  try {
    return settingsFrom(t, argv, file);
  } finally {
    for (const k of Object.keys(env)) delete process.env[k];
    Object.assign(process.env, Object.fromEntries(saved));
  }
}

function settingsFrom(t: Test, argv: string[], file: Record<string, unknown> | undefined) {
  const dir = t.testdir({ home: {} });
  const config = path.join(dir, 'tunnels.yaml');
  if (file) fs.writeFileSync(config, JSON.stringify({ tunnels: [{ destination: 'tester@127.0.0.1', local: '0:127.0.0.1:1' }], ...file }));
  const cli = parseCli([...argv, ...(file ? ['--config', config] : ['-L', '0:127.0.0.1:1', 'tester@127.0.0.1'])], process.env, () => {})!;
  const warnings: string[] = [];
  const settings = buildSettings(cli, { home: path.join(dir, 'home'), localUser: 'tester', authSock: undefined }, {}, (m) => warnings.push(m));
  return { process: settings.process, warnings };
}

t.test('admin-from – who is allowed: loopback always, then the listed addresses and networks, IPv4-mapped peers judged as IPv4', async (t) => {
  const none: AddressRange[] = [];
  const some = parseAddressRanges('10.0.0.0/8, 192.0.2.7, fd00::/8', '--admin-from');
  const cases: [string, AddressRange[], boolean][] = [
    ['127.0.0.1', none, true],
    ['::1', none, true],
    ['::ffff:127.0.0.1', none, true],
    ['10.1.2.3', none, false],
    ['10.1.2.3', some, true],
    ['::ffff:10.1.2.3', some, true],
    ['11.0.0.1', some, false],
    ['192.0.2.7', some, true],
    ['192.0.2.8', some, false],
    ['fd12::1', some, true],
    ['fe80::1', some, false],
    ['203.0.113.9', parseAddressRanges('any', 'x'), true],
    ['2001:db8::1', parseAddressRanges('any', 'x'), true],
  ];
  for (const [peer, from, allowed] of cases) t.equal(adminPeers(from)(peer), allowed, `${peer} with [${from.map((r) => `${r.address}/${r.prefix}`).join(' ')}]: ${allowed ? 'allowed' : 'refused'}`);
  t.equal(adminPeers(some)(undefined), false, 'a socket without a peer address: refused');
});

t.test('admin-from – a value that is not addresses or networks is a usage error naming where it came from', async (t) => {
  for (const bad of ['bastion.example.com', '10.0.0.0/33', 'fd00::/129', '10.0.0.0/8/1', '10.0.0.0/', '10.0.0.0/8,', '10.0.0.0/x']) {
    const message = configError(t, () => settingsOf(t, ['--admin', '--admin-from', bad]), bad);
    t.match(message, /^--admin-from: ".*" must be an IP address or a network in CIDR notation/, `${bad}: refused`);
  }
  // Regression: the message for "any" among others offered "any" as the fix.
  t.match(configError(t, () => settingsOf(t, ['--admin', '--admin-from', 'any,10.0.0.0/8']), 'any among others'), /^--admin-from: "any" stands alone/);
  const fromEnv = configError(t, () => settingsOf(t, ['--admin'], { env: { SSHKEEP_ADMIN_FROM: 'db.internal' } }), 'from the environment');
  t.match(fromEnv, /^SSHKEEP_ADMIN_FROM: "db\.internal"/, 'the variable is named');
});

t.test('admin-from – it needs --admin; given, it is a warning at start; flag, environment and file set it, the flag first', async (t) => {
  t.throws(() => settingsOf(t, ['--admin-from', '10.0.0.0/8']), new ConfigError('--admin-from 10.0.0.0/8: needs --admin (POST /quitquitquit is off without it).'));
  const off = settingsOf(t, ['--admin', '--health', '127.0.0.1:0']);
  t.same(off.process.adminFrom, [], 'by default: loopback only');
  t.same(off.warnings, [], 'and no warning');
  // Regression: accepted in silence, though nothing would serve it.
  t.same(settingsOf(t, ['--admin']).warnings, ['--admin: no effect without --health, which serves POST /quitquitquit.'], '--admin without --health: a warning');
  t.same(settingsOf(t, [], { env: { SSHKEEP_ADMIN: 'yes' } }).warnings, ['SSHKEEP_ADMIN: no effect without --health, which serves POST /quitquitquit.'], 'named by the variable that gave it');

  const flag = settingsOf(t, ['--admin', '--health', '127.0.0.1:0', '--admin-from', '10.0.0.0/8,fd00::/8'], { env: { SSHKEEP_ADMIN_FROM: 'any' } });
  t.same(flag.process.adminFrom, [{ address: '10.0.0.0', prefix: 8, family: 'ipv4' }, { address: 'fd00::', prefix: 8, family: 'ipv6' }], 'the flag beats the environment');
  t.same(flag.warnings, ['POST /quitquitquit accepts peers beyond loopback (--admin-from 10.0.0.0/8,fd00::/8): anyone who can reach the health port from there can stop sshkeep.']);
  t.same(settingsOf(t, [], { env: { SSHKEEP_ADMIN: 'yes', SSHKEEP_ADMIN_FROM: '192.0.2.7' } }).process.adminFrom, [{ address: '192.0.2.7', prefix: 32, family: 'ipv4' }], 'SSHKEEP_ADMIN_FROM; one address is a /32');
  t.same(settingsOf(t, [], { file: { admin: true, adminFrom: 'any' } }).process.adminFrom.map((r) => `${r.address}/${r.prefix}`), ['0.0.0.0/0', '::/0'], 'adminFrom: any in the file');
});

const external = Object.values(os.networkInterfaces())
  .flat()
  .find((i) => i?.family === 'IPv4' && !i.internal);

function post(port: number, address: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: address, port, path: '/quitquitquit', method: 'POST', agent: false, localAddress: address }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('admin-from – over HTTP: a peer off loopback is served when its network is listed, refused naming --admin-from when not', { skip: external ? false : 'no non-loopback IPv4 address on this machine' }, async (t) => {
  if (!external) return;
  const config = resolveTunnel({ destination: 'tester@127.0.0.1', port: '1', configFile: 'none', localForwards: ['0:127.0.0.1:1'] }, { home: os.tmpdir(), localUser: 'tester', authSock: undefined });
  const fleet = new Fleet([config], { maxConnections: 0, maxHeld: 1024 });
  const serve = async (from: string) => {
    let requests = 0;
    const health = await startHealthServer({ host: '0.0.0.0', port: 0 }, fleet, new Metrics(), () => requests++, undefined, parseAddressRanges(from, '--admin-from'));
    t.teardown(() => {
      health.closeAllConnections();
      health.close();
    });
    return { port: (health.address() as AddressInfo).port, requests: () => requests };
  };
  const listed = await serve(`${external.address}/32`);
  t.equal((await post(listed.port, external.address)).status, 202, `${external.address} listed: 202`);
  t.equal(listed.requests(), 1, 'and the shutdown is requested');

  const octets = external.address.split('.').map(Number);
  const neighbour = [...octets.slice(0, 3), (octets[3]! + 1) % 256].join('.');
  const elsewhere = await serve(`${neighbour}/32`);
  const refused = await post(elsewhere.port, external.address);
  t.equal(refused.status, 403, `only ${neighbour} listed: 403`);
  t.match(refused.body, /accepted from loopback and --admin-from, not from/, 'naming --admin-from');
  t.equal(elsewhere.requests(), 0, 'no shutdown');
});
