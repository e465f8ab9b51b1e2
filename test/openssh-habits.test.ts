import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import t, { type Test } from 'tap';
import { parseCli } from '../src/cli/program.js';
import { buildSettings, type Settings } from '../src/config/settings.js';
import { BoundedPipe, LogFile, silentLogger } from '../src/log.js';
import { hostKeyPolicy } from '../src/ssh/host-key.js';
import { dialRoute } from '../src/ssh/route.js';
import { configError } from './fixtures/errors.js';
import { deadline, listenFor, until } from './fixtures/net.js';

// commander reads SSHKEEP_* from process.env itself: none may leak in from the runner.
const saved = Object.entries(process.env).filter(([k]) => k.startsWith('SSHKEEP_'));
for (const [k] of saved) delete process.env[k];
t.teardown(() => {
  for (const [k, v] of saved) process.env[k] = v;
});

/** parseCli then buildSettings, as main does, with an empty home; warnings collected. */
function build(t: Test, argv: string[], warnings: string[] = [], files: Record<string, string> = {}): Settings {
  const dir = t.testdir({ home: {}, ...files });
  const cli = parseCli(argv.map((a) => a.replace('$DIR', dir)), {}, () => {})!;
  return buildSettings(cli, { home: path.join(dir, 'home'), localUser: 'me', authSock: undefined }, {}, (m) => warnings.push(m));
}

const NO_CONFIG = ['-F', 'none'];
/** Each forward's listen address, and ` +::1` when it is bound there too. */
const listens = (s: Settings) =>
  s.tunnels[0]!.forwards.map((f) => (f.listen.kind === 'tcp' ? `${f.listen.host}:${f.listen.port}${f.alsoListenOn ? ` +${f.alsoListenOn.join(' +')}` : ''}` : f.listen.path));

t.test('openssh habits – an ssh -N -L and an autossh -M 0 -N -L command line run with only the program name changed', async (t) => {
  for (const argv of [
    ['-N', '-L', '15432:db:5432', 'user@host'],
    ['-M', '0', '-N', '-L', '15432:db:5432', 'user@host'],
    ['-M', '0', '-N', '-o', 'ServerAliveInterval=30', '-o', 'ServerAliveCountMax=3', '-L', '15432:db:5432', 'user@host'],
    ['-N', '-T', '-n', '-q', '-L', '15432:db:5432', 'user@host'],
  ]) {
    const s = build(t, [...NO_CONFIG, ...argv]);
    t.strictSame(listens(s), ['127.0.0.1:15432 +::1'], argv.join(' '));
    t.equal(s.tunnels[0]!.user, 'user');
  }
});

t.test('openssh habits – -M other than 0 and -f are refused, saying what to do instead', async (t) => {
  t.match(configError(t, () => build(t, [...NO_CONFIG, '-M', '20000', '-N', '-L', '1:h:2', 'u@h']), '-M 20000'), /-M 20000: .*heartbeat.*--keepalive-interval/);
  t.match(configError(t, () => build(t, [...NO_CONFIG, '-f', '-N', '-L', '1:h:2', 'u@h']), '-f'), /-f: .*foreground.*supervisor/);
  t.match(configError(t, () => build(t, [...NO_CONFIG, '-4', '-6', '-L', '1:h:2', 'u@h']), '-4 -6'), /-4 and -6 contradict/);
});

t.test('openssh habits – -4 and -6 set AddressFamily for the server and its jump hosts; -o and ssh_config say it too', async (t) => {
  const any = build(t, [...NO_CONFIG, '-J', 'jump', '-L', '1:h:2', 'u@h']).tunnels[0]!;
  t.strictSame([any.addressFamily, any.jumps[0]!.addressFamily], ['any', 'any'], 'any by default');
  const v4 = build(t, [...NO_CONFIG, '-4', '-J', 'jump', '-L', '1:h:2', 'u@h']).tunnels[0]!;
  t.strictSame([v4.addressFamily, v4.jumps[0]!.addressFamily], ['inet', 'inet'], '-4');
  t.equal(build(t, [...NO_CONFIG, '-6', '-L', '1:h:2', 'u@h']).tunnels[0]!.addressFamily, 'inet6', '-6');
  t.equal(build(t, [...NO_CONFIG, '-o', 'AddressFamily=inet6', '-L', '1:h:2', 'u@h']).tunnels[0]!.addressFamily, 'inet6', '-o AddressFamily');
  const fromConfig = build(t, ['-F', '$DIR/cfg', '-L', '1:h:2', 'u@h'], [], { cfg: 'Host h\n  AddressFamily inet\n' }).tunnels[0]!;
  t.equal(fromConfig.addressFamily, 'inet', 'ssh_config AddressFamily');
  t.equal(build(t, ['-F', '$DIR/cfg', '-6', '-L', '1:h:2', 'u@h'], [], { cfg: 'Host h\n  AddressFamily inet\n' }).tunnels[0]!.addressFamily, 'inet6', 'the flag wins over ssh_config');
  t.match(configError(t, () => build(t, [...NO_CONFIG, '-o', 'AddressFamily=ipv4', '-L', '1:h:2', 'u@h']), 'a bad value'), /AddressFamily.*"ipv4".*any, inet .* or inet6/);
});

t.test('openssh habits – localhost (written out or not) is 127.0.0.1 and ::1, as ssh binds every address of localhost; -4 or -6 keep the one of that family', async (t) => {
  const fwds = ['-L', '1:h:2', '-L', 'localhost:3:h:4', '-L', '10.1.2.3:5:h:6', '-D', '7', '-L', '127.0.0.1:8:h:9'];
  t.strictSame(listens(build(t, [...NO_CONFIG, ...fwds, 'u@h'])), ['127.0.0.1:1 +::1', '127.0.0.1:3 +::1', '10.1.2.3:5', '127.0.0.1:8', '127.0.0.1:7 +::1'], 'any: both loopbacks for localhost; an address written out is that one');
  t.strictSame(listens(build(t, [...NO_CONFIG, '-4', ...fwds, 'u@h'])), ['127.0.0.1:1', '127.0.0.1:3', '10.1.2.3:5', '127.0.0.1:8', '127.0.0.1:7'], '-4');
  t.strictSame(listens(build(t, [...NO_CONFIG, '-6', ...fwds, 'u@h'])), ['::1:1', '::1:3', '10.1.2.3:5', '127.0.0.1:8', '::1:7'], '-6: the loopback is ::1');
});

t.test('openssh habits – -g binds forwards without a bind address on every interface (0.0.0.0 and ::), as * or an empty address does with or without it; a -D there still needs --socks-auth', async (t) => {
  const fwds = ['-L', '1:h:2', '-L', '127.0.0.1:3:h:4', '-D', '5', '-L', '*:6:h:7', '-L', '0.0.0.0:8:h:9', '-L', ':10:h:11'];
  t.strictSame(listens(build(t, [...NO_CONFIG, '-g', ...fwds, '--socks-auth', 'a:b', 'u@h'])), ['0.0.0.0:1 +::', '127.0.0.1:3', '0.0.0.0:6 +::', '0.0.0.0:8', '0.0.0.0:10 +::', '0.0.0.0:5 +::'], '-g');
  t.strictSame(listens(build(t, [...NO_CONFIG, ...fwds, '--socks-auth', 'a:b', 'u@h'])), ['127.0.0.1:1 +::1', '127.0.0.1:3', '0.0.0.0:6 +::', '0.0.0.0:8', '0.0.0.0:10 +::', '127.0.0.1:5 +::1'], 'without -g: * and an empty address alone');
  t.strictSame(listens(build(t, [...NO_CONFIG, '-g', '-6', ...fwds, '--socks-auth', 'a:b', 'u@h'])), [':::1', '127.0.0.1:3', ':::6', '0.0.0.0:8', ':::10', ':::5'], '-g -6: ::');
  t.strictSame(listens(build(t, [...NO_CONFIG, '-g', '-4', ...fwds, '--socks-auth', 'a:b', 'u@h'])), ['0.0.0.0:1', '127.0.0.1:3', '0.0.0.0:6', '0.0.0.0:8', '0.0.0.0:10', '0.0.0.0:5'], '-g -4: 0.0.0.0');
  t.strictSame(listens(build(t, [...NO_CONFIG, '-o', 'GatewayPorts=yes', '-L', '1:h:2', 'u@h'])), ['0.0.0.0:1 +::'], '-o GatewayPorts=yes');
  t.strictSame(listens(build(t, ['-F', '$DIR/cfg', '-L', '1:h:2', 'u@h'], [], { cfg: 'GatewayPorts yes\n' })), ['0.0.0.0:1 +::'], 'ssh_config GatewayPorts');
  t.match(configError(t, () => build(t, [...NO_CONFIG, '-g', '-D', '5', 'u@h']), '-g -D without --socks-auth'), /-D 5: a SOCKS proxy on a non-loopback address without --socks-auth/);
});

t.test('openssh habits – -C, -o Compression and ssh_config Compression turn compression on', async (t) => {
  const off = build(t, [...NO_CONFIG, '-L', '1:h:2', 'u@h']).tunnels[0]!;
  t.equal(off.compression, false, 'off by default');
  const on = build(t, [...NO_CONFIG, '-C', '-L', '1:h:2', 'u@h']).tunnels[0]!;
  t.equal(on.compression, true, '-C');
  const warnings: string[] = [];
  t.equal(build(t, [...NO_CONFIG, '-o', 'Compression=yes', '-L', '1:h:2', 'u@h'], warnings).tunnels[0]!.compression, true, '-o Compression=yes');
  t.strictSame(warnings, [], 'no "no effect" warning any more');
  t.equal(build(t, ['-F', '$DIR/cfg', '-L', '1:h:2', 'u@h'], [], { cfg: 'Host h\n  Compression yes\n' }).tunnels[0]!.compression, true, 'ssh_config');
  t.equal(build(t, ['-F', '$DIR/cfg', '-C', '-L', '1:h:2', 'u@h'], [], { cfg: 'Host h\n  Compression no\n' }).tunnels[0]!.compression, true, '-C wins over ssh_config');
});

t.test('openssh habits – security options sshkeep cannot honour are warned about from -o and ssh_config, saying what it does instead', async (t) => {
  const warnings: string[] = [];
  const cfg = 'Host h\n  GSSAPIAuthentication yes\n  PKCS11Provider /usr/lib/opensc-pkcs11.so\n  PasswordAuthentication no\n  ForwardX11 yes\n';
  build(t, ['-F', '$DIR/cfg', '-o', 'SecurityKeyProvider=/usr/lib/libsk.so', '-o', 'PasswordAuthentication=yes', '-L', '1:h:2', 'u@h'], warnings, { cfg });
  t.equal(warnings.length, 3, `three warnings:\n${warnings.join('\n')}`);
  t.match(warnings[0], /^-o SecurityKeyProvider \/usr\/lib\/libsk\.so: not honoured; security key middleware is not supported/);
  t.match(warnings[1], /cfg line 2: GSSAPIAuthentication yes: not honoured; GSSAPI .* not supported: sshkeep authenticates with ssh-agent keys/);
  t.match(warnings[2], /cfg line 3: PKCS11Provider .*: not honoured; .*ssh-add -s/);
  t.notOk(warnings.some((w) => /PasswordAuthentication/.test(w)), "-o PasswordAuthentication=yes comes first and is what sshkeep does: ssh_config's no is not used");
  t.notOk(warnings.some((w) => /ForwardX11/.test(w)), 'an option with nothing to do with security stays quiet in ssh_config');

  const quiet: string[] = [];
  build(t, [...NO_CONFIG, '-o', 'GSSAPIAuthentication=no', '-o', 'PubkeyAuthentication=yes', '-L', '1:h:2', 'u@h'], quiet);
  t.strictSame(quiet, [], 'values that ask for what sshkeep does are not warned about');
});

t.test('openssh habits – RefuseConnection yes (OpenSSH 10) refuses the host it applies to, from -o or ssh_config', async (t) => {
  t.match(configError(t, () => build(t, [...NO_CONFIG, '-o', 'RefuseConnection=yes', '-L', '1:h:2', 'u@h']), '-o'), /^-o RefuseConnection yes: the configuration refuses connections to h, as ssh does\.$/);
  const cfg = 'Match host old*\n  RefuseConnection yes\n';
  t.match(configError(t, () => build(t, ['-F', '$DIR/cfg', '-L', '1:h:2', 'u@old1'], [], { cfg }), 'ssh_config'), /cfg line 2: RefuseConnection yes: the configuration refuses connections to old1/);
  t.equal(build(t, ['-F', '$DIR/cfg', '-L', '1:h:2', 'u@new1'], [], { cfg }).tunnels[0]!.name, 'new1', 'another host connects');
  t.match(configError(t, () => build(t, ['-F', '$DIR/cfg', '-J', 'old2', '-L', '1:h:2', 'u@new1'], [], { cfg }), 'a jump host too'), /refuses connections to old2/);
  t.equal(build(t, [...NO_CONFIG, '-o', 'RefuseConnection=no', '-L', '1:h:2', 'u@h']).tunnels[0]!.name, 'h', 'no');
});

t.test('openssh habits – OpenSSH options sshkeep does not honour are warned about when their value asks for something else', async (t) => {
  const warnings: string[] = [];
  build(t, [...NO_CONFIG, '-o', 'BindAddress=192.0.2.1', '-o', 'RekeyLimit=1G', '-o', 'ClearAllForwardings=yes', '-o', 'ConnectionAttempts=3', '-L', '1:h:2', 'u@h'], warnings);
  t.equal(warnings.length, 4, warnings.join('\n'));
  t.match(warnings, [/^-o ConnectionAttempts: OpenSSH option accepted but has no effect/, /^-o BindAddress 192\.0\.2\.1: not honoured; the connection to the server leaves from the address the system picks/, /^-o RekeyLimit 1G: not honoured/, /^-o ClearAllForwardings yes: not honoured; the forwards given are all set up/]);
  const quiet: string[] = [];
  build(t, ['-F', '$DIR/cfg', '-L', '1:h:2', 'u@h'], quiet, { cfg: 'Host *\n  RekeyLimit default none\n  StreamLocalBindMask 0177\n  CanonicalizeHostname no\n  Tunnel no\n  ConnectionAttempts 2\n' });
  t.strictSame(quiet, [], 'values that ask for what sshkeep does, and options with no effect, are quiet in ssh_config');
});

t.test('openssh habits – CertificateFile from -o and ssh_config accumulates, ~ and tokens expanded, and is not warned about', async (t) => {
  const warnings: string[] = [];
  const s = build(t, ['-F', '$DIR/cfg', '-o', 'CertificateFile=~/a-cert.pub', '-L', '1:h:2', 'u@h'], warnings, { cfg: 'Host h\n  CertificateFile ~/.ssh/%r-cert.pub\n' });
  const home = s.tunnels[0]!.certificateFiles[0]!.replace(/\/a-cert\.pub$/, '');
  t.strictSame(s.tunnels[0]!.certificateFiles, [`${home}/a-cert.pub`, `${home}/.ssh/u-cert.pub`]);
  t.strictSame(warnings, []);
});

t.test('openssh habits – -E names the log file; the file level is logFile, the environment SSHKEEP_LOG_FILE', async (t) => {
  t.strictSame(build(t, [...NO_CONFIG, '-E', '/var/log/x.log', '-L', '1:h:2', 'u@h']).logFile, { value: '/var/log/x.log', source: '-E' });
  t.equal(build(t, [...NO_CONFIG, '-L', '1:h:2', 'u@h']).logFile, undefined, 'stderr by default');
});

t.test('log file – appends, is created 0600, and reopen() starts a new file after a rotation', async (t) => {
  const dir = t.testdir({ 'old.log': 'before\n' });
  const file = path.join(dir, 'old.log');
  const log = new LogFile(file);
  t.teardown(() => log.destroy());
  const read = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '');
  log.write('one\n');
  await until(() => read(file) === 'before\none\n', 2000, 'the line appended');
  fs.renameSync(file, `${file}.1`);
  log.write('two\n'); // written off the loop: it lands in the rotated file or the new one, never lost
  log.reopen();
  log.write('three\n');
  await until(() => read(`${file}.1`) + read(file) === 'before\none\ntwo\nthree\n', 2000, 'every line in one file or the other, in order');
  t.ok(read(`${file}.1`).startsWith('before\none\n'), 'the rotated file has what was written before');
  t.ok(read(file).endsWith('three\n'), 'a new file after the reopen');
  t.equal(fs.statSync(file).mode & 0o777, 0o600, 'created 0600');
  t.throws(() => new LogFile(path.join(dir, 'missing', 'x.log')), /ENOENT/);
});

/** A server that sends its version, reads the client's KEXINIT and says which compression methods it offers (client to server), then hangs up. */
async function kexinitServer(t: Test): Promise<{ port: number; offered: Promise<string[]>; connections: () => number }> {
  let connections = 0;
  let resolve!: (v: string[]) => void;
  const offered = new Promise<string[]>((r) => (resolve = r));
  const server = net.createServer((sock) => {
    connections++;
    sock.write('SSH-2.0-OpenSSH_9.2\r\n');
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const eol = buf.indexOf('\r\n');
      if (eol < 0) return;
      const packet = buf.subarray(eol + 2);
      if (packet.length < 4 || packet.length < 4 + packet.readUInt32BE(0)) return;
      // uint32 length, byte padding length, byte SSH_MSG_KEXINIT, 16 bytes cookie, then name-lists.
      let at = 4 + 1 + 1 + 16;
      const lists: string[] = [];
      for (let i = 0; i < 8; i++) {
        const n = packet.readUInt32BE(at);
        lists.push(packet.subarray(at + 4, at + 4 + n).toString());
        at += 4 + n;
      }
      resolve(lists[6]!.split(','));
      sock.destroy();
    });
  });
  const port = await listenFor(t, server);
  return { port, offered, connections: () => connections };
}

/** Dials the first tunnel of a command line over TCP, to the end of the handshake's first step. */
async function dialOnce(s: Settings): Promise<void> {
  const host = s.tunnels[0]!;
  const hop = {
    host,
    auth: { username: host.user, agentSocket: undefined, identitiesOnly: false, identities: [], prompter: undefined, host: host.hostName, certificateFiles: [] },
    hostKeys: hostKeyPolicy(host, silentLogger),
    secretCache: {},
  };
  await dialRoute([hop], { tcpKeepaliveMs: 1000, signal: new AbortController().signal, logger: silentLogger }).then(
    (session) => session.destroy(),
    () => {},
  );
}

t.test('openssh habits – -C offers zlib first on the wire; without it, none first', async (t) => {
  for (const [flags, first] of [[['-C'], 'zlib@openssh.com'], [[], 'none']] as const) {
    const server = await kexinitServer(t);
    const s = build(t, [...NO_CONFIG, ...flags, '-p', String(server.port), '-o', 'ConnectTimeout=3s', '-L', '1:h:2', 'u@127.0.0.1']);
    const dialled = dialOnce(s);
    const offered = await deadline(server.offered, 5000, 'the KEXINIT');
    t.equal(offered[0], first, `${flags.join(' ') || 'no flag'}: ${offered.join(',')}`);
    if (first !== 'none') t.ok(offered.includes('zlib') && offered.includes('none'), 'zlib and none also offered, for servers without delayed compression');
    await dialled;
  }
});

t.test('openssh habits – -6 makes the TCP connect IPv6: a server on 127.0.0.1 is not reached through "localhost", -4 reaches it', async (t) => {
  const server = await kexinitServer(t);
  const argv = (flag: string) => [...NO_CONFIG, flag, '-p', String(server.port), '-o', 'ConnectTimeout=3s', '-L', '1:h:2', 'u@localhost'];
  await deadline(dialOnce(build(t, argv('-6'))), 5000, 'the -6 dial');
  t.equal(server.connections(), 0, '-6: nothing reached the IPv4 listener');
  const dialled = dialOnce(build(t, argv('-4')));
  await deadline(server.offered, 5000, 'the -4 dial');
  t.equal(server.connections(), 1, '-4: connected over IPv4');
  await dialled;
});

t.test('openssh habits – -E on a full disk: lines are dropped and said once on stderr, the stream never errors', { skip: process.platform !== 'linux' && 'needs /dev/full' }, async (t) => {
  const log = new LogFile('/dev/full');
  t.teardown(() => log.destroy());
  let errored = false;
  log.on('error', () => (errored = true));
  const said: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string) => (said.push(String(chunk)), true)) as typeof process.stderr.write;
  try {
    for (const line of ['one\n', 'two\n', 'three\n']) await new Promise<void>((r) => log.write(line, () => r()));
    log.end();
    await deadline(once(log, 'finish'), 2000, 'every line tried');
  } finally {
    process.stderr.write = write;
  }
  t.notOk(errored, 'no error event (nothing listens for one: it would end the daemon)');
  t.equal(said.length, 1, 'said once');
  t.match(said[0], /cannot write the log file \/dev\/full \(ENOSPC\)/);
});

t.test('log file – a FIFO whose reader stalls: lines queue up to 1 MiB, the rest are dropped and counted once it reads again', async (t) => {
  const fifo = path.join(t.testdir(), 'log');
  execFileSync('mkfifo', [fifo]);
  const reader = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  t.teardown(() => fs.closeSync(reader));
  const log = new LogFile(fifo);
  t.teardown(() => log.destroy());
  let dropped = 0;
  log.onDropped = (n) => (dropped += n);
  const line = `${'x'.repeat(99)}\n`;
  const lines = 20_000; // 2 MB: the pipe takes 64 KiB, the queue 1 MiB
  for (let i = 0; i < lines; i++) log.write(line);
  t.equal(dropped, 0, 'nothing said while the reader reads nothing');
  const chunk = Buffer.alloc(1 << 16);
  let got = 0;
  await until(() => {
    for (;;) {
      try {
        const n = fs.readSync(reader, chunk);
        if (n === 0) break;
        got += n;
      } catch {
        break; // EAGAIN: read again next turn
      }
    }
    return dropped > 0 && got % line.length === 0 && got / line.length + dropped === lines;
  }, 10_000, 'the reader to get what was queued, and the drop to be counted');
  t.ok(got / line.length > 10_000, `${got / line.length} lines delivered (1 MiB queued and what the pipe held)`);
  t.equal(got / line.length + dropped, lines, `${dropped} dropped: every line delivered or counted`);
});

t.test('log file – reopening (SIGHUP) a FIFO its reader has left fails at once with ENXIO, instead of waiting for a reader', async (t) => {
  const fifo = path.join(t.testdir(), 'log');
  execFileSync('mkfifo', [fifo]);
  const reader = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const log = new LogFile(fifo);
  t.teardown(() => log.destroy());
  fs.closeSync(reader);
  // A blocking open would wait here for a reader, the daemon with it: no health answer, no SIGTERM.
  t.throws(() => log.reopen(), { code: 'ENXIO', message: /a FIFO that no process has open for reading/ });
});

t.test('log to a stderr pipe whose reader stalls: 1 MiB queued, then lines dropped and counted once it drains', async (t) => {
  // A pipe's stream as node has it: writes queue (writableLength) until the reader takes them.
  let release: (() => void)[] = [];
  const stalled = new Writable({
    highWaterMark: 1,
    write(_chunk, _encoding, done) {
      release.push(() => done());
    },
  });
  const pipe = new BoundedPipe(stalled);
  let dropped = 0;
  pipe.onDropped = (n) => (dropped += n);
  const line = `${'x'.repeat(99)}\n`;
  for (let i = 0; i < 20_000; i++) pipe.write(line);
  t.ok(stalled.writableLength <= 1024 * 1024, `no more than 1 MiB queued (${stalled.writableLength})`);
  t.equal(dropped, 0, 'nothing said while nothing drains');
  while (stalled.writableLength > 0) {
    const now = release;
    release = [];
    now.forEach((r) => r());
    await new Promise((r) => setImmediate(r));
  }
  pipe.write(line);
  t.ok(dropped > 8000, `the lines past the limit counted (${dropped}) at the next line after it drained`);
});
