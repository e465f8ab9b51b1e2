/**
 * The resume frame codec (src/resume/frames.ts) alone, in this process: what sshkeep pays per
 * byte and per small frame on a resumable stream, without SSH or the agent.
 *
 *   node --import @tapjs/typescript/import scripts/bench-resume-frames.ts [--mib 1024] [--small 200000]
 *
 * - Parsing the agent's DATA frames (64 KiB of data each) as ssh2 hands a channel's bytes over,
 *   in 32 KiB chunks that cut across frames: whole frames (a DATA frame spanning chunks is
 *   joined) beside `dataInPieces` (handed over as the chunks they came in); MB/s, and the GC
 *   pause time per GiB (from perf_hooks).
 * - Encoding and parsing 1-byte DATA frames, as a ping-pong does: frames per second.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { FrameParser, encodeFrame, type FrameParserOptions } from '../src/resume/frames.js';
import { runMain } from './lib/main.js';
import { intOption, parseCommandLine } from './lib/options.js';

const MIB = 1024 * 1024;
const AGENT_DATA = 64 * 1024; // the agent's DATA frames (CHUNK in agent/sshkeep-agent.pl and .py)
const SSH2_CHUNK = 32 * 1024; // what ssh2 hands over per 'data' event of a channel

const USAGE = 'usage: node --import @tapjs/typescript/import scripts/bench-resume-frames.ts [--mib 1024] [--small 200000]\n';
const { mib, small } = parseCommandLine('bench-resume-frames', USAGE, (args) => {
  const { values } = parseArgs({ args, options: { mib: { type: 'string', default: '1024' }, small: { type: 'string', default: '200000' } } });
  return { mib: intOption('mib', values.mib, 1), small: intOption('small', values.small, 1) };
});

let gcMs = 0;
new PerformanceObserver((list) => list.getEntries().forEach((e) => (gcMs += e.duration))).observe({ entryTypes: ['gc'] });

/** The input: 16 MiB of frames cut into ssh2-sized chunks, pushed again and again (offsets need not grow for a parser). */
function chunks(): Buffer[] {
  const data = randomBytes(AGENT_DATA);
  const frames = Buffer.concat(Array.from({ length: (16 * MIB) / AGENT_DATA }, (_, i) => encodeFrame({ type: 'data', offset: i * AGENT_DATA, ack: 0, data })));
  const out: Buffer[] = [];
  // Copies, as a socket's reads are fresh buffers.
  for (let at = 0; at < frames.length; at += SSH2_CHUNK) out.push(Buffer.from(frames.subarray(at, at + SSH2_CHUNK)));
  return out;
}

async function parse(input: Buffer[], options: FrameParserOptions): Promise<{ mbps: number; gcMsPerGiB: number }> {
  const parser = new FrameParser(options);
  const rounds = Math.max(1, Math.round(mib / 16));
  let bytes = 0;
  await new Promise((r) => setTimeout(r, 50)); // earlier GC entries are delivered
  const gc0 = gcMs;
  const start = process.hrtime.bigint();
  for (let round = 0; round < rounds; round++) {
    for (const chunk of input) for (const f of parser.push(chunk).frames) if (f.type === 'data') bytes += f.data.length;
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  await new Promise((r) => setTimeout(r, 50));
  return { mbps: bytes / 1e6 / seconds, gcMsPerGiB: ((gcMs - gc0) * 1024 ** 3) / bytes };
}

function smallFrames(): { encodePerS: number; parsePerS: number } {
  const one = Buffer.from('x');
  let start = process.hrtime.bigint();
  const encoded: Buffer[] = [];
  for (let i = 0; i < small; i++) encoded.push(encodeFrame({ type: 'data', offset: 1_000_000 + i, ack: 2_000_000 + i, data: one }));
  const encodePerS = small / (Number(process.hrtime.bigint() - start) / 1e9);
  const parser = new FrameParser({ dataInPieces: true });
  start = process.hrtime.bigint();
  let n = 0;
  for (const b of encoded) n += parser.push(b).frames.length;
  if (n !== small) throw new Error(`parsed ${n} of ${small} frames`);
  return { encodePerS, parsePerS: small / (Number(process.hrtime.bigint() - start) / 1e9) };
}

async function main(): Promise<void> {
  const input = chunks();
  await parse(input, {}); // warm-up
  const whole = await parse(input, {});
  const pieces = await parse(input, { dataInPieces: true });
  const tiny = smallFrames();
  process.stdout.write(`resume frames, ${mib} MiB of 64 KiB DATA frames in 32 KiB chunks, ${small} 1-byte frames\n`);
  process.stdout.write(`parse, whole frames:      ${whole.mbps.toFixed(0)} MB/s, GC ${whole.gcMsPerGiB.toFixed(1)} ms per GiB\n`);
  process.stdout.write(`parse, DATA in pieces:    ${pieces.mbps.toFixed(0)} MB/s, GC ${pieces.gcMsPerGiB.toFixed(1)} ms per GiB (${(pieces.mbps / whole.mbps).toFixed(1)}x)\n`);
  process.stdout.write(`1-byte DATA: encode ${(tiny.encodePerS / 1000).toFixed(0)}k/s, parse ${(tiny.parsePerS / 1000).toFixed(0)}k/s\n`);
}

runMain('bench-resume-frames', main, async () => {});
