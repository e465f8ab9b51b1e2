// The least a forwarder built on ssh2 does: forwardOut and pipes, nothing else (setNoDelay on
// every socket). One listener per TARGET_PORT, each printed on one line, in order, once ready.
//
//   node bare-forwarder.mjs SSH_PORT USER KEY_FILE TARGET_PORT...
import fs from 'node:fs';
import net from 'node:net';
import ssh2 from 'ssh2';

const [sshPort, user, keyFile, ...targetPorts] = process.argv.slice(2);
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

client.on('ready', async () => {
  const ports = [];
  for (const target of targetPorts) ports.push(await forward(target));
  console.log(ports.join('\n'));
});
const sock = net.connect(Number(sshPort), '127.0.0.1');
sock.setNoDelay(true);
client.connect({ sock, username: user, privateKey: fs.readFileSync(keyFile) });
