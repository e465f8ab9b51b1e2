import t from 'tap';
import fs from 'node:fs';
import net from 'node:net';
import { once } from 'node:events';
import { execFile } from 'node:child_process';
import ssh2 from 'ssh2';
import { requireSshd, startSshd, type Sshd } from './fixtures/sshd.js';
import { deadline, startEchoFor } from './fixtures/net.js';
import { alive } from './fixtures/proc.js';

const { Client } = ssh2;
type Client = InstanceType<typeof Client>;

/** Connects with the fixture's user key, accepting only the fixture's host key. */
async function sshConnect(sshd: Sshd): Promise<Client> {
  const parsed = ssh2.utils.parseKey(sshd.hostPublicKey);
  if (parsed instanceof Error) throw parsed;
  const expected = parsed.getPublicSSH();
  const client = new Client();
  const ready = new Promise<void>((resolve, reject) => {
    client.once('ready', resolve);
    client.once('error', reject);
  });
  client.connect({
    host: sshd.host,
    port: sshd.port,
    username: sshd.user,
    privateKey: fs.readFileSync(sshd.userKeyPath),
    hostVerifier: (key: Buffer) => key.equals(expected),
  });
  await deadline(ready, 10_000, `ssh2 ready\n${sshd.logs()}`);
  return client;
}

t.test('sshd fixture – ssh2 forwardOut reaches an echo server', async (t) => {
  if (!requireSshd(t)) return;
  const sshd = await startSshd(t);
  const echo = await startEchoFor(t);
  const client = await sshConnect(sshd);
  t.teardown(() => client.end());

  const channel = await deadline(
    new Promise<ssh2.ClientChannel>((resolve, reject) =>
      client.forwardOut('127.0.0.1', 0, '127.0.0.1', echo.port, (err, ch) => (err ? reject(err) : resolve(ch))),
    ),
    5000,
    'forwardOut',
  );
  const chunks: Buffer[] = [];
  channel.on('data', (c: Buffer) => chunks.push(c));
  const ended = once(channel, 'end');
  const payload = Buffer.from('hello through sshd \u00e9\u0000\xff'.repeat(100));
  channel.end(payload);
  await deadline(ended, 5000, 'echo to end the channel');
  t.same(Buffer.concat(chunks), payload);
});

t.test('sshd fixture – OpenSSH client accepts knownHostsPath and userKeyPath', async (t) => {
  if (!requireSshd(t)) return;
  const sshd = await startSshd(t);
  const args = [
    '-F', 'none',
    '-o', 'BatchMode=yes',
    '-o', `UserKnownHostsFile=${sshd.knownHostsPath}`,
    '-o', 'StrictHostKeyChecking=yes',
    '-o', 'IdentitiesOnly=yes',
    '-i', sshd.userKeyPath,
    '-p', String(sshd.port),
    `${sshd.user}@127.0.0.1`,
    'true',
  ];
  const result = await deadline(
    new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile('ssh', args, (err, _stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stderr }));
    }),
    10_000,
    'ssh to exit',
  );
  t.equal(result.code, 0, 'ssh ... true exits 0', { ssh: result.stderr, sshd: sshd.logs() });
});

t.test('sshd fixture – stop() kills sshd and its session processes', async (t) => {
  if (!requireSshd(t)) return;
  const sshd = await startSshd(t);
  const client = await sshConnect(sshd);
  t.teardown(() => client.end());
  const clientClosed = once(client, 'close');
  client.on('error', () => {}); // the connection is cut under it

  // `exec` keeps the shell's pid, so $$ is the pid of the long-running session process.
  const stream = await deadline(
    new Promise<ssh2.ClientChannel>((resolve, reject) =>
      client.exec('echo $$; exec sleep 600', (err, s) => (err ? reject(err) : resolve(s))),
    ),
    5000,
    'exec',
  );
  let out = '';
  await deadline(
    new Promise<void>((resolve) =>
      stream.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('\n')) resolve();
      }),
    ),
    5000,
    'session pid',
  );
  const pid = Number(out.trim());
  t.ok(pid > 0 && alive(pid), `session process ${pid} runs`);

  await sshd.stop();
  await sshd.stop(); // idempotent
  await deadline(clientClosed, 5000, 'ssh2 client to see the connection close');
  t.notOk(alive(pid), 'session process is gone');
  t.notOk(fs.existsSync(sshd.dir), 'temp dir removed');

  const sock = net.connect(sshd.port, '127.0.0.1');
  const [err] = (await deadline(once(sock, 'error'), 5000, 'connect to be refused')) as [NodeJS.ErrnoException];
  t.equal(err.code, 'ECONNREFUSED');
});
