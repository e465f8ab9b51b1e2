#!/usr/bin/env node
import { parseCli } from './program.js';
import { ttyPrompter } from './prompt.js';
import { ConfigError, EXIT, ListenError, SshkeepError, exitCodeOf } from '../errors.js';
import { resolveTunnel, processEnv } from '../config/resolve.js';
import { createLogger, type Logger } from '../ops/logger.js';
import { Sshkeep } from '../sshkeep.js';

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

async function main(argv: string[]): Promise<number> {
  let logger: Logger | undefined;
  try {
    const args = parseCli(argv, process.stderr.isTTY === true);
    if (!args) return EXIT.ok;
    logger = createLogger(args.logLevel, args.logFormat);
    const log = logger;
    const config = resolveTunnel(args.tunnel, processEnv(), (m) => log.warn(m));
    if (config.forwards.length === 0) {
      throw new ConfigError('Nothing to forward: give at least one -L [bind_address:]port:host:hostport (or LocalForward in ssh_config).');
    }
    const app = new Sshkeep(config, { logger, prompter: ttyPrompter(), passphrase: process.env.SSHKEEP_PASSPHRASE });
    await app.start();

    const stopped = new Promise<number>((resolve) => {
      let stopping = false;
      const onSignal = (signal: NodeJS.Signals) => {
        if (stopping) exit(EXIT.ok); // a second signal: leave now
        stopping = true;
        log.info('shutting down', { event: 'shutdown', signal });
        void app.stop(`${signal}`).then((cut) => {
          log.info('stopped', { event: 'stopped', connectionsCut: cut });
          resolve(EXIT.ok);
        });
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    });
    const failed = app.ready().then(
      () => new Promise<number>(() => {}), // up: only a signal ends the run
      (err: unknown) => report(err, log),
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
