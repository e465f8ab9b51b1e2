/** bench.ts's command line. */
import { parseArgs } from 'node:util';
import { coresOption, intOption, splitArgs } from '../lib/options.js';
import type { SmallOptions } from './small.js';

export interface Options {
  sizeMiB: number;
  rounds: number;
  json: string | undefined;
  /** undefined = each tool's default cipher. */
  ciphers: Array<string | undefined>;
  pings: number;
  conns: number;
  streams: number;
  rssConns: number;
  idleSeconds: number;
  sshkeepArgs: string[];
  multiConnections: number;
  /** Only the small-messages table (issue 17). */
  smallOnly: boolean;
  small: Omit<SmallOptions, 'sshkeepArgs'>;
}

export const USAGE =
  'usage: node --import @tapjs/typescript/import scripts/bench.ts [--ciphers default,aes128-gcm@openssh.com] [--cipher NAME]\n' +
  '         [--rounds 3] [--size-mib 512] [--streams 4] [--pings 5000] [--conns 300] [--rss-conns 1000] [--idle-seconds 60]\n' +
  '         [--multi-connections 4 (0 = off)] [--sshkeep-args="<extra sshkeep args>" (with "=": the value starts with a dash)]\n' +
  '         [--json FILE (default: none)]\n' +
  '         small messages: [--small-only] [--small-clients 8] [--small-requests 2500 (per client)] [--small-warm 2000] [--small-size 64]\n' +
  '         [--cold-conns 300] [--pg-seconds 10] [--redis-requests 20000] [--baseline-cli OTHER/dist/bin/sshkeep.js]\n' +
  '         [--cpu-limit CORES (such as 0.1 or 100m: each forwarder in a cgroup with that CPU quota; root)]\n' +
  '  quick: --size-mib 64 --pings 1000 --conns 100 --idle-seconds 10 --rounds 1\n';

export function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      'size-mib': { type: 'string', default: '512' },
      rounds: { type: 'string', default: '3' },
      json: { type: 'string' },
      ciphers: { type: 'string' },
      cipher: { type: 'string' },
      pings: { type: 'string', default: '5000' },
      conns: { type: 'string', default: '300' },
      streams: { type: 'string', default: '4' },
      'rss-conns': { type: 'string', default: '1000' },
      'idle-seconds': { type: 'string', default: '60' },
      'sshkeep-args': { type: 'string', default: '' },
      'multi-connections': { type: 'string', default: '4' },
      'small-only': { type: 'boolean', default: false },
      'small-clients': { type: 'string', default: '8' },
      'small-requests': { type: 'string', default: '2500' },
      'small-warm': { type: 'string', default: '2000' },
      'small-size': { type: 'string', default: '64' },
      'cold-conns': { type: 'string', default: '300' },
      'pg-seconds': { type: 'string', default: '10' },
      'redis-requests': { type: 'string', default: '20000' },
      'baseline-cli': { type: 'string' },
      'cpu-limit': { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.cipher !== undefined && values.ciphers !== undefined) throw new Error('give --cipher or --ciphers, not both');
  const list = values.cipher ?? values.ciphers ?? 'default,aes128-gcm@openssh.com';
  const ciphers = list
    .split(',')
    .map((c) => c.trim())
    .filter(Boolean)
    .map((c) => (c === 'default' ? undefined : c));
  if (ciphers.length === 0) throw new Error('--ciphers is empty');
  return {
    sizeMiB: intOption('size-mib', values['size-mib'], 1),
    rounds: intOption('rounds', values.rounds, 1),
    json: values.json,
    ciphers,
    pings: intOption('pings', values.pings, 1),
    conns: intOption('conns', values.conns, 1),
    streams: intOption('streams', values.streams, 1),
    rssConns: intOption('rss-conns', values['rss-conns'], 1),
    idleSeconds: intOption('idle-seconds', values['idle-seconds'], 1),
    sshkeepArgs: splitArgs(values['sshkeep-args'] ?? ''),
    multiConnections: intOption('multi-connections', values['multi-connections'], 0),
    smallOnly: values['small-only'] ?? false,
    small: {
      clients: intOption('small-clients', values['small-clients'], 1),
      requests: intOption('small-requests', values['small-requests'], 10),
      warm: intOption('small-warm', values['small-warm'], 0),
      size: intOption('small-size', values['small-size'], 1),
      coldConns: intOption('cold-conns', values['cold-conns'], 1),
      pgSeconds: intOption('pg-seconds', values['pg-seconds'], 1),
      redisRequests: intOption('redis-requests', values['redis-requests'], 1),
      baselineCli: values['baseline-cli'],
      cpuLimit: values['cpu-limit'] === undefined ? undefined : coresOption('cpu-limit', values['cpu-limit']),
    },
  };
}
