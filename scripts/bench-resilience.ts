/**
 * Resilience benchmark (issue 3, "Figures to reach"): sshkeep side by side with OpenSSH `ssh -N -L`
 * and `autossh -M 0`, each tool's SSH traffic going through its own fault relay
 * (test/fixtures/relay.ts) in front of one loopback sshd (test/fixtures/sshd.ts).
 *
 *   npm run build && node --import @tapjs/typescript/import scripts/bench-resilience.ts \
 *     [--json out.json] [--quick] [--reps N] [--stop-seconds S] [--autossh-poll S] [--only 1,2,5]
 *
 * Scenarios:
 *   1. idle blackhole noticed: relay.set('blackhole') → sshkeep's state leaves `ready` / ssh exits;
 *      and what an idle forwarded client sees (clean EOF or reset).
 *   2. a new connection 5 s after a silent death (relay 'drop-existing': a NAT that forgot the flow),
 *      default settings: time to the first reply byte.
 *   3. the forwarder SIGSTOPped for 20 s (--quick: 8 s) while the link changed (drop-existing at the
 *      start of the stop), then SIGCONT: a new connection's first reply byte, timed from SIGCONT.
 *   4. a held connection: blackhole, wait until sshkeep is no longer `ready`, open a client and send a
 *      request, restore 3 s later: time from the restore to the first reply byte.
 *   5. one new connection every 100 ms for 20 s with an 8 s outage in the middle (relay 'refuse', and
 *      'blackhole' unless --quick): successes and failures by kind.
 *
 * Markdown goes to stdout, progress to stderr. Every wait has a deadline. Every process, relay and the
 * sshd are cleaned up on exit, error, SIGINT and SIGTERM (stopped processes are continued first).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { alive, procStat } from '../test/fixtures/proc.js';
import { startSshd, type Sshd } from '../test/fixtures/sshd.js';
import { startEcho, deadline } from '../test/fixtures/net.js';
import { shebangNodeArgs } from '../test/fixtures/bin.js';
import { Relay, type RelayMode } from '../test/fixtures/relay.js';
import { HOST, childEnv, cpuModel, echoProbe, freePorts, killGroup, newestMtime, sh, sleep, sshVersion, runMain, watchExit } from './lib/common.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DEFAULT_CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const now = () => performance.now();

// ---------------------------------------------------------------- options

interface Options {
  json: string | undefined;
  quick: boolean;
  reps: number;
  stopSeconds: number;
  autosshPoll: number | undefined;
  only: Set<number>;
  logDir: string | undefined;
  /** sshkeep's entry point (default dist/cli/main.js). */
  cli: string;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: 'string' },
      quick: { type: 'boolean', default: false },
      reps: { type: 'string' },
      'stop-seconds': { type: 'string' },
      'autossh-poll': { type: 'string' },
      only: { type: 'string' },
      'log-dir': { type: 'string' },
      cli: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(
      'usage: node --import @tapjs/typescript/import scripts/bench-resilience.ts [--json FILE] [--quick]\n' +
        '         [--reps N (scenario 1 repetitions; default 3, quick 1)] [--stop-seconds S (scenario 3; default 20, quick 8)]\n' +
        '         [--autossh-poll S (AUTOSSH_POLL; default: unset = autossh default 600)] [--only 1,2,3,4,5]\n' +
        '         [--log-dir DIR (keep every tool\'s stderr)] [--cli PATH (sshkeep entry point; default dist/cli/main.js)]\n',
    );
    process.exit(0);
  }
  const int = (name: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got ${v}`);
    return n;
  };
  const quick = values.quick ?? false;
  const only = new Set((values.only ?? '1,2,3,4,5').split(',').map((s) => int('only', s.trim(), 1)));
  return {
    json: values.json,
    quick,
    reps: values.reps !== undefined ? int('reps', values.reps, 1) : quick ? 1 : 3,
    stopSeconds: values['stop-seconds'] !== undefined ? int('stop-seconds', values['stop-seconds'], 1) : quick ? 8 : 20,
    autosshPoll: values['autossh-poll'] !== undefined ? int('autossh-poll', values['autossh-poll'], 1) : undefined,
    only,
    logDir: values['log-dir'],
    cli: path.resolve(values.cli ?? DEFAULT_CLI),
  };
}

// ---------------------------------------------------------------- /proc

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const st = procStat(Number(e));
    if (st && st.ppid === pid && st.state !== 'Z') out.push(Number(e));
  }
  return out;
}

function comm(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** Resolves with the time the process is gone (or a zombie), polling every 20 ms; null at the deadline. */
async function waitGone(pid: number, ms: number): Promise<number | null> {
  const until = now() + ms;
  while (now() < until) {
    if (!alive(pid)) return now();
    await sleep(20);
  }
  return null;
}

// ---------------------------------------------------------------- tools

type Kind = 'sshkeep' | 'ssh' | 'autossh';

interface ToolSpec {
  kind: Kind;
  /** Row label: the tool and the settings that matter. */
  label: string;
  /** sshkeep: extra flags. ssh/autossh: extra ssh options (-o ...). */
  args: string[];
}

const SA22 = ['-o', 'ServerAliveInterval=2', '-o', 'ServerAliveCountMax=2'];
const SPEC = {
  sshkeepDefaults: { kind: 'sshkeep', label: 'sshkeep (defaults)', args: [] },
  sshkeep2s: { kind: 'sshkeep', label: 'sshkeep --keepalive-interval 2s', args: ['--keepalive-interval', '2s'] },
  sshDefaults: { kind: 'ssh', label: 'ssh -L (defaults: no ServerAlive)', args: [] },
  ssh22: { kind: 'ssh', label: 'ssh -L (ServerAlive 2/2)', args: SA22 },
  autossh22: { kind: 'autossh', label: 'autossh -M 0 (ServerAlive 2/2)', args: SA22 },
} satisfies Record<string, ToolSpec>;

interface LogLine {
  /** performance.now() when the line arrived on our end of the pipe. */
  at: number;
  event?: string;
  level?: string;
  message?: string;
  from?: string;
  to?: string;
  reason?: string;
  [k: string]: unknown;
}

interface Tool {
  spec: ToolSpec;
  relay: Relay;
  /** The local forward's port. */
  port: number;
  child: ChildProcess;
  startedAt: number;
  /** sshkeep's JSON log lines, as they arrived. */
  logs: LogLine[];
  stderr(): string;
  /** The ssh process that currently carries the tunnel (ssh: the child; autossh: its ssh child). */
  sshPid(): number | undefined;
  /** Next sshkeep log line (arrived at or after `since`) that matches. */
  waitLog(pred: (l: LogLine) => boolean, ms: number, since?: number): Promise<LogLine | null>;
  exitInfo(): string | undefined;
  /** autossh's log (AUTOSSH_LOGFILE). */
  autosshLog(): string;
  stop(): Promise<void>;
}

const liveChildren = new Set<ChildProcess>();
const liveRelays = new Set<Relay>();
let toolSeq = 0;

interface Env {
  sshd: Sshd;
  echoPort: number;
  opts: Options;
  tmp: string;
}

function sshArgs(env: Env, relayPort: number, localPort: number, extra: string[]): string[] {
  return [
    '-N',
    '-F', 'none',
    '-o', 'BatchMode=yes',
    '-o', 'ExitOnForwardFailure=yes',
    '-o', `UserKnownHostsFile=${env.sshd.knownHostsPath}`,
    '-o', 'GlobalKnownHostsFile=none',
    '-o', 'IdentitiesOnly=yes',
    '-i', env.sshd.userKeyPath,
    '-p', String(relayPort),
    ...extra,
    '-L', `${localPort}:${HOST}:${env.echoPort}`,
    `${env.sshd.user}@${HOST}`,
  ];
}

async function launch(spec: ToolSpec, env: Env): Promise<Tool> {
  const relay = await new Relay(env.sshd.port).listen();
  liveRelays.add(relay);
  // The relay is the server as the tool sees it: trust the sshd's host key under the relay's port.
  fs.appendFileSync(env.sshd.knownHostsPath, `[${HOST}]:${relay.port} ${env.sshd.hostPublicKey}\n`);
  const seq = ++toolSeq;
  const autosshLogFile = path.join(env.tmp, `autossh-${seq}.log`);

  let cmd: string;
  let args: string[];
  let port = 0;
  let extraEnv: NodeJS.ProcessEnv = {};
  if (spec.kind === 'sshkeep') {
    cmd = process.execPath;
    args = [
      ...shebangNodeArgs(env.opts.cli),
      env.opts.cli,
      '-F', 'none',
      '-i', env.sshd.userKeyPath,
      '-o', `UserKnownHostsFile=${env.sshd.knownHostsPath}`,
      '-o', 'GlobalKnownHostsFile=none',
      '-o', 'IdentitiesOnly=yes',
      '-p', String(relay.port),
      '-L', `0:${HOST}:${env.echoPort}`,
      '--log-format', 'json',
      '--log-level', 'info',
      ...spec.args,
      `${env.sshd.user}@${HOST}`,
    ];
  } else {
    [port] = (await freePorts(1)) as [number];
    const a = sshArgs(env, relay.port, port, spec.args);
    if (spec.kind === 'ssh') {
      cmd = 'ssh';
      args = a;
    } else {
      cmd = 'autossh';
      args = ['-M', '0', ...a];
      extraEnv = {
        AUTOSSH_GATETIME: '0',
        AUTOSSH_LOGFILE: autosshLogFile,
        AUTOSSH_LOGLEVEL: '7',
        ...(env.opts.autosshPoll !== undefined ? { AUTOSSH_POLL: String(env.opts.autosshPoll) } : {}),
      };
    }
  }

  const startedAt = now();
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', 'ignore', 'pipe'], env: childEnv(extraEnv) });
  liveChildren.add(child);
  let stderr = '';
  let partial = '';
  const logs: LogLine[] = [];
  const waiters = new Set<() => void>();
  const logFile = env.opts.logDir ? path.join(env.opts.logDir, `${seq}-${spec.kind}.log`) : undefined;
  if (logFile) fs.writeFileSync(logFile, `# ${cmd} ${args.join(' ')}\n`);
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => {
    const at = now();
    stderr = (stderr + s).slice(-65536);
    if (logFile) fs.appendFileSync(logFile, s);
    if (spec.kind !== 'sshkeep') return;
    partial += s;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl).trim();
      partial = partial.slice(nl + 1);
      if (!line.startsWith('{')) continue;
      try {
        logs.push({ ...(JSON.parse(line) as object), at });
      } catch {}
    }
    for (const w of [...waiters]) w();
  });
  const { exited, info: exitInfo } = watchExit(child, liveChildren);

  const waitLog = (pred: (l: LogLine) => boolean, ms: number, since = -Infinity): Promise<LogLine | null> =>
    new Promise((resolve) => {
      const check = () => {
        const hit = logs.find((l) => l.at >= since && pred(l));
        if (hit || exitInfo()) {
          clearTimeout(timer);
          waiters.delete(check);
          resolve(hit ?? null);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        resolve(null);
      }, ms);
      waiters.add(check);
      check();
    });

  const stop = async () => {
    killGroup(child, 'SIGCONT'); // a stopped process does not act on SIGTERM
    if (!exitInfo()) {
      killGroup(child, 'SIGTERM');
      await deadline(exited, 5_000, `${spec.label} to exit`).catch(() => killGroup(child, 'SIGKILL'));
      await exited;
    }
    killGroup(child, 'SIGKILL'); // nothing should be left in its group (autossh's ssh); make sure
    await relay.close().catch(() => {});
    liveRelays.delete(relay);
  };

  const tool: Tool = {
    spec,
    relay,
    port,
    child,
    startedAt,
    logs,
    stderr: () => stderr,
    sshPid: () => {
      if (spec.kind === 'ssh') return exitInfo() ? undefined : child.pid;
      if (spec.kind === 'autossh') return childrenOf(child.pid!).find((p) => comm(p) === 'ssh');
      return undefined;
    },
    waitLog,
    exitInfo,
    autosshLog: () => {
      try {
        return fs.readFileSync(autosshLogFile, 'utf8');
      } catch {
        return '';
      }
    },
    stop,
  };

  try {
    if (spec.kind === 'sshkeep') {
      const l = await waitLog((x) => x.event === 'listen' && typeof x.port === 'number', 10_000);
      if (!l) throw new Error(`no "listen" line within 10 s (${exitInfo() ?? 'still running'})`);
      tool.port = l.port as number;
    }
    // Ready = a byte echoed through the tunnel (ssh listens only after authentication).
    const until = now() + 20_000;
    let lastError = '';
    for (;;) {
      if (exitInfo()) throw new Error(exitInfo());
      if (now() > until) throw new Error(`not ready within 20 s (last probe: ${lastError})`);
      try {
        await deadline(echoProbe(tool.port), 5_000, 'echo probe');
        break;
      } catch (err) {
        lastError = (err as Error).message;
        await sleep(20);
      }
    }
  } catch (err) {
    await stop();
    throw new Error(`${spec.label}: ${(err as Error).message}\n--- stderr ---\n${stderr.slice(-4000)}`);
  }
  return tool;
}

/** sshkeep's state transitions since `since`, as "from→to (reason) @+ms". */
function transitions(tool: Tool, since: number): Array<{ ms: number; from: string; to: string; reason: string }> {
  return tool.logs
    .filter((l) => l.event === 'state' && l.at >= since)
    .map((l) => ({ ms: Math.round(l.at - since), from: String(l.from), to: String(l.to), reason: String(l.reason ?? '') }));
}

/** sshkeep's warn/error lines (and the few info events that explain a recovery) since `since`. */
function notableLogs(tool: Tool, since: number): Array<Record<string, unknown>> {
  return tool.logs
    .filter((l) => l.at >= since && (l.level === 'warn' || l.level === 'error' || ['state', 'spare', 'retire', 'drain', 'reopen', 'reconnect', 'conn_end'].includes(String(l.event))))
    .map(({ at, timestamp: _t, time: _u, ...rest }) => ({ ms: Math.round(at - since), ...rest }));
}

// ---------------------------------------------------------------- clients

type FailKind = 'refused' | 'reset' | 'eof' | 'timeout' | 'corrupt' | 'closed' | `error:${string}`;

interface Req {
  /** When the connection was started (performance.now()). */
  t0: number;
  ok: boolean;
  firstByteAt?: number;
  doneAt?: number;
  failure?: FailKind;
  failedAt?: number;
}

let reqSeq = 0;

/**
 * One request through the forward: connect, send a unique payload, wait for all of it to come back
 * (the target echoes). Never rejects: failures are classified.
 */
function request(port: number, timeoutMs: number): Promise<Req> {
  const payload = Buffer.from(`request ${++reqSeq} ${'x'.repeat(40)}\n`);
  const r: Req = { t0: now(), ok: false };
  return new Promise((resolve) => {
    const s = net.connect({ port, host: HOST });
    s.setNoDelay(true);
    const got: Buffer[] = [];
    let n = 0;
    let settled = false;
    const finish = (failure?: FailKind) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (failure) {
        r.failure = failure;
        r.failedAt = now();
      } else {
        r.ok = true;
        r.doneAt = now();
      }
      s.on('error', () => {});
      s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    s.once('connect', () => s.write(payload));
    s.on('data', (c: Buffer) => {
      r.firstByteAt ??= now();
      got.push(c);
      n += c.length;
      if (n >= payload.length) finish(Buffer.concat(got).subarray(0, payload.length).equals(payload) ? undefined : 'corrupt');
    });
    s.on('end', () => finish('eof'));
    s.on('error', (e: NodeJS.ErrnoException) =>
      finish(e.code === 'ECONNREFUSED' ? 'refused' : e.code === 'ECONNRESET' || e.code === 'EPIPE' ? 'reset' : `error:${e.code ?? e.message}`),
    );
    s.on('close', () => finish('closed'));
  });
}

interface IdleOutcome {
  kind: 'eof' | 'reset' | 'closed' | 'still open' | `error:${string}`;
  at?: number;
}

/** An established, idle forwarded connection (one round trip done); `outcome` tells how it ends. */
async function openIdle(port: number): Promise<{ outcome: Promise<IdleOutcome>; destroy(): void }> {
  const s = net.connect({ port, host: HOST });
  s.setNoDelay(true);
  const outcome = new Promise<IdleOutcome>((resolve) => {
    s.on('end', () => resolve({ kind: 'eof', at: now() }));
    s.on('error', (e: NodeJS.ErrnoException) => resolve({ kind: e.code === 'ECONNRESET' ? 'reset' : `error:${e.code ?? e.message}`, at: now() }));
    s.on('close', () => resolve({ kind: 'closed', at: now() }));
  });
  await deadline(
    new Promise<void>((resolve, reject) => {
      s.once('connect', () => s.write('hello'));
      s.once('data', () => resolve());
      s.once('error', reject);
      s.once('close', () => reject(new Error('idle connection closed before its first echo')));
    }),
    10_000,
    'the idle connection\'s first echo',
  );
  return { outcome, destroy: () => s.destroy() };
}

const ms = (x: number | undefined | null) => (x === undefined || x === null || !Number.isFinite(x) ? undefined : Math.round(x));
const secs = (x: number | undefined) => (x === undefined ? 'n/a' : `${(x / 1000).toFixed(2)} s`);

// ---------------------------------------------------------------- scenario 1

interface S1Row {
  label: string;
  rep: number;
  idleBeforeFaultMs: number;
  /** sshkeep: blackhole → state leaves ready; ssh: blackhole → ssh exits. */
  noticedMs?: number;
  noticedAs?: string;
  client: IdleOutcome['kind'];
  clientMs?: number;
  transitions?: ReturnType<typeof transitions>;
  logs?: Array<Record<string, unknown>>;
  sshStderr?: string;
}

const S1_WATCH_MS = 16_000; // sshkeep resets the streams of a silent connection after its 10 s grace period

async function scenario1(env: Env, spec: ToolSpec, rep: number, idleMs: number): Promise<S1Row> {
  const tool = await launch(spec, env);
  try {
    const idle = await openIdle(tool.port);
    await sleep(idleMs);
    const sshPid = tool.sshPid();
    const t0 = now();
    tool.relay.set('blackhole');
    const row: S1Row = { label: spec.label, rep, idleBeforeFaultMs: idleMs, client: 'still open' };
    if (spec.kind === 'sshkeep') {
      const l = await tool.waitLog((x) => x.event === 'state' && x.from === 'ready', S1_WATCH_MS, t0);
      if (l) {
        row.noticedMs = ms(l.at - t0);
        row.noticedAs = `${l.from} → ${l.to} (${l.reason})`;
      }
    } else if (sshPid) {
      const gone = await waitGone(sshPid, S1_WATCH_MS);
      if (gone !== null) {
        row.noticedMs = ms(gone - t0);
        row.noticedAs = 'ssh exited';
      }
    }
    const left = Math.max(0, t0 + S1_WATCH_MS - now());
    const out = await deadline(idle.outcome, left, 'idle client').catch((): IdleOutcome => ({ kind: 'still open' }));
    row.client = out.kind;
    row.clientMs = out.at !== undefined ? ms(out.at - t0) : undefined;
    if (spec.kind === 'sshkeep') {
      row.transitions = transitions(tool, t0);
      row.logs = notableLogs(tool, t0);
    } else row.sshStderr = tool.stderr().trim().slice(-500);
    idle.destroy();
    tool.relay.restore();
    return row;
  } finally {
    await tool.stop();
  }
}

// ---------------------------------------------------------------- scenarios 2 and 3

interface FirstByteRow {
  label: string;
  /** Timed from the start of the measured connection (scenario 2) or from SIGCONT (scenario 3). */
  firstByteMs?: number;
  doneMs?: number;
  failure?: FailKind;
  failedMs?: number;
  transitions?: ReturnType<typeof transitions>;
  logs?: Array<Record<string, unknown>>;
  sshStderr?: string;
  autosshLog?: string;
  relayAccepted: number;
}

const FIRST_BYTE_GIVE_UP_MS = 30_000;

function firstByteRow(spec: ToolSpec, tool: Tool, r: Req, from: number, faultAt: number): FirstByteRow {
  const row: FirstByteRow = { label: spec.label, relayAccepted: tool.relay.accepted };
  if (r.firstByteAt !== undefined) row.firstByteMs = ms(r.firstByteAt - from);
  if (r.ok) row.doneMs = ms(r.doneAt! - from);
  else {
    row.failure = r.failure;
    row.failedMs = ms(r.failedAt! - from);
  }
  if (spec.kind === 'sshkeep') {
    row.transitions = transitions(tool, faultAt);
    row.logs = notableLogs(tool, faultAt);
  } else {
    row.sshStderr = tool.stderr().trim().slice(-500);
    if (spec.kind === 'autossh') row.autosshLog = tool.autosshLog().trim().split('\n').slice(-12).join('\n');
  }
  return row;
}

async function scenario2(env: Env, spec: ToolSpec): Promise<FirstByteRow> {
  const tool = await launch(spec, env);
  try {
    await sleep(1000);
    const tf = now();
    tool.relay.set('drop-existing');
    await sleep(5000);
    const r = await request(tool.port, FIRST_BYTE_GIVE_UP_MS);
    return firstByteRow(spec, tool, r, r.t0, tf);
  } finally {
    await tool.stop();
  }
}

async function scenario3(env: Env, spec: ToolSpec, stopMs: number): Promise<FirstByteRow & { stopMs: number }> {
  const tool = await launch(spec, env);
  try {
    await sleep(1000);
    const tf = now();
    killGroup(tool.child, 'SIGSTOP');
    tool.relay.set('drop-existing');
    await sleep(stopMs);
    const tc = now();
    killGroup(tool.child, 'SIGCONT');
    const r = await request(tool.port, FIRST_BYTE_GIVE_UP_MS);
    return { ...firstByteRow(spec, tool, r, tc, tf), stopMs };
  } finally {
    await tool.stop();
  }
}

// ---------------------------------------------------------------- scenario 4

interface S4Row {
  label: string;
  /** Blackhole → the client was opened (sshkeep: when it left `ready`). */
  openedAtMs: number;
  sshkeepLeftReadyAs?: string;
  /** Client open → restore. */
  heldMs: number;
  /** Restore → first reply byte. */
  firstByteAfterRestoreMs?: number;
  doneAfterRestoreMs?: number;
  failure?: FailKind;
  /** Failure time relative to the restore (negative: before it). */
  failedAfterRestoreMs?: number;
  verdict: string;
  transitions?: ReturnType<typeof transitions>;
  logs?: Array<Record<string, unknown>>;
  sshStderr?: string;
}

const S4_HOLD_MS = 3000;

async function scenario4(env: Env, spec: ToolSpec, openAfterMs: number): Promise<S4Row> {
  const tool = await launch(spec, env);
  try {
    await sleep(1000);
    const tb = now();
    tool.relay.set('blackhole');
    let leftAs: string | undefined;
    if (spec.kind === 'sshkeep') {
      const l = await tool.waitLog((x) => x.event === 'state' && x.from === 'ready', 20_000, tb);
      leftAs = l ? `${l.from} → ${l.to} after ${secs(l.at - tb)}` : 'still ready after 20 s';
    } else await sleep(openAfterMs);
    const opened = now();
    const pending = request(tool.port, 20_000 + S4_HOLD_MS);
    let early: Req | undefined;
    void pending.then((r) => (early = r));
    await sleep(S4_HOLD_MS);
    const tr = now();
    tool.relay.restore();
    const r = await pending;
    const row: S4Row = { label: spec.label, openedAtMs: ms(opened - tb)!, heldMs: ms(tr - opened)!, verdict: '' };
    if (leftAs) row.sshkeepLeftReadyAs = leftAs;
    if (r.firstByteAt !== undefined) row.firstByteAfterRestoreMs = ms(r.firstByteAt - tr);
    if (r.ok) {
      row.doneAfterRestoreMs = ms(r.doneAt! - tr);
      row.verdict = r.firstByteAt! < tr ? 'served before the restore' : 'held, then served';
    } else {
      row.failure = r.failure;
      row.failedAfterRestoreMs = ms(r.failedAt! - tr);
      const when = early ? `${secs(r.failedAt! - opened)} after it was opened, before the restore` : `${secs(r.failedAt! - tr)} after the restore`;
      row.verdict =
        r.failure === 'refused' ? 'refused' : r.failure === 'timeout' ? 'hangs (no reply within 20 s of the restore)' : `${r.failure === 'eof' ? 'clean EOF, no reply' : r.failure} ${when}`;
    }
    if (spec.kind === 'sshkeep') {
      row.transitions = transitions(tool, tb);
      row.logs = notableLogs(tool, tb);
    } else row.sshStderr = tool.stderr().trim().slice(-500);
    return row;
  } finally {
    await tool.stop();
  }
}

// ---------------------------------------------------------------- scenario 5

interface S5Conn {
  startMs: number;
  ok: boolean;
  failure?: FailKind;
  latencyMs?: number;
}

interface S5Row {
  label: string;
  mode: RelayMode;
  total: number;
  ok: number;
  failures: Partial<Record<string, number>>;
  successPct: number;
  latencyP50Ms?: number;
  latencyMaxMs?: number;
  failedWindow?: [number, number];
  conns: S5Conn[];
  restarts?: number;
  transitions?: ReturnType<typeof transitions>;
  logs?: Array<Record<string, unknown>>;
  sshStderr?: string;
  autosshLog?: string;
}

const S5 = { durationMs: 20_000, everyMs: 100, outageFromMs: 6_000, outageMs: 8_000, perConnMs: 40_000 };

async function scenario5(env: Env, spec: ToolSpec, mode: RelayMode): Promise<S5Row> {
  const tool = await launch(spec, env);
  try {
    await sleep(1000);
    const t0 = now();
    const n = S5.durationMs / S5.everyMs;
    const results: Array<Promise<S5Conn>> = [];
    const fault = (async () => {
      await sleep(S5.outageFromMs);
      tool.relay.set(mode);
      await sleep(S5.outageMs);
      tool.relay.restore();
    })();
    for (let i = 0; i < n; i++) {
      const wait = t0 + i * S5.everyMs - now();
      if (wait > 0) await sleep(wait);
      const startMs = now() - t0;
      results.push(
        request(tool.port, S5.perConnMs).then((r) => ({
          startMs: Math.round(startMs),
          ok: r.ok,
          ...(r.ok ? { latencyMs: ms(r.doneAt! - r.t0) } : { failure: r.failure }),
        })),
      );
    }
    await fault;
    const conns = await Promise.all(results);
    const ok = conns.filter((c) => c.ok);
    const failures: Partial<Record<string, number>> = {};
    for (const c of conns) if (!c.ok) failures[c.failure!] = (failures[c.failure!] ?? 0) + 1;
    const failed = conns.filter((c) => !c.ok).map((c) => c.startMs);
    const lat = ok.map((c) => c.latencyMs!).sort((a, b) => a - b);
    const row: S5Row = {
      label: spec.label,
      mode,
      total: conns.length,
      ok: ok.length,
      failures,
      successPct: (100 * ok.length) / conns.length,
      conns,
    };
    if (lat.length) {
      row.latencyP50Ms = lat[(lat.length - 1) >> 1];
      row.latencyMaxMs = lat[lat.length - 1];
    }
    if (failed.length) row.failedWindow = [Math.min(...failed), Math.max(...failed)];
    if (spec.kind === 'sshkeep') {
      row.transitions = transitions(tool, t0);
      row.logs = notableLogs(tool, t0).filter((l) => l.event !== 'conn_end' || l.reset === true).slice(0, 60);
    } else {
      row.sshStderr = tool.stderr().trim().slice(-800);
      if (spec.kind === 'autossh') {
        const log = tool.autosshLog();
        row.restarts = (log.match(/starting ssh/g) ?? []).length - 1;
        row.autosshLog = log.trim().split('\n').slice(-20).join('\n');
      }
    }
    return row;
  } finally {
    await tool.stop();
  }
}

// ---------------------------------------------------------------- report

const TARGET = {
  s1: (intervalMs: number) => intervalMs + 1500,
  s2: 3000,
  s3: 3000,
  s4: 1500,
};

const met = (ok: boolean | undefined) => (ok === undefined ? '—' : ok ? '✅ met' : '❌ missed');

function clientCell(kind: string, atMs: number | undefined): string {
  const k = kind === 'eof' ? 'clean EOF' : kind === 'reset' ? 'reset (ECONNRESET)' : kind;
  return atMs !== undefined ? `${k} at ${secs(atMs)}` : kind === 'still open' ? `still open after ${S1_WATCH_MS / 1000} s` : k;
}

function failCell(f: FailKind | undefined, atMs: number | undefined): string {
  if (!f) return '';
  const name = f === 'eof' ? 'clean EOF, no reply' : f === 'timeout' ? 'no reply (gave up)' : f;
  return `${name} after ${secs(atMs)}`;
}

function markdownS1(rows: S1Row[]): string {
  const L = [
    '### 1. Idle blackhole noticed',
    '',
    `relay.set('blackhole') on an idle tunnel with one idle forwarded connection open. sshkeep: time until its \`state\` line leaves \`ready\`; ssh: time until the ssh process exits. ` +
      `Target (sshkeep): ≤ keepalive-interval + 1.5 s = ${secs(TARGET.s1(2000))}; its forwarded clients must be reset, never see a clean EOF. ` +
      `The idle time before the fault varies per repetition (where in the keepalive cycle the fault lands).`,
    '',
    '| tool | rep | idle before fault | noticed after | as | idle client sees | target | result |',
    '|---|---:|---:|---:|---|---|---|---|',
  ];
  for (const r of rows) {
    const isKeep = r.label.startsWith('sshkeep');
    const ok = isKeep ? r.noticedMs !== undefined && r.noticedMs <= TARGET.s1(2000) && r.client !== 'eof' : undefined;
    L.push(
      `| ${r.label} | ${r.rep} | ${secs(r.idleBeforeFaultMs)} | ${r.noticedMs !== undefined ? secs(r.noticedMs) : `not within ${S1_WATCH_MS / 1000} s`} | ${r.noticedAs ?? ''} | ${clientCell(r.client, r.clientMs)} | ${isKeep ? `≤ ${secs(TARGET.s1(2000))}, reset` : '—'} | ${met(ok)} |`,
    );
  }
  return L.join('\n') + '\n';
}

function markdownFirstByte(title: string, intro: string, rows: FirstByteRow[], target: number): string {
  const L = [title, '', intro, '', '| tool | first reply byte | full echo | failure | target | result |', '|---|---:|---:|---|---|---|'];
  for (const r of rows) {
    const isKeep = r.label.startsWith('sshkeep');
    const ok = isKeep ? r.firstByteMs !== undefined && r.firstByteMs <= target && !r.failure : undefined;
    L.push(
      `| ${r.label} | ${r.firstByteMs !== undefined ? secs(r.firstByteMs) : '—'} | ${r.doneMs !== undefined ? secs(r.doneMs) : '—'} | ${failCell(r.failure, r.failedMs)} | ${isKeep ? `≤ ${secs(target)}` : '—'} | ${met(ok)} |`,
    );
  }
  return L.join('\n') + '\n';
}

function markdownS4(rows: S4Row[]): string {
  const L = [
    '### 4. A held connection',
    '',
    `relay.set('blackhole'); once sshkeep leaves \`ready\` (ssh rows: after the same delay) a client connects and sends a request; ` +
      `relay.restore() ${S4_HOLD_MS / 1000} s later. Measured: restore → first reply byte. Target (sshkeep): ≤ ${secs(TARGET.s4)}.`,
    '',
    '| tool | client opened after | restore after | first reply byte after restore | what the client saw | target | result |',
    '|---|---:|---:|---:|---|---|---|',
  ];
  for (const r of rows) {
    const isKeep = r.label.startsWith('sshkeep');
    const ok = isKeep ? r.firstByteAfterRestoreMs !== undefined && r.firstByteAfterRestoreMs <= TARGET.s4 && !r.failure : undefined;
    L.push(
      `| ${r.label} | ${secs(r.openedAtMs)}${r.sshkeepLeftReadyAs ? ` (${r.sshkeepLeftReadyAs})` : ''} | ${secs(r.heldMs)} | ${r.firstByteAfterRestoreMs !== undefined ? secs(r.firstByteAfterRestoreMs) : '—'} | ${r.verdict} | ${isKeep ? `≤ ${secs(TARGET.s4)}` : '—'} | ${met(ok)} |`,
    );
  }
  return L.join('\n') + '\n';
}

function markdownS5(rows: S5Row[]): string {
  const L = [
    '### 5. A new connection every 100 ms for 20 s, 8 s outage in the middle',
    '',
    `${S5.durationMs / S5.everyMs} connections, one every ${S5.everyMs} ms; the relay is in the outage mode from ${secs(S5.outageFromMs)} to ${secs(S5.outageFromMs + S5.outageMs)}. ` +
      `Success = the full request echoed back within ${S5.perConnMs / 1000} s. 'refuse' = the server is down (existing and new SSH connections reset); ` +
      `'blackhole' = the link stalls (bytes held, delivered on restore). Target (sshkeep): 100 %.`,
    '',
    '| outage | tool | success | refused | reset | clean EOF | timeout | other | failing connections started | success latency p50 / max | target | result |',
    '|---|---|---:|---:|---:|---:|---:|---:|---|---|---|---|',
  ];
  for (const r of rows) {
    const isKeep = r.label.startsWith('sshkeep');
    const f = r.failures;
    const other = Object.entries(f)
      .filter(([k]) => !['refused', 'reset', 'eof', 'timeout'].includes(k))
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    L.push(
      `| ${r.mode} | ${r.label}${r.restarts !== undefined ? ` (${r.restarts} ssh restarts)` : ''} | **${r.successPct.toFixed(1)} %** (${r.ok}/${r.total}) | ${f.refused ?? 0} | ${f.reset ?? 0} | ${f.eof ?? 0} | ${f.timeout ?? 0} | ${other || 0} | ` +
        `${r.failedWindow ? `${secs(r.failedWindow[0])} – ${secs(r.failedWindow[1])}` : '—'} | ${r.latencyP50Ms !== undefined ? `${r.latencyP50Ms} ms / ${r.latencyMaxMs} ms` : '—'} | ${isKeep ? '100 %' : '—'} | ${met(isKeep ? r.ok === r.total : undefined)} |`,
    );
  }
  return L.join('\n') + '\n';
}

// ---------------------------------------------------------------- main

let cleanupPromise: Promise<void> | undefined;
let sshdRef: Sshd | undefined;
let echoRef: { close(): Promise<void> } | undefined;
let tmpRef: string | undefined;

function cleanup(): Promise<void> {
  return (cleanupPromise ??= (async () => {
    for (const c of liveChildren) {
      killGroup(c, 'SIGCONT');
      killGroup(c, 'SIGKILL');
    }
    await Promise.allSettled([...liveRelays].map((r) => r.close()));
    await Promise.allSettled([sshdRef?.stop(), echoRef?.close()]);
    if (tmpRef) fs.rmSync(tmpRef, { recursive: true, force: true });
  })());
}

function gitDescribe(): string {
  const head = sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']);
  const dirty = sh('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src']);
  return dirty && !dirty.startsWith('unavailable') ? `${head} + uncommitted changes in src/` : head;
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const CLI = opts.cli;
  if (!fs.existsSync(CLI)) throw new Error(`${path.relative(process.cwd(), CLI)} is missing: run npm run build first`);
  const autosshVersion = sh('autossh', ['-V']);
  if (!/autossh/i.test(autosshVersion)) throw new Error(`autossh is not installed (apt-get install -y autossh): ${autosshVersion}`);
  const stale = CLI === DEFAULT_CLI && newestMtime(path.join(ROOT, 'src')) > fs.statSync(CLI).mtimeMs;
  const loadBefore = os.loadavg();
  const startedAt = Date.now();
  const gitAtStart = gitDescribe();
  if (opts.logDir) fs.mkdirSync(opts.logDir, { recursive: true });

  tmpRef = fs.mkdtempSync(path.join(os.tmpdir(), 'sshkeep-bench-resilience-'));
  sshdRef = await startSshd();
  const echo = await startEcho();
  echoRef = echo;
  const env: Env = { sshd: sshdRef, echoPort: echo.port, opts, tmp: tmpRef };
  const progress = (s: string) => process.stderr.write(`[${((Date.now() - startedAt) / 1000).toFixed(0).padStart(4)} s] ${s}\n`);
  progress(`sshd on ${HOST}:${sshdRef.port}, echo target on ${echo.port}; ${opts.quick ? 'quick' : 'full'} run`);

  const out: Record<string, unknown> = {};
  const sections: string[] = [];

  if (opts.only.has(1)) {
    const rows: S1Row[] = [];
    for (let rep = 1; rep <= opts.reps; rep++) {
      // Where the fault lands in the 2 s keepalive cycle: the idle client's echo was the last inbound
      // traffic, so 0.1 s after it is the worst case (a whole interval of silence still to come) and the
      // later repetitions spread over the cycle: 0.1 s, 0.77 s, 1.43 s… (with --reps 3).
      const idleMs = 100 + Math.round(((rep - 1) * 2000) / opts.reps);
      for (const spec of [SPEC.sshkeep2s, SPEC.ssh22]) {
        const r = await scenario1(env, spec, rep, idleMs);
        progress(`1. ${r.label} rep ${rep}: noticed ${secs(r.noticedMs)} (${r.noticedAs ?? '-'}), idle client: ${clientCell(r.client, r.clientMs)}`);
        rows.push(r);
      }
    }
    out.scenario1 = rows;
    sections.push(markdownS1(rows));
  }

  if (opts.only.has(2)) {
    const rows: FirstByteRow[] = [];
    for (const spec of [SPEC.sshkeepDefaults, SPEC.sshDefaults, SPEC.ssh22, SPEC.autossh22]) {
      const r = await scenario2(env, spec);
      progress(`2. ${r.label}: first byte ${secs(r.firstByteMs)} ${failCell(r.failure, r.failedMs)}`);
      rows.push(r);
    }
    out.scenario2 = rows;
    sections.push(
      markdownFirstByte(
        '### 2. New connection 5 s after a silent death (default settings)',
        `relay.set('drop-existing') (the NAT forgot the SSH flow: it goes silent forever, new flows pass); 5 s later a client connects and sends a request. ` +
          `Measured from the client's connect to the first reply byte; gives up at ${FIRST_BYTE_GIVE_UP_MS / 1000} s. Target (sshkeep, defaults): ≤ ${secs(TARGET.s2)}.`,
        rows,
        TARGET.s2,
      ),
    );
  }

  if (opts.only.has(3)) {
    const rows: Array<FirstByteRow & { stopMs: number }> = [];
    for (const spec of [SPEC.sshkeepDefaults, SPEC.ssh22, SPEC.autossh22]) {
      const r = await scenario3(env, spec, opts.stopSeconds * 1000);
      progress(`3. ${r.label}: first byte ${secs(r.firstByteMs)} ${failCell(r.failure, r.failedMs)}`);
      rows.push(r);
    }
    out.scenario3 = rows;
    sections.push(
      markdownFirstByte(
        `### 3. SIGSTOP for ${opts.stopSeconds} s while the link changed, then SIGCONT`,
        `SIGSTOP to the tool's process group (autossh: autossh and its ssh), relay.set('drop-existing') at the same moment, SIGCONT ${opts.stopSeconds} s later and at once a new client ` +
          `connects and sends a request. Measured from SIGCONT to the first reply byte; gives up at ${FIRST_BYTE_GIVE_UP_MS / 1000} s. Target (sshkeep, defaults): ≤ ${secs(TARGET.s3)}.`,
        rows,
        TARGET.s3,
      ),
    );
  }

  if (opts.only.has(4)) {
    const rows: S4Row[] = [];
    let openAfter = 3500;
    for (const spec of [SPEC.sshkeep2s, SPEC.sshDefaults, SPEC.ssh22, SPEC.autossh22]) {
      const r = await scenario4(env, spec, openAfter);
      if (spec.kind === 'sshkeep') openAfter = r.openedAtMs; // the ssh rows open their client at the same point of the outage
      progress(`4. ${r.label}: ${r.verdict}, first byte ${secs(r.firstByteAfterRestoreMs)} after the restore`);
      rows.push(r);
    }
    out.scenario4 = rows;
    sections.push(markdownS4(rows));
  }

  if (opts.only.has(5)) {
    const rows: S5Row[] = [];
    const modes: RelayMode[] = opts.quick ? ['refuse'] : ['refuse', 'blackhole'];
    for (const mode of modes) {
      for (const spec of [SPEC.sshkeepDefaults, SPEC.ssh22, SPEC.autossh22]) {
        const r = await scenario5(env, spec, mode);
        progress(`5. ${mode} ${r.label}: ${r.successPct.toFixed(1)} % (${r.ok}/${r.total}) ${JSON.stringify(r.failures)}`);
        rows.push(r);
      }
    }
    out.scenario5 = rows;
    sections.push(markdownS5(rows));
  }

  const cmdline = ['node', ...process.execArgv, path.relative(process.cwd(), process.argv[1]!), ...process.argv.slice(2)].join(' ');
  const header: Array<[string, string]> = [
    ['date', new Date(startedAt).toISOString()],
    ['command', `\`${cmdline}\``],
    ['duration', `${((Date.now() - startedAt) / 1000).toFixed(0)} s`],
    ['machine', `nproc ${sh('nproc', [])}, ${cpuModel()}, load avg before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`],
    ['node', process.version],
    ['OpenSSH', sshVersion()],
    ['autossh', `${autosshVersion}; env AUTOSSH_GATETIME=0${opts.autosshPoll !== undefined ? ` AUTOSSH_POLL=${opts.autosshPoll}` : ' (AUTOSSH_POLL unset: 600 s, restart back-off after 5 fast failures: 2 s, 8 s, 18 s…)'}`],
    ['sshkeep', CLI === DEFAULT_CLI ? `${gitAtStart}, dist/cli/main.js built ${fs.statSync(CLI).mtime.toISOString()}` : `${CLI} (built ${fs.statSync(CLI).mtime.toISOString()}); repository at the start: ${gitAtStart}`],
    [
      'setup',
      'one loopback sshd (OpenSSH, test/fixtures/sshd.ts); each tool run is a fresh process whose SSH traffic goes through its own userland fault relay ' +
        '(test/fixtures/relay.ts); the forward targets a loopback echo server. ssh/autossh: `-N -F none -o BatchMode=yes -o ExitOnForwardFailure=yes -o IdentitiesOnly=yes`; ' +
        'sshkeep: `-F none -o IdentitiesOnly=yes --log-format json`. Times: performance.now() in this process (sshkeep events: when its log line arrived here; ssh exit: polled every 20 ms).',
    ],
  ];
  if (stale) header.push(['warning', 'dist/ is older than src/: run npm run build']);
  const md = ['## Resilience: sshkeep vs `ssh -N -L` vs `autossh -M 0`', '', ...header.map(([k, v]) => `- **${k}:** ${v}`), '', ...sections].join('\n');
  process.stdout.write(md + '\n');

  if (opts.json) {
    fs.writeFileSync(opts.json, JSON.stringify({ meta: Object.fromEntries(header), options: { ...opts, only: [...opts.only] }, targets: { s1Ms: TARGET.s1(2000), s2Ms: TARGET.s2, s3Ms: TARGET.s3, s4Ms: TARGET.s4, s5SuccessPct: 100 }, ...out }, null, 2) + '\n');
    process.stderr.write(`wrote ${opts.json}\n`);
  }
}

runMain('bench-resilience', main, cleanup, true);
