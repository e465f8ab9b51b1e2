/**
 * The tools under test, each a fresh process whose SSH traffic goes through its own fault relay:
 * sshkeep with its JSON log read as it arrives, ssh -L and autossh -M 0 with theirs kept.
 */
import fs from 'node:fs';
import path from 'node:path';
import { HOST, freePorts } from '../../test/fixtures/net.js';
import { alive, childrenOf, comm } from '../../test/fixtures/proc.js';
import { Relay } from '../../test/fixtures/relay.js';
import { sshdLogin, trustRelay, type Sshd } from '../../test/fixtures/sshd.js';
import { startForwarder, untilEchoes, type ToolName } from '../lib/forwarder.js';
import { sleep } from '../lib/sleep.js';
import type { Options } from './options.js';

export const now = () => performance.now();

/** Resolves with the time the process is gone (or a zombie), polling every 20 ms; null at the deadline. */
export async function waitGone(pid: number, ms: number): Promise<number | null> {
  const until = now() + ms;
  while (now() < until) {
    if (!alive(pid)) return now();
    await sleep(20);
  }
  return null;
}

export interface ToolSpec {
  kind: ToolName;
  /** Row label: the tool and the settings that matter. */
  label: string;
  /** sshkeep: extra flags. ssh/autossh: extra ssh options (-o ...). */
  args: string[];
}

const SA22 = ['-o', 'ServerAliveInterval=2', '-o', 'ServerAliveCountMax=2'];
export const SPEC = {
  sshkeepDefaults: { kind: 'sshkeep', label: 'sshkeep (defaults)', args: [] },
  sshkeep2s: { kind: 'sshkeep', label: 'sshkeep --keepalive-interval 2s', args: ['--keepalive-interval', '2s'] },
  sshDefaults: { kind: 'ssh', label: 'ssh -L (defaults: no ServerAlive)', args: [] },
  ssh22: { kind: 'ssh', label: 'ssh -L (ServerAlive 2/2)', args: SA22 },
  autossh22: { kind: 'autossh', label: 'autossh -M 0 (ServerAlive 2/2)', args: SA22 },
} satisfies Record<string, ToolSpec>;

export interface LogLine {
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

export interface Tool {
  spec: ToolSpec;
  relay: Relay;
  /** The local forward's port. */
  port: number;
  /** The spawned process, leader of its own process group. */
  pid: number;
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

/** Relays not closed yet, for the script's SIGINT/SIGTERM cleanup. */
export const liveRelays = new Set<Relay>();
let toolSeq = 0;

export interface Env {
  sshd: Sshd;
  echoPort: number;
  opts: Options;
  tmp: string;
}

/** Starts the tool dialling the sshd through its own fault relay; ready once a byte echoes through its forward. */
export async function launch(spec: ToolSpec, env: Env): Promise<Tool> {
  const relay = await new Relay(env.sshd.port).listen();
  liveRelays.add(relay);
  trustRelay(env.sshd, relay.port);
  const seq = ++toolSeq;
  const autosshLogFile = path.join(env.tmp, `autossh-${seq}.log`);
  const [port] = spec.kind === 'sshkeep' ? [0] : ((await freePorts(1)) as [number]);
  const startedAt = now();
  const f = startForwarder({
    tool: spec.kind,
    cli: env.opts.cli,
    login: sshdLogin(env.sshd, relay.port),
    forwards: [`${port}:${HOST}:${env.echoPort}`],
    args: spec.kind === 'sshkeep' ? ['--log-format', 'json', '--log-level', 'info', ...spec.args] : spec.args,
    env:
      spec.kind === 'autossh'
        ? {
            AUTOSSH_GATETIME: '0',
            AUTOSSH_LOGFILE: autosshLogFile,
            AUTOSSH_LOGLEVEL: '7',
            ...(env.opts.autosshPoll !== undefined ? { AUTOSSH_POLL: String(env.opts.autosshPoll) } : {}),
          }
        : {},
  });
  const logs: LogLine[] = [];
  const waiters = new Set<() => void>();
  const logFile = env.opts.logDir ? path.join(env.opts.logDir, `${seq}-${spec.kind}.log`) : undefined;
  if (logFile) fs.writeFileSync(logFile, `# ${f.command}\n`);
  f.onStderr((s) => {
    if (logFile) fs.appendFileSync(logFile, s);
  });
  f.onLog((l) => {
    if (spec.kind === 'sshkeep') logs.push({ ...l, at: now() });
    for (const w of [...waiters]) w();
  });
  void f.exited(Infinity).then(() => [...waiters].forEach((w) => w()));

  const waitLog = (pred: (l: LogLine) => boolean, ms: number, since = -Infinity): Promise<LogLine | null> =>
    new Promise((resolve) => {
      const check = () => {
        const hit = logs.find((l) => l.at >= since && pred(l));
        if (hit || f.exitInfo()) {
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
    await f.stop();
    await relay.close().catch(() => {});
    liveRelays.delete(relay);
  };

  const pid = f.child.pid!;
  const tool: Tool = {
    spec,
    relay,
    port,
    pid,
    startedAt,
    logs,
    stderr: () => f.stderr(),
    sshPid: () => {
      if (spec.kind === 'ssh') return f.exitInfo() ? undefined : pid;
      if (spec.kind === 'autossh') return childrenOf(pid).find((p) => comm(p) === 'ssh');
      return undefined;
    },
    waitLog,
    exitInfo: () => f.exitInfo(),
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
      if (!l) throw new Error(`no "listen" line within 10 s (${f.exitInfo() ?? 'still running'})`);
      tool.port = l.port as number;
    }
    await untilEchoes(f, tool.port);
  } catch (err) {
    await stop();
    throw new Error(`${spec.label}: ${(err as Error).message}\n--- stderr ---\n${f.stderr().slice(-4000)}`);
  }
  return tool;
}

/** Launches the tool, runs `fn` with it, and stops it however `fn` ends. */
export async function withTool<T>(spec: ToolSpec, env: Env, fn: (tool: Tool) => Promise<T>): Promise<T> {
  const tool = await launch(spec, env);
  try {
    return await fn(tool);
  } finally {
    await tool.stop();
  }
}

/** What a row reports beside its figures: sshkeep's transitions and notable lines since `since`, or the tail of ssh's stderr. */
export function trace(tool: Tool, since: number): { transitions?: ReturnType<typeof transitions>; logs?: Array<Record<string, unknown>>; sshStderr?: string } {
  if (tool.spec.kind === 'sshkeep') return { transitions: transitions(tool, since), logs: notableLogs(tool, since) };
  return { sshStderr: tool.stderr().trim().slice(-500) };
}

/** sshkeep's state transitions since `since`, as "from→to (reason) @+ms". */
export function transitions(tool: Tool, since: number): Array<{ ms: number; from: string; to: string; reason: string }> {
  return tool.logs
    .filter((l) => l.event === 'state' && l.at >= since)
    .map((l) => ({ ms: Math.round(l.at - since), from: String(l.from), to: String(l.to), reason: String(l.reason ?? '') }));
}

/** sshkeep's warn/error lines (and the few info events that explain a recovery) since `since`. */
export function notableLogs(tool: Tool, since: number): Array<Record<string, unknown>> {
  return tool.logs
    .filter((l) => l.at >= since && (l.level === 'warn' || l.level === 'error' || ['state', 'spare', 'retire', 'drain', 'reopen', 'reconnect', 'conn_end'].includes(String(l.event))))
    .map(({ at, timestamp: _t, time: _u, ...rest }) => ({ ms: Math.round(at - since), ...rest }));
}

