/**
 * The Node forwarders the benchmarks set beside sshkeep (scripts/lib: the bare ssh2 forwarder and
 * the plain proxy, each also without net.Socket) forward what a client sends, whole and in order,
 * carry its half-close and end the stream: a broken one would make the floor tables' figures
 * meaningless. The rows without net.Socket drive Node 20's internal handles (scripts/lib/handles.mjs):
 * this fails if those change under them.
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { startRow, type FloorRow, type HandlesRow } from '../scripts/bench/floor-small.js';
import { startTargets } from '../scripts/bench/targets.js';
import { hashedEchoClient } from './fixtures/net.js';
import { requireSshd, startSshd } from './fixtures/sshd.js';

const ROWS: (FloorRow | HandlesRow)[] = ['bare ssh2', 'bare ssh2, handles', 'node proxy', 'node proxy, onread', 'node proxy, handles'];

t.test('each Node forwarder of the benchmarks: 4 MiB and one byte echoed whole, the half-close carried, on new connections after one another', async (t) => {
  if (!requireSshd(t)) return;
  const sshd = await startSshd(t);
  const targets = await startTargets();
  t.teardown(() => targets.close());
  for (const row of ROWS) {
    const f = await startRow(row, sshd, targets);
    try {
      for (const bytes of [randomBytes(4 << 20), Buffer.from('x')]) {
        const client = await hashedEchoClient(f.port);
        await client.send(bytes);
        const r = await client.end();
        t.equal(r.bytes, bytes.length, `${row}: ${bytes.length} bytes echoed`);
        t.equal(r.down, r.up, `${row}: what came back is what was sent`);
      }
    } finally {
      await f.stop();
    }
  }
});
