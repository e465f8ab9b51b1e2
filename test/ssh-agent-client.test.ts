import t, { type Test } from 'tap';
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { AuthError } from '../src/errors.js';
import { AgentClient, splitMessages } from '../src/ssh/agent.js';
import { wireStrings } from '../src/ssh/wire.js';
import { deadline, until } from './fixtures/net.js';
import { inputFor, makeKeys, startServer, startSshkeep } from './fixtures/tunnel.js';

/** A stand-in ssh-agent on a Unix socket of the test's own, answering every request with `answer`; its socket and its live connections. */
async function fakeAgent(t: Test, answer: (sock: net.Socket, type: number) => void): Promise<{ path: string; open: () => number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sshkeep-agent-'));
  const socketPath = path.join(dir, 'agent.sock');
  const live = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    live.add(sock);
    sock.on('close', () => live.delete(sock));
    sock.on('error', () => {});
    let pending: Buffer = Buffer.alloc(0);
    sock.on('data', (chunk) => {
      const { messages, rest } = splitMessages(Buffer.concat([pending, chunk]));
      pending = rest;
      for (const m of messages) answer(sock, m[0]!);
    });
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  t.teardown(() => {
    for (const s of live) s.destroy();
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { path: socketPath, open: () => live.size };
}

const framed = (body: Buffer) => {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
};

t.test('an agent that trickles its answer is cut off at the deadline, and its connection closed', async (t) => {
  const timers: NodeJS.Timeout[] = [];
  t.teardown(() => timers.forEach(clearInterval));
  // A key listing announced at 256 KiB, then a byte every 50 ms: never idle, never done.
  const agent = await fakeAgent(t, (sock) => {
    sock.write(Buffer.from([0, 4, 0, 0]));
    timers.push(setInterval(() => sock.destroyed || sock.write(Buffer.from([0])), 50));
  });
  const client = new AgentClient(agent.path, 300);
  const error = await deadline(client.identities().then(() => undefined, (err: Error) => err), 3000, 'the request to give up');
  t.match(error?.message, /^ssh-agent at .*: no answer within 300 ms$/);
  await until(() => agent.open() === 0, 3000, 'the connection to the agent to close');
});

t.test('a signature blob without its signature bytes is refused as a wire error, not handed to the signer', async (t) => {
  const shapes: Record<string, Buffer> = {
    'the format alone': wireStrings('ssh-ed25519'),
    'a length past the end': Buffer.concat([wireStrings('ssh-ed25519'), Buffer.from([0, 0, 0, 64, 1, 2, 3])]),
  };
  for (const [name, blob] of Object.entries(shapes)) {
    const agent = await fakeAgent(t, (sock) => sock.write(framed(Buffer.concat([Buffer.from([14]), wireStrings(blob)]))));
    const error = await new AgentClient(agent.path, 3000).sign(Buffer.from('key'), Buffer.from('data'), 0).then(() => undefined, (err: Error) => err);
    t.match(error?.message, /^ssh-agent at .*: ends inside the signature bytes$/, name);
  }
});

t.test('a login whose agent signs with a malformed blob fails as an authentication error, and the process goes on', async (t) => {
  const keys = makeKeys(t);
  // An ECDSA key: ssh2 turns its signature's r and s into DER before sending, and throws on bytes that are not two mpints.
  const ecdsa = path.join(keys.dir, 'id_ecdsa');
  execFileSync('ssh-keygen', ['-q', '-t', 'ecdsa', '-b', '256', '-N', '', '-f', ecdsa]);
  const ecdsaPublic = fs.readFileSync(`${ecdsa}.pub`, 'utf8').trim();
  const server = await startServer(t, keys, { authorizedKeys: [keys.publicKey, ecdsaPublic] });
  const blobOf = (publicLine: string) => Buffer.from(publicLine.split(' ')[1]!, 'base64');
  // Before the fixes each threw inside a promise callback: an unhandled rejection ended the process.
  const cases: [string, Buffer, Buffer][] = [
    ['an Ed25519 signature without its bytes', blobOf(keys.publicKey), wireStrings('ssh-ed25519')],
    ['an ECDSA signature whose bytes are not r and s', blobOf(ecdsaPublic), wireStrings('ecdsa-sha2-nistp256', Buffer.from([1]))],
  ];
  const count = Buffer.alloc(4);
  count.writeUInt32BE(1);
  for (const [what, blob, signature] of cases) {
    const agent = await fakeAgent(t, (sock, type) => {
      if (type === 11) sock.write(framed(Buffer.concat([Buffer.from([12]), count, wireStrings(blob, 'agent key')])));
      else sock.write(framed(Buffer.concat([Buffer.from([14]), wireStrings(signature)])));
    });
    const input = { ...inputFor(server, keys, ['0:127.0.0.1:9']), identityFiles: [] };
    input.options = input.options!.filter((o) => o !== 'IdentitiesOnly=yes');
    const { app } = await startSshkeep(t, input, {}, { authSock: agent.path });
    await t.rejects(deadline(app.ready(), 5000, `the login to fail: ${what}`), AuthError, what);
  }
});
