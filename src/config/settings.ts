import net from 'node:net';
import { ConfigError } from '../errors.js';
import { DEFAULTS } from './defaults.js';
import { readConfigFile, type ConfigFile, type FileTunnel } from './file.js';
import { formatEndpoint, isLocalOnly } from './forward-spec.js';
import { resolveTunnel, type ResolveEnv, type TunnelInput } from './resolve.js';
import { SETTINGS, SETTING_NAMES, envName, fileKey, fileSettings, flagName, settingOf, type SettingName } from './setting-table.js';
import { SourcedError, type Sourced } from './sourced.js';
import type { Endpoint, LogFormat, LogLevel, ProcessConfig, TunnelConfig } from './types.js';

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
  /** -E: the file to append the log to (named in errors by its source); undefined: stderr. */
  logFile: Sourced | undefined;
  insecureKeyPermissions: boolean;
}

/** The settings one place gives (the command line and environment, a file's top level, a file tunnel), each value with its source. */
export type Layer = Partial<Record<SettingName, Sourced[]>>;

/** Tunnel settings that apply to every tunnel (`both` in the table): from flags, the file's top level or the tunnel's own entry. */
const EVERY_TUNNEL = SETTING_NAMES.filter((n) => settingOf(n).file === 'both') as ('keepaliveInterval' | 'keepaliveTimeout' | 'holdTimeout' | 'holdBuffer' | 'connections' | 'resume' | 'resumeGrace' | 'resumeBuffer')[];

/** A part of the config file as a layer: each value named by the file and its key (`tunnels.yaml: tunnels[1].holdTimeout`). */
function fileLayer(file: string, values: Record<string, string | string[] | undefined>, where: 'top' | 'tunnel', path?: string): Layer {
  const layer: Layer = {};
  for (const name of fileSettings(where)) {
    const key = fileKey(name);
    const v = values[key];
    const source = `${file}: ${path ? `${path}.` : ''}${key}`;
    if (v !== undefined) layer[name] = (Array.isArray(v) ? v : [v]).map((value) => ({ value, source }));
  }
  return layer;
}

/**
 * The precedence above ssh_config and defaults (those are resolveTunnel's): flags and the
 * environment (one layer: commander took a flag over its variable), then a file tunnel's own
 * entry, then the file's top level. The first layer that gives a setting gives all of it.
 */
function first(name: SettingName, cli: Layer, own: Layer | undefined, top: Layer, say: (m: string) => void): Sourced[] | undefined {
  const [given, file] = [cli, own ?? {}, top].filter((l) => l[name] !== undefined).map((l) => l[name]!);
  // A variable set for every run (the Docker image's SSHKEEP_HEALTH) must not hide the file's value in silence; values unsaid (secrets).
  if (file && given![0]!.source === envName(name) && given!.map((v) => v.value).join('\0') !== file.map((v) => v.value).join('\0')) {
    say(`${envName(name)} in the environment wins over ${file[0]!.source}: the environment comes before the file; unset the variable to use the file's value.`);
  }
  return given;
}

/**
 * -4, -6, -C and -g are OpenSSH options given as flags. As `-o` values ahead of a tunnel's own
 * they reach every tunnel, and win over the file and ssh_config (OpenSSH's first value wins).
 */
const AS_OPTIONS = { ipv4: 'AddressFamily=inet', ipv6: 'AddressFamily=inet6', compression: 'Compression=yes', gatewayPorts: 'GatewayPorts=yes' } as const;

const flagOptions = (cli: Layer): Sourced[] =>
  Object.entries(AS_OPTIONS).flatMap(([name, value]) => (cli[name as SettingName] ? [{ value, source: flagName(name as SettingName) }] : []));

function tunnelInput(cli: Layer, top: Layer, file: ConfigFile | undefined, tunnel: FileTunnel | undefined, say: (m: string) => void): TunnelInput {
  const own = tunnel && fileLayer(file!.file, tunnel, 'tunnel', tunnel.path);
  // A tunnel's own ServerAliveInterval (its file entry's, or the command line's -o for its tunnel)
  // counts as its keepalive interval: the top level's does not hide it, nor a variable a -o flag beats.
  const intervalOption = (tunnel ? tunnel.options.map((value) => ({ value, source: '' })) : cli.option ?? []).find((o) => /^\s*serveraliveinterval\b/i.test(o.value));
  const defaults = intervalOption ? { ...top, keepaliveInterval: undefined } : top;
  const flagBeatsVariable = !tunnel && intervalOption?.source === flagName('option') && cli.keepaliveInterval?.[0]?.source === envName('keepaliveInterval');
  const given = flagBeatsVariable ? { ...cli, keepaliveInterval: undefined } : cli;
  const every = Object.fromEntries(EVERY_TUNNEL.map((n) => [n, first(n, given, own, defaults, say)?.[0]]));
  // Settings that describe a tunnel come from its own entry: the command line's are for the command-line tunnel.
  const from = own ?? cli;
  const one = (name: SettingName) => from[name]?.[0];
  return {
    ...every,
    destination: one('destination')!,
    port: one('port'),
    user: one('login'),
    identityFiles: from.identityFile,
    configFile: one('sshConfig'),
    options: [...flagOptions(cli), ...(from.option ?? [])],
    localForwards: from.local,
    remoteForwards: from.remote,
    dynamicForwards: from.dynamic,
    jump: one('jump'),
    // A file tunnel without its own SOCKS credentials takes the command line's.
    socksAuth: one('socksAuth') ?? cli.socksAuth?.[0],
    // A pin names one server's key: a command-line pin is for the command-line tunnel only.
    hostKeyFingerprint: one('hostKeyFingerprint'),
  };
}

/** Flags a tunnel needs a destination for, in the order the error names the first one. */
const DESCRIBE_A_TUNNEL: SettingName[] = ['local', 'remote', 'dynamic', 'identityFile', 'option', 'port', 'login', 'sshConfig', 'jump', 'hostKeyFingerprint'];

/** One address a listener binds, the listener it belongs to (a forward, or the health server), and how it was asked for. */
interface Listener {
  where: Endpoint;
  owner: object;
  named: string;
}

/** 0.0.0.0 takes the port on every IPv4 address, :: on every IPv6 one (a forward's IPv6 listeners are IPv6 only; --health's `::` is dual-stack, listed as both). */
const covers = (wild: string, host: string) => (wild === '0.0.0.0' && net.isIPv4(host)) || (wild === '::' && net.isIPv6(host));

/** Two local listeners of one port: on one address, or one address under the other's wildcard. */
const clash = (a: string, b: string) => a === b || covers(a, b) || covers(b, a);

/**
 * Two listeners on one address can never both listen (a forward and another, or --health): a
 * configuration error now, not a bind that waits 5 s and fails blaming whatever holds the port.
 */
function refuseSharedListeners(tunnels: TunnelConfig[], health: { host: string; port: number } | undefined): void {
  const all: Listener[] = tunnels.flatMap((t) => t.forwards).flatMap((f) => {
    const named = `${f.type === 'local' ? '-L' : '-D'} ${f.spec}`;
    const also = f.listen.kind === 'tcp' ? (f.alsoListenOn ?? []).map((host) => ({ where: { ...f.listen, host } as Endpoint, owner: f, named })) : [];
    return [{ where: f.listen, owner: f, named }, ...also];
  });
  if (health) {
    const named = `--health ${formatEndpoint({ kind: 'tcp', ...health })}`;
    all.push({ where: { kind: 'tcp', ...health }, owner: health, named });
    if (health.host === '::') all.push({ where: { kind: 'tcp', host: '0.0.0.0', port: health.port }, owner: health, named });
  }
  const shared = firstClash(all, clash);
  if (shared) throw new ConfigError(`${shared[0].named} and ${shared[1].named} both listen on ${formatEndpoint(shared[1].where)}; give each its own address or port.`);
  for (const t of tunnels) refuseSharedRemoteListeners(t);
}

/**
 * Two -R of one tunnel asking its server for one address: the second could never be bound, and
 * the tunnel would never be ready. On the server, an empty address (`*`) takes the port on every
 * address, 0.0.0.0 on every IPv4 one and :: on every IPv6 one (sshd listens IPv6 only there), and
 * localhost on both loopbacks.
 */
function refuseSharedRemoteListeners(tunnel: TunnelConfig): void {
  const all = tunnel.remoteForwards.map((f) => ({ where: f.listen, owner: f, named: `-R ${f.spec}` }));
  const addresses = (host: string) => (host.toLowerCase() === 'localhost' ? ['127.0.0.1', '::1'] : [host.toLowerCase()]);
  const onServer = (a: string, b: string) => a === '' || b === '' || addresses(a).some((x) => addresses(b).some((y) => clash(x, y)));
  const shared = firstClash(all, onServer);
  if (shared) throw new ConfigError(`${shared[0].named} and ${shared[1].named} both ask the server to listen on ${formatEndpoint(shared[1].where)}; give each its own address or port.`);
}

/**
 * The first pair of listeners of different owners that cannot both listen: one socket path, or one
 * port on hosts that `clashes` says overlap. Compared only within a port (or a path), so a
 * configuration of thousands of forwards is checked at once. Port 0 (the system picks) never clashes.
 */
function firstClash(listeners: Listener[], clashes: (hostA: string, hostB: string) => boolean): [Listener, Listener] | undefined {
  const byPort = new Map<string, Listener[]>();
  const overlap = (a: Endpoint, b: Endpoint) => a.kind === 'unix' || (b.kind === 'tcp' && clashes(a.host, b.host));
  for (const l of listeners) {
    if (l.where.kind === 'tcp' && l.where.port === 0) continue;
    const key = l.where.kind === 'unix' ? `unix ${l.where.path}` : `tcp ${l.where.port}`;
    let same = byPort.get(key);
    if (!same) byPort.set(key, (same = []));
    const other = same.find((s) => s.owner !== l.owner && overlap(s.where, l.where));
    if (other) return [other, l];
    same.push(l);
  }
  return undefined;
}

/**
 * Flags > environment > config file > ssh_config > defaults, into the configs the
 * tunnels run from. Every error is a ConfigError naming where the bad value came from.
 */
/** Tunnels are told apart by name (logs, metrics, a reload's changes): two with one name are refused. */
export function refuseSameNames(tunnels: readonly { name: string }[]): void {
  const seen = new Set<string>();
  for (const { name } of tunnels) {
    if (seen.has(name)) throw new ConfigError(`Two tunnels are named "${name}"; give each a distinct name (the "name" key of a --config tunnel; TunnelConfig.name in the library).`);
    seen.add(name);
  }
}

export function buildSettings(cli: Layer, env: ResolveEnv, secrets: Secrets, warn: (m: string) => void): Settings {
  const file = cli.config ? readConfigFile(cli.config[0]!.value, cli.config[0]!.source) : undefined;
  const fileTunnels = file?.tunnels ?? [];
  if (!cli.destination && fileTunnels.length === 0) {
    throw new ConfigError('No destination: give [user@]host (or an ssh_config alias), or --config with tunnels. Run sshkeep --help for usage.');
  }
  if (!cli.destination) {
    const given = DESCRIBE_A_TUNNEL.find((n) => cli[n]?.length);
    if (given) {
      throw new ConfigError(
        `${cli[given]![0]!.source} describes a tunnel, but no destination was given: with --config, ` +
          'give a destination on the command line for that tunnel, or put the setting in the file.',
      );
    }
  }
  const top = file ? fileLayer(file.file, file.settings, 'top') : {};
  const said = new Set<string>();
  const say = (m: string) => void (said.has(m) || (said.add(m), warn(m)));
  const inputs: [TunnelInput, FileTunnel | undefined][] = fileTunnels.map((t) => [tunnelInput(cli, top, file, t, say), t]);
  if (cli.destination) inputs.push([tunnelInput(cli, top, file, undefined, say), undefined]);

  const tunnels = inputs.map(([input, fromFile]) => {
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
      // What names no source of its own (a forward spec, a -J hop, ssh_config syntax) is blamed on the file's tunnel.
      if (err instanceof ConfigError && !(err instanceof SourcedError) && fromFile) throw new ConfigError(`${file!.file}: ${fromFile.path}: ${err.message}`);
      throw err;
    }
    if (config.forwards.length === 0 && config.remoteForwards.length === 0) {
      throw new ConfigError(
        'Nothing to forward: give at least one -L [bind_address:]port:host:hostport, -D [bind_address:]port or -R [bind_address:]port:host:hostport ' +
          '(or LocalForward, DynamicForward, RemoteForward in ssh_config).',
      );
    }
    const name = fromFile?.name as string | undefined;
    if (name) config.name = name;
    if (secrets.identity) config.inlineIdentities.push({ name: 'SSHKEEP_IDENTITY', data: secrets.identity });
    if (secrets.knownHosts) config.inlineKnownHosts.push({ name: 'SSHKEEP_KNOWN_HOSTS', text: secrets.knownHosts });
    return config;
  });
  refuseSameNames(tunnels);

  /** A process setting, parsed from the first layer that gives it, else its default. */
  const setting = <T>(name: SettingName, parse: (raw: Sourced) => T, fallback: T): T => {
    const raw = first(name, cli, undefined, top, say)?.[0];
    return raw === undefined ? fallback : parse(raw);
  };
  const health = setting('health', SETTINGS.health.parse, undefined);
  refuseSharedListeners(tunnels, health);
  const adminRaw = first('admin', cli, undefined, top, say)?.[0];
  const admin = adminRaw !== undefined && SETTINGS.admin.parse(adminRaw);
  if (admin && !health) warn(`${adminRaw.source}: no effect without --health, which serves POST /quitquitquit.`);
  const adminFrom = first('adminFrom', cli, undefined, top, say)?.[0];
  if (adminFrom && !admin) throw new ConfigError(`${adminFrom.source} ${adminFrom.value}: needs --admin (POST /quitquitquit is off without it).`);
  if (adminFrom) warn(`POST /quitquitquit accepts peers beyond loopback (${adminFrom.source} ${adminFrom.value}): anyone who can reach the health port from there can stop sshkeep.`);
  return {
    tunnels,
    process: {
      maxConnections: setting('maxConnections', SETTINGS.maxConnections.parse, DEFAULTS.maxConnections),
      maxHeld: setting('maxHeld', SETTINGS.maxHeld.parse, DEFAULTS.maxHeld),
      health,
      admin,
      adminFrom: adminFrom ? SETTINGS.adminFrom.parse(adminFrom) : [],
      minDrainMs: setting('minDrain', SETTINGS.minDrain.parse, DEFAULTS.minDrainMs),
      maxDrainMs: setting('maxDrain', SETTINGS.maxDrain.parse, DEFAULTS.maxDrainMs),
      skipFailedTunnels: setting('skipFailedTunnels', SETTINGS.skipFailedTunnels.parse, false),
      resumeBufferTotalBytes: setting('resumeBufferTotal', SETTINGS.resumeBufferTotal.parse, DEFAULTS.resumeBufferTotalBytes),
    },
    logLevel: setting('logLevel', SETTINGS.logLevel.parse, DEFAULTS.logLevel),
    logFormat: setting('logFormat', SETTINGS.logFormat.parse, undefined),
    logFile: first('logFile', cli, undefined, top, say)?.[0],
    insecureKeyPermissions: cli.insecureKeyPermissions !== undefined,
  };
}
