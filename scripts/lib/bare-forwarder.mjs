// The least a forwarder built on ssh2 does: forwardOut and pipes, nothing else (setNoDelay on
// every socket). One listener per TARGET_PORT, each printed on one line, in order, once ready.
//
//
//   node bare-forwarder.mjs [--handles] SSH_PORT USER KEY_FILE TARGET_PORT...
//
// --handles: the accepted clients are libuv handles driven directly (handles.mjs), no net.Socket:
// what net.Socket costs an ssh2 forwarder per connection.
import fs from 'node:fs';
import net from 'node:net';
import ssh2 from 'ssh2';
import * as handles from './handles.mjs';

const args = process.argv.slice(2);
const withHandles = args[0] === '--handles';
const [sshPort, user, keyFile, ...targetPorts] = withHandles ? args.slice(1) : args;
const client = new ssh2.Client();
client.on('error', (err) => {
  console.error(`bare forwarder: ${err.message}`);
  process.exit(1);
});

function forward(targetPort) {
  const server = net.createServer((local) => {
    local.setNoDelay(true);
    local.on('error', () => {});
    client.forwardOut('127.0.0.1', 0, '127.0.0.1', Number(targetPort), (err, channel) => {
      if (err) return void local.destroy();
      channel.on('error', () => local.destroy());
      local.on('close', () => channel.destroy());
      channel.pipe(local);
      local.pipe(channel);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

/** forward() with the client a libuv handle: each way a write, the reader paused while it waits; a half-close goes through. */
function forwardHandles(targetPort) {
  return handles.listen((local) => {
    local.setNoDelay(true);
    client.forwardOut('127.0.0.1', 0, '127.0.0.1', Number(targetPort), (err, channel) => {
      if (err) return void local.close();
      let closed = false;
      let eof = false;
      const close = () => {
        if (closed) return;
        closed = true;
        local.close();
        channel.destroy();
      };
      channel.on('error', close);
      channel.on('close', close);
      channel.on('end', () => handles.shutdown(local));
      channel.on('data', (bytes) => {
        if (!handles.write(local, bytes, (e) => (e ? close() : channel.resume()))) channel.pause();
      });
      handles.read(local, {
        data: (bytes) => channel.write(bytes) || (local.readStop(), channel.once('drain', () => closed || eof || local.readStart())),
        end: () => {
          eof = true;
          channel.end();
        },
        error: close,
      });
    });
  });
}

client.on('ready', async () => {
  const ports = [];
  for (const target of targetPorts) ports.push(withHandles ? forwardHandles(target) : await forward(target));
  console.log(ports.join('\n'));
});
const sock = net.connect(Number(sshPort), '127.0.0.1');
sock.setNoDelay(true);
client.connect({ sock, username: user, privateKey: fs.readFileSync(keyFile) });
