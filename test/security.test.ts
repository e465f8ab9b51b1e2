/**
 * Issue 7, "Security", through the CLI as a user runs it (the embedded SSH server as the far end):
 * key file permissions, concurrent accept-new writers on one known_hosts, loopback default binds of
 * every listener, secrets (passphrase, key content, SOCKS password, login password) in no log line,
 * endpoint or error message, a missing known_hosts under StrictHostKeyChecking=yes, and the verdicts
 * of scripts/audit.ts.
 *
 * Already covered elsewhere and not repeated here: loadIdentities' permission rule (auth.test.ts), one
 * accept-new writer (cli-host-keys.test.ts), SSHKEEP_IDENTITY + SSHKEEP_KNOWN_HOSTS content vs debug logs
 * and /readyz (container-secrets.test.ts), a non-loopback -D without --socks-auth (settings.test.ts and
 * socks-openssh.test.ts).
 */
import t, { type Test } from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { untracked } from './fixtures/bin.js';
import { connect, deadline, httpGet, roundTrip, tryConnect, startEchoFor } from './fixtures/net.js';
import { makeKeys, startServer } from './fixtures/tunnel.js';
import { CLI_MAIN, ISOLATED, cliArgs, expectCleanStop, logIs, portOf, runCli, spawnCliFor, startGate } from './fixtures/cli.js';
import { RawClient, connect4, echoes } from './fixtures/socks-client.js';
import { ed25519Pair } from '../src/demo/keygen.js';
import { judgeAudit } from '../scripts/audit/judge.js';

const READY_MS = 10_000;

/** Every endpoint's body, concatenated (each must answer). */
async function endpoints(t: Test, port: number): Promise<string> {
  let all = '';
  for (const p of ['/healthz', '/readyz', '/startupz', '/metrics']) {
    const r = await deadline(httpGet(port, p), 5000, `GET ${p}`);
    t.equal(r.status, 200, `GET ${p}: 200`);
    all += `\n${r.body}`;
  }
  t.match(all, /sshkeep_connections_total/, '/metrics is the real metrics page');
  return all;
}

/** The base64 lines of an OpenSSH private key: any of them in the output is key material. */
function keyBodyLines(pem: string): string[] {
  return pem.split('\n').filter((l) => l.length >= 20 && !l.startsWith('-----'));
}

// ---------------------------------------------------------------------------------------------
// identity file permissions (the rule itself: auth.test.ts; here: what the CLI user sees)

t.test('security – a group-readable identity file: exit 2 with OpenSSH\'s reason; --insecure-key-permissions accepts it', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  fs.chmodSync(keys.identity, 0o640);
  const args = cliArgs(server.port, keys, `0:127.0.0.1:${echo.port}`);

  const refused = await runCli(args);
  t.equal(refused.code, 2, 'exit 2');
  t.ok(refused.stderr.includes(`Permissions 0640 for '${keys.identity}' are too open`), 'OpenSSH\'s wording, naming the file', { stderr: refused.stderr });
  t.match(refused.stderr, /--insecure-key-permissions/, 'names the flag that accepts it');
  t.equal(server.connections, 0, 'nothing was dialled');

  const cli = spawnCliFor(t, ['--insecure-key-permissions', ...args]);
  const listen = await cli.waitForLog(logIs('listen'), READY_MS, 'listening');
  await cli.waitForLog(logIs('state', { to: 'ready' }), READY_MS, 'ready with the group-readable key');
  t.equal((await deadline(roundTrip(await connect(portOf(listen)), 'perm'), 5000, 'echo')).toString(), 'perm', 'forwards');
  await expectCleanStop(t, cli);
});

// ---------------------------------------------------------------------------------------------
// known_hosts: concurrent accept-new writers

t.test('security – 8 sshkeep processes recording host keys (accept-new) into one known_hosts at once: exactly 8 well-formed lines appended', async (t) => {
  const N = 8;
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  // Every client's handshake waits at the gate until all are there, so the host key checks (and appends) coincide.
  const gate = await startGate(t, server.port, { held: true });
  const kh = path.join(keys.dir, 'shared_known_hosts');
  const existing = `[other.example]:2222 ${ed25519Pair().public.split(' ').slice(0, 2).join(' ')}`;
  fs.writeFileSync(kh, `${existing}\n`, { mode: 0o600 });

  const clis = Array.from({ length: N }, (_, i) =>
    spawnCliFor(t, cliArgs(gate.port, keys, `0:127.0.0.1:${echo.port}`, ['-o', 'StrictHostKeyChecking=accept-new', '-o', `HostKeyAlias=alias-${i}`], kh)),
  );
  await gate.whenAccepted(N, 20_000);
  gate.open();
  await Promise.all(clis.map((c, i) => c.waitForLog(logIs('state', { to: 'ready' }), 20_000, `sshkeep ${i} ready`)));
  for (const [i, c] of clis.entries()) {
    const rec = c.logs().filter((l) => l.event === 'host_key' && l.msg === 'recorded new host key');
    t.equal(rec.length, 1, `sshkeep ${i} recorded one key`);
  }

  const text = fs.readFileSync(kh, 'utf8');
  t.ok(text.endsWith('\n'), 'the file ends with a newline');
  const lines = text.split('\n').slice(0, -1);
  t.equal(lines.length, N + 1, `the first line and ${N} appended ones, no blank or partial line:\n${text}`);
  t.equal(lines[0], existing, 'the existing line is intact, still first');
  const [type, blob] = server.hostPublicKey.split(' ');
  const seen = new Set<string>();
  for (const line of lines.slice(1)) {
    const m = /^(alias-\d+) (\S+) (\S+)$/.exec(line); // an alias is recorded bare, as OpenSSH records it
    t.ok(m, `well-formed: ${JSON.stringify(line)}`);
    if (!m) continue;
    t.equal(m[2], type, `${m[1]}: key type`);
    t.equal(m[3], blob, `${m[1]}: the server's key`);
    t.notOk(seen.has(m[1]!), `${m[1]}: recorded once`);
    seen.add(m[1]!);
  }
  t.strictSame([...seen].sort(), Array.from({ length: N }, (_, i) => `alias-${i}`).sort(), 'one line per alias');
  t.equal(fs.statSync(kh).mode & 0o777, 0o600, 'the file keeps mode 0600');
  await Promise.all(clis.map((c) => expectCleanStop(t, c)));
});

// ---------------------------------------------------------------------------------------------
// default binds

/** A local address of this host that is not loopback, if it has one. */
function externalAddress(): string | undefined {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

t.test('security – -L, -D and --health without a bind address listen on 127.0.0.1 only', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  // Port-only forms, as a user writes them: -L port:host:hostport, -D port, --health port.
  const cli = spawnCliFor(t, cliArgs(server.port, keys, `0:127.0.0.1:${echo.port}`, ['-D', '0', '--health', '0']));
  await cli.waitForLog(logIs('state', { to: 'ready' }), READY_MS, 'ready');
  const health = await cli.waitForLog(logIs('health'), READY_MS, 'the health line');
  const listens = cli.logs().filter(logIs('listen'));
  t.equal(listens.length, 2, 'two listen lines (-L and -D)');
  const local = listens.find((l) => String(l.forward).endsWith(`:${echo.port}`));
  const socks = listens.find((l) => String(l.forward).endsWith('->socks'));
  const listeners = { '-L': local, '-D': socks, '--health': health };
  for (const [flag, line] of Object.entries(listeners)) {
    t.ok(line, `${flag}: logged`);
    if (!line) continue;
    t.equal(line.address, '127.0.0.1', `${flag}: the log line says 127.0.0.1`);
    t.equal(line.level, 'info', `${flag}: no non-loopback warning`);
    const port = portOf(line);
    // Bound to 127.0.0.1 itself, not to every address: 127.0.0.2 (also loopback on Linux, so a
    // wildcard listener would answer) and this host's own network address are refused.
    t.equal(await tryConnect(port), 'connected', `${flag}: reachable on 127.0.0.1:${port}`);
    if (process.platform === 'linux') t.equal(await tryConnect(port, '127.0.0.2'), 'ECONNREFUSED', `${flag}: refused on 127.0.0.2:${port}`);
    const ext = externalAddress();
    if (ext) t.equal(await tryConnect(port, ext), 'ECONNREFUSED', `${flag}: refused on this host's address ${ext}`);
    else t.pass(`${flag}: no non-loopback interface to try`, { skip: 'no non-loopback IPv4 interface' });
  }
  // The -L listener forwards, so the loopback check above was of a working listener.
  t.equal((await deadline(roundTrip(await connect(portOf(local!)), 'x'), 5000, 'echo')).toString(), 'x', '-L forwards');
  await expectCleanStop(t, cli);
});

// ---------------------------------------------------------------------------------------------
// secrets

/** SOCKS5 with username/password: resolves with the auth status byte (0 = accepted), then, if accepted, echoes `payload`. */
async function socks5(port: number, user: string, pass: string, target: number, payload: string): Promise<{ authStatus: number; echoed?: string }> {
  const raw = await RawClient.connect(port);
  try {
    raw.sock.write(Buffer.from([5, 1, 2]));
    const method = await raw.read(2, 5000, 'SOCKS method choice');
    if (method[1] !== 2) throw new Error(`server chose method ${method[1]}, not username/password`);
    raw.sock.write(Buffer.concat([Buffer.from([1, user.length]), Buffer.from(user), Buffer.from([pass.length]), Buffer.from(pass)]));
    const auth = await raw.read(2, 5000, 'SOCKS auth reply');
    if (auth[1] !== 0) return { authStatus: auth[1]! };
    raw.sock.write(connect4('127.0.0.1', target));
    const reply = await raw.read(10, 5000, 'SOCKS connect reply');
    if (reply[1] !== 0) throw new Error(`SOCKS connect refused: reply ${reply[1]}`);
    return { authStatus: 0, echoed: await echoes(raw, payload) };
  } finally {
    raw.sock.destroy();
  }
}

t.test('security – a passphrase-protected -i key, SSHKEEP_IDENTITY and a SOCKS password appear in no debug log line, endpoint or error message', async (t) => {
  const keys = makeKeys(t);
  const passphrase = 'Pass-Phrase-5e1f0c';
  const socksPass = 'Socks-Secret-77d2a9';
  const wrongSocksPass = 'Wrong-Socks-9b4e01';
  const fileKey = ed25519Pair({ passphrase, cipher: 'aes256-ctr', rounds: 1 }); // 1 KDF round: fast
  const envKey = ed25519Pair({ passphrase, cipher: 'aes256-ctr', rounds: 1 });
  const keyFile = path.join(keys.dir, 'id_encrypted');
  fs.writeFileSync(keyFile, fileKey.private, { mode: 0o600 });
  // The server takes the file's key only: the SSHKEEP_IDENTITY key is offered first, refused, then the file's is used.
  const server = await startServer(t, keys, { authorizedKeys: [fileKey.public] });
  const echo = await startEchoFor(t);
  const secrets: Record<string, string> = { passphrase, 'SOCKS password': socksPass, 'wrong SOCKS password tried': wrongSocksPass };
  for (const [i, l] of keyBodyLines(fileKey.private).entries()) secrets[`-i key line ${i + 1}`] = l;
  for (const [i, l] of keyBodyLines(envKey.private).entries()) secrets[`SSHKEEP_IDENTITY line ${i + 1}`] = l;
  const noSecrets = (what: string, text: string) => {
    const leaked = Object.entries(secrets).filter(([, s]) => text.includes(s)).map(([name]) => name);
    t.strictSame(leaked, [], `${what}: no secret in it`);
  };

  const args = [
    ...ISOLATED, '-v', '--health', '0',
    '-p', String(server.port), '-i', keyFile, '-o', `UserKnownHostsFile=${keys.knownHosts}`,
    '-L', `0:127.0.0.1:${echo.port}`, '-D', '0', '--socks-auth', `alice:${socksPass}`,
    'tester@127.0.0.1',
  ];
  const cli = spawnCliFor(t, args, { env: { SSHKEEP_IDENTITY: envKey.private, SSHKEEP_PASSPHRASE: passphrase } });
  await cli.waitForLog(logIs('state', { to: 'ready' }), READY_MS, 'ready with the encrypted key');
  t.ok(cli.logs().some((l) => l.event === 'identity' && l.file === keyFile), 'the -i key was loaded (debug line)');
  t.ok(cli.logs().some((l) => l.event === 'identity' && l.file === 'SSHKEEP_IDENTITY'), 'the SSHKEEP_IDENTITY key was loaded (debug line)');
  const socksPort = portOf(cli.logs().find((l) => l.event === 'listen' && String(l.forward).endsWith('->socks'))!);
  const healthPort = portOf(await cli.waitForLog(logIs('health'), READY_MS, 'health line'));

  t.strictSame(await socks5(socksPort, 'alice', socksPass, echo.port, 'via-socks'), { authStatus: 0, echoed: 'via-socks' }, 'SOCKS with the password works');
  t.equal((await socks5(socksPort, 'alice', wrongSocksPass, echo.port, 'x')).authStatus, 1, 'a wrong SOCKS password is refused');
  await cli.waitForLog((l) => l.event === 'conn_end' && l.reason === 'socks_error', 5000, 'the refused SOCKS client logged');
  const bodies = await endpoints(t, healthPort);
  await expectCleanStop(t, cli);
  t.ok(cli.logs().length > 10, `debug logging ran (${cli.logs().length} lines)`);
  noSecrets('stderr at debug level', cli.stderr());
  noSecrets('stdout', cli.stdout());
  noSecrets('/healthz /readyz /startupz /metrics', bodies);

  // Failing runs: what the error says must not repeat the secret that failed.
  const wrongPassphrase = 'Wrong-Phrase-c0ffee';
  secrets['wrong passphrase'] = wrongPassphrase;
  const wrong = await runCli(args, { env: { SSHKEEP_PASSPHRASE: wrongPassphrase } });
  t.equal(wrong.code, 3, 'a wrong SSHKEEP_PASSPHRASE: exit 3', { stderr: wrong.stderr });
  t.match(wrong.stderr, /SSHKEEP_PASSPHRASE is not its passphrase/, 'says the passphrase does not open the key');
  noSecrets('the wrong-passphrase error', wrong.stderr + wrong.stdout);

  const lines = envKey.private.split('\n');
  const mangled = lines.map((l, i) => (i === 3 ? l.replace(/[A-Za-z]/g, (c) => (c === 'A' ? 'B' : 'A')) : l)).join('\n');
  for (const [i, l] of keyBodyLines(mangled).entries()) secrets[`mangled SSHKEEP_IDENTITY line ${i + 1}`] = l;
  const bad = await runCli([...ISOLATED, '-v', '-p', String(server.port), '-o', `UserKnownHostsFile=${keys.knownHosts}`, '-L', `0:127.0.0.1:${echo.port}`, 'tester@127.0.0.1'], {
    env: { SSHKEEP_IDENTITY: mangled, SSHKEEP_PASSPHRASE: passphrase },
  });
  t.not(bad.code, 0, `a damaged SSHKEEP_IDENTITY fails (exit ${bad.code})`, { stderr: bad.stderr });
  t.match(bad.stderr, /SSHKEEP_IDENTITY/, 'the error names SSHKEEP_IDENTITY, not its content');
  noSecrets('the damaged-key error', bad.stderr + bad.stdout);

  const typo = await runCli([...args.filter((a) => a !== `alice:${socksPass}` && a !== '--socks-auth'), '--socks-auth', `alice-${socksPass}`]);
  t.equal(typo.code, 2, '--socks-auth without a colon: exit 2');
  noSecrets('the --socks-auth usage error', typo.stderr + typo.stdout);
});

t.test('security – a ProxyCommand child inherits no secret given through the environment', async (t) => {
  const keys = makeKeys(t);
  const passphrase = 'Env-Phrase-0a9c4b';
  const socksPass = 'Env-Socks-6f13d2';
  const encrypted = ed25519Pair({ passphrase, cipher: 'aes256-ctr', rounds: 1 });
  const server = await startServer(t, keys, { authorizedKeys: [encrypted.public] });
  const dump = path.join(keys.dir, 'proxy-env');
  const relay = fileURLToPath(new URL('./fixtures/stdio-relay.mjs', import.meta.url));
  // One command (sshkeep, as ssh, runs it with `exec`): a shell that records its environment, then relays.
  const proxy = `sh -c 'env > "${dump}"; exec "${process.execPath}" "${relay}" 127.0.0.1 ${server.port}'`;
  const cli = spawnCliFor(t, [...ISOLATED, '-p', String(server.port), '-o', `UserKnownHostsFile=${keys.knownHosts}`, '-o', `ProxyCommand=${proxy}`, '-D', '0', 'tester@127.0.0.1'], {
    env: { SSHKEEP_IDENTITY: encrypted.private, SSHKEEP_PASSPHRASE: passphrase, SSHKEEP_SOCKS_AUTH: `alice:${socksPass}` },
  });
  await cli.waitForLog(logIs('state', { to: 'ready' }), READY_MS, 'ready through the ProxyCommand');
  const env = fs.readFileSync(dump, 'utf8');
  t.match(env, /^HOME=/m, 'the dump is the ProxyCommand\'s environment');
  t.notOk(env.includes(passphrase), 'no SSHKEEP_PASSPHRASE');
  t.notOk(keyBodyLines(encrypted.private).some((l) => env.includes(l)), 'no SSHKEEP_IDENTITY');
  t.notOk(env.includes(socksPass), 'no SOCKS password (SSHKEEP_SOCKS_AUTH)');
  await expectCleanStop(t, cli);
});

const haveScript = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0;

t.test('security – a password typed at the prompt is not echoed or logged, nor served by the endpoints', { skip: haveScript ? false : 'script(1) (util-linux) not installed: no pseudo-terminal to type into' }, async (t) => {
  const keys = makeKeys(t);
  const password = 'Typed-Password-4d77e2';
  const server = await startServer(t, keys, { authorizedKeys: [], password: { username: 'tester', password } });
  const echo = await startEchoFor(t);
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'sshkeep-sec-home-'));
  t.teardown(() => fs.rmSync(home, { recursive: true, force: true }));
  const args = [
    CLI_MAIN, ...ISOLATED, '-v', '--log-format', 'json', '--health', '0',
    '-p', String(server.port), '-o', `UserKnownHostsFile=${keys.knownHosts}`, '-L', `0:127.0.0.1:${echo.port}`, 'tester@127.0.0.1',
  ];
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  // script(1) gives sshkeep a terminal (stdin, stdout and stderr), as a person at a shell has. It runs
  // the command with $SHELL -c; `exec` leaves node alone in the terminal's process group, so Ctrl-C's
  // SIGINT reaches sshkeep only (dash, CI's /bin/sh, would otherwise die of it first: exit 130).
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SSHKEEP_') && k !== 'NODE_OPTIONS' && k !== 'NODE_V8_COVERAGE'));
  const child = spawn(...untracked('script', ['-q', '-e', '-c', `exec ${[process.execPath, ...args].map(quote).join(' ')}`, '/dev/null'], env), {
    env: { ...env, HOME: home, SSH_AUTH_SOCK: '', TERM: 'dumb' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  const changed = new Set<() => void>();
  const onOut = (c: Buffer) => {
    out += c.toString();
    for (const f of [...changed]) f();
  };
  child.stdout!.on('data', onOut);
  child.stderr!.on('data', onOut);
  const exited = once(child, 'exit');
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const waitOut = (re: RegExp, what: string) =>
    deadline(
      new Promise<RegExpExecArray>((resolve) => {
        const check = () => {
          const m = re.exec(out);
          if (m) {
            changed.delete(check);
            resolve(m);
          }
        };
        changed.add(check);
        check();
      }),
      READY_MS,
      `${what}; output so far:\n${out}`,
    );

  await waitOut(/tester@127\.0\.0\.1's password: /, 'the password prompt');
  child.stdin!.write(`${password}\r`);
  await waitOut(/"event":"state"[^\n]*"to":"ready"/, 'ready after the password');
  const listen = JSON.parse((await waitOut(/\{[^\n]*"event":"listen"[^\n]*\}/, 'the listen line'))[0]) as Record<string, unknown>;
  const health = JSON.parse((await waitOut(/\{[^\n]*"event":"health"[^\n]*\}/, 'the health line'))[0]) as Record<string, unknown>;
  t.equal((await deadline(roundTrip(await connect(portOf(listen)), 'pw-ok'), 5000, 'echo')).toString(), 'pw-ok', 'forwards with password authentication');
  const bodies = await endpoints(t, portOf(health));
  // Ctrl-C at the terminal: the prompt is closed, so the terminal is back in cooked mode and sends SIGINT.
  child.stdin!.write('\x03');
  const [code] = (await deadline(exited, 10_000, `sshkeep to stop on Ctrl-C; output:\n${out}`)) as [number | null];
  t.equal(code, 0, 'exit 0 on Ctrl-C');
  t.notOk(out.includes(password), `the password is not on the terminal (not echoed, not logged)`);
  t.notOk(bodies.includes(password), 'the password is in no endpoint body');
});

// ---------------------------------------------------------------------------------------------
// host keys

t.test('security – StrictHostKeyChecking=yes with a known_hosts file that does not exist: exit 3, explaining accept-new, nothing written', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  const echo = await startEchoFor(t);
  const missing = path.join(keys.dir, 'no-such-dir', 'known_hosts');
  const r = await runCli(cliArgs(server.port, keys, `0:127.0.0.1:${echo.port}`, ['-o', 'StrictHostKeyChecking=yes'], missing));
  t.equal(r.code, 3, 'exit 3', { stderr: r.stderr });
  t.match(r.stderr, /StrictHostKeyChecking=accept-new/, 'explains accept-new');
  t.ok(r.stderr.includes(missing), 'names the known_hosts file it looked in');
  t.match(r.stderr, /SHA256:[A-Za-z0-9+/]{43}/, 'shows the offered key\'s fingerprint to check');
  t.notOk(fs.existsSync(missing), 'the file was not created');
  t.notOk(fs.existsSync(path.dirname(missing)), 'nor its directory');
  t.equal(server.channelsOpened, 0, 'no channel was opened');
});

// ---------------------------------------------------------------------------------------------
// scripts/audit.ts verdicts (the audit itself needs the registry: npm run audit)

t.test('security – scripts/audit.ts: exit 1 on high or critical, 0 on lower ones, 2 when the audit could not run', async (t) => {
  const report = (vulns: Record<string, unknown>) =>
    JSON.stringify({ auditReportVersion: 2, vulnerabilities: vulns, metadata: { vulnerabilities: {}, dependencies: { prod: 42, total: 300 } } });
  const vuln = (name: string, severity: string) => ({
    name,
    severity,
    isDirect: true,
    via: [{ source: 1, name, title: `${name} is bad`, url: `https://github.com/advisories/GHSA-${name}`, severity, range: '<2.0.0' }],
    range: '<2.0.0',
    fixAvailable: { name, version: '2.0.0', isSemVerMajor: true },
  });

  const clean = judgeAudit(report({ lodash: vuln('lodash', 'moderate') }), '');
  t.equal(clean.code, 0, 'a moderate one only: exit 0');
  t.match(clean.lines.join('\n'), /no high or critical vulnerability in 42 production dependencies/, 'says so, with the count');

  const high = judgeAudit(report({ a: vuln('a', 'high'), b: vuln('b', 'low'), c: vuln('c', 'critical') }), '');
  t.equal(high.code, 1, 'high and critical: exit 1');
  const text = high.lines.join('\n');
  t.match(text, /CRITICAL c/, 'prints the critical one');
  t.match(text, /HIGH a/, 'prints the high one');
  t.match(text, /GHSA-a/, 'with its advisory');
  t.notOk(/^\s+LOW b\b/m.test(text) || text.includes('GHSA-b'), 'not the low one');
  t.ok(text.indexOf('CRITICAL') < text.indexOf('HIGH'), 'critical first');

  const mirror = judgeAudit(
    JSON.stringify({ message: '405 Method Not Allowed - POST https://registry.example/-/npm/v1/security/advisories/bulk', statusCode: 405, body: '' }),
    'npm warn audit 405 Method Not Allowed\nnpm error audit endpoint returned an error\n',
  );
  t.equal(mirror.code, 2, 'a registry without the audit endpoint: exit 2');
  t.match(mirror.lines[0], /^could not check: .*405 Method Not Allowed/, 'says why');

  const offline = judgeAudit(JSON.stringify({ error: { code: 'ENOTFOUND', summary: 'request to https://registry.npmjs.org failed', detail: '' } }), '');
  t.equal(offline.code, 2, 'no network: exit 2');
  t.match(offline.lines[0], /could not check: .*ENOTFOUND/, 'says why');

  t.equal(judgeAudit('', 'npm error something broke\n').code, 2, 'no JSON at all: exit 2');
  t.equal(judgeAudit('', '', 'ENOENT').code, 2, 'npm not found: exit 2');
});
