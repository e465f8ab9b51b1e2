// The least a Node forwarder built on ssh2 must do per uploaded SSH packet, and nothing else:
// read the client socket, frame a CHANNEL_DATA packet of at most 32 KiB (sshd's maximum), pad it
// with random bytes, AES-128-GCM it in place with ssh2's native binding, write it to the peer.
// Plain JavaScript so that no TypeScript loader sits in the measured heap (scripts/bench-floor.ts).
//
//   node floor-relay.mjs SINK_PORT fresh|reuse   (prints its listening port)
//
// fresh: a new Buffer per packet, as ssh2 does. reuse: a packet the kernel took synchronously
// carries the next one (the most any buffer pooling could save). The client's half-close ends the
// sink; the sink's reply is swallowed and the client told how many payload bytes went through, as
// the bench's sink tells it.
import net from 'node:net';
import { createRequire } from 'node:module';
import { randomBytes, randomFillSync } from 'node:crypto';

const { AESGCMCipher } = createRequire(import.meta.url)('ssh2/lib/protocol/crypto/build/Release/sshcrypto.node');
const [sinkPort, mode] = [Number(process.argv[2]), process.argv[3]];
const MAX_PAYLOAD = 32768;
const CHANNEL_DATA = 94;

const server = net.createServer({ allowHalfOpen: true, highWaterMark: 256 * 1024, pauseOnConnect: true }, (client) => {
  client.setNoDelay(true);
  const cipher = new AESGCMCipher('aes-128-gcm', randomBytes(16), randomBytes(12));
  const sink = net.connect({ port: sinkPort, host: '127.0.0.1', allowHalfOpen: true });
  sink.setNoDelay(true);
  sink.on('data', () => {});
  let spare;
  let payload = 0;
  const send = (data) => {
    const len = data.length;
    let padLen = 16 - ((1 + 9 + len) & 15);
    if (padLen < 4) padLen += 16;
    const size = 4 + 1 + 9 + len + padLen + 16; // length, pad length, message, padding, tag
    const packet = mode === 'reuse' && spare?.length === size ? spare : Buffer.allocUnsafe(size);
    spare = undefined;
    packet.writeUInt32BE(size - 4 - 16, 0);
    packet[4] = padLen;
    packet[5] = CHANNEL_DATA;
    packet.writeUInt32BE(0, 6);
    packet.writeUInt32BE(len, 10);
    packet.set(data, 14);
    randomFillSync(packet, 14 + len, padLen);
    cipher.encrypt(packet);
    const more = sink.write(packet);
    if (mode === 'reuse' && sink.writableLength === 0) spare = packet;
    return more;
  };
  sink.once('connect', () => client.resume());
  client.on('data', (data) => {
    payload += data.length;
    let more = true;
    for (let p = 0; p < data.length; p += MAX_PAYLOAD) more = send(data.subarray(p, p + MAX_PAYLOAD)) && more;
    if (!more) {
      client.pause();
      sink.once('drain', () => client.resume());
    }
  });
  client.on('end', () => sink.end());
  sink.on('end', () => client.end(String(payload)));
  client.on('error', () => sink.destroy());
  sink.on('error', () => client.destroy());
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
