import t from 'tap';
import fs from 'node:fs';
import { deadline } from './fixtures/net.js';
import { inputFor, makeKeys, startServer, startSshkeep } from './fixtures/tunnel.js';
import { fingerprintSha256 } from '../src/ssh/known-hosts.js';
import { resolveTunnel } from '../src/config/resolve.js';
import { ConfigError, HostKeyError } from '../src/errors.js';
import { ed25519Pair } from '../src/demo/keygen.js';
import ssh2 from 'ssh2';

t.test('host key pin – a matching --host-key-fingerprint connects without any known_hosts entry', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys);
  fs.writeFileSync(keys.knownHosts, ''); // nothing known: only the pin can vouch for the server
  const pin = fingerprintSha256(server.hostKeyBlob);
  const { app } = await startSshkeep(t, inputFor(server, keys, ['0:127.0.0.1:9'], { hostKeyFingerprint: pin }));
  await deadline(app.ready(), 5000, 'ready');
  t.equal(app.connection.state, 'ready');
});

t.test('host key pin – another key is refused even when known_hosts would accept it', async (t) => {
  const keys = makeKeys(t);
  const server = await startServer(t, keys); // known_hosts has the right key
  const other = ssh2.utils.parseKey(ed25519Pair().public);
  if (other instanceof Error) throw other;
  const { app } = await startSshkeep(t, inputFor(server, keys, ['0:127.0.0.1:9'], { hostKeyFingerprint: fingerprintSha256(other.getPublicSSH()) }));
  const err = await deadline(app.ready().catch((e: unknown) => e), 5000, 'refusal');
  t.type(err, HostKeyError);
  t.match((err as Error).message, fingerprintSha256(server.hostKeyBlob), 'prints the offered fingerprint');
});

t.test('host key pin – a malformed fingerprint is a ConfigError', async (t) => {
  for (const bad of ['abc', 'SHA256:short', 'MD5:aa:bb']) {
    t.throws(() => resolveTunnel({ destination: 'h', configFile: 'none', localForwards: ['1:h:1'], hostKeyFingerprint: bad }), ConfigError, bad);
  }
});

// Regression: '' and ',' were taken as "no pin", so a template whose variable came out empty turned pinning off.
t.test('host key pin – given but empty is a ConfigError, not "no pin"', async (t) => {
  for (const empty of ['', ',', ' ', ', ,']) {
    t.throws(() => resolveTunnel({ destination: 'h', configFile: 'none', localForwards: ['1:h:1'], hostKeyFingerprint: empty }), { name: 'ConfigError', message: /no fingerprint given/ }, JSON.stringify(empty));
  }
});
