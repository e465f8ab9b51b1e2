#!/usr/bin/env node
import { parseCli } from './program.js';
import { ttyPrompter } from './prompt.js';
import { ConfigError, EXIT, ListenError, SshkeepError, exitCodeOf } from '../errors.js';
import { resolveTunnel, processEnv } from '../config/resolve.js';
import { createLogger, type Logger } from '../ops/logger.js';
import { Sshkeep } from '../sshkeep.js';
import { runDemo } from './demo.js';

/**
 * One clear paragraph on stderr (usage and configuration errors are for a person,
 * whatever the log format); a stack only for what is a bug, and only with -v.
 */
function report(err: unknown, logger: Logger | undefined): number {
  const code = exitCodeOf(err);
  const message = err instanceof Error ? err.message : String(err);
  const forPerson = err instanceof ConfigError || err instanceof ListenError;
  if (logger && !forPerson) logger.error(message, { event: 'fatal', error: err instanceof SshkeepError ? err.name : 'InternalError', exitCode: code });
  else process.stderr.write(`sshkeep: ${message}\n`);
  if (!(err instanceof SshkeepError)) {
    process.stderr.write('sshkeep: this is a bug; please report it with the output of -v.\n');
    if (logger?.isDebug() && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  }
  return code;
}

function exit(code: number): never {
  process.exit(code);
}

/** SIGINT/SIGTERM run `stop` once; a second signal leaves at once. */
function onSignals(stop: (signal: NodeJS.Signals) => Promise<void>): void {
  let stopping = false;
  const handle = (signal: NodeJS.Signals) => {
    if (stopping) exit(EXIT.ok);
    stopping = true;
    void stop(signal);
  };
  process.on('SIGINT', handle);
  process.on('SIGTERM', handle);
}

async function main(argv: string[]): Promise<number> {
  let logger: Logger | undefined;
  try {
    if (argv[0] === 'demo') return await runDemo(argv.slice(1), onSignals);
    const args = parseCli(argv, process.stderr.isTTY === true);
    if (!args) return EXIT.ok;
    logger = createLogger(args.logLevel, args.logFormat);
    const log = logger;
    const config = resolveTunnel(args.tunnel, processEnv(), (m) => log.warn(m, { event: 'config' }));
    if (config.forwards.length === 0) {
      throw new ConfigError('Nothing to forward: give at least one -L [bind_address:]port:host:hostport (or LocalForward in ssh_config).');
    }
    const app = new Sshkeep(config, { logger, prompter: ttyPrompter(), passphrase: process.env.SSHKEEP_PASSPHRASE });
    await app.start();

    let stopping = false;
    const stopped = new Promise<number>((resolve) =>
      onSignals(async (signal) => {
        stopping = true;
        log.info('shutting down', { event: 'shutdown', signal });
        const cut = await app.stop(signal);
        log.info('stopped', { event: 'stopped', connectionsCut: cut });
        resolve(EXIT.ok);
      }),
    );
    const never = new Promise<number>(() => {});
    const failed = app.ready().then(
      () => never, // up: only a signal ends the run
      // A signal before the first connect also rejects ready(): that is a clean stop, not a failure.
      (err: unknown) => (stopping ? never : report(err, log)),
    );
    return await Promise.race([stopped, failed]);
  } catch (err) {
    return report(err, logger);
  }
}

main(process.argv.slice(2)).then(
  // Let the last log line reach stderr before leaving.
  (code) => setImmediate(() => exit(code)),
  (err: unknown) => {
    process.stderr.write(`sshkeep: ${String(err)}\n`);
    exit(EXIT.internal);
  },
);
