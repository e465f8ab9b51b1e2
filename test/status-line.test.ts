import t from 'tap';
import { Clock } from 'clock-mock';
import { StatusLine, type Reporting } from '../src/ops/status-line.js';
import type { TunnelReport } from '../src/sshkeep.js';

t.test('status line – refreshed in place with state, RTT, connections and throughput; log lines go above it', async (t) => {
  const clock = new Clock();
  t.teardown(clock.enter());
  let out = '';
  const sink = { write: (s: string) => ((out += s), true) } as unknown as NodeJS.WritableStream;
  let up = 0;
  const fleet: Reporting = {
    reports: () => [{ tunnel: 'prod', state: 'ready', rttMs: 1.25, active: 2, held: 1, forwards: [{ bytesUp: up, bytesDown: 0 }] } as unknown as TunnelReport],
  };
  const status = new StatusLine(sink);
  status.show(fleet);
  clock.advance(1000);
  up = 3_000_000;
  clock.advance(1000);
  t.match(out, /\r\x1b\[Kprod: ready {2}rtt 1\.3 ms {2}active 2 {2}held 1 {2}up 3\.0 MB\/s {2}down 0 B\/s$/, 'the last refresh');
  out = '';
  await new Promise<void>((r) => status.write('12:00:00.000 info  something happened\n', () => r()));
  t.match(out, /^\r\x1b\[K12:00:00\.000 info {2}something happened\nprod: ready/, 'the log line clears the status, then it is redrawn');
  status.stop();
  out = '';
  clock.advance(5000);
  t.equal(out, '', 'nothing after stop');
});
