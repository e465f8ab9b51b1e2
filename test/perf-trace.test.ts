/** scripts/lib/perf-trace.ts: a connection's stretches from perf trace's lines (the bench's --path). */
import t from 'tap';
import { parseTrace, segments } from '../scripts/lib/perf-trace.js';

// Two connections through a node forwarder (listener fd 18, SSH socket 24, clients on 25), then a third cut short.
const NODE = `
   100.000 ( 0.013 ms): node/15624 accept4(fd: 18<socket:[1]>, flags: 526336)                      = 25
   100.100 ( 0.026 ms): node/15624 write(fd: 24<socket:[2]>, buf: 0x1, count: 100)          = 100
   100.150 ( 0.010 ms): node/15624 read(fd: 25<socket:[3]>, buf: 0x2, count: 65536)         = 1
   100.300 ( 0.011 ms): node/15624 read(fd: 24<socket:[2]>, buf: 0x2, count: 65536)         = 52
   100.360 ( 0.036 ms): node/15624 write(fd: 24<socket:[2]>, buf: 0x3, count: 36)           = 36
   100.500 ( 0.015 ms): node/15624 read(fd: 24<socket:[2]>, buf: 0x2, count: 65536)         = 36
   100.540 ( 0.035 ms): node/15624 write(fd: 25<socket:[3]>, buf: 0x4, count: 1)            = 1
   100.600 ( 0.016 ms): node/15624 read(fd: 25<socket:[3]>, buf: 0x2, count: 65536)         = 0
   100.650 ( 0.029 ms): node/15624 close(fd: 25<socket:[3]>)                                       = 0
   100.800 ( 0.020 ms): node/15624 accept4(fd: 18<socket:[1]>, flags: 526336)                      = 25
   100.900 ( 0.040 ms): node/15624 write(fd: 24<socket:[2]>, buf: 0x5, count: 100)          = 100
   101.100 ( 0.011 ms): node/15624 read(fd: 24<socket:[2]>, buf: 0x2, count: 65536)         = 52
   101.150 ( 0.037 ms): node/15624 write(fd: 24<socket:[2]>, buf: 0x6, count: 36)           = 36
   101.350 ( 0.014 ms): node/15624 read(fd: 24<socket:[2]>, buf: 0x2, count: 65536)         = 36
   101.380 ( 0.039 ms): node/15624 write(fd: 25<socket:[4]>, buf: 0x7, count: 1)            = 1
   101.450 ( 0.012 ms): node/15624 close(fd: 25<socket:[4]>)                                       = 0
   101.600 ( 0.012 ms): node/15624 accept4(fd: 18<socket:[1]>, flags: 526336)                      = 25
   101.700 ( 0.012 ms): node/15624 write(fd: 24<socket:[2]>, buf: 0x8, count: 100)          = 100
`;

t.test('perf trace – each connection cut into its stretches; a connection the trace cut short is left out', async (t) => {
  const s = segments(parseTrace(NODE));
  t.strictSame(s['accept -> channel open written'].map(Math.round), [100, 100]);
  t.strictSame(s['open written -> answer read'].map(Math.round), [200, 200], "the client's own read in between is not the answer");
  t.strictSame(s['answer read -> data written'].map(Math.round), [60, 50]);
  t.strictSame(s['data written -> reply read'].map(Math.round), [140, 200]);
  t.strictSame(s['reply read -> reply written'].map(Math.round), [40, 30]);
  t.strictSame(s['accept -> reply written'].map(Math.round), [540, 580]);
  t.strictSame(s['the previous close -> accept'].map(Math.round), [150], 'from the second connection on');
});

t.test("perf trace – ssh's lines (no comm/pid, accept) parse the same", async (t) => {
  const ssh = NODE.replace(/node\/15624 /g, '').replace(/accept4\(fd: 18<socket:\[1\]>, flags: 526336\)/g, 'accept(fd: 5<socket:[1]>, upeer_sockaddr: 0x7ffe, upeer_addrlen: 0x7ffd)');
  t.strictSame(segments(parseTrace(ssh))['accept -> reply written'].map(Math.round), [540, 580]);
});
