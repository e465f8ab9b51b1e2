import type { ResolveEnv } from '../config/resolve.js';
import { buildSettings, type Layer, type Secrets } from '../config/settings.js';
import { withoutBlockingOnExec } from '../config/match-exec.js';
import type { Fleet } from '../fleet.js';
import type { LogFile, Logger } from '../log.js';
import type { LoadSettings, Reloader } from '../reload.js';
import { EARLY, handSignal, hungUpEarly } from './signals.js';
import { startedOnTerminal, terminalOpen } from './terminal.js';

/**
 * How a reload reads the configuration again: the start's own parse, from the command line and
 * environment as they were at start (SSHKEEP_SOCKS_AUTH and the secrets are gone from the
 * environment by then), so they keep their precedence over the file; ssh_config's `Match exec`
 * commands run without blocking what serves (a slow one stalled every tunnel and /healthz).
 * Undefined when nothing is read from a file: no --config, and -F none.
 */
export function reloadFrom(cli: Layer, env: ResolveEnv, secrets: Secrets): LoadSettings | undefined {
  const noSshConfig = cli.sshConfig?.[0]?.value.toLowerCase() === 'none';
  if (!cli.config && noSshConfig) return undefined;
  return async (warn) => {
    const { settings, warnings } = await withoutBlockingOnExec(() => {
      const said: string[] = [];
      return { settings: buildSettings(cli, env, secrets, (m) => said.push(m)), warnings: said };
    });
    for (const w of warnings) warn(w);
    return settings;
  };
}

/**
 * SIGHUP, SIGUSR2 and SIGUSR1 (autossh's restart, here as SIGUSR2) once the tunnels serve, taken
 * over from the start-up's listeners (which remembered a SIGHUP: the file may have changed after it
 * was read; it is handled now). None ever ends the process, but run from a terminal, the SIGHUP of
 * that terminal closing is not a reload: sshkeep stops (draining), as `ssh -L` would end.
 */
export function serveControlSignals({ fleet, reloader, logger, logFile, hangUp }: { fleet: Fleet; reloader: Reloader; logger: Logger; logFile: LogFile | undefined; hangUp: (reason: string) => void }): void {
  // SIGHUP: logrotate's postrotate (-E) and a reload (systemd's ExecReload) are the same signal.
  const hangup = () => {
    // Run from a terminal that is now gone. Under nohup no stdio is a terminal: a reload.
    if (startedOnTerminal && !terminalOpen()) return hangUp('SIGHUP (terminal closed)');
    if (logFile) reopen(logFile, logger);
    void reloader.request('SIGHUP');
  };
  const usr2 = () => void reconnectAll(fleet, reloader, 'SIGUSR2');
  const usr1 = () => void reconnectAll(fleet, reloader, 'SIGUSR1');
  handSignal('SIGHUP', EARLY.SIGHUP, hangup);
  handSignal('SIGUSR2', EARLY.SIGUSR2, usr2);
  handSignal('SIGUSR1', EARLY.SIGUSR1, usr1);
  if (hungUpEarly()) hangup();
}

/** Every tunnel reconnects make-before-break, streams on the old connections given --max-drain (none while draining); their names. */
export function reconnectAll(fleet: Fleet, reloader: Reloader, trigger: string): string[] {
  if (fleet.draining) return [];
  fleet.reconnect(trigger, reloader.settings.process.maxDrainMs);
  return fleet.tunnels.map((a) => a.name);
}

/** -E: a new file after a rotation; if it cannot be opened, the log goes on into the one open before. */
function reopen(file: LogFile, logger: Logger): void {
  try {
    file.reopen();
    logger.info('log file reopened', { event: 'log_reopen', path: file.path });
  } catch (err) {
    logger.warn(`cannot reopen ${file.path} (${(err as Error).message}); still writing to the file open before`, { event: 'log_reopen', path: file.path });
  }
}
