// The command line, loaded by main.ts once the signals are caught.
import type http from 'node:http';
import { parseCli } from './program.js';
import { exit } from './terminal.js';
import { EARLY, handSignal, interruptOnSignals } from './signals.js';
import { ttyPrompter } from './prompt.js';
import { runDemo } from './demo.js';
import { describeChecked } from './check.js';
import { openLogFile } from './log-file.js';
import { isControlCommand, runControl } from './control.js';
import { ConfigError, EXIT, ListenError, SshkeepError, exitCodeOf } from '../errors.js';
import { processEnv } from '../config/resolve.js';
import { Reloader, type LoadSettings } from '../reload.js';
import { reconnectAll, reloadFrom, serveControlSignals } from './reload.js';
import type { Control } from '../ops/health.js';
import { buildSettings, type Settings } from '../config/settings.js';
import { SECRET_VARIABLES, envName, unknownVariables } from '../config/setting-table.js';
import type { AddressRange } from '../config/host-port.js';
import { DEFAULTS } from '../config/defaults.js';
import { BoundedPipe, LogFile, createLogger, stderrIsPipe, type Logger } from '../log.js';
import { Fleet } from '../fleet.js';
import { StatusLine } from '../ops/status-line.js';
import { SystemdNotifier } from '../ops/notify.js';
import { nativeCrypto } from '../ssh/adapter.js';

/** The log, once there is one, and where it goes: text or JSON on stderr, or an -E file. */
interface Log {
  logger: Logger;
  to: 'stderr-text' | 'stderr-json' | 'file';
}

/**
 * Why the process ends, in one clear paragraph: in the log (a JSON log or an -E file keeps it
 * with the rest), and as plain text on stderr where a person reads it (usage, configuration and
 * listen errors, or no log yet; not beside JSON lines); a stack only for what is a bug, with -v.
 */
function report(err: unknown, log: Log | undefined): number {
  const code = exitCodeOf(err);
  const message = err instanceof Error ? err.message : String(err);
  const forPerson = err instanceof ConfigError || err instanceof ListenError;
  if (log && !(forPerson && log.to === 'stderr-text')) log.logger.error(message, { event: 'fatal', error: err instanceof SshkeepError ? err.name : 'InternalError', exitCode: code });
  if (!log || (forPerson && log.to !== 'stderr-json')) process.stderr.write(`sshkeep: ${message}\n`);
  if (!(err instanceof SshkeepError)) {
    process.stderr.write('sshkeep: this is a bug; please report it with the output of -v.\n');
    if (log?.logger.isDebug() && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  }
  return code;
}

// A closed terminal (EIO) or a reader gone (EPIPE): the log has nowhere to go, which must not
// end the process in the middle of a drain.
process.stderr.on('error', () => {});

/**
 * SIGINT/SIGTERM run `stop` once; a second signal runs `cut` (synchronous) and leaves at once.
 * Returns the same stop for other callers (POST /quitquitquit, a closed terminal); a repeated
 * request changes nothing, and the first signal after one is not a second signal: the
 * orchestrator's SIGTERM after the app's /quitquitquit lets the drain run.
 */
function onSignals(stop: (reason: string) => Promise<void>, cut: () => void = () => {}): (reason: string) => void {
  let stopping = false;
  let signalled = false;
  const start = (reason: string) => {
    stopping = true;
    stop(reason).catch((err: unknown) => exit(report(err, undefined)));
  };
  const handle = (signal: NodeJS.Signals) => {
    if (signalled) {
      cut();
      exit(EXIT.ok);
    }
    signalled = true;
    if (!stopping) start(signal);
  };
  handSignal('SIGINT', EARLY.SIGINT, handle);
  handSignal('SIGTERM', EARLY.SIGTERM, handle);
  return (reason) => {
    if (!stopping) start(reason);
  };
}

/** The --health endpoints, loaded on demand: without --health, prom-client is never loaded (memory, wake-ups). */
async function healthEndpoints(where: { host: string; port: number }, logger: Logger) {
  const [{ Metrics }, { startHealthServer }] = await Promise.all([import('../ops/metrics.js'), import('../ops/health.js')]);
  const metrics = new Metrics();
  return {
    metrics,
    listen: (fleet: Fleet, requestShutdown: (() => void) | undefined, control: Control, adminFrom: AddressRange[], stopped: () => Error | undefined) =>
      startHealthServer(where, fleet, metrics, requestShutdown, control, adminFrom, { retryMs: DEFAULTS.listenRetryMs, intervalMs: DEFAULTS.listenRetryIntervalMs, logger, stopped }),
  };
}

/** How a reload reads the configuration again, and the -E file to reopen. */
interface Reloading {
  load: LoadSettings | undefined;
  logFile: LogFile | undefined;
}

async function run(settings: Settings, log: Log, status: StatusLine | undefined, passphrase: string | undefined, reloading: Reloading): Promise<number> {
  const { logger } = log;
  const fleet = new Fleet(settings.tunnels, settings.process, {
    logger,
    prompter: ttyPrompter(),
    passphrase,
    insecureKeyPermissions: settings.insecureKeyPermissions,
    skipFailedTunnels: settings.process.skipFailedTunnels,
  });
  const binding = nativeCrypto();
  if (binding === 'missing') {
    logger.warn("ssh2's native crypto binding is not built: encryption runs in JavaScript at about half the throughput. Reinstall with python3, make and g++ present (npm ci).", {
      event: 'native_crypto',
    });
  } else if (binding === 'stale') {
    logger.warn("ssh2's native crypto binding was built before sshkeep's ssh2 patches: AES-GCM decryption runs in node:crypto instead, at more CPU per packet. Build it again: npm rebuild ssh2 (in sshkeep's directory).", {
      event: 'native_crypto',
    });
  }
  const endpoints = settings.process.health && (await healthEndpoints(settings.process.health, logger));
  for (const tunnel of fleet.tunnels) endpoints?.metrics.watch(tunnel);
  fleet.on('added', (tunnel) => endpoints?.metrics.watch(tunnel));
  // A retiring tunnel is reported (its streams finishing) until it has stopped.
  fleet.on('retired', (tunnel) => endpoints?.metrics.unwatch(tunnel));
  const reloader = new Reloader(fleet, settings, reloading.load, logger);
  // Type=notify under systemd: READY=1, STATUS=, STOPPING=1, WATCHDOG=1, RELOADING=1 around a reload.
  const notifier = SystemdNotifier.fromEnv(process.env, logger);
  if (notifier) {
    reloader.on('reloading', () => notifier.reloading());
    reloader.on('reloaded', () => notifier.ready());
  }
  let health: http.Server | undefined;
  // From the first listener on, forwards may serve: a signal drains them, also while a later
  // tunnel still binds or the health port is still being retried (up to 5 s each).
  let stopping = false;
  let requestShutdown = (_reason: string) => {};
  const stopped = new Promise<number>((resolve) => {
    requestShutdown = onSignals(
      async (signal) => {
        stopping = true;
        notifier?.stopping();
        const { minDrainMs, maxDrainMs } = reloader.settings.process;
        logger.info('shutting down', { event: 'shutdown', signal, minDrainMs, maxDrainMs });
        const cut = await fleet.drain(minDrainMs, maxDrainMs);
        status?.stop();
        health?.close();
        health?.closeAllConnections();
        logger.info(`stopped; ${cut} client(s) cut at the end of the drain`, { event: 'stopped', connectionsCut: cut });
        resolve(EXIT.ok);
      },
      // A second signal: reset what is open (a cut stream must not look complete), then leave.
      () => logger.warn(`second signal: ${fleet.resetAll('second signal')} client(s) reset`, { event: 'second_signal' }),
    );
  });
  // A start the drain cut short is no failure, and one still waiting (a passphrase) does not hold the exit up.
  const started = fleet.start().catch((err: unknown) => {
    if (!stopping) throw err;
  });
  await Promise.race([started, stopped]);
  if (stopping) return stopped;
  // A fatal error (a refused key, a changed host key) ends the run, also while --health still
  // retries its port: reported as it is, not as that port being in use.
  let failing = false;
  /** The run ends with another error (the health port): the fleet's stop is not one more to report. */
  let endingOtherwise = false;
  const never = new Promise<number>(() => {});
  const failed = fleet.ready().then(
    () => never, // up: only a signal ends the run
    // A signal before the first connect also rejects ready(): that is a clean stop, not a failure.
    async (err: unknown) => {
      if (stopping || endingOtherwise) return never;
      failing = true;
      await fleet.stop('fatal error');
      health?.close();
      return report(err, log);
    },
  );
  const stopBinding = () => {
    if (stopping) return new ListenError('--health: stopped while its port was in use.');
    if (failing) return new ListenError('--health: given up, the tunnel failed.');
    return undefined;
  };
  try {
    health = await endpoints?.listen(fleet, settings.process.admin ? () => requestShutdown('POST /quitquitquit') : undefined, {
      reload: () => reloader.request('POST /reload'),
      reconnect: () => reconnectAll(fleet, reloader, 'POST /reconnect'),
    }, settings.process.adminFrom, stopBinding);
  } catch (err) {
    if (stopping) return stopped; // the stop gave the port up: not a failure
    if (failing) return failed;
    endingOtherwise = true;
    await fleet.stop('health endpoint failed');
    throw err;
  }
  if (stopping || failing) {
    health?.close(); // bound just as the run ended
    return stopping ? stopped : failed;
  }
  if (health) {
    const { address, port } = health.address() as import('node:net').AddressInfo;
    logger.info('health endpoints up', { event: 'health', address, port });
  }
  status?.show(fleet);
  // The SIGHUP of a closed terminal takes the SIGTERM path (set up just above).
  const hangUp = (reason: string) => {
    status?.stop();
    requestShutdown(reason);
  };
  serveControlSignals({ fleet, reloader, logger, logFile: reloading.logFile, hangUp });
  // Last: READY=1 promises what a dependent unit uses, --health's endpoints and the control signals included.
  notifier?.watch(fleet);
  return Promise.race([stopped, failed]);
}

async function main(argv: string[]): Promise<number> {
  let log: Log | undefined;
  try {
    if (argv[0] === 'demo') {
      interruptOnSignals(['SIGHUP', 'SIGUSR1', 'SIGUSR2']); // SIGINT and SIGTERM: its own drain (onSignals)
      return await runDemo(argv.slice(1), onSignals);
    }
    if (isControlCommand(argv[0])) {
      interruptOnSignals();
      return await runControl(argv[0], argv.slice(1));
    }
    const check = argv[0] === 'check';
    const cli = parseCli(check ? argv.slice(1) : argv, process.env);
    if (!cli) return EXIT.ok;
    const warnings = unknownVariables(process.env);
    const secrets = { identity: process.env.SSHKEEP_IDENTITY || undefined, knownHosts: process.env.SSHKEEP_KNOWN_HOSTS || undefined };
    const passphrase = process.env.SSHKEEP_PASSPHRASE;
    // Read once, then dropped from process.env so no child process inherits them.
    for (const k of [...SECRET_VARIABLES, envName('socksAuth')!]) delete process.env[k];
    const env = processEnv();
    const settings = buildSettings(cli, env, secrets, (m) => warnings.push(m));
    if (check) {
      for (const w of warnings) process.stderr.write(`sshkeep: warning: ${w}\n`);
      process.stdout.write(await describeChecked(settings, passphrase, process.stdin.isTTY === true));
      return EXIT.ok;
    }
    const file = settings.logFile && openLogFile(settings.logFile);
    const terminal = !file && process.stderr.isTTY;
    const format = settings.logFormat ?? (terminal ? 'pretty' : 'json');
    // A person at a terminal gets a live status line under the log (never in JSON mode).
    const status = terminal && format === 'pretty' && settings.logLevel === 'info' ? new StatusLine(process.stderr) : undefined;
    const pipe = !file && !status && stderrIsPipe() ? new BoundedPipe(process.stderr) : undefined;
    const logger = createLogger(settings.logLevel, format, file || status || pipe || process.stderr, terminal);
    log = { logger, to: file ? 'file' : format === 'json' ? 'stderr-json' : 'stderr-text' };
    const bounded = file || pipe;
    if (bounded) bounded.onDropped = (lines) => logger.warn(`${lines} log line(s) dropped: ${file ? file.path : 'stderr'} did not take them in time`, { event: 'log_dropped', lines });
    for (const w of warnings) logger.warn(w, { event: 'config' });
    return await run(settings, log, status, passphrase, { load: reloadFrom(cli, env, secrets), logFile: file });
  } catch (err) {
    return report(err, log);
  }
}

// `sshkeep --help | head`: a closed stdout is not an error worth a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => exit(err.code === 'EPIPE' ? EXIT.ok : EXIT.internal));

main(process.argv.slice(2)).then(
  // Let the last log line reach stderr before leaving.
  (code) => setImmediate(() => exit(code)),
  (err: unknown) => {
    process.stderr.write(`sshkeep: ${String(err)}\n`);
    exit(EXIT.internal);
  },
);
