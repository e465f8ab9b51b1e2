/** The exported library API: names renamed in 0.2 still work, as deprecated aliases of the new ones. */
import t from 'tap';
import os from 'node:os';
import * as sshkeep from '../src/index.js';

const config = () =>
  sshkeep.resolveTunnel(
    { destination: 'tester@127.0.0.1', configFile: 'none', options: ['GlobalKnownHostsFile=none', 'IdentitiesOnly=yes'], localForwards: ['0:127.0.0.1:9'], connections: '2' },
    { home: os.tmpdir(), localUser: 'tester', authSock: undefined },
  );

t.test('library API – Tunnel, TunnelState and TunnelStatus still name the managed SSH connection', async (t) => {
  t.equal(sshkeep.Tunnel, sshkeep.SshConnection);
  const state: sshkeep.TunnelState = 'ready';
  const same: sshkeep.ConnectionState = state;
  t.equal(same, 'ready', 'the state types are one type');
});

t.test('library API – Sshkeep.tunnel, .tunnels and .connections() answer as .connection, .sshConnections and .clients()', async (t) => {
  const tunnel = new sshkeep.Sshkeep(config());
  t.equal(tunnel.tunnel, tunnel.connection);
  t.equal(tunnel.tunnels, tunnel.sshConnections);
  t.equal(tunnel.sshConnections.length, 2, '--connections 2');
  t.equal(tunnel.connections(), tunnel.clients());
});

t.test('library API – Fleet.apps and .connections() answer as .tunnels and .clients()', async (t) => {
  const fleet = new sshkeep.Fleet([config()], { maxConnections: 0, maxHeld: 1 });
  t.equal(fleet.apps, fleet.tunnels);
  t.equal(fleet.tunnels.length, 1);
  t.equal(fleet.connections(), fleet.clients());
});
