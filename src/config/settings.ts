import { ConfigError } from '../errors.js';
import type { CliValues } from '../cli/program.js';
import { DEFAULTS } from './defaults.js';
import { parseDuration } from './duration.js';
import { readConfigFile, type ConfigFile, type FileTunnel } from './file.js';
import { isLocalOnly, parsePort } from './forward-spec.js';
import { resolveTunnel, type ResolveEnv, type TunnelInput } from './resolve.js';
import { parseCount } from './size.js';
import type { LogFormat, LogLevel, ProcessConfig, TunnelConfig } from './types.js';

/** Container secrets passed as content, never as paths. */
export interface Secrets {
  /** SSHKEEP_IDENTITY: a private key. */
  identity?: string;
  /** SSHKEEP_KNOWN_HOSTS: known_hosts lines. */
  knownHosts?: string;
}

export interface Settings {
  tunnels: TunnelConfig[];
  process: ProcessConfig;
  logLevel: LogLevel;
  logFormat: LogFormat | undefined;
  insecureKeyPermissions: boolean;
}

/** `[host:]port`, `[::1]:port`; host defaults to loopback. */
export function parseHostPort(text: string, what: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]:|([^:]*):)?(\d+)$/.exec(text.trim());
  if (!m) throw new ConfigError(`${what}: "${text}" must be [host:]port, e.g. 9090 or 0.0.0.0:9090.`);
  return { host: m[1] ?? (m[2] || DEFAULTS.bindAddress), port: parsePort(m[3]!, what, true) };
}

function tunnelInput(cli: CliValues, fromFile: FileTunnel | undefined, file: ConfigFile | undefined): TunnelInput {
  // Flags and environment beat the file; a tunnel's own setting beats the file's top level,
  // and a tunnel's own ServerAliveInterval counts as its own keepalive interval.
  const ownInterval = fromFile?.options.some((o) => /^\s*serveraliveinterval\b/i.test(o));
  const base: Pick<TunnelInput, 'keepaliveInterval' | 'keepaliveTimeout' | 'holdTimeout' | 'holdBuffer' | 'connections' | 'labels'> = { labels: {} };
  for (const key of ['keepaliveInterval', 'keepaliveTimeout', 'holdTimeout', 'holdBuffer', 'connections'] as const) {
    if (cli[key] !== undefined) base[key] = cli[key];
    else if (fromFile?.[key] !== undefined) {
      base[key] = fromFile[key];
      base.labels![key] = `${file!.file}: ${fromFile.path}.${key}`;
    } else if (file?.settings[key] !== undefined && !(key === 'keepaliveInterval' && ownInterval)) {
      base[key] = file.settings[key];
      base.labels![key] = `${file.file}: ${key}`;
    }
  }
  if (fromFile) {
    return {
      ...base,
      destination: fromFile.destination,
      port: fromFile.port,
      user: fromFile.login,
      identityFiles: fromFile.identityFiles,
      configFile: fromFile.sshConfig,
      options: fromFile.options,
      localForwards: fromFile.local,
      remoteForwards: fromFile.remote,
      dynamicForwards: fromFile.dynamic,
      jump: fromFile.jump,
      socksAuth: fromFile.socksAuth ?? cli.socksAuth,
      // A pin names one server's key: a command-line pin is for the command-line tunnel only.
      hostKeyFingerprint: fromFile.hostKeyFingerprint,
    };
  }
  return {
    ...base,
    destination: cli.destination!,
    port: cli.port,
    user: cli.login,
    identityFiles: cli.identityFile,
    configFile: cli.sshConfig,
    options: cli.option,
    localForwards: cli.local,
    remoteForwards: cli.remote,
    dynamicForwards: cli.dynamic,
    jump: cli.jump,
    socksAuth: cli.socksAuth,
    hostKeyFingerprint: cli.hostKeyFingerprint,
  };
}

/**
 * Flags > environment > config file > ssh_config > defaults, into the configs the
 * tunnels run from. Every error is a ConfigError naming where the bad value came from.
 */
export function buildSettings(cli: CliValues, env: ResolveEnv, secrets: Secrets, warn: (m: string) => void): Settings {
  const file = cli.config ? readConfigFile(cli.config) : undefined;
  const fileTunnels = file?.tunnels ?? [];
  if (!cli.destination && fileTunnels.length === 0) {
    throw new ConfigError('No destination: give [user@]host (or an ssh_config alias), or --config with tunnels. Run sshkeep --help for usage.');
  }
  if (!cli.destination) {
    const lists = (['local', 'remote', 'dynamic', 'identityFile', 'option'] as const).filter((k) => cli[k].length > 0);
    const given: string[] = [...lists, ...(['port', 'login', 'sshConfig', 'jump'] as const).filter((k) => cli[k] !== undefined)];
    if (given.length > 0) {
      throw new ConfigError(
        `--${given[0]!.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} describes a tunnel, but no destination was given: with --config, ` +
          'give a destination on the command line for that tunnel, or put the setting in the file.',
      );
    }
  }
  const inputs: [TunnelInput, string | undefined][] = fileTunnels.map((t) => [tunnelInput(cli, t, file), `${file!.file}: ${t.path}`]);
  if (cli.destination) inputs.push([tunnelInput(cli, undefined, file), undefined]);

  const tunnels = inputs.map(([input, where], i) => {
    let config: TunnelConfig;
    try {
      config = resolveTunnel(input, env, warn);
      const open = config.forwards.find((f) => f.type === 'dynamic' && !isLocalOnly(f.listen));
      if (open && !config.socksAuth && !cli.allowOpenSocks) {
        throw new ConfigError(
          `-D ${open.spec}: a SOCKS proxy on a non-loopback address without --socks-auth lets anyone who can reach it use your SSH access ` +
            'to reach any host. Give --socks-auth user:pass, bind to 127.0.0.1, or pass --allow-open-socks if that is what you want.',
        );
      }
    } catch (err) {
      // Settings that name their own source (a flag, a file key) are not blamed on the tunnel.
      const flags = ['--keepalive-interval', '--keepalive-timeout', '--hold-timeout', '--hold-buffer', '--connections', ...Object.values(input.labels ?? {})];
      const named = err instanceof Error && flags.some((f) => err.message.startsWith(`${f}:`));
      if (err instanceof ConfigError && where && !named) throw new ConfigError(`${where}: ${err.message}`);
      throw err;
    }
    if (config.forwards.length === 0 && config.remoteForwards.length === 0) {
      throw new ConfigError(
        'Nothing to forward: give at least one -L [bind_address:]port:host:hostport, -D [bind_address:]port or -R [bind_address:]port:host:hostport ' +
          '(or LocalForward, DynamicForward, RemoteForward in ssh_config).',
      );
    }
    const name = fileTunnels[i]?.name;
    if (name) config.name = name;
    if (secrets.identity) config.inlineIdentities.push({ name: 'SSHKEEP_IDENTITY', data: secrets.identity });
    if (secrets.knownHosts) config.inlineKnownHosts.push({ name: 'SSHKEEP_KNOWN_HOSTS', text: secrets.knownHosts });
    return config;
  });
  const names = tunnels.map((t) => t.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new ConfigError(`Two tunnels are named "${dup}"; give each a distinct name (the "name" key in --config).`);

  const s = file?.settings ?? {};
  /** A process setting from the flags/environment, else the file (named by its key), else the default. */
  const setting = (key: keyof typeof s, flag: string, fallback: string): [string, string] => {
    const fromCli = cli[key as keyof CliValues] as string | undefined;
    if (fromCli !== undefined) return [fromCli, flag];
    const fromFile = s[key];
    return fromFile !== undefined ? [fromFile, `${file!.file}: ${key}`] : [fallback, flag];
  };
  const health = cli.health ?? s.health;
  const logLevel = (cli.logLevel ?? s.logLevel ?? 'info') as LogLevel;
  if (!['error', 'warn', 'info', 'debug'].includes(logLevel)) throw new ConfigError(`${file?.file}: logLevel: expected error, warn, info or debug.`);
  const logFormat = (cli.logFormat ?? s.logFormat) as LogFormat | undefined;
  if (logFormat !== undefined && !['pretty', 'json'].includes(logFormat)) throw new ConfigError(`${file?.file}: logFormat: expected pretty or json.`);
  return {
    tunnels,
    process: {
      maxConnections: parseCount(...setting('maxConnections', '--max-connections', '0'), 0),
      maxHeld: parseCount(...setting('maxHeld', '--max-held', String(DEFAULTS.maxHeld)), 0),
      health: health === undefined ? undefined : parseHostPort(...setting('health', '--health', '')),
      minDrainMs: parseDuration(...setting('minDrain', '--min-drain', '0')),
      maxDrainMs: parseDuration(...setting('maxDrain', '--max-drain', String(DEFAULTS.maxDrainMs / 1000))),
    },
    logLevel,
    logFormat,
    insecureKeyPermissions: cli.insecureKeyPermissions === true,
  };
}
