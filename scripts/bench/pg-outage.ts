/**
 * pgbench through an outage (issue 14): the link goes silent, the server ends the old SSH session,
 * no new connection gets through for `outageMs`, then the link is restored. pgbench runs with
 * persistent connections and with -C (a connection per transaction) through each forwarder; what
 * counts is what pgbench saw: clients aborted, transactions failed, errors printed.
 */
import { HOST, freePorts } from '../../test/fixtures/net.js';
import { Relay } from '../../test/fixtures/relay.js';
import { killSessions } from '../../test/fixtures/resume.js';
import { sshdLogin, trustRelay, type Sshd } from '../../test/fixtures/sshd.js';
import { startForwarder, untilEchoes, type ToolName } from '../lib/forwarder.js';
import { sleep } from '../lib/sleep.js';
import { runCaptured } from './services.js';

export type OutageKind = 'ssh -L' | 'sshkeep' | 'sshkeep --resume';
export type PgbenchMode = 'persistent' | '-C';

export interface OutageOptions {
  /** How long the link stays silent (the issue's 8 s). */
  outageMs: number;
  /** pgbench runs this long before the outage starts, and at least this long after it ends. */
  marginMs: number;
  clients: number;
}

export interface OutageResult {
  kind: OutageKind;
  mode: PgbenchMode;
  clients: number;
  aborted: number;
  failed: number;
  transactions: number;
  exitCode: number | null;
  /** pgbench's first error line, if any. */
  firstError: string | undefined;
  /** sshkeep --resume's info line after the reconnect: streams resumed and lost. */
  resumeLine: string | undefined;
}

const TOOL: Record<OutageKind, { tool: ToolName; args: string[] }> = {
  // ssh as a user would run it with a keepalive as short as sshkeep's here; it does not reconnect.
  'ssh -L': { tool: 'ssh', args: ['-o', 'ServerAliveInterval=1', '-o', 'ServerAliveCountMax=2'] },
  sshkeep: { tool: 'sshkeep', args: ['--log-format', 'json', '--keepalive-interval', '1s'] },
  'sshkeep --resume': { tool: 'sshkeep', args: ['--log-format', 'json', '--keepalive-interval', '1s', '--resume'] },
};

/** pgbench's summary: transactions done and failed, clients aborted, the first error line. */
export function parsePgbench(out: string, err: string): Pick<OutageResult, 'aborted' | 'failed' | 'transactions' | 'firstError'> {
  const count = (re: RegExp) => Number(re.exec(out)?.[1] ?? 0);
  const errors = err.split('\n').filter((l) => /error|abort|FATAL|closed/i.test(l));
  return {
    transactions: count(/number of transactions actually processed: (\d+)/),
    failed: count(/number of failed transactions: (\d+)/),
    aborted: errors.filter((l) => /client \d+ aborted/.test(l)).length,
    firstError: errors[0]?.trim(),
  };
}

/**
 * One run: a fresh forwarder of `kind` through its own relay to PostgreSQL at `pgPort`, pgbench in
 * `mode`, and the outage in the middle of it: blackhole, the session killed on the server once the
 * client has had time to notice the silence, the link restored after `outageMs`.
 */
export async function pgbenchThroughOutage(sshd: Sshd, echoPort: number, pgPort: number, kind: OutageKind, mode: PgbenchMode, o: OutageOptions): Promise<OutageResult> {
  const relay = await new Relay(sshd.port).listen();
  trustRelay(sshd, relay.port);
  const [echo, pg] = (await freePorts(2)) as [number, number];
  const { tool, args } = TOOL[kind];
  const f = startForwarder({ tool, login: sshdLogin(sshd, relay.port), forwards: [`${echo}:${HOST}:${echoPort}`, `${pg}:${HOST}:${pgPort}`], args, tail: 8192 });
  let resumeLine: string | undefined;
  f.onLog((l) => {
    if (l.event === 'resume') resumeLine ??= String(l.msg);
  });
  try {
    await untilEchoes(f, echo); // with --resume, through the agent: it runs by now
    const seconds = Math.ceil((2 * o.marginMs + o.outageMs) / 1000) + 4; // + reconnect time
    const pgArgs = ['-n', '-c', String(o.clients), '-j', '2', '-T', String(seconds), '-h', HOST, '-p', String(pg), '-U', 'postgres', ...(mode === '-C' ? ['-C'] : []), 'postgres'];
    const run = runCaptured('pgbench', pgArgs, seconds * 1000 + 120_000);
    await sleep(o.marginMs);
    relay.set('blackhole'); // silent both ways, new connections included
    await sleep(Math.min(3000, o.outageMs / 2)); // the client notices (keepalive 1 s × 2) ...
    killSessions(sshd); // ... and the server ends the old session
    await sleep(o.outageMs - Math.min(3000, o.outageMs / 2));
    relay.restore();
    const { code, out, err } = await run;
    return { kind, mode, clients: o.clients, exitCode: code, resumeLine, ...parsePgbench(out, err) };
  } finally {
    await f.stop();
    await relay.close();
  }
}

/** The table rows: one per forwarder and mode. */
export function outageTable(results: OutageResult[], o: OutageOptions): string[] {
  return [
    `### pgbench through an outage of ${o.outageMs / 1000} s that ended the SSH session (${o.clients} clients)`,
    '',
    '| forwarder | pgbench | clients aborted | failed transactions | transactions | exit | first error printed | streams (sshkeep --resume) |',
    '|---|---|---|---|---|---|---|---|',
    ...results.map(
      (r) =>
        `| ${r.kind} | ${r.mode === '-C' ? '-C (a connection per transaction)' : 'persistent'} | ${r.aborted} of ${r.clients} | ${r.failed} | ${r.transactions} | ${r.exitCode} | ${r.firstError ? `\`${r.firstError.replace(/\|/g, '\\|').slice(0, 140)}\`` : 'none'} | ${r.resumeLine ?? ''} |`,
    ),
    '',
  ];
}
