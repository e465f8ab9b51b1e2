// One side of ssh2's packet path in a loop, for scripts/bench-packets.ts to count under callgrind:
// encrypt (allocPacket, the payload copied in, encrypt) or decrypt (the same packets fed back
// PER_READ to a chunk, as a socket read hands them over). The first half of the packets warm V8
// up; instrumentation is on for the second half only.
//
//   valgrind --tool=callgrind --instr-atstart=no node --expose-gc packet-loop.mjs SSH2_DIR encrypt|decrypt PACKETS SIZE PER_READ
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

const [ssh2Dir, side, packets, size, perRead] = process.argv.slice(2);
const { createCipher, createDecipher, bindingAvailable } = createRequire(import.meta.url)(path.resolve(ssh2Dir, 'lib', 'protocol', 'crypto.js'));
if (!bindingAvailable) throw new Error(`${ssh2Dir}: ssh2's native crypto binding is not built`);
const info = { sslName: 'aes-128-gcm', blockLen: 16, keyLen: 16, ivLen: 12, authLen: 16, discardLen: 0 };
const key = Buffer.alloc(16, 1);
const n = Number(packets);
const half = Math.floor(n / 2);
const instrument = (on) => {
  // Everything made before the measured loop (the packets to decrypt) moved out of the young
  // generation first: the scavenges in the loop then copy only what the loop itself keeps.
  if (on) for (let i = 0; i < 2; i++) globalThis.gc();
  execFileSync('callgrind_control', ['-i', on ? 'on' : 'off', String(process.pid)], { stdio: 'ignore' });
};

// CHANNEL_DATA's payload: message type, channel, length, the data.
const payload = Buffer.alloc(1 + 4 + 4 + Number(size), 7);
const wire = [];
let keep = false;
const cipher = createCipher({ outbound: { seqno: 0, onWrite: (b) => keep && wire.push(Buffer.from(b)), cipherInfo: info, cipherKey: key, cipherIV: Buffer.alloc(12, 2) } });
const encrypt = () => {
  const packet = cipher.allocPacket(payload.length);
  packet.set(payload, 5);
  cipher.encrypt(packet);
};

let measured;
if (side === 'encrypt') {
  measured = n - half;
  for (let i = 0; i < half; i++) encrypt();
  instrument(true);
  for (let i = half; i < n; i++) encrypt();
  instrument(false);
} else {
  keep = true;
  for (let i = 0; i < n; i++) encrypt();
  const chunks = [];
  for (let i = 0; i < n; i += Number(perRead)) chunks.push(Buffer.concat(wire.slice(i, i + Number(perRead))));
  let bytes = 0;
  const decipher = createDecipher({ inbound: { seqno: 0, onPayload: (p) => void (bytes += p.length), decipherInfo: info, decipherKey: key, decipherIV: Buffer.alloc(12, 2) } });
  const from = Math.floor(chunks.length / 2);
  measured = n - from * Number(perRead);
  for (let i = 0; i < from; i++) decipher.decrypt(chunks[i], 0, chunks[i].length);
  instrument(true);
  for (let i = from; i < chunks.length; i++) decipher.decrypt(chunks[i], 0, chunks[i].length);
  instrument(false);
  if (bytes !== n * payload.length) throw new Error(`decrypted ${bytes} bytes, expected ${n * payload.length}`);
}
// The packets measured, for the caller's division.
console.log(measured);
