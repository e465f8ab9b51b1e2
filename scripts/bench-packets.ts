/**
 * Instructions per SSH packet in ssh2's own packet path (issue 17): the cipher (allocPacket,
 * payload copied in, encrypt) and the decipher (packets fed one or several to a chunk, as
 * socket reads hand them over), AES-128-GCM through ssh2's native binding, each side alone in
 * a node process under `valgrind --tool=callgrind` (scripts/lib/packet-loop.mjs). No sockets,
 * no event loop: a change to ssh2's per-packet JavaScript shows here undiluted, and the count
 * does not move with the machine's load. --ssh2 DIR adds a column for another ssh2 (a
 * baseline's node_modules/ssh2: a before/after in one run).
 *
 *   apt-get install -y valgrind
 *   node --import @tapjs/typescript/import scripts/bench-packets.ts [--packets 40000] [--size 64] [--per-read 1,4] [--runs 3] [--ssh2 DIR]
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from '../test/fixtures/bin.js';
import { runMain } from './lib/main.js';
import { intOption, parseCommandLine } from './lib/options.js';

const LOOP = path.join(REPO_ROOT, 'scripts', 'lib', 'packet-loop.mjs');

/**
 * Instructions per packet for one side of one ssh2: the least of `runs` processes. What varies
 * between runs is extra work falling in the window (V8 deoptimizing and optimizing again, a GC),
 * never less work, so the least is the packet path's own cost.
 */
function count(ssh2: string, side: 'encrypt' | 'decrypt', packets: number, size: number, perRead: number, runs: number): number {
  return Math.min(...Array.from({ length: runs }, () => countOnce(ssh2, side, packets, size, perRead)));
}

function countOnce(ssh2: string, side: 'encrypt' | 'decrypt', packets: number, size: number, perRead: number): number {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sshkeep-packets-'));
  try {
    const out = path.join(dir, 'callgrind.out');
    const r = spawnSync('valgrind', ['--tool=callgrind', '--instr-atstart=no', `--callgrind-out-file=${out}`, process.execPath, '--expose-gc', LOOP, ssh2, side, String(packets), String(size), String(perRead)], {
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new Error(`${side} under valgrind failed: ${r.stderr.slice(-2000)}`);
    const measured = Number(r.stdout.trim().split('\n').at(-1));
    const totals = Number(/^totals: (\d+)/m.exec(fs.readFileSync(out, 'utf8'))?.[1] ?? NaN);
    return totals / measured;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const USAGE = 'usage: node --import @tapjs/typescript/import scripts/bench-packets.ts [--packets 40000] [--size 64] [--per-read 1,4] [--runs 3] [--ssh2 DIR]\n';

const options = parseCommandLine('bench-packets', USAGE, (args) => {
  const { values } = parseArgs({
    args,
    options: {
      packets: { type: 'string', default: '40000' },
      size: { type: 'string', default: '64' },
      'per-read': { type: 'string', default: '1,4' },
      runs: { type: 'string', default: '3' },
      ssh2: { type: 'string' },
    },
    strict: true,
  });
  const columns: Array<[string, string]> = [['this ssh2', path.join(REPO_ROOT, 'node_modules', 'ssh2')]];
  if (values.ssh2) {
    if (!fs.existsSync(path.join(values.ssh2, 'lib', 'protocol', 'crypto.js'))) throw new Error(`--ssh2 ${values.ssh2}: not an ssh2 package directory`);
    columns.push([`--ssh2 ${values.ssh2}`, path.resolve(values.ssh2)]);
  }
  return {
    packets: intOption('packets', values.packets, 2),
    size: intOption('size', values.size, 0),
    perReads: values['per-read'].split(',').map((v) => intOption('per-read', v, 1)),
    runs: intOption('runs', values.runs, 1),
    columns,
  };
});

async function main(): Promise<void> {
  const { packets, size, perReads, runs, columns } = options;
  if (spawnSync('valgrind', ['--version']).status !== 0) throw new Error('valgrind not found (apt-get install -y valgrind)');
  const rows: Array<[string, number[]]> = [[`encrypt, ${size}-byte CHANNEL_DATA`, columns.map(([, dir]) => count(dir, 'encrypt', packets, size, 1, runs))]];
  for (const perRead of perReads) rows.push([`decrypt, ${perRead} packet(s) per read`, columns.map(([, dir]) => count(dir, 'decrypt', packets, size, perRead, runs))]);
  const ratio = columns.length === 2 ? ' | ratio |' : ' |';
  process.stdout.write(
    [
      `Instructions per SSH packet in ssh2's packet path (aes128-gcm, native binding), ${packets} packets, the second half measured, the least of ${runs} runs, valgrind --tool=callgrind; node ${process.version}`,
      '',
      `| side | ${columns.map(([c]) => c).join(' | ')}${ratio}`,
      `|---|${columns.map(() => '---:').join('|')}|${columns.length === 2 ? '---:|' : ''}`,
      ...rows.map(([side, v]) => `| ${side} | ${v.map((x) => Math.round(x).toLocaleString('en-US')).join(' | ')} |${v.length === 2 ? ` ${(v[0]! / v[1]!).toFixed(2)} |` : ''}`),
      '',
    ].join('\n'),
  );
}

runMain('bench-packets', main, async () => {});
