/**
 * HostKeyAlgorithms, PubkeyAcceptedAlgorithms, KexAlgorithms, Ciphers and MACs (issue 16): from
 * -o and ssh_config with OpenSSH's list, +, - and ^ forms and patterns; a name ssh2 does not
 * know is exit 2 naming it; against the real sshd, what is asked for is what is negotiated.
 */
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { resolveTunnel, type TunnelInput } from '../src/config/resolve.js';
import { EXIT, exitCodeOf } from '../src/errors.js';
import { ssh2Algorithms } from '../src/ssh/adapter.js';
import { configError } from './fixtures/errors.js';
import { deadline } from './fixtures/net.js';
import { requireSshd, sshdInput, startSshd, type Sshd } from './fixtures/sshd.js';
import { startSshkeep } from './fixtures/tunnel.js';

const ENV = { home: '/nonexistent', localUser: 'me', authSock: undefined };
const resolve = (options: string[], extra: Partial<TunnelInput> = {}) =>
  resolveTunnel({ destination: 'u@h', configFile: 'none', options, localForwards: ['1:h:2'], ...extra }, ENV);
const { kex, cipher, mac } = ssh2Algorithms();

t.test('algorithm options – a list replaces the default; +, - and ^ start from it; patterns match supported names', async (t) => {
  t.strictSame(resolve(['Ciphers=aes256-ctr,aes128-ctr']).algorithms.cipher, ['aes256-ctr', 'aes128-ctr'], 'a list, as written');
  t.strictSame(resolve(['Ciphers=+aes256-cbc']).algorithms.cipher, [...cipher.default, 'aes256-cbc'], '+ appends');
  t.strictSame(resolve(['Ciphers=^aes256-ctr']).algorithms.cipher, ['aes256-ctr', ...cipher.default.filter((c) => c !== 'aes256-ctr')], '^ puts first');
  t.strictSame(resolve(['MACs=-hmac-sha1*']).algorithms.mac, mac.default.filter((m) => !m.startsWith('hmac-sha1')), '- removes, by pattern');
  t.strictSame(resolve(['KexAlgorithms=curve25519-sha256*']).algorithms.kex, kex.supported.filter((k) => k.startsWith('curve25519-sha256')));
  t.strictSame(resolve(['HostKeyAlgorithms=ssh-ed25519-cert-v01@openssh.com,ssh-ed25519']).algorithms.hostKey, ['ssh-ed25519-cert-v01@openssh.com', 'ssh-ed25519']);
  t.strictSame(resolve(['PubkeyAcceptedAlgorithms=-ssh-rsa*,rsa-sha2-*']).algorithms.pubkey?.some((a) => a.includes('rsa')), false);
  t.strictSame(resolve([]).algorithms, {}, 'nothing given: ssh2 and sshkeep defaults');
});

t.test('algorithm options – a name ssh2 does not know, or a list that leaves nothing, is exit 2 naming it and where it was given', async (t) => {
  t.match(configError(t, () => resolve(['KexAlgorithms=sntrup761x25519-sha512@openssh.com']), '-o'), /^-o KexAlgorithms: "sntrup761x25519-sha512@openssh\.com" is not an algorithm sshkeep's SSH library \(ssh2\) supports; it supports curve25519-sha256/);
  t.match(configError(t, () => resolve(['Ciphers=+aes128-cbc,ChaCha20']), 'a typo after +'), /"ChaCha20" is not an algorithm/);
  t.match(configError(t, () => resolve(['MACs=-hmac-*']), 'nothing left'), /MACs: "-hmac-\*" leaves no algorithm to negotiate/);
  t.match(configError(t, () => resolve(['Ciphers=aes128-ctr,,aes256-ctr']), 'an empty name'), /has an empty name/);
  const dir = t.testdir({ cfg: 'Host h\n  Ciphers aes128-ctr,blowfish-ctr\n' });
  t.match(configError(t, () => resolve([], { configFile: path.join(dir, 'cfg') }), 'ssh_config'), /cfg line 2: Ciphers: "blowfish-ctr" is not an algorithm/);
});

/**
 * sshkeep's first connect to `sshd` with `options`: null when connected, else the error (a
 * fatal one, or the first failed attempt's: a failed negotiation is retried, the server may change).
 */
async function firstConnect(t: Test, sshd: Sshd, options: string[]): Promise<Error | null> {
  const { app, logs } = await startSshkeep(t, sshdInput(sshd, { localForwards: ['0:127.0.0.1:9'], options }), {}, { localUser: sshd.user });
  let onLine = (_: Record<string, unknown>) => {};
  const failedAttempt = new Promise<Error>((resolve) => {
    onLine = (l) => l.event === 'reconnect' && resolve(new Error(String(l.error)));
    logs.on('line', onLine);
  });
  const outcome = await deadline(Promise.race([app.ready().then(() => null, (err: Error) => err), failedAttempt]), 10_000, `first connect with ${options.join(' ')}\n${sshd.logs()}`);
  logs.off('line', onLine);
  await app.stop();
  return outcome;
}

t.test('algorithm options – against sshd: what is asked for is what is offered', { skip: !requireSshd(t) && 'no sshd' }, async (t) => {
  const sshd = await startSshd(t, { extraConfig: ['Ciphers aes128-ctr', 'MACs hmac-sha2-512', 'KexAlgorithms diffie-hellman-group14-sha256'] });
  t.equal(await firstConnect(t, sshd, []), null, "ssh2's defaults include what sshd allows");
  t.match((await firstConnect(t, sshd, ['Ciphers=-aes128-ctr']))?.message, /cipher/i, 'Ciphers=-aes128-ctr: no cipher in common');
  t.equal(await firstConnect(t, sshd, ['Ciphers=^aes128-ctr', 'MACs=hmac-sha2-512', 'KexAlgorithms=+diffie-hellman-group14-sha256']), null, 'asked for');
  t.match((await firstConnect(t, sshd, ['MACs=-hmac-sha2-512*']))?.message, /mac/i, 'MACs by pattern');
  t.match((await firstConnect(t, sshd, ['KexAlgorithms=curve25519-sha256']))?.message, /key exchange|kex/i, 'KexAlgorithms');
  t.match((await firstConnect(t, sshd, ['HostKeyAlgorithms=ecdsa-sha2-nistp256']))?.message, /host key/i, 'an ed25519-only server, asked for ECDSA');
  const noKey = await firstConnect(t, sshd, ['PubkeyAcceptedAlgorithms=-ssh-ed25519']);
  t.equal(exitCodeOf(noKey), EXIT.hostKeyOrAuth, 'PubkeyAcceptedAlgorithms without the ed25519 key type: the key is not offered');
  t.match(noKey?.message, /Tried: nothing/);
  t.notOk(fs.readFileSync(sshd.knownHostsPath, 'utf8').includes('ecdsa'));
});
