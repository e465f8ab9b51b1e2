import { EventEmitter } from 'node:events';
import { isDeepStrictEqual } from 'node:util';
import type { Settings } from './config/settings.js';
import type { ProcessConfig } from './config/types.js';
import { longFlag, type SettingName } from './config/setting-table.js';
import type { Fleet, FleetChange } from './fleet.js';
import type { Logger } from './log.js';

/** Parses and validates the configuration anew (a ConfigError for anything wrong), collecting its warnings; never blocking the event loop for long. */
export type LoadSettings = (warn: (message: string) => void) => Promise<Settings>;

/** How one reload ended: what POST /reload answers and `sshkeep reload` prints. */
export type ReloadOutcome =
  /** `kept`: the flags of settings the file changed that only a restart applies. */
  | ({ status: 'applied'; kept: string[] } & FleetChange)
  /** The file (or a key, a listener it asks for) has an error: the running configuration stays. */
  | { status: 'refused'; error: string }
  /** Started without --config and with -F none: there is no file to read again. */
  | { status: 'nothing'; reason: string };

/**
 * Read once at start, so a reload keeps them: the health server, the log, and start-up-only
 * behaviour. Each is the setting (named in the warning) and the field it fills.
 */
const AT_START_PROCESS = [
  ['health', 'health'],
  ['admin', 'admin'],
  ['adminFrom', 'adminFrom'],
  ['skipFailedTunnels', 'skipFailedTunnels'],
  ['resumeBufferTotal', 'resumeBufferTotalBytes'],
] as const satisfies readonly (readonly [SettingName, keyof ProcessConfig])[];
const AT_START_TOP = [
  ['insecureKeyPermissions', 'insecureKeyPermissions'],
  ['logLevel', 'logLevel'],
  ['logFormat', 'logFormat'],
  ['logFile', 'logFile'],
] as const satisfies readonly (readonly [SettingName, keyof Settings])[];

/** The flags of the start-only settings that `next` would change. */
function keptAtStart(running: Settings, next: Settings): string[] {
  const changed = [
    ...AT_START_PROCESS.filter(([, key]) => !isDeepStrictEqual(running.process[key], next.process[key])),
    ...AT_START_TOP.filter(([, key]) => !isDeepStrictEqual(running[key], next[key])),
  ];
  return changed.map(([name]) => longFlag(name));
}

/** The settings a reload puts in force: the new file's, but for those read at start only. */
function inForce(running: Settings, next: Settings): Settings {
  const process: Record<string, unknown> = { ...next.process };
  for (const [, key] of AT_START_PROCESS) process[key] = running.process[key];
  const settings: Record<string, unknown> = { ...next, process };
  for (const [, key] of AT_START_TOP) settings[key] = running[key];
  return settings as unknown as Settings;
}

/** One line for a person: `added b; changed a; unchanged c`. */
export function describeChange(change: FleetChange): string {
  const parts = (['added', 'removed', 'changed', 'unchanged'] as const).filter((k) => change[k].length).map((k) => `${k} ${change[k].join(', ')}`);
  return parts.length ? parts.join('; ') : 'no tunnels';
}

/**
 * Reads the configuration again (`load`: the same parse as at start, flags and environment
 * still first) and applies the difference to the running fleet (`Fleet.reconfigure`). One
 * reload at a time: a request during a reload runs once more after it (requests meanwhile share
 * that run), so the file's latest state is what ends up applied. Events: `reloading` when one
 * begins and `reloaded` with its outcome (systemd's RELOADING=1 and READY=1).
 */
export class Reloader extends EventEmitter<{ reloading: [trigger: string]; reloaded: [ReloadOutcome] }> {
  #settings: Settings;
  #running: Promise<ReloadOutcome> | undefined;
  #next: Promise<ReloadOutcome> | undefined;

  constructor(
    private readonly fleet: Fleet,
    settings: Settings,
    /** Parses and validates the configuration anew; undefined when there is no file to read. */
    private readonly load: LoadSettings | undefined,
    private readonly logger: Logger,
  ) {
    super();
    this.#settings = settings;
  }

  /** The settings in force (the drain reads --min-drain and --max-drain here). */
  get settings(): Settings {
    return this.#settings;
  }

  /** Reloads, after the reload in progress if there is one; resolves with what came of it. */
  request(trigger: string): Promise<ReloadOutcome> {
    if (!this.#running) return this.#start(trigger);
    this.#next ??= this.#running.then(() => {
      this.#next = undefined;
      return this.#start(trigger);
    });
    return this.#next;
  }

  #start(trigger: string): Promise<ReloadOutcome> {
    const run: Promise<ReloadOutcome> = this.#run(trigger).finally(() => {
      if (this.#running === run) this.#running = undefined;
    });
    this.#running = run;
    return run;
  }

  async #run(trigger: string): Promise<ReloadOutcome> {
    this.emit('reloading', trigger);
    const outcome = await this.#apply().catch((err: unknown): ReloadOutcome => ({ status: 'refused', error: err instanceof Error ? err.message : String(err) }));
    const fields = { event: 'reload', trigger, status: outcome.status };
    if (outcome.status === 'refused') {
      this.logger.error(`reload refused, the running configuration stays: ${outcome.error}`, { ...fields, error: outcome.error });
    } else if (outcome.status === 'nothing') {
      this.logger.info(`nothing to reload: ${outcome.reason}`, fields);
    } else {
      const { added, removed, changed, unchanged, kept } = outcome;
      this.logger.info(`reloaded: ${describeChange(outcome)}`, { ...fields, added, removed, changed, unchanged });
      if (kept.length) this.logger.warn(`reload: ${kept.join(', ')} changed but only a restart applies it; kept as started`, { event: 'reload_kept', kept });
    }
    this.emit('reloaded', outcome);
    return outcome;
  }

  async #apply(): Promise<ReloadOutcome> {
    if (this.fleet.draining) return { status: 'refused', error: 'the instance is shutting down' };
    if (!this.load) return { status: 'nothing', reason: 'started without --config and with -F none, there is no file to read again' };
    const warnings: string[] = [];
    const next = await this.load((m) => warnings.push(m));
    if (this.fleet.draining) return { status: 'refused', error: 'the instance is shutting down' };
    const running = this.#settings;
    const kept = keptAtStart(running, next);
    const change = await this.fleet.reconfigure(next.tunnels, next.process);
    for (const w of warnings) this.logger.warn(w, { event: 'config' });
    this.#settings = inForce(running, next);
    return { status: 'applied', kept, ...change };
  }
}
