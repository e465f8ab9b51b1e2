/**
 * Where a new forwarded connection's latency goes, from the forwarder's own system calls:
 * `perf trace` attached to it (kernel tracepoints, no ptrace stop), then each connection cut into
 * the stretches between the calls that carry it: its accept, the channel open written to the
 * SSH socket, the server's answer read, the first data written, the reply read, the reply written
 * to the client. What lies between two calls of the forwarder's is its own work (and the kernel's
 * share of those calls); between the open and its answer, and between the data and its reply, is
 * the server's, the target's and the machine's. perf trace slows every traced call a little, in
 * every forwarder alike.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { median } from './stats.js';

interface Call {
  atUs: number;
  name: string;
  fd: number;
  result: number;
}

/** `513.835 ( 0.013 ms): node/15624 accept4(fd: 18<socket:[…]>, flags: 526336)   = 25`; ssh's lines have no comm/pid. */
const LINE = /^\s*([\d.]+) \(\s*[\d.]+ ms\): (?:\S+\/\d+ )?(\w+)\(fd: (\d+)[^)]*\)\s+= (-?\d+)/;

export function parseTrace(text: string): Call[] {
  return text.split('\n').flatMap((line) => {
    const m = LINE.exec(line);
    return m ? [{ atUs: Number(m[1]) * 1000, name: m[2]!, fd: Number(m[3]), result: Number(m[4]) }] : [];
  });
}

export const SEGMENTS = [
  'the previous close -> accept',
  'accept -> channel open written',
  'open written -> answer read',
  'answer read -> data written',
  'data written -> reply read',
  'reply read -> reply written',
  'accept -> reply written',
] as const;

/** Each segment's duration per connection, µs, for the connections whose calls were all traced. */
export function segments(calls: Call[]): Record<(typeof SEGMENTS)[number], number[]> {
  const out = Object.fromEntries(SEGMENTS.map((s) => [s, [] as number[]])) as Record<(typeof SEGMENTS)[number], number[]>;
  const isAccept = (c: Call) => c.name === 'accept' || c.name === 'accept4';
  const isWrite = (c: Call) => c.name === 'write' || c.name === 'writev';
  const clients = new Set(calls.filter(isAccept).map((c) => c.result));
  // The SSH socket: the descriptor written most that never was an accepted client's.
  const writes = new Map<number, number>();
  for (const c of calls) if (isWrite(c) && !clients.has(c.fd)) writes.set(c.fd, (writes.get(c.fd) ?? 0) + 1);
  const ssh = [...writes].sort((a, b) => b[1] - a[1])[0]?.[0];
  let lastClose: number | undefined;
  for (let i = 0; i < calls.length; i++) {
    if (!isAccept(calls[i]!)) continue;
    const accept = calls[i]!;
    const client = accept.result;
    let j = i + 1;
    const next = (ok: (c: Call) => boolean): Call | undefined => {
      while (j < calls.length && !ok(calls[j]!)) j++;
      return calls[j++];
    };
    const open = next((c) => isWrite(c) && c.fd === ssh);
    const answer = next((c) => c.name === 'read' && c.fd === ssh && c.result > 0);
    const data = next((c) => isWrite(c) && c.fd === ssh);
    const reply = next((c) => c.name === 'read' && c.fd === ssh && c.result > 0);
    const back = next((c) => isWrite(c) && c.fd === client);
    const closed = next((c) => c.name === 'close' && c.fd === client);
    if (!open || !answer || !data || !reply || !back || !closed) break;
    if (lastClose !== undefined) out['the previous close -> accept'].push(accept.atUs - lastClose);
    out['accept -> channel open written'].push(open.atUs - accept.atUs);
    out['open written -> answer read'].push(answer.atUs - open.atUs);
    out['answer read -> data written'].push(data.atUs - answer.atUs);
    out['data written -> reply read'].push(reply.atUs - data.atUs);
    out['reply read -> reply written'].push(back.atUs - reply.atUs);
    out['accept -> reply written'].push(back.atUs - accept.atUs);
    lastClose = closed.atUs;
    i = j - 1;
  }
  return out;
}

/**
 * Traces `pid` while `work` runs: perf trace is attached first, and `probe` (one connection) is
 * repeated until the trace shows an accept, so `work` is traced whole. The median of each
 * segment over the connections of `work` (the probes' are dropped), and how many there were.
 */
export async function connectionPath(pid: number, probe: () => Promise<unknown>, work: () => Promise<unknown>, connections: number): Promise<{ medians: Record<(typeof SEGMENTS)[number], number>; n: number }> {
  // Its lines go to stderr, unbuffered (a file given with -o is written only at the end).
  const perf = spawn('perf', ['trace', '-p', String(pid), '-e', 'accept,accept4,read,write,writev,close'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let said = '';
  perf.stderr.on('data', (c: Buffer) => (said += c.toString()));
  try {
    const giveUp = Date.now() + 10_000;
    for (;;) {
      await probe();
      if (/\baccept4?\(/.test(said)) break;
      if (perf.exitCode !== null || Date.now() > giveUp) throw new Error(`perf trace did not trace the forwarder (pid ${pid}): ${said.trim() || 'no output'}`);
    }
    await work();
  } finally {
    if (perf.exitCode === null) {
      perf.kill('SIGINT');
      await once(perf, 'exit');
    }
  }
  const all = segments(parseTrace(said));
  const last = (xs: number[]) => xs.slice(-connections);
  const medians = Object.fromEntries(SEGMENTS.map((s) => [s, median(last(all[s]))])) as Record<(typeof SEGMENTS)[number], number>;
  return { medians, n: Math.min(connections, all['accept -> reply written'].length) };
}
