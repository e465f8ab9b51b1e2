import t from 'tap';
import fs from 'node:fs';
import { connect, deadline, httpGet, roundTrip, startEchoFor } from './fixtures/net.js';
import { makeKeys, startServer } from './fixtures/tunnel.js';
import { ISOLATED, logIs, portOf, spawnCliFor } from './fixtures/cli.js';
import { ed25519Pair } from '../src/demo/keygen.js';

const get = async (port: number, path: string): Promise<string> => (await httpGet(port, path)).body;

t.test('container secrets – SSHKEEP_IDENTITY and SSHKEEP_KNOWN_HOSTS as content: connects, and the secrets appear nowhere', async (t) => {
  const keys = makeKeys(t);
  const passphrase = 'pass-phrase-31d8';
  const encrypted = ed25519Pair({ passphrase, cipher: 'aes256-ctr', rounds: 1 });
  const server = await startServer(t, keys, { authorizedKeys: [encrypted.public] });
  const echo = await startEchoFor(t);
  const knownHosts = fs.readFileSync(keys.knownHosts, 'utf8');
  const cli = spawnCliFor(
    t,
    [...ISOLATED, '-v', '--health', '127.0.0.1:0', '-p', String(server.port), '-o', 'UserKnownHostsFile=none', '-L', `0:127.0.0.1:${echo.port}`, 'tester@127.0.0.1'],
    { env: { SSHKEEP_IDENTITY: encrypted.private, SSHKEEP_KNOWN_HOSTS: knownHosts, SSHKEEP_PASSPHRASE: passphrase } },
  );
  const listen = await cli.waitForLog(logIs('listen'), 10_000, 'listening');
  await cli.waitForLog(logIs('state', { to: 'ready' }), 10_000, 'ready with the key from the environment');
  const healthPort = portOf(await cli.waitForLog(logIs('health'), 10_000, 'health endpoints'));
  t.equal((await deadline(roundTrip(await connect(portOf(listen)), 'ok'), 5000, 'echo')).toString(), 'ok');
  const readyz = await get(healthPort, '/readyz');
  const output = `${cli.stderr()}\n${cli.stdout()}\n${readyz}`;
  const keyBody = encrypted.private.split('\n')[2]!; // a line of the key's base64
  t.notOk(output.includes(keyBody), 'no key material in debug logs or /readyz');
  t.notOk(output.includes(passphrase), 'no passphrase');
  t.notOk(output.includes(knownHosts.trim().split(' ')[2]!), 'no known_hosts content');
  cli.kill('SIGTERM');
  t.equal((await cli.exited()).code, 0);
});
