import { homeDirectory, localUserName } from './local-user.js';
import { ConfigError } from '../errors.js';
import { DEFAULTS } from './defaults.js';
import { parsePositiveDuration } from './duration.js';
import { parseCount } from './size.js';
import { bindAs, parseDynamicForward, parseLocalForward, parsePort, parseRemoteForward } from './forward-spec.js';
import { SETTINGS, flagName } from './setting-table.js';
import { parseNamed, parseSourced, partOf, sourced, valuesOf, type Raw, type Sourced } from './sourced.js';
import { readSshConfig } from './ssh-config.js';
import { checkTunnelInput } from './tunnel-input.js';
import { connectionTokens, expandHostName, expandTokens } from './tokens.js';
import { addOption, noteUnhonoured, parseDashO, parseYesNo, unhonouredWarnings, type SshOptions, type Unhonoured } from './ssh-options.js';
import type { AddressFamily, Algorithms, HostConfig, StrictHostKeyChecking, TunnelConfig } from './types.js';
import { parseAlgorithms, type AlgorithmCatalogue } from './algorithms.js';
import { ssh2Algorithms } from '../ssh/adapter.js';
import { PUBKEY_ALGORITHMS } from '../ssh/auth.js';
import { DEFAULT_HOST_KEY_ALGORITHMS } from '../ssh/host-key.js';

/**
 * What the command line says about one tunnel, before ssh_config and defaults. Each value is a
 * plain string (named in errors by its flag) or a Sourced one that names where it was given.
 */
export interface TunnelInput {
  destination: Raw;
  port?: Raw;
  user?: Raw;
  identityFiles?: Raw[];
  /** -F: a path, or `none`; undefined means ~/.ssh/config. */
  configFile?: Raw;
  /** Raw `-o Key=Value` strings. */
  options?: Raw[];
  /** Raw `-L`, `-R` and `-D` specs. */
  localForwards?: Raw[];
  remoteForwards?: Raw[];
  dynamicForwards?: Raw[];
  /** -J: jump hosts, comma-separated, or `none`. */
  jump?: Raw;
  /** --socks-auth user:pass. */
  socksAuth?: Raw;
  /** sshkeep's own flags, raw; they beat the equivalent -o and ssh_config options. */
  keepaliveInterval?: Raw;
  keepaliveTimeout?: Raw;
  holdTimeout?: Raw;
  holdBuffer?: Raw;
  /** --connections: SSH connections to spread streams over. */
  connections?: Raw;
  /** --resume, --resume-grace, --resume-buffer. */
  resume?: Raw;
  resumeGrace?: Raw;
  resumeBuffer?: Raw;
  /** `SHA256:…` host key pins, comma-separated. */
  hostKeyFingerprint?: Raw;
}

/** A value parsed and checked (its error naming where it was given), or the fallback when none was given. */
function parsedOr<T, F>(raw: Sourced | undefined, parse: (text: string, what: string) => T, fallback: F): T | F {
  return raw === undefined ? fallback : parseSourced(raw, parse);
}

/** An sshkeep setting of the input, as given or named by its flag. */
function given(
  input: TunnelInput,
  name: 'keepaliveInterval' | 'keepaliveTimeout' | 'holdTimeout' | 'holdBuffer' | 'connections' | 'socksAuth' | 'hostKeyFingerprint' | 'resume' | 'resumeGrace' | 'resumeBuffer',
): Sourced | undefined {
  const raw = input[name];
  return raw === undefined ? undefined : sourced(raw, flagName(name));
}

export interface ResolveEnv {
  home: string;
  localUser: string;
  authSock: string | undefined;
}

export function processEnv(): ResolveEnv {
  return { home: homeDirectory(), localUser: localUserName(), authSock: process.env.SSH_AUTH_SOCK || undefined };
}

/** `[user@]host`, or `ssh://[user@]host[:port]` as OpenSSH accepts. */
function parseDestination(dest: string, what = `destination "${dest}"`): { user?: string; host: string; port?: string } {
  const uri = /^ssh:\/\/(?:([^@/]+)@)?(\[[^\]]+\]|[^:/@]+)(?::(\d+))?\/?$/.exec(dest);
  if (uri) {
    return { user: uri[1], host: uri[2]!.replace(/^\[|\]$/g, ''), port: uri[3] };
  }
  const at = dest.lastIndexOf('@');
  const user = at >= 0 ? dest.slice(0, at) : undefined;
  // [::1]: an IPv6 address bracketed as in ssh:// and -J (ssh would look the brackets up, and fail).
  const host = dest.slice(at + 1).replace(/^\[([^\]]*:[^\]]*)\]$/, '$1');
  if (host === '' || user === '' || /[\s/]/.test(host)) {
    throw new ConfigError(`${what}: expected [user@]host or ssh://[user@]host[:port].`);
  }
  // host:port is no host name (ssh would look up "h:22" and fail); an unbracketed IPv6 address has two colons or more.
  const hostPort = /^([^:]+):(\d+)$/.exec(host);
  if (hostPort) {
    const [, name, port] = hostPort;
    const userAt = user === undefined ? '' : `${user}@`;
    throw new ConfigError(`${what}: a destination is [user@]host, without a port: give -p ${port} ${userAt}${name}, or ssh://${userAt}${name}:${port}.`);
  }
  return { user, host };
}

function pathList(values: string[] | undefined, fallback: readonly string[]): string[] {
  const all = (values ?? [...fallback]).flatMap((v) => v.split(/\s+/)).filter(Boolean);
  return all.some((v) => v.toLowerCase() === 'none') ? [] : all;
}

function strictness(value: string, what: string): StrictHostKeyChecking {
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
      throw new ConfigError(`${what}: "${value}" must be yes, accept-new or no.`);
  }
}

function addressFamily(value: string, what: string): AddressFamily {
  const v = value.toLowerCase();
  if (v === 'any' || v === 'inet' || v === 'inet6') return v;
  throw new ConfigError(`${what}: "${value}" must be any, inet (IPv4, -4) or inet6 (IPv6, -6).`);
}

/** `SHA256:<base64>` pins as OpenSSH prints them (ssh-keygen -lf, ssh-keyscan | ssh-keygen -lf -). */
function parseFingerprints(text: string, what: string): string[] {
  const pins = text.split(/[,\s]+/).filter(Boolean);
  // Given but empty is not "no pin": a template whose variable came out empty must not turn pinning off.
  if (pins.length === 0) throw new ConfigError(`${what}: no fingerprint given; expected SHA256: and 43 base64 characters, as ssh-keygen -lf prints it (several separated by commas).`);
  for (const pin of pins) {
    if (!/^SHA256:[A-Za-z0-9+/]{43}$/.test(pin)) {
      throw new ConfigError(`${what}: "${pin}" is not a SHA256 fingerprint; expected SHA256: and 43 base64 characters, as ssh-keygen -lf prints it.`);
    }
  }
  return pins;
}

/** `-J [user@]host[:port]` (or an ssh:// URI) of one hop. */
function parseHop(hop: string): { user?: string; host: string; port?: string } {
  const what = `-J ${hop}`;
  if (hop.startsWith('ssh://')) return parseDestination(hop, what);
  const m = /^(?:([^@\s]+)@)?(\[[^\]\s]+\]|[^:@\[\]\s]+)(?::(\d+))?$/.exec(hop);
  if (!m) throw new ConfigError(`${what}: expected [user@]host[:port].`);
  return { user: m[1], host: m[2]!.replace(/^\[|\]$/g, ''), port: m[3] };
}

/** The options of `host` from the ssh_config file (-F, `none`, or ~/.ssh/config), added after what `into` has. */
function addSshConfig(into: SshOptions<Sourced>, host: string, configFile: Sourced | undefined, env: ResolveEnv, unhonoured: Unhonoured): void {
  const file = configFile?.value ?? DEFAULTS.sshConfigFile;
  if (file.toLowerCase() === 'none') return;
  const path = expandTokens(file, { '%': '%' }, env.home, '-F');
  for (const [key, values] of Object.entries(readSshConfig(path, host, configFile?.source ?? false, into, file, unhonoured))) {
    addOption(into, key as keyof SshOptions, values!);
  }
}

/** ProxyJump or ProxyCommand, whichever was given first (as OpenSSH); `none` disables both. */
function proxyOf(opts: SshOptions<Sourced>): { jump?: Sourced; command?: string } {
  const key = Object.keys(opts).find((k) => k === 'proxyjump' || k === 'proxycommand') as 'proxyjump' | 'proxycommand' | undefined;
  const given = key && opts[key]![0]!;
  if (!key || given!.value.toLowerCase() === 'none') return {};
  return key === 'proxyjump' ? { jump: given } : { command: given!.value };
}

/** Everything about reaching one host, from its merged options (first value wins). */
function hostConfig(name: string, merged: SshOptions<Sourced>, env: ResolveEnv): HostConfig {
  const first = (k: keyof SshOptions): string | undefined => merged[k]?.[0]?.value;
  /** The first value, with where it was given, for an option whose value is checked. */
  const checked = (k: keyof SshOptions): Sourced | undefined => merged[k]?.[0];
  const port = parsedOr(checked('port'), (text, what) => parsePort(text, what, false), DEFAULTS.port);
  const user = first('user') ?? env.localUser;
  const givenHostName = checked('hostname');
  const hostName = expandHostName(givenHostName?.value ?? name, name, env.home);
  // OpenSSH refuses these too ("Missing argument"): an empty name would dial localhost, one with a space no host.
  if (givenHostName && (hostName.trim() === '' || /\s/.test(hostName))) {
    throw new ConfigError(`${givenHostName.source}: "${givenHostName.value}" is not a host name; give one without spaces, or leave HostName out to use ${JSON.stringify(name)}.`);
  }
  const refuse = checked('refuseconnection');
  if (refuse && parsedOr(refuse, parseYesNo, false)) throw new ConfigError(`${refuse.source} ${refuse.value}: the configuration refuses connections to ${name}, as ssh does.`);
  const tokens = connectionTokens({
    name, hostName, port: String(port), user, localUser: env.localUser, home: env.home, hostKeyAlias: first('hostkeyalias'), proxyJump: first('proxyjump'),
  });
  const files = (list: string[], what: string) => list.map((f) => expandTokens(f, tokens, env.home, what));
  const agent = first('identityagent');
  const proxyCommand = proxyOf(merged).command;
  return {
    name,
    hostName,
    port,
    user,
    identityFiles: files(merged.identityfile ? valuesOf(merged.identityfile) : [...DEFAULTS.identityFiles], 'IdentityFile'),
    identityFilesExplicit: merged.identityfile !== undefined,
    certificateFiles: files(pathList(merged.certificatefile && valuesOf(merged.certificatefile), []), 'CertificateFile'),
    identitiesOnly: parsedOr(checked('identitiesonly'), parseYesNo, false),
    agentSocket:
      agent === undefined || agent === 'SSH_AUTH_SOCK' ? env.authSock : agent.toLowerCase() === 'none' ? undefined : files([agent], 'IdentityAgent')[0],
    connectTimeoutMs: parsedOr(checked('connecttimeout'), parsePositiveDuration, DEFAULTS.connectTimeoutMs),
    strictHostKeyChecking: parsedOr(checked('stricthostkeychecking'), strictness, DEFAULTS.strictHostKeyChecking),
    knownHostsFiles: files(pathList(merged.userknownhostsfile && valuesOf(merged.userknownhostsfile), DEFAULTS.knownHostsFiles), 'UserKnownHostsFile'),
    globalKnownHostsFiles: files(pathList(merged.globalknownhostsfile && valuesOf(merged.globalknownhostsfile), DEFAULTS.globalKnownHostsFiles), 'GlobalKnownHostsFile'),
    hostKeyAlias: first('hostkeyalias'),
    proxyCommand: proxyCommand === undefined ? undefined : expandTokens(proxyCommand, tokens, env.home, 'ProxyCommand'),
    addressFamily: parsedOr(checked('addressfamily'), addressFamily, 'any'),
    compression: parsedOr(checked('compression'), parseYesNo, false),
    algorithms: algorithmOptions(checked),
  };
}

/** What each algorithm option starts from and may name: ssh2's lists, and sshkeep's for host keys and user keys. */
function catalogues(): Record<keyof Algorithms, AlgorithmCatalogue> {
  const ssh2 = ssh2Algorithms();
  return {
    hostKey: { default: DEFAULT_HOST_KEY_ALGORITHMS, supported: ssh2.hostKeys },
    pubkey: PUBKEY_ALGORITHMS,
    kex: ssh2.kex,
    cipher: ssh2.cipher,
    mac: ssh2.mac,
  };
}

const ALGORITHM_OPTIONS = { hostKey: 'hostkeyalgorithms', pubkey: 'pubkeyacceptedalgorithms', kex: 'kexalgorithms', cipher: 'ciphers', mac: 'macs' } as const;

/** The algorithm options given (first value wins), each resolved to its list. */
function algorithmOptions(checked: (k: keyof SshOptions) => Sourced | undefined): Algorithms {
  const lists = catalogues();
  const out: Algorithms = {};
  for (const [key, option] of Object.entries(ALGORITHM_OPTIONS) as [keyof Algorithms, keyof SshOptions][]) {
    const given = checked(option);
    if (given) out[key] = parseSourced(given, (text, what) => parseAlgorithms(text, what, lists[key]));
  }
  return out;
}

/** A chain longer than this is a ProxyJump loop in ssh_config. */
const MAX_HOPS = 16;

/** Where a jump host's options start: the command line's AddressFamily (-4, -6), which OpenSSH passes on to the hops too. */
interface JumpContext {
  configFile: Sourced | undefined;
  env: ResolveEnv;
  carried: SshOptions<Sourced>;
  unhonoured: Unhonoured;
}

/**
 * The hops of a ProxyJump list, first hop first. Each is resolved from ssh_config on its
 * own; the first hop's own ProxyJump (or ProxyCommand) is followed too, as OpenSSH does.
 */
function resolveJumps(jump: Sourced, context: JumpContext, depth = 0): HostConfig[] {
  const { configFile, env } = context;
  const list = jump.value;
  const hops = list.split(',').map((h) => h.trim());
  if (hops.some((h) => h === '')) throw new ConfigError(`ProxyJump "${list}": an empty hop; expected [user@]host[:port][,...].`);
  const chain: HostConfig[] = [];
  hops.forEach((hop, i) => {
    const dest = parseNamed({ value: hop, source: jump.source }, flagName('jump'), parseHop);
    const opts: SshOptions<Sourced> = { ...context.carried };
    const source = partOf(jump, flagName('jump'), `-J ${hop}`);
    if (dest.port !== undefined) addOption(opts, 'port', [{ value: dest.port, source: `${source}: port` }]);
    if (dest.user !== undefined) addOption(opts, 'user', [{ value: dest.user, source }]);
    addSshConfig(opts, dest.host, configFile, env, context.unhonoured);
    const own = proxyOf(opts).jump;
    if (i > 0) {
      // A later hop is reached through the hops before it, whatever its own ProxyJump says.
      delete opts.proxyjump;
      delete opts.proxycommand;
    } else if (own !== undefined) {
      if (depth + hops.length >= MAX_HOPS) throw new ConfigError(`ProxyJump: more than ${MAX_HOPS} hops; is there a loop in ssh_config (${hop})?`);
      chain.push(...resolveJumps(own, context, depth + hops.length));
    }
    chain.push(hostConfig(dest.host, opts, env));
  });
  return chain;
}

function parseSocksAuth(text: string, what: string): NonNullable<TunnelConfig['socksAuth']> {
  const colon = text.indexOf(':');
  // RFC 1929 carries each as 1-255 bytes.
  const fits = (part: string) => part.length > 0 && Buffer.byteLength(part) <= 255;
  if (colon < 0 || !fits(text.slice(0, colon)) || !fits(text.slice(colon + 1))) {
    throw new ConfigError(`${what}: expected user:password (each 1-255 bytes), as SOCKS5 username/password authentication carries them.`);
  }
  return { user: text.slice(0, colon), pass: text.slice(colon + 1) };
}

/**
 * Command line > ssh_config > defaults, as OpenSSH. The command line (for a config file's
 * tunnel: the file) is `input`; the precedence above it is `first` in settings.ts.
 */
export function resolveTunnel(
  input: TunnelInput,
  env: ResolveEnv = processEnv(),
  warn: (message: string) => void = () => {},
): TunnelConfig {
  input = checkTunnelInput(input);
  const destination = sourced(input.destination, 'destination');
  const dest = parseNamed(destination, 'destination', parseDestination);
  const fromDestination = (value: string) => ({ value, source: partOf(destination, 'destination', `destination "${destination.value}"`) });
  // First value wins, in OpenSSH's order: -p/-l/-J, then -o, then the destination's user@ and :port.
  const cli: SshOptions<Sourced> = {};
  const unhonoured: Unhonoured = new Map();
  if (input.port !== undefined) addOption(cli, 'port', [sourced(input.port, flagName('port'))]);
  if (input.user !== undefined) addOption(cli, 'user', [sourced(input.user, flagName('login'))]);
  if (input.jump !== undefined) addOption(cli, 'proxyjump', [sourced(input.jump, flagName('jump'))]);
  for (const raw of input.options ?? []) {
    const option = sourced(raw, flagName('option'));
    const o = parseDashO(option.value, cli.ignoreunknown?.[0]?.value);
    if (!o) continue; // an unknown key IgnoreUnknown covers, skipped in silence as by ssh
    // Named as written (`-o ServerAliveInterval`), after its place when it came from a file or a variable.
    if (o.key) addOption(cli, o.key, [{ value: o.value, source: partOf(option, flagName('option'), `-o ${o.name}`) }]);
    else if (!noteUnhonoured(unhonoured, o.name, o.value, partOf(option, flagName('option'), '-o '))) warn(`-o ${o.name}: OpenSSH option accepted but has no effect in sshkeep`);
  }
  if (dest.port !== undefined) addOption(cli, 'port', [fromDestination(dest.port)]);
  if (dest.user !== undefined) addOption(cli, 'user', [fromDestination(dest.user)]);
  const merged: SshOptions<Sourced> = { ...cli };
  if (input.identityFiles?.length) {
    const given = input.identityFiles.map((f) => sourced(f, flagName('identityFile')));
    const empty = given.find((f) => f.value.trim() === '');
    if (empty) throw new ConfigError(`${empty.source}: an empty path; give the identity (private key) file.`);
    merged.identityfile = [...given, ...(cli.identityfile ?? [])];
  }
  const configFile = input.configFile === undefined ? undefined : sourced(input.configFile, flagName('sshConfig'));
  addSshConfig(merged, dest.host, configFile, env, unhonoured);

  const checked = (k: keyof SshOptions): Sourced | undefined => merged[k]?.[0];
  const host = hostConfig(dest.host, merged, env);
  const { jump } = proxyOf(merged);
  const carried: SshOptions<Sourced> = cli.addressfamily ? { addressfamily: cli.addressfamily } : {};
  const jumps = jump === undefined ? [] : resolveJumps(jump, { configFile, env, carried, unhonoured }, 0);
  for (const w of unhonouredWarnings(unhonoured)) warn(w);
  const gatewayPorts = parsedOr(checked('gatewayports'), parseYesNo, false);

  const interval = given(input, 'keepaliveInterval') ?? checked('serveraliveinterval');
  const keepaliveTimeout = given(input, 'keepaliveTimeout');
  const holdTimeout = given(input, 'holdTimeout');
  const holdBuffer = given(input, 'holdBuffer');
  const resumeBuffer = given(input, 'resumeBuffer');
  const connections = given(input, 'connections');
  /** -L, -D or -R specs of the input, then ssh_config's (written `[bind:]port host:hostport`, with a space). */
  const forwards = <T>(given: Raw[] | undefined, flag: string, key: 'localforward' | 'remoteforward' | 'dynamicforward', parse: (spec: string) => T): T[] => [
    ...(given ?? []).map((raw) => parseNamed(sourced(raw, flag), flag, parse)),
    ...(merged[key] ?? []).map((v) => parseNamed({ ...v, value: v.value.trim().replace(/\s+/, ':') }, flag, parse)),
  ];
  const listening = <F extends Parameters<typeof bindAs>[0]>(f: F): F => bindAs(f, host.addressFamily, gatewayPorts);

  return {
    ...host,
    jumps,
    inlineIdentities: [],
    inlineKnownHosts: [],
    keepaliveIntervalMs: interval === undefined ? DEFAULTS.keepaliveIntervalMs : SETTINGS.keepaliveInterval.parse(interval),
    keepaliveTimeoutMs: keepaliveTimeout === undefined ? undefined : SETTINGS.keepaliveTimeout.parse(keepaliveTimeout),
    keepaliveCountMax: parsedOr(checked('serveralivecountmax'), (text, what) => parseCount(text, what, 1), undefined),
    holdTimeoutMs: holdTimeout === undefined ? DEFAULTS.holdTimeoutMs : SETTINGS.holdTimeout.parse(holdTimeout),
    holdBufferBytes: holdBuffer === undefined ? DEFAULTS.holdBufferBytes : SETTINGS.holdBuffer.parse(holdBuffer),
    hostKeyFingerprints: parsedOr(given(input, 'hostKeyFingerprint'), parseFingerprints, []),
    connections: connections === undefined ? DEFAULTS.connections : SETTINGS.connections.parse(connections),
    resume: parsedOr(given(input, 'resume'), parseYesNo, false),
    resumeGraceMs: parsedOr(given(input, 'resumeGrace'), parsePositiveDuration, DEFAULTS.resumeGraceMs),
    resumeBufferBytes: resumeBuffer === undefined ? DEFAULTS.resumeBufferBytes : SETTINGS.resumeBuffer.parse(resumeBuffer),
    forwards: [
      ...forwards(input.localForwards, flagName('local'), 'localforward', parseLocalForward),
      ...forwards(input.dynamicForwards, flagName('dynamic'), 'dynamicforward', parseDynamicForward),
    ].map(listening),
    remoteForwards: forwards(input.remoteForwards, flagName('remote'), 'remoteforward', parseRemoteForward),
    socksAuth: parsedOr(given(input, 'socksAuth'), parseSocksAuth, undefined),
    exitOnForwardFailure: parsedOr(checked('exitonforwardfailure'), parseYesNo, false),
  };
}
