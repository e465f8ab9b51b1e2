// The least any Node forwarder does per message, without SSH or crypto: accept, connect to the
// target, setNoDelay on both, and each way a socket read and a socket write (with backpressure).
// Plain JavaScript so that no TypeScript loader sits in the measured heap (scripts/bench-floor.ts).
//
//   node plain-proxy.mjs TARGET_PORT stream|onread|handles   (prints its listening port)
//
// stream: both sockets are net.Socket Readables ('data' events). onread: the socket to the target
// reads through net.connect's `onread` option instead, into a reused buffer, which skips the
// Readable layer on that side: what that layer costs. handles: no net.Socket at all, libuv's
// handles driven directly (handles.mjs): what net.Socket costs.
import net from 'node:net';
import * as handles from './handles.mjs';

const [targetPort, mode] = [Number(process.argv[2]), process.argv[3]];
if (!targetPort || !['stream', 'onread', 'handles'].includes(mode)) {
  console.error('usage: node plain-proxy.mjs TARGET_PORT stream|onread|handles');
  process.exit(2);
}
const READ_SIZE = 64 * 1024; // what libuv reads into per call without onread

/** Writes `data` to `to`; when `to` is full, pauses `from` until it drains. False when paused. */
function relay(to, from, data) {
  if (to.write(data)) return true;
  from.pause();
  to.once('drain', () => from.resume());
  return false;
}

/**
 * net.connect's `onread` for the socket to the target: its bytes go to `client` from a buffer
 * reused while every write completes at once. A write the kernel did not take keeps a view of the
 * buffer, so the next read gets a fresh one.
 */
function readInto(client, target) {
  let buffer = Buffer.allocUnsafe(READ_SIZE);
  return {
    buffer: () => (client.writableLength === 0 ? buffer : (buffer = Buffer.allocUnsafe(READ_SIZE))),
    callback: (n, b) => relay(client, target(), b.subarray(0, n)),
  };
}

/**
 * handles: each way a read and a write, reading paused while a write waits for the kernel; a
 * half-close goes through; both closed once both ways have ended, or at once on an error.
 */
function relayHandles(client, target) {
  let ended = 0;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    client.close();
    target.close();
  };
  const oneWay = (from, to) => {
    let eof = false;
    const written = (err) => (err ? close() : closed || eof || from.readStart());
    return {
      data: (bytes) => {
        if (!handles.write(to, bytes, written)) from.readStop();
      },
      end: () => {
        eof = true;
        handles.shutdown(to);
        if (++ended === 2) close();
      },
      error: close,
    };
  };
  handles.read(client, oneWay(client, target));
  handles.read(target, oneWay(target, client));
}

if (mode === 'handles') {
  const port = handles.listen((client) => {
    client.setNoDelay(true);
    handles.connect(targetPort, (target) => {
      if (!target) return void client.close();
      target.setNoDelay(true);
      relayHandles(client, target);
    });
  });
  console.log(port);
} else {
  listenWithSockets();
}

function listenWithSockets() {
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    client.setNoDelay(true);
    const target = net.connect({ port: targetPort, host: '127.0.0.1', allowHalfOpen: true, ...(mode === 'onread' ? { onread: readInto(client, () => target) } : {}) });
    target.setNoDelay(true);
    client.on('data', (data) => relay(target, client, data));
    if (mode === 'stream') target.on('data', (data) => relay(client, target, data));
    // A half-close goes through; each socket closes once both of its directions have ended.
    client.on('end', () => target.end());
    target.on('end', () => client.end());
    client.on('error', () => target.destroy());
    target.on('error', () => client.destroy());
    client.on('close', () => target.destroy());
    target.on('close', () => client.destroy());
  });
  server.listen(0, '127.0.0.1', () => console.log(server.address().port));
}
