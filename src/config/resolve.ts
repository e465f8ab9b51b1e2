import os from 'node:os';
import { ConfigError } from '../errors.js';
import { DEFAULTS } from './defaults.js';
import { parseDuration } from './duration.js';
import { parseCount, parseSize } from './size.js';
import { parseDynamicForward, parseLocalForward, parsePort, parseRemoteForward } from './forward-spec.js';
import { readSshConfig } from './ssh-config.js';
import { connectionTokens, expandHostName, expandTokens } from './tokens.js';
import { addOption, parseDashO, parseYesNo, type SshOptions } from './ssh-options.js';
import type { HostConfig, StrictHostKeyChecking, TunnelConfig } from './types.js';

/** What the command line says about one tunnel, before ssh_config and defaults. */
export interface TunnelInput {
  destination: string;
  port?: string;
  user?: string;
  identityFiles?: string[];
  /** -F: a path, or `none`; undefined means ~/.ssh/config. */
  configFile?: string;
  /** Raw `-o Key=Value` strings. */
  options?: string[];
  /** Raw `-L`, `-R` and `-D` specs. */
  localForwards?: string[];
  remoteForwards?: string[];
  dynamicForwards?: string[];
  /** -J: jump hosts, comma-separated, or `none`. */
  jump?: string;
  /** --socks-auth user:pass. */
  socksAuth?: string;
  /** sshkeep's own flags, raw; they beat the equivalent -o and ssh_config options. */
  keepaliveInterval?: string;
  keepaliveTimeout?: string;
  holdTimeout?: string;
  holdBuffer?: string;
  /** --connections: SSH connections to spread streams over. */
  connections?: string;
  /** `SHA256:…` host key pins, comma-separated. */
  hostKeyFingerprint?: string;
  /** Where the four settings above came from, for errors (default: their flag names). */
  labels?: Partial<Record<'keepaliveInterval' | 'keepaliveTimeout' | 'holdTimeout' | 'holdBuffer' | 'connections', string>>;
}

export interface ResolveEnv {
  home: string;
  localUser: string;
  authSock: string | undefined;
}

export function processEnv(): ResolveEnv {
  return { home: os.homedir(), localUser: os.userInfo().username, authSock: process.env.SSH_AUTH_SOCK || undefined };
}

/** `[user@]host`, or `ssh://[user@]host[:port]` as OpenSSH accepts. */
function parseDestination(dest: string, what = `destination "${dest}"`): { user?: string; host: string; port?: string } {
  const uri = /^ssh:\/\/(?:([^@/]+)@)?(\[[^\]]+\]|[^:/@]+)(?::(\d+))?\/?$/.exec(dest);
  if (uri) {
    return { user: uri[1], host: uri[2]!.replace(/^\[|\]$/g, ''), port: uri[3] };
  }
  const at = dest.lastIndexOf('@');
  const user = at >= 0 ? dest.slice(0, at) : undefined;
  const host = dest.slice(at + 1);
  if (host === '' || user === '' || /[\s/]/.test(host)) {
    throw new ConfigError(`${what}: expected [user@]host or ssh://[user@]host[:port].`);
  }
  return { user, host };
}

function pathList(values: string[] | undefined, fallback: readonly string[]): string[] {
  const all = (values ?? [...fallback]).flatMap((v) => v.split(/\s+/)).filter(Boolean);
  return all.some((v) => v.toLowerCase() === 'none') ? [] : all;
}

function strictness(value: string | undefined): StrictHostKeyChecking {
  if (value === undefined) return DEFAULTS.strictHostKeyChecking;
  switch (value.toLowerCase()) {
    case 'yes':
    case 'true':
    case 'ask': // nobody is there to ask: as strict as yes
      return 'yes';
    case 'accept-new':
      return 'accept-new';
    case 'no':
    case 'off':
    case 'false':
      return 'no';
    default:
      throw new ConfigError(`StrictHostKeyChecking: "${value}" must be yes, accept-new or no.`);
  }
}

/** `SHA256:<base64>` pins as OpenSSH prints them (ssh-keygen -lf, ssh-keyscan | ssh-keygen -lf -). */
function parseFingerprints(text: string | undefined): string[] {
  if (text === undefined) return [];
  const pins = text.split(/[,\s]+/).filter(Boolean);
  for (const pin of pins) {
    if (!/^SHA256:[A-Za-z0-9+/]{43}$/.test(pin)) {
      throw new ConfigError(`--host-key-fingerprint: "${pin}" is not a SHA256 fingerprint; expected SHA256: and 43 base64 characters, as ssh-keygen -lf prints it.`);
    }
  }
  return pins;
}

function positive(ms: number, what: string): number {
  if (ms <= 0) throw new ConfigError(`${what}: must be more than 0.`);
  return ms;
}

/** `-J [user@]host[:port]` (or an ssh:// URI) of one hop. */
function parseHop(hop: string): { user?: string; host: string; port?: string } {
  const what = `-J ${hop}`;
  if (hop.startsWith('ssh://')) return parseDestination(hop, what);
  const m = /^(?:([^@]+)@)?(\[[^\]]+\]|[^:@\[\]]+)(?::(\d+))?$/.exec(hop);
  if (!m) throw new ConfigError(`${what}: expected [user@]host[:port].`);
  return { user: m[1], host: m[2]!.replace(/^\[|\]$/g, ''), port: m[3] };
}

/** The options of `host` from the ssh_config file (-F, `none`, or ~/.ssh/config), added after what `into` has. */
function addSshConfig(into: SshOptions, host: string, configFile: string | undefined, env: ResolveEnv): void {
  const file = configFile ?? DEFAULTS.sshConfigFile;
  if (file.toLowerCase() === 'none') return;
  const path = expandTokens(file, { '%': '%' }, env.home, '-F');
  for (const [key, values] of Object.entries(readSshConfig(path, host, configFile !== undefined, into))) {
    addOption(into, key as keyof SshOptions, values!);
  }
}

/** ProxyJump or ProxyCommand, whichever was given first (as OpenSSH); `none` disables both. */
function proxyOf(opts: SshOptions): { jump?: string; command?: string } {
  const key = Object.keys(opts).find((k) => k === 'proxyjump' || k === 'proxycommand') as 'proxyjump' | 'proxycommand' | undefined;
  const value = key && opts[key]![0]!;
  if (!key || value!.toLowerCase() === 'none') return {};
  return key === 'proxyjump' ? { jump: value } : { command: value };
}

/** Everything about reaching one host, from its merged options (first value wins). */
function hostConfig(name: string, merged: SshOptions, env: ResolveEnv, portLabel: string): HostConfig {
  const first = (k: keyof SshOptions): string | undefined => merged[k]?.[0];
  const port = parsePort(first('port') ?? String(DEFAULTS.port), portLabel, false);
  const user = first('user') ?? env.localUser;
  const hostName = expandHostName(first('hostname') ?? name, name, env.home);
  const tokens = connectionTokens({
    name, hostName, port: String(port), user, localUser: env.localUser, home: env.home, hostKeyAlias: first('hostkeyalias'), proxyJump: first('proxyjump'),
  });
  const files = (list: string[], what: string) => list.map((f) => expandTokens(f, tokens, env.home, what));
  const agent = first('identityagent');
  const connectTimeout = first('connecttimeout');
  const proxyCommand = proxyOf(merged).command;
  return {
    name,
    hostName,
    port,
    user,
    identityFiles: files(merged.identityfile ?? [...DEFAULTS.identityFiles], 'IdentityFile'),
    identityFilesExplicit: merged.identityfile !== undefined,
    identitiesOnly: first('identitiesonly') === undefined ? false : parseYesNo(first('identitiesonly')!, 'IdentitiesOnly'),
    agentSocket:
      agent === undefined || agent === 'SSH_AUTH_SOCK' ? env.authSock : agent.toLowerCase() === 'none' ? undefined : files([agent], 'IdentityAgent')[0],
    connectTimeoutMs: connectTimeout === undefined ? DEFAULTS.connectTimeoutMs : positive(parseDuration(connectTimeout, 'ConnectTimeout'), 'ConnectTimeout'),
    strictHostKeyChecking: strictness(first('stricthostkeychecking')),
    knownHostsFiles: files(pathList(merged.userknownhostsfile, DEFAULTS.knownHostsFiles), 'UserKnownHostsFile'),
    globalKnownHostsFiles: files(pathList(merged.globalknownhostsfile, DEFAULTS.globalKnownHostsFiles), 'GlobalKnownHostsFile'),
    hostKeyAlias: first('hostkeyalias'),
    proxyCommand: proxyCommand === undefined ? undefined : expandTokens(proxyCommand, tokens, env.home, 'ProxyCommand'),
  };
}

/** More SSH connections than this to one server only adds authentication load. */
const MAX_CONNECTIONS = 16;

/** A chain longer than this is a ProxyJump loop in ssh_config. */
const MAX_HOPS = 16;

/**
 * The hops of a ProxyJump list, first hop first. Each is resolved from ssh_config on its
 * own; the first hop's own ProxyJump (or ProxyCommand) is followed too, as OpenSSH does.
 */
function resolveJumps(list: string, configFile: string | undefined, env: ResolveEnv, depth = 0): HostConfig[] {
  const hops = list.split(',').map((h) => h.trim());
  if (hops.some((h) => h === '')) throw new ConfigError(`ProxyJump "${list}": an empty hop; expected [user@]host[:port][,...].`);
  const chain: HostConfig[] = [];
  hops.forEach((hop, i) => {
    const dest = parseHop(hop);
    const opts: SshOptions = {};
    if (dest.port !== undefined) addOption(opts, 'port', [dest.port]);
    if (dest.user !== undefined) addOption(opts, 'user', [dest.user]);
    addSshConfig(opts, dest.host, configFile, env);
    const { jump } = proxyOf(opts);
    if (i > 0) {
      // A later hop is reached through the hops before it, whatever its own ProxyJump says.
      delete opts.proxyjump;
      delete opts.proxycommand;
    } else if (jump !== undefined) {
      if (depth + hops.length >= MAX_HOPS) throw new ConfigError(`ProxyJump: more than ${MAX_HOPS} hops; is there a loop in ssh_config (${hop})?`);
      chain.push(...resolveJumps(jump, configFile, env, depth + hops.length));
    }
    chain.push(hostConfig(dest.host, opts, env, `-J ${hop}: port`));
  });
  return chain;
}

function parseSocksAuth(text: string | undefined): TunnelConfig['socksAuth'] {
  if (text === undefined) return undefined;
  const colon = text.indexOf(':');
  // RFC 1929 carries each as 1-255 bytes.
  const fits = (part: string) => part.length > 0 && Buffer.byteLength(part) <= 255;
  if (colon < 0 || !fits(text.slice(0, colon)) || !fits(text.slice(colon + 1))) {
    throw new ConfigError('--socks-auth: expected user:password (each 1-255 bytes), as SOCKS5 username/password authentication carries them.');
  }
  return { user: text.slice(0, colon), pass: text.slice(colon + 1) };
}

/** Command line > ssh_config > defaults, as OpenSSH. */
export function resolveTunnel(
  input: TunnelInput,
  env: ResolveEnv = processEnv(),
  warn: (message: string) => void = () => {},
): TunnelConfig {
  const dest = parseDestination(input.destination);
  // First value wins, in OpenSSH's order: -p/-l/-J, then -o, then the destination's user@ and :port.
  const cli: SshOptions = {};
  if (input.port !== undefined) addOption(cli, 'port', [input.port]);
  if (input.user !== undefined) addOption(cli, 'user', [input.user]);
  if (input.jump !== undefined) addOption(cli, 'proxyjump', [input.jump]);
  for (const raw of input.options ?? []) {
    const o = parseDashO(raw);
    if (o.key) addOption(cli, o.key, [o.value]);
    else warn(`-o ${o.name}: OpenSSH option accepted but has no effect in sshkeep`);
  }
  if (dest.port !== undefined) addOption(cli, 'port', [dest.port]);
  if (dest.user !== undefined) addOption(cli, 'user', [dest.user]);
  const merged: SshOptions = { ...cli };
  if (input.identityFiles?.length) merged.identityfile = [...input.identityFiles, ...(cli.identityfile ?? [])];
  addSshConfig(merged, dest.host, input.configFile, env);

  const first = (k: keyof SshOptions): string | undefined => merged[k]?.[0];
  const host = hostConfig(dest.host, merged, env, input.port !== undefined ? '-p' : 'Port');
  const { jump } = proxyOf(merged);

  const label = (key: keyof NonNullable<TunnelInput['labels']>) =>
    input.labels?.[key] ?? `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  const countMax = first('serveralivecountmax');
  const interval = input.keepaliveInterval ?? first('serveraliveinterval');
  const keepaliveTimeoutMs =
    input.keepaliveTimeout === undefined ? undefined : positive(parseDuration(input.keepaliveTimeout, label('keepaliveTimeout')), label('keepaliveTimeout'));
  // ssh_config writes `LocalForward [bind:]port host:hostport`, with a space.
  const fromConfig = (key: 'localforward' | 'remoteforward' | 'dynamicforward') => (merged[key] ?? []).map((v) => v.trim().replace(/\s+/, ':'));
  const exitOnForwardFailure = first('exitonforwardfailure');

  return {
    ...host,
    jumps: jump === undefined ? [] : resolveJumps(jump, input.configFile, env),
    inlineIdentities: [],
    inlineKnownHosts: [],
    keepaliveIntervalMs: interval === undefined ? DEFAULTS.keepaliveIntervalMs : parseDuration(interval, input.keepaliveInterval ? label('keepaliveInterval') : 'ServerAliveInterval'),
    keepaliveTimeoutMs,
    keepaliveCountMax: countMax === undefined ? undefined : parseCount(countMax, 'ServerAliveCountMax', 1),
    holdTimeoutMs: input.holdTimeout === undefined ? DEFAULTS.holdTimeoutMs : parseDuration(input.holdTimeout, label('holdTimeout')),
    holdBufferBytes: input.holdBuffer === undefined ? DEFAULTS.holdBufferBytes : parseSize(input.holdBuffer, label('holdBuffer')),
    hostKeyFingerprints: parseFingerprints(input.hostKeyFingerprint),
    connections: input.connections === undefined ? 1 : parseCount(input.connections, label('connections'), 1, MAX_CONNECTIONS),
    forwards: [
      ...(input.localForwards ?? []).map(parseLocalForward),
      ...fromConfig('localforward').map(parseLocalForward),
      ...(input.dynamicForwards ?? []).map(parseDynamicForward),
      ...fromConfig('dynamicforward').map(parseDynamicForward),
    ],
    remoteForwards: [...(input.remoteForwards ?? []), ...fromConfig('remoteforward')].map(parseRemoteForward),
    socksAuth: parseSocksAuth(input.socksAuth),
    exitOnForwardFailure: exitOnForwardFailure === undefined ? false : parseYesNo(exitOnForwardFailure, 'ExitOnForwardFailure'),
  };
}
