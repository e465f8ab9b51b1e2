/**
 * The patches of patches/ (applied by patch-package at install) are in the installed ssh2, for the
 * version package.json pins: a patch that stops applying, or an ssh2 upgraded under it, fails here
 * rather than silently running unpatched code.
 */
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import { Duplex } from 'node:stream';
import { createRequire } from 'node:module';
import path from 'node:path';
import t, { type Test } from 'tap';
import ssh2 from 'ssh2';
import { startEmbeddedServer } from '../src/demo/embedded-server.js';
import { ed25519Pair } from '../src/demo/keygen.js';
import { REPO_ROOT } from './fixtures/bin.js';
import { takesViews } from '../src/ssh/lean-channel.js';
import { deadline, startEchoFor, until } from './fixtures/net.js';

const PATCHES = path.join(REPO_ROOT, 'patches');
const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; scripts: Record<string, string>; files: string[] };
const installed = (createRequire(import.meta.url)('ssh2/package.json') as { version: string }).version;

t.test('ssh2 patch – pinned to the exact version the patches were made for, applied at install, published', async (t) => {
  const files = fs.readdirSync(PATCHES).filter((f) => f.endsWith('.patch'));
  t.ok(files.length > 0, 'patches/ holds the ssh2 patches');
  t.match(pkg.scripts.postinstall, /patch-package --error-on-fail/, 'npm install applies them, failing when one does not apply');
  t.match(pkg.scripts.postinstall, /patch-package --error-on-fail && npm rebuild ssh2$/, 'then builds ssh2\'s native binding again, from the patched source (patch 010 changes it)');
  t.ok(pkg.files.includes('patches'), 'the patches are published with the package');
  for (const f of files) {
    const [, name, version] = /^(.+?)\+(\d+\.\d+\.\d+)\+/.exec(f) ?? [];
    t.equal(name, 'ssh2', `${f} patches ssh2`);
    t.equal(pkg.dependencies.ssh2, version, `${f}: package.json pins ssh2 to exactly ${version}`);
    t.equal(installed, version, `${f}: the installed ssh2 is ${version}`);
  }
});

t.test('ssh2 patch – each one is applied to node_modules/ssh2, in order (they reverse cleanly, the last first)', async (t) => {
  // On a copy, one after another: a later patch may change lines an earlier one made.
  const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'sshkeep-ssh2-patches-'));
  t.teardown(() => fs.rmSync(copy, { recursive: true, force: true }));
  fs.cpSync(path.join(REPO_ROOT, 'node_modules', 'ssh2'), path.join(copy, 'node_modules', 'ssh2'), { recursive: true });
  for (const f of fs.readdirSync(PATCHES).filter((x) => x.endsWith('.patch')).sort().reverse()) {
    t.doesNotThrow(() => execFileSync('git', ['apply', '--reverse', path.join(PATCHES, f)], { cwd: copy, stdio: 'pipe' }), `${f} is applied`);
  }
});

t.test('ssh2 patch 002 small-messages – padding from the pool is never reused, across refills', async (t) => {
  const { NullCipher } = createRequire(import.meta.url)('ssh2/lib/protocol/crypto.js') as { NullCipher: new (seqno: number, onWrite: () => void) => { allocPacket(n: number): Buffer } };
  const cipher = new NullCipher(0, () => {});
  const seen = new Set<string>();
  let bytes = 0;
  // A few bytes of padding per packet: 2,000 packets cross at least two 4 KiB refills.
  for (let i = 0; i < 2000; i++) {
    const packet = cipher.allocPacket(4);
    seen.add(packet.subarray(5 + 4, 5 + 4 + packet[4]!).toString('hex'));
    bytes += packet[4]!;
  }
  t.ok(bytes > 2 * 4096, `${bytes} bytes of padding`);
  t.equal(seen.size, 2000, `no packet's padding repeats another's`);
});

/** ssh2's cipher layer: the cipher and decipher its protocol makes for a key exchange's keys. */
type SshCrypto = {
  bindingAvailable: boolean;
  createCipher(config: object): { allocPacket(n: number): Buffer; encrypt(packet: Buffer): void };
  createDecipher(config: object): { decrypt(data: Buffer, p: number, len: number): number | undefined };
};
const AES128_GCM = { sslName: 'aes-128-gcm', blockLen: 16, keyLen: 16, ivLen: 12, authLen: 16, discardLen: 0 };

/** What ssh2's AES-GCM cipher sends for each payload, one stream. */
function gcmSealed(crypto: SshCrypto, key: Buffer, iv: Buffer, payloads: Buffer[]): Buffer {
  const wire: Buffer[] = [];
  const cipher = crypto.createCipher({ outbound: { seqno: 0, onWrite: (b: Buffer) => wire.push(Buffer.from(b)), cipherInfo: AES128_GCM, cipherKey: key, cipherIV: Buffer.from(iv) } });
  for (const payload of payloads) {
    const packet = cipher.allocPacket(payload.length);
    payload.copy(packet, 5);
    cipher.encrypt(packet);
  }
  return Buffer.concat(wire);
}

/**
 * ssh2's AES-GCM decipher, pushing each payload it reads to `got` as given (a view: a later packet
 * must not overwrite it). With `pause`, each payload stops the decipher, as ssh2's protocol does
 * while a key exchange waits: decrypt() returns where it stopped, and the caller goes on from there.
 */
function gcmOpener(crypto: SshCrypto, key: Buffer, iv: Buffer, got: Buffer[], pause = false): ReturnType<SshCrypto['createDecipher']> {
  const onPayload = (p: Buffer) => {
    got.push(p);
    return pause ? false : undefined;
  };
  return crypto.createDecipher({ inbound: { seqno: 0, onPayload, decipherInfo: AES128_GCM, decipherKey: key, decipherIV: Buffer.from(iv) } });
}

t.test('ssh2 patch 002 small-messages – the AES-GCM decipher reads the same payloads wherever the stream is cut', async (t) => {
  const crypto = createRequire(import.meta.url)('ssh2/lib/protocol/crypto.js') as SshCrypto;
  if (!crypto.bindingAvailable) return t.fail('ssh2 native crypto binding not built: the patched decipher is the binding one');
  const key = Buffer.alloc(16, 7);
  const iv = Buffer.alloc(12, 9);
  const sent = [1, 64, 300, 0].map((n, i) => Buffer.alloc(n, i + 1));
  const stream = gcmSealed(crypto, key, iv, sent);
  // Every cut: within the length, the packet, the tag, or between packets; then byte by byte.
  // Each with the decipher stopped after every payload, and not.
  for (const pause of [false, true]) {
    for (const cuts of [...Array.from({ length: stream.length - 1 }, (_, i) => [i + 1]), Array.from({ length: stream.length - 1 }, (_, i) => i + 1)]) {
      const got: Buffer[] = [];
      const decipher = gcmOpener(crypto, key, iv, got, pause);
      let from = 0;
      for (const to of [...cuts, stream.length]) {
        const chunk = Buffer.from(stream.subarray(from, to)); // a chunk of its own, as a socket read gives
        for (let p: number | undefined = 0; p !== undefined; ) p = decipher.decrypt(chunk, p, chunk.length);
        from = to;
      }
      const same = got.length === sent.length && got.every((p, i) => p.equals(sent[i]!));
      if (!same) return t.fail(`cut at ${cuts.length === 1 ? cuts[0] : 'every byte'}${pause ? ', stopped after each payload' : ''}: payloads differ`);
    }
  }
  t.pass(`${stream.length} single cuts and a byte-by-byte feed all give the ${sent.length} payloads, stopped after each or not`);
});

t.test('ssh2 patch 001 certificates – applied: certificate host key algorithms, and the algorithm a certificate signs with', async (t) => {
  const { SUPPORTED_SERVER_HOST_KEY } = createRequire(import.meta.url)('ssh2/lib/protocol/constants.js') as { SUPPORTED_SERVER_HOST_KEY: string[] };
  t.ok(SUPPORTED_SERVER_HOST_KEY.includes('ssh-ed25519-cert-v01@openssh.com'), 'certificate host key algorithms can be asked for');
  const { certifiedAlgorithm } = createRequire(import.meta.url)('ssh2/lib/protocol/utils.js') as { certifiedAlgorithm?: (name: string) => string };
  t.equal(certifiedAlgorithm?.('rsa-sha2-512-cert-v01@openssh.com'), 'rsa-sha2-512');
  t.equal(certifiedAlgorithm?.('sk-ssh-ed25519-cert-v01@openssh.com'), 'sk-ssh-ed25519@openssh.com');
  t.equal(certifiedAlgorithm?.('ssh-ed25519'), 'ssh-ed25519');
});

t.test('ssh2 patch 003 channel-destroy – destroying a finished channel does not end it again; an open one is still ended, then closed', async (t) => {
  const { Channel } = createRequire(import.meta.url)('ssh2/lib/Channel.js') as { Channel: new (client: object, info: object) => Duplex };
  const sent: string[] = [];
  const protocol = { channelEOF: () => sent.push('eof'), channelClose: () => sent.push('close'), channelData: () => sent.push('data') };
  const open = () => {
    const channel = new Channel({ _protocol: protocol }, {
      type: 'direct-tcpip',
      incoming: { id: 1, window: 1 << 21, packetSize: 32768, state: 'open' },
      outgoing: { id: 2, window: 1 << 21, packetSize: 32768, state: 'open' },
    });
    // end() on a finished stream is where Node builds (and here drops) an ERR_STREAM_ALREADY_FINISHED with its stack.
    const ends = { afterFinish: 0 };
    channel.end = function (this: Duplex, ...args: unknown[]) {
      if (this.writableFinished) ends.afterFinish++;
      return (Duplex.prototype.end as (...a: unknown[]) => Duplex).apply(this, args);
    } as Duplex['end'];
    return { channel, ends };
  };
  const finished = open();
  finished.channel.end();
  await once(finished.channel, 'finish');
  t.same(sent, ['eof'], 'ending the channel sent its EOF');
  finished.channel.destroy();
  t.equal(finished.ends.afterFinish, 0, 'destroy() does not call end() on the finished channel');
  t.same(sent, ['eof', 'close'], 'and closes it');

  sent.length = 0;
  open().channel.destroy();
  await new Promise((r) => setImmediate(r));
  t.same(sent, ['eof', 'close'], 'a channel not yet ended is ended (EOF) and closed, as before');
});

/** A direct-tcpip channel to an echo server, through an embedded server. */
/** An ssh2 client connected to the embedded server, and how to open a channel to an echo target through it. */
async function clientToEcho(t: Test): Promise<{ client: ssh2.Client; open: () => Promise<ssh2.ClientChannel> }> {
  const key = ed25519Pair();
  const server = await startEmbeddedServer({ authorizedKeys: [key.public] });
  t.teardown(() => server.close());
  const echo = await startEchoFor(t);
  const client = new ssh2.Client();
  client.on('error', () => {});
  t.teardown(() => client.end());
  const ready = once(client, 'ready');
  client.connect({ host: server.host, port: server.port, username: 'demo', privateKey: key.private, hostVerifier: (k: Buffer) => k.equals(server.hostKeyBlob) });
  await deadline(ready, 5000, 'ssh client ready');
  const open = () =>
    new Promise<ssh2.ClientChannel>((resolve, reject) =>
      client.forwardOut('127.0.0.1', 0, '127.0.0.1', echo.port, (err, ch) => (err ? reject(err) : resolve(ch))),
    );
  return { client, open };
}

async function channelToEcho(t: Test): Promise<ssh2.ClientChannel> {
  return (await clientToEcho(t)).open();
}

t.test("ssh2 patch 004 window-event – a channel emits 'window' when the server opens its send window", async (t) => {
  const channel = await channelToEcho(t);
  let windows = 0;
  channel.on('window', () => windows++);
  let echoed = 0;
  channel.on('data', (d: Buffer) => (echoed += d.length));
  // More than the server's initial window (2 MiB): the rest goes only as it adjusts the window.
  const total = 3 * 1024 * 1024;
  channel.write(Buffer.alloc(total, 1));
  await until(() => echoed >= total, 20_000, 'the bytes echoed');
  t.ok(windows > 0, `'window' emitted ${windows} times`);
  channel.close();
});

/** An ssh2 server whose every exec writes `stderr` on stderr and `stdout` on stdout, exits 0 and closes; and a client logged in to it. */
async function execServer(t: Test, stderr: string, stdout: string): Promise<ssh2.Client> {
  const key = ed25519Pair();
  const server = new ssh2.Server({ hostKeys: [key.private] }, (conn) => {
    conn.on('error', () => {});
    conn.on('authentication', (ctx) => ctx.accept());
    conn.on('ready', () => {
      conn.on('session', (accept) => {
        accept().on('exec', (acceptExec) => {
          const channel = acceptExec();
          channel.stderr.write(stderr);
          channel.write(stdout);
          channel.exit(0);
          channel.end();
        });
      });
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const client = new ssh2.Client();
  client.on('error', () => {});
  t.teardown(() => client.end());
  const ready = once(client, 'ready');
  client.connect({ host: '127.0.0.1', port: (server.address() as { port: number }).port, username: 'demo', password: 'x' });
  await deadline(ready, 5000, 'ssh client ready');
  return client;
}

function exec(client: ssh2.Client, command: string): Promise<ssh2.ClientChannel> {
  return new Promise((resolve, reject) => client.exec(command, (err, ch) => (err ? reject(err) : resolve(ch))));
}

/** Everything `stream` gives until its 'end', as text, and whether 'close' followed. */
async function readAll(stream: NodeJS.ReadableStream & NodeJS.EventEmitter): Promise<{ text: string; closed: boolean }> {
  let text = '';
  const closed = once(stream, 'close').then(() => true);
  stream.on('data', (d: Buffer) => (text += d.toString()));
  await deadline(once(stream, 'end'), 5000, 'the stream to end');
  return { text, closed: await deadline(closed, 5000, "the stream's close") };
}

t.test('ssh2 patch 005 lazy-stderr – a forwarded connection never makes a stderr stream', async (t) => {
  const channel = await channelToEcho(t);
  const made = () => (channel as unknown as { _stderr: unknown })._stderr !== undefined || Object.hasOwn(channel, 'stderr');
  t.notOk(made(), 'none at the open');
  channel.end('ping');
  t.same(await readAll(channel), { text: 'ping', closed: true }, 'the echo came back, then the close');
  t.notOk(made(), 'none after its EOF and CLOSE either');
});

t.test('ssh2 patch 005 lazy-stderr – an exec channel still reads its stderr, made at first use', async (t) => {
  const client = await execServer(t, 'oops', 'fine');
  const channel = await exec(client, 'x');
  const [err, out] = await Promise.all([readAll(channel.stderr), readAll(channel)]);
  t.same(err, { text: 'oops', closed: true }, "stderr's bytes, its end and its close");
  t.same(out, { text: 'fine', closed: true }, "stdout's");
});

t.test('ssh2 patch 005 lazy-stderr – a stderr first asked for after the channel closed has ended with it', async (t) => {
  const client = await execServer(t, '', 'fine');
  const channel = await exec(client, 'x');
  const out = await readAll(channel);
  t.same(out, { text: 'fine', closed: true });
  t.same(await readAll(channel.stderr), { text: '', closed: true }, 'it ends and closes as one made at the open would have');
});

/** ssh2's table of a connection's channels, by our id. */
const channelTable = (client: ssh2.Client) => (client as unknown as { _chanMgr: { _channels: unknown; _count: number } })._chanMgr;

t.test('ssh2 patch 006 map-channels – a connection keeps its channels in a Map, each entry gone with its channel', async (t) => {
  const { client, open } = await clientToEcho(t);
  const table = channelTable(client);
  t.ok(table._channels instanceof Map, 'a Map, not an object keyed by channel id');
  const channels = await Promise.all([open(), open(), open()]);
  t.equal((table._channels as Map<number, unknown>).size, 3, 'one entry per open channel');
  const echoes = await Promise.all(
    channels.map((c, i) => {
      c.end(`ping ${i}`);
      return readAll(c);
    }),
  );
  t.same(echoes, [0, 1, 2].map((i) => ({ text: `ping ${i}`, closed: true })), 'each echoed, ended and closed');
  t.equal((table._channels as Map<number, unknown>).size, 0, 'no entry left');
  t.equal(table._count, 0, 'none counted');
  const again = await open();
  again.end('once more');
  t.same(await readAll(again), { text: 'once more', closed: true }, 'a channel opened after them works');
});

t.test('ssh2 patch 006 map-channels – a lost connection closes every channel still open', async (t) => {
  const { client, open } = await clientToEcho(t);
  const channels = await Promise.all([open(), open(), open()]);
  // Flowing: ssh2 emits a channel's 'close' after its 'end', which a paused stream never reaches.
  const closed = Promise.all(channels.map((c) => (c.resume(), once(c, 'close'))));
  (client as unknown as { _sock: { destroy(): void } })._sock.destroy();
  await deadline(closed, 5000, "every channel's close");
  t.equal((channelTable(client)._channels as Map<number, unknown>).size, 0, 'the table is empty');
});

t.test('ssh2 patch 006 map-channels – once the ids have run out, a new channel takes the lowest free id, not a live one', async (t) => {
  type Manager = { _cur: number; add(val: unknown): number; get(id: number): unknown; remove(id: number): void };
  const { ChannelManager } = createRequire(import.meta.url)('ssh2/lib/utils.js') as { ChannelManager: new (client: unknown) => Manager };
  const table = new ChannelManager({});
  const ids = ['a', 'b', 'c'].map((v) => table.add(v));
  t.same(ids, [0, 1, 2], 'ids in order while they last');
  table.remove(1);
  table._cur = 2 ** 32 - 1; // every id handed out once: the search for a free one
  t.equal(table.add('d'), 1, 'the lowest free id');
  t.same([0, 1, 2].map((id) => table.get(id)), ['a', 'd', 'c'], 'no live channel overwritten');
});

t.test("ssh2 patch 007 make-channel – an open's callback may say what the channel is made of; without it, a Channel as before", async (t) => {
  const { client } = await clientToEcho(t);
  const echo = await startEchoFor(t);
  const made: Array<{ client: unknown; info: { type: string; incoming: { id: number }; outgoing: { id: number; window: number; packetSize: number } } }> = [];
  const channel = { made: true };
  const opened = new Promise((resolve, reject) => {
    const cb = Object.assign((err: Error | undefined, ch: unknown) => (err ? reject(err) : resolve(ch)), {
      makeChannel: (c: unknown, info: (typeof made)[number]['info']) => (made.push({ client: c, info }), channel),
    });
    client.forwardOut('127.0.0.1', 0, '127.0.0.1', echo.port, cb);
  });
  t.equal(await deadline(opened, 5000, 'the open'), channel, 'the callback gets what makeChannel made');
  t.equal(made.length, 1);
  t.equal(made[0]!.client, client, 'made with the client');
  t.equal(made[0]!.info.type, 'direct-tcpip');
  t.ok(made[0]!.info.outgoing.packetSize > 0 && made[0]!.info.outgoing.window > 0, "the server's window and packet size");
  const table = (client as unknown as { _chanMgr: { get(id: number): unknown; remove(id: number): void } })._chanMgr;
  t.equal(table.get(made[0]!.info.incoming.id), channel, "in ssh2's table, where the server's messages find it");
  table.remove(made[0]!.info.incoming.id); // a stand-in no handler could drive, gone before the connection closes
  const plain = await new Promise<unknown>((resolve, reject) => client.forwardOut('127.0.0.1', 0, '127.0.0.1', echo.port, (err, ch) => (err ? reject(err) : resolve(ch))));
  t.ok(plain instanceof Duplex, 'a callback without makeChannel gets a Channel');
});

t.test('ssh2 patch 008 channel-data-bytes – a channel takes any Uint8Array as its data, as a Buffer; sshkeep finds it so', async (t) => {
  const { client } = await clientToEcho(t);
  const echo = await startEchoFor(t);
  const channel = await new Promise<ssh2.Channel>((resolve, reject) => client.forwardOut('127.0.0.1', 0, '127.0.0.1', echo.port, (err, ch) => (err ? reject(err) : resolve(ch))));
  const back: Buffer[] = [];
  channel.on('data', (c: Buffer) => back.push(c));
  const bytes = new Uint8Array(64);
  bytes.set(Buffer.from('plain bytes, not a Buffer'), 20);
  const protocol = (client as unknown as { _protocol: { channelData(id: number, data: Uint8Array): void } })._protocol;
  protocol.channelData((channel as unknown as { outgoing: { id: number } }).outgoing.id, bytes.subarray(20, 45));
  await until(() => Buffer.concat(back).length >= 25, 5000, 'the echo');
  t.equal(Buffer.concat(back).toString(), 'plain bytes, not a Buffer', 'sent as bytes');
  t.equal(takesViews, true, 'lean-channel.ts finds the patch: clients lend their reads');
  channel.close();
});

/** A Buffer whose own `buffer` and `byteOffset` properties would lie: only the typed array's getters read it right. */
function withLyingAccessors(b: Buffer): Buffer {
  Object.defineProperty(b, 'buffer', { get: () => new ArrayBuffer(b.byteLength) });
  Object.defineProperty(b, 'byteOffset', { get: () => 0 });
  return b;
}

t.test('ssh2 patch 009 typed-array-getters – bufferSlice and the AES-GCM decipher read a view through the typed array getters', async (t) => {
  const require = createRequire(import.meta.url);
  const utils = require('ssh2/lib/protocol/utils.js') as { bufferSlice(b: Buffer, start: number, end?: number): Buffer };
  const whole = Buffer.from('....the bytes wanted....');
  const view = withLyingAccessors(whole.subarray(4, 20));
  t.ok(view.byteOffset === 0 && whole.byteOffset + 4 !== 0, 'the view says it starts where it does not');
  t.equal(utils.bufferSlice(view, 0, 9).toString(), 'the bytes', 'a slice of where the view really is');
  t.equal(utils.bufferSlice(view, 4).toString(), 'bytes wanted', 'to its end');

  const crypto = require('ssh2/lib/protocol/crypto.js') as SshCrypto;
  const key = Buffer.alloc(16, 3);
  const iv = Buffer.alloc(12, 5);
  const got: Buffer[] = [];
  const decipher = gcmOpener(crypto, key, iv, got);
  const stream = Buffer.concat([Buffer.alloc(7), gcmSealed(crypto, key, iv, [Buffer.from('hello there')])]); // the packet 7 bytes into its ArrayBuffer
  const chunk = withLyingAccessors(stream.subarray(7));
  decipher.decrypt(chunk, 0, chunk.length);
  t.same(got.map(String), ['hello there'], 'the payload read where the chunk really is');
});

type GcmBinding = {
  AESGCMCipher: new (name: string, key: Buffer, iv: Buffer) => { encrypt(packet: Buffer): void };
  AESGCMDecipher: new (name: string, key: Buffer, iv: Buffer) => { decryptAt?(packet: ArrayBuffer, offset: number, length: number, tag: ArrayBuffer, tagOffset: number): void };
};

t.test('ssh2 patch 010 gcm-binding-views – the built binding decrypts a packet and tag named by ArrayBuffer and offset', async (t) => {
  const require = createRequire(import.meta.url);
  let binding: GcmBinding;
  try {
    binding = require('ssh2/lib/protocol/crypto/build/Release/sshcrypto.node') as GcmBinding;
  } catch {
    return t.fail('ssh2 native crypto binding not built: patch 010 changes the binding');
  }
  const key = Buffer.alloc(16, 4);
  const iv = () => Buffer.alloc(12, 6);
  const cipher = new binding.AESGCMCipher('aes-128-gcm', key, iv());
  const decipher = new binding.AESGCMDecipher('aes-128-gcm', key, iv());
  t.equal(typeof decipher.decryptAt, 'function', 'decryptAt(): the binding was rebuilt from the patched source after patch-package');
  if (typeof decipher.decryptAt !== 'function') return;
  const decryptAt = decipher.decryptAt.bind(decipher);

  // Two packets (length, padding length, payload, padding; then the tag), 5 bytes into a larger ArrayBuffer.
  const plain = [Buffer.from('\x0bfirst payload...'), Buffer.from('\x0dsecond payload.')].map((b) => Buffer.concat([b, Buffer.alloc(16)]));
  const whole = Buffer.alloc(5 + plain.reduce((n, p) => n + 4 + p.length + 16, 0));
  let at = 5;
  const places: number[] = [];
  for (const body of plain) {
    const packet = Buffer.alloc(4 + body.length + 16);
    packet.writeUInt32BE(body.length, 0);
    body.copy(packet, 4);
    cipher.encrypt(packet);
    t.notSame(packet.subarray(4, 4 + body.length), body, 'encrypted');
    packet.copy(whole, at);
    places.push(at);
    at += packet.length;
  }
  const sealed = Buffer.from(whole);
  const ab = whole.buffer;
  const base = whole.byteOffset;
  for (const [i, body] of plain.entries()) {
    const p = base + places[i]! + 4;
    decryptAt(ab, p, body.length, ab, p + body.length);
    t.same(Buffer.from(ab, p, body.length), body, `packet ${i + 1} decrypted where it is`);
  }

  // A wrong tag, and arguments that do not name bytes of an ArrayBuffer, are errors, not reads out of bounds.
  const firstOf = (bytes: Buffer) => {
    const p = bytes.byteOffset + places[0]! + 4;
    const ab = bytes.buffer as ArrayBuffer;
    return () => new binding.AESGCMDecipher('aes-128-gcm', key, iv()).decryptAt!(ab, p, plain[0]!.length, ab, p + plain[0]!.length);
  };
  const tampered = Buffer.from(sealed);
  tampered[places[0]! + 4 + plain[0]!.length] ^= 1;
  t.doesNotThrow(firstOf(Buffer.from(sealed)), 'the first packet as sent decrypts');
  t.throws(firstOf(tampered), /^Invalid MAC$/, 'with one bit of its tag changed: Invalid MAC');
  const small = new ArrayBuffer(32);
  t.throws(() => decryptAt(small, 8, 32, small, 0), /Missing\/Invalid packet/, 'a packet past the end of its ArrayBuffer');
  t.throws(() => decryptAt(small, 0, 16, small, 17), /Missing\/Invalid tag/, 'a tag past the end of its ArrayBuffer');
  t.throws(() => decryptAt(Buffer.alloc(32) as unknown as ArrayBuffer, 0, 16, small, 16), /Missing\/Invalid packet/, 'a view where an ArrayBuffer is asked for');
  t.throws(() => decryptAt(small, -1, 16, small, 16), /Missing\/Invalid packet/, 'a negative offset');
});

t.test('ssh2 patch 010 gcm-binding-views – a binding built before the patch, without decryptAt(), leaves AES-GCM to node:crypto', async (t) => {
  const require = createRequire(import.meta.url);
  const bindingPath = require.resolve('ssh2/lib/protocol/crypto/build/Release/sshcrypto.node');
  const cryptoPath = require.resolve('ssh2/lib/protocol/crypto.js');
  let real: GcmBinding;
  try {
    real = require(bindingPath) as GcmBinding;
  } catch {
    return t.fail('ssh2 native crypto binding not built: patch 010 changes the binding');
  }
  // crypto.js loaded afresh, with a binding whose AES-GCM decipher is the old one: decrypt(), no decryptAt().
  class OldDecipher { decrypt(): void { throw new Error('the old binding decipher was used'); } }
  const saved = { binding: require.cache[bindingPath], crypto: require.cache[cryptoPath] };
  t.teardown(() => {
    require.cache[bindingPath] = saved.binding;
    require.cache[cryptoPath] = saved.crypto;
  });
  require.cache[bindingPath] = { ...saved.binding!, exports: { ...real, AESGCMDecipher: OldDecipher } } as NodeJS.Module;
  delete require.cache[cryptoPath];
  const crypto = require(cryptoPath) as SshCrypto;
  const key = Buffer.alloc(16, 8);
  const iv = Buffer.alloc(12, 2);
  const got: Buffer[] = [];
  const stream = gcmSealed(crypto, key, iv, [Buffer.from('hello')]);
  t.doesNotThrow(() => gcmOpener(crypto, key, iv, got).decrypt(stream, 0, stream.length), 'the old binding decipher is not used');
  t.same(got.map(String), ['hello'], 'the payload, decrypted by node:crypto');
});

t.test("ssh2 patch 011 buffer-binding – packets are made without reading the global Buffer (an accessor on globalThis)", async (t) => {
  const require = createRequire(import.meta.url);
  const crypto = require('ssh2/lib/protocol/crypto.js') as SshCrypto;
  const Protocol = require('ssh2/lib/protocol/Protocol.js') as { prototype: { directTcpip(this: object, chan: number, window: number, packetSize: number, cfg: object): void } };
  const cipher = crypto.createCipher({ outbound: { seqno: 0, onWrite: () => {}, cipherInfo: AES128_GCM, cipherKey: Buffer.alloc(16), cipherIV: Buffer.alloc(12) } });
  const queue: Uint8Array[] = [];
  const alloc = Buffer.alloc; // read now: the stand-in's own reads are not ssh2's
  const write = { allocStart: 0, alloc: (n: number) => alloc(n), finalize: (packet: Buffer) => packet };
  const global = Object.getOwnPropertyDescriptor(globalThis, 'Buffer')!;
  t.ok(typeof global.get === 'function', "Node's global Buffer is an accessor (what the patch avoids)");
  let reads = 0;
  Object.defineProperty(globalThis, 'Buffer', { ...global, get() { reads++; return global.get!.call(this); } });
  try {
    cipher.allocPacket(64);
    // A stand-in protocol that queues the packet, as ssh2 does during a key exchange.
    Protocol.prototype.directTcpip.call({ _packetRW: { write }, _kexinit: {}, _queue: queue }, 1, 1 << 21, 32768, { srcIP: '127.0.0.1', srcPort: 5000, dstIP: 'db', dstPort: 5432 });
  } finally {
    Object.defineProperty(globalThis, 'Buffer', global);
  }
  t.equal(queue.length, 1, 'the open was framed');
  t.equal(reads, 0, 'allocPacket and directTcpip read Buffer from their module, not from globalThis');
});
