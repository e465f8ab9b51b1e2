import http from 'node:http';
import { Command, CommanderError } from 'commander';
import { ConfigError, EXIT } from '../errors.js';
import { DEFAULTS } from '../config/defaults.js';
import { formatDuration, parseDuration } from '../config/duration.js';
import { parseHostPort } from '../config/host-port.js';
import type { TunnelReport } from '../sshkeep.js';
import { usageMessage } from './program.js';
import { describeChange, type ReloadOutcome } from '../reload.js';

/**
 * `sshkeep wait|shutdown|status|reload|reconnect`: ask a running instance through its --health
 * server, at the address it was started with (--health, or SSHKEEP_HEALTH as in its own environment).
 */
export const CONTROL_COMMANDS = ['wait', 'shutdown', 'status', 'reload', 'reconnect'] as const;
export type ControlCommand = (typeof CONTROL_COMMANDS)[number];

export const isControlCommand = (word: string | undefined): word is ControlCommand => (CONTROL_COMMANDS as readonly string[]).includes(word ?? '');

export interface ControlIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

const stdio: ControlIo = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };

interface Where {
  host: string;
  port: number;
}

/** One answer of the instance, or why there was none (connection refused, a timeout). */
type Answer = { status: number; body: string } | { failure: string };

/** The instance did not start in time, refused, is unreachable, or has a tunnel not ready (as `curl -f` exits non-zero). */
const FAILED = 1;

/** No single request may hang a script: the instance answers on loopback in milliseconds. */
const REQUEST_TIMEOUT_MS = 2_000;

/** /readyz of 150,000 tunnels (a row is 350–450 bytes); a longer answer is not sshkeep's. */
const MAX_BODY_BYTES = 64 * 1024 * 1024;

/** One request, answered in full within `timeoutMs` (a server trickling its body is cut off too), or why not. */
function ask(where: Where, method: 'GET' | 'POST', path: string, timeoutMs = REQUEST_TIMEOUT_MS): Promise<Answer> {
  return new Promise((resolve) => {
    const finish = (answer: Answer) => {
      clearTimeout(timer);
      req.destroy();
      resolve(answer);
    };
    const req = http.request({ ...where, method, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        if (bytes > MAX_BODY_BYTES) return finish({ failure: `answered with more than ${MAX_BODY_BYTES / 1024 / 1024} MiB: not an sshkeep instance` });
        chunks.push(c);
      });
      res.on('end', () => finish({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (e) => finish({ failure: e.message }));
    });
    // At least 1 ms: --timeout 0 means give up at once.
    const timer = setTimeout(() => finish({ failure: `no answer within ${formatDuration(timeoutMs)}` }), Math.max(1, timeoutMs));
    req.on('error', (e: NodeJS.ErrnoException) => finish({ failure: e.code === 'ECONNREFUSED' ? 'connection refused' : e.message }));
    req.end();
  });
}

/** The body as JSON, or undefined when it is not (the port is not sshkeep's). */
function jsonOf(answer: Answer): Record<string, unknown> | undefined {
  if ('failure' in answer) return undefined;
  try {
    const body: unknown = JSON.parse(answer.body);
    return typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/** An answer to /reload as sshkeep gives it (anything else is some other server's). */
function reloadOutcomeOf(answer: Answer): ReloadOutcome | undefined {
  const body = jsonOf(answer);
  if (body?.status === 'applied') {
    const lists = ['kept', 'added', 'removed', 'changed', 'unchanged'].every((k) => isStrings(body[k]));
    return lists ? (body as unknown as ReloadOutcome) : undefined;
  }
  if (body?.status === 'refused') return typeof body.error === 'string' ? (body as unknown as ReloadOutcome) : undefined;
  if (body?.status === 'nothing') return typeof body.reason === 'string' ? (body as unknown as ReloadOutcome) : undefined;
  return undefined;
}

/** A tunnel's row of /readyz as sshkeep gives it. */
function isTunnelReport(v: unknown): v is TunnelReport {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  const numbers = ['active', 'held', 'reconnects'].every((k) => typeof r[k] === 'number');
  const remote = Array.isArray(r.remoteForwards) && r.remoteForwards.every((f) => typeof f === 'object' && f !== null && typeof (f as { state?: unknown }).state === 'string');
  return typeof r.tunnel === 'string' && typeof r.state === 'string' && typeof r.since === 'string' && numbers && remote
    && (r.rttMs === undefined || typeof r.rttMs === 'number') && (r.lastError === undefined || typeof r.lastError === 'string');
}

/** `503 starting`: the status and the body's own word for it, for one line. */
function said(answer: Answer): string {
  if ('failure' in answer) return answer.failure;
  const body = jsonOf(answer);
  const word = typeof body?.status === 'string' ? body.status : typeof body?.error === 'string' ? body.error : '';
  return `${answer.status} ${word}`.trim();
}

/** Every interface is reached on IPv4 loopback: `::` listens dual-stack, or on 0.0.0.0 where the host has no IPv6. */
const reachable = (where: Where): Where => ({ ...where, host: where.host === '0.0.0.0' || where.host === '::' ? '127.0.0.1' : where.host });

const HELP_AFTER: Record<ControlCommand, string> = {
  wait: `\nExit codes: 0 the instance has started (its /startupz answers 200), 1 the timeout passed first, 2 usage error.`,
  shutdown: `\nThe instance must run with --admin; it then drains as on SIGTERM.\nExit codes: 0 the instance accepted, 1 refused or unreachable, 2 usage error.`,
  status: `\nExit codes: 0 every tunnel is ready, 1 some tunnel is not (or the instance is unreachable), 2 usage error.`,
  reload:
    `\nAs SIGHUP: the instance reads its --config file and ssh_config again and applies the difference; a file with an error\n` +
    `is refused and the running configuration stays. Accepted from loopback only; --admin is not needed.\n` +
    `Exit codes: 0 applied (or nothing to reload), 1 refused (the error is printed) or unreachable, 2 usage error.`,
  reconnect:
    `\nAs SIGUSR2: every tunnel dials a new SSH connection; streams open on the old one run on until they end (--max-drain).\n` +
    `Accepted from loopback only. Exit codes: 0 accepted, 1 refused or unreachable, 2 usage error.`,
};

const DESCRIPTION: Record<ControlCommand, string> = {
  wait: 'block until a running instance has started (every tunnel ready once)',
  shutdown: 'ask a running instance to drain and stop (POST /quitquitquit; it needs --admin)',
  status: "print each tunnel's state of a running instance",
  reload: 'make a running instance read its configuration again and apply it (POST /reload)',
  reconnect: 'make every tunnel of a running instance reconnect, make-before-break (POST /reconnect)',
};

function command(name: ControlCommand): Command {
  const cmd = new Command(`sshkeep ${name}`)
    .description(DESCRIPTION[name])
    .option('--health <[host:]port>', 'the --health address the instance was started with (env: SSHKEEP_HEALTH)')
    .helpOption('-h, --help', 'show this help')
    .addHelpText('after', HELP_AFTER[name])
    .allowExcessArguments(false);
  if (name === 'wait' || name === 'reload') cmd.option('--timeout <duration>', `give up after this long (default: ${formatDuration(DEFAULTS.waitTimeoutMs)})`);
  if (name === 'status') cmd.option('--json', "print /readyz's body as is, for scripts");
  return cmd;
}

interface ControlOptions {
  health?: string;
  timeout?: string;
  json?: boolean;
}

/** The subcommand's options, or null after --help; usage errors are ConfigErrors (exit 2). */
function parse(name: ControlCommand, argv: string[], env: NodeJS.ProcessEnv, io: ControlIo): { where: Where; timeoutMs: number; json: boolean } | null {
  const cmd = command(name);
  cmd.exitOverride();
  cmd.configureOutput({ writeOut: io.out, writeErr: () => {} });
  try {
    cmd.parse(argv, { from: 'user' });
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    if (['commander.helpDisplayed', 'commander.help'].includes(err.code)) return null;
    throw new ConfigError(`${usageMessage(err)}. Run sshkeep ${name} --help for usage.`);
  }
  const o = cmd.opts<ControlOptions>();
  // The same variable the instance reads, so in a sidecar one SSHKEEP_HEALTH serves both.
  const health = o.health ?? (env.SSHKEEP_HEALTH || undefined);
  if (!health) throw new ConfigError(`${name} needs --health [host:]port of a running instance (or SSHKEEP_HEALTH).`);
  if (/^(off|none)$/i.test(health.trim())) throw new ConfigError(`${name}: ${o.health ? '--health' : 'SSHKEEP_HEALTH'} is off, so the instance serves nothing to ask; give the --health [host:]port it was started with.`);
  return {
    where: reachable(parseHostPort(health, o.health ? '--health' : 'SSHKEEP_HEALTH')),
    timeoutMs: o.timeout === undefined ? DEFAULTS.waitTimeoutMs : parseDuration(o.timeout, '--timeout'),
    json: o.json === true,
  };
}

/** `sshkeep wait`: /startupz until 200, or the timeout; the last answer says what was seen. */
async function wait(where: Where, timeoutMs: number, io: ControlIo): Promise<number> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    // A request that hangs must not carry the wait past its timeout.
    const answer = await ask(where, 'GET', '/startupz', Math.max(1, Math.min(REQUEST_TIMEOUT_MS, end - Date.now())));
    if (!('failure' in answer) && answer.status === 200) return EXIT.ok;
    if (Date.now() + DEFAULTS.waitPollMs > end) {
      io.err(`sshkeep wait: not started after ${formatDuration(timeoutMs)}; last seen at ${where.host}:${where.port}: ${said(answer)}\n`);
      return FAILED;
    }
    await new Promise((resolve) => setTimeout(resolve, DEFAULTS.waitPollMs));
  }
}

async function shutdown(where: Where, io: ControlIo): Promise<number> {
  const answer = await ask(where, 'POST', '/quitquitquit');
  if (!('failure' in answer) && answer.status === 202) {
    io.out(`sshkeep shutdown: ${where.host}:${where.port} is draining\n`);
    return EXIT.ok;
  }
  io.err(`sshkeep shutdown: ${where.host}:${where.port} did not accept: ${said(answer)}\n`);
  return FAILED;
}

/** `sshkeep reload`: the outcome once the instance has applied or refused the file. */
async function reload(where: Where, timeoutMs: number, io: ControlIo): Promise<number> {
  const answer = await ask(where, 'POST', '/reload', timeoutMs);
  const outcome = reloadOutcomeOf(answer); // undefined: not sshkeep's /reload, said below
  if (outcome?.status === 'applied') {
    const kept = outcome.kept.length ? `\n${outcome.kept.join(', ')} changed but only a restart applies it; kept as started` : '';
    io.out(`sshkeep reload: applied: ${describeChange(outcome)}${kept}\n`);
    return EXIT.ok;
  }
  if (outcome?.status === 'nothing') {
    io.out(`sshkeep reload: nothing to reload: ${outcome.reason}\n`);
    return EXIT.ok;
  }
  if (outcome?.status === 'refused') io.err(`sshkeep reload: refused, the running configuration stays: ${outcome.error}\n`);
  else io.err(`sshkeep reload: ${where.host}:${where.port} did not reload: ${said(answer)}\n`);
  return FAILED;
}

async function reconnect(where: Where, io: ControlIo): Promise<number> {
  const answer = await ask(where, 'POST', '/reconnect');
  const tunnels = jsonOf(answer)?.tunnels;
  if (!('failure' in answer) && answer.status === 202 && isStrings(tunnels)) {
    io.out(`sshkeep reconnect: ${where.host}:${where.port} is reconnecting ${tunnels.join(', ')}\n`);
    return EXIT.ok;
  }
  io.err(`sshkeep reconnect: ${where.host}:${where.port} did not accept: ${said(answer)}\n`);
  return FAILED;
}

/** `3m12s`: a person's reading of a length of time. */
export function ago(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const parts = [[Math.floor(s / 86_400), 'd'], [Math.floor(s / 3600) % 24, 'h'], [Math.floor(s / 60) % 60, 'm'], [s % 60, 's']] as const;
  const first = parts.findIndex(([n]) => n > 0);
  return first < 0 ? '0s' : parts.slice(first, first + 2).map(([n, u]) => `${n}${u}`).join('');
}

/** One row per tunnel, columns padded to their widest cell. */
export function statusTable(tunnels: TunnelReport[], now: number): string {
  const rows = [
    ['TUNNEL', 'STATE', 'RTT', 'CLIENTS (ACTIVE/HELD)', 'RECONNECTS', 'REMOTE FORWARDS (BOUND/TOTAL)', 'LAST ERROR'],
    ...tunnels.map((t) => [
      t.tunnel,
      `${t.state} for ${ago(now - Date.parse(t.since))}`,
      t.rttMs === undefined ? '-' : `${Math.round(t.rttMs)} ms`,
      `${t.active}/${t.held}`,
      String(t.reconnects),
      t.remoteForwards.length ? `${t.remoteForwards.filter((r) => r.state === 'bound').length}/${t.remoteForwards.length}` : '-',
      t.lastError ?? '-',
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

async function status(where: Where, json: boolean, io: ControlIo): Promise<number> {
  const answer = await ask(where, 'GET', '/readyz');
  const body = jsonOf(answer);
  const tunnels = body?.tunnels;
  if ('failure' in answer || !Array.isArray(tunnels) || !tunnels.every(isTunnelReport)) {
    io.err(`sshkeep status: no sshkeep at ${where.host}:${where.port}: ${said(answer)}\n`);
    return FAILED;
  }
  // Not ready for a reason no row shows (draining, --max-connections): said above the table.
  const overallStatus = body?.status;
  const overall = !json && answer.status !== 200 && typeof overallStatus === 'string' && overallStatus !== 'not ready' ? `sshkeep: ${overallStatus}\n` : '';
  io.out(json ? `${JSON.stringify(body)}\n` : overall + statusTable(tunnels, Date.now()));
  return answer.status === 200 ? EXIT.ok : FAILED;
}

/** Runs one control command; its exit code. */
export async function runControl(name: ControlCommand, argv: string[], env: NodeJS.ProcessEnv = process.env, io: ControlIo = stdio): Promise<number> {
  const options = parse(name, argv, env, io);
  if (!options) return EXIT.ok;
  const { where, timeoutMs, json } = options;
  if (name === 'wait') return wait(where, timeoutMs, io);
  if (name === 'shutdown') return shutdown(where, io);
  if (name === 'reload') return reload(where, timeoutMs, io);
  if (name === 'reconnect') return reconnect(where, io);
  return status(where, json, io);
}
