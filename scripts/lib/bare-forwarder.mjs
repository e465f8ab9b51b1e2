// The least a Node `-L` forwarder on ssh2 does per new connection: one ssh2 Client, `forwardOut`
// for each accepted socket, pipes both ways, `setNoDelay` on every socket (without it a new
// connection waits ~40 ms for Nagle and delayed ACKs). No holding, reconnecting, logging or host
// key check. Plain JavaScript so that no TypeScript loader sits in its heap (scripts/bench-floor.ts).
//
//   node bare-forwarder.mjs SSH_PORT USER KEY_FILE TARGET_PORT   (prints its listening port once ready)
import fs from 'node:fs';
import net from 'node:net';
import ssh2 from 'ssh2';

const [sshPort, user, keyFile, targetPort] = process.argv.slice(2);
const client = new ssh2.Client();
client.on('error', (err) => {
  console.error(`bare forwarder: ${err.message}`);
  process.exit(1);
});
client.on('ready', () => {
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
  server.listen(0, '127.0.0.1', () => console.log(server.address().port));
});
const sock = net.connect(Number(sshPort), '127.0.0.1');
sock.setNoDelay(true);
client.connect({ sock, username: user, privateKey: fs.readFileSync(keyFile) });
