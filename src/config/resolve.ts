import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '../errors.js';
import { DEFAULTS } from './defaults.js';
import { parseDuration } from './duration.js';
import { parseCount, parseSize } from './size.js';
import { parseLocalForward, parsePort } from './forward-spec.js';
import { readSshConfig } from './ssh-config.js';
import { addOption, parseDashO, parseYesNo, type SshOptions } from './ssh-options.js';
import type { StrictHostKeyChecking, TunnelConfig } from './types.js';

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
  /** Raw `-L` specs. */
  localForwards?: string[];
  /** sshkeep's own flags, raw; they beat the equivalent -o and ssh_config options. */
  keepaliveInterval?: string;
  keepaliveTimeout?: string;
  holdTimeout?: string;
  holdBuffer?: string;
  /** `SHA256:…` host key pins, comma-separated. */
  hostKeyFingerprint?: string;
  /** Where the four settings above came from, for errors (default: their flag names). */
  labels?: Partial<Record<'keepaliveInterval' | 'keepaliveTimeout' | 'holdTimeout' | 'holdBuffer', string>>;
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
function parseDestination(dest: string): { user?: string; host: string; port?: string } {
  const uri = /^ssh:\/\/(?:([^@/]+)@)?(\[[^\]]+\]|[^:/@]+)(?::(\d+))?\/?$/.exec(dest);
  if (uri) {
    return { user: uri[1], host: uri[2]!.replace(/^\[|\]$/g, ''), port: uri[3] };
  }
  const at = dest.lastIndexOf('@');
  const user = at >= 0 ? dest.slice(0, at) : undefined;
  const host = dest.slice(at + 1);
  if (host === '' || user === '' || /[\s/]/.test(host)) {
    throw new ConfigError(`destination "${dest}": expected [user@]host or ssh://[user@]host[:port].`);
  }
  return { user, host };
}

/** OpenSSH's `~` and `%` tokens for file paths and HostName. */
function expandTokens(text: string, tokens: Record<string, string>, home: string, what: string): string {
  const expanded = text.replace(/%(.)/g, (_, c: string) => {
    const v = tokens[c];
    if (v === undefined) throw new ConfigError(`${what}: unknown token %${c} in "${text}".`);
    return v;
  });
  return expanded === '~' ? home : expanded.startsWith('~/') ? path.join(home, expanded.slice(2)) : expanded;
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

function rejectProxies(opts: SshOptions): void {
  for (const [key, name] of [['proxyjump', 'ProxyJump'], ['proxycommand', 'ProxyCommand']] as const) {
    const v = opts[key]?.[0];
    if (v !== undefined && v.toLowerCase() !== 'none') {
      throw new ConfigError(
        `${name} "${v}" is set for this host, and sshkeep does not support jump hosts or proxy commands yet; ` +
          `it will not silently connect directly instead. Pass -o ${name}=none to connect directly.`,
      );
    }
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

/** Command line > ssh_config > defaults, as OpenSSH. */
export function resolveTunnel(
  input: TunnelInput,
  env: ResolveEnv = processEnv(),
  warn: (message: string) => void = () => {},
): TunnelConfig {
  const dest = parseDestination(input.destination);
  // First value wins, in OpenSSH's order: -p/-l, then -o, then the destination's user@ and :port.
  const cli: SshOptions = {};
  if (input.port !== undefined) addOption(cli, 'port', [input.port]);
  if (input.user !== undefined) addOption(cli, 'user', [input.user]);
  for (const raw of input.options ?? []) {
    const o = parseDashO(raw);
    if (o.key) addOption(cli, o.key, [o.value]);
    else warn(`-o ${o.name}: OpenSSH option accepted but has no effect in sshkeep`);
  }
  if (dest.port !== undefined) addOption(cli, 'port', [dest.port]);
  if (dest.user !== undefined) addOption(cli, 'user', [dest.user]);
  const merged: SshOptions = { ...cli };
  if (input.identityFiles?.length) merged.identityfile = [...input.identityFiles, ...(cli.identityfile ?? [])];

  const configFile = input.configFile ?? DEFAULTS.sshConfigFile;
  if (configFile.toLowerCase() !== 'none') {
    const file = expandTokens(configFile, { '%': '%' }, env.home, '-F');
    const fromFile = readSshConfig(file, dest.host, input.configFile !== undefined);
    for (const [key, values] of Object.entries(fromFile)) {
      addOption(merged, key as keyof SshOptions, values!);
    }
  }
  rejectProxies(merged);

  const first = (k: keyof SshOptions): string | undefined => merged[k]?.[0];
  const port = parsePort(first('port') ?? String(DEFAULTS.port), input.port !== undefined ? '-p' : 'Port', false);
  const user = first('user') ?? env.localUser;
  const hostTokens = { '%': '%', h: dest.host, n: dest.host };
  const hostName = expandTokens(first('hostname') ?? dest.host, hostTokens, env.home, 'HostName');
  const tokens = { '%': '%', h: hostName, n: dest.host, p: String(port), r: user, u: env.localUser, d: env.home };
  const files = (list: string[], what: string) => list.map((f) => expandTokens(f, tokens, env.home, what));

  const label = (key: keyof NonNullable<TunnelInput['labels']>) =>
    input.labels?.[key] ?? `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  const countMax = first('serveralivecountmax');
  const connectTimeout = first('connecttimeout');
  const interval = input.keepaliveInterval ?? first('serveraliveinterval');
  const keepaliveTimeoutMs =
    input.keepaliveTimeout === undefined ? undefined : positive(parseDuration(input.keepaliveTimeout, label('keepaliveTimeout')), label('keepaliveTimeout'));
  const agent = first('identityagent');
  const agentSocket =
    agent === undefined || agent === 'SSH_AUTH_SOCK' ? env.authSock : agent.toLowerCase() === 'none' ? undefined : files([agent], 'IdentityAgent')[0];

  const explicitIdentities = merged.identityfile !== undefined;
  return {
    name: dest.host,
    hostName,
    port,
    user,
    identityFiles: files(merged.identityfile ?? [...DEFAULTS.identityFiles], 'IdentityFile'),
    inlineIdentities: [],
    inlineKnownHosts: [],
    identityFilesExplicit: explicitIdentities,
    identitiesOnly: first('identitiesonly') === undefined ? false : parseYesNo(first('identitiesonly')!, 'IdentitiesOnly'),
    agentSocket,
    connectTimeoutMs: connectTimeout === undefined ? DEFAULTS.connectTimeoutMs : positive(parseDuration(connectTimeout, 'ConnectTimeout'), 'ConnectTimeout'),
    keepaliveIntervalMs: interval === undefined ? DEFAULTS.keepaliveIntervalMs : parseDuration(interval, input.keepaliveInterval ? label('keepaliveInterval') : 'ServerAliveInterval'),
    keepaliveTimeoutMs,
    keepaliveCountMax: countMax === undefined ? undefined : parseCount(countMax, 'ServerAliveCountMax', 1),
    holdTimeoutMs: input.holdTimeout === undefined ? DEFAULTS.holdTimeoutMs : parseDuration(input.holdTimeout, label('holdTimeout')),
    holdBufferBytes: input.holdBuffer === undefined ? DEFAULTS.holdBufferBytes : parseSize(input.holdBuffer, label('holdBuffer')),
    strictHostKeyChecking: strictness(first('stricthostkeychecking')),
    knownHostsFiles: files(pathList(merged.userknownhostsfile, DEFAULTS.knownHostsFiles), 'UserKnownHostsFile'),
    globalKnownHostsFiles: files(pathList(merged.globalknownhostsfile, DEFAULTS.globalKnownHostsFiles), 'GlobalKnownHostsFile'),
    hostKeyAlias: first('hostkeyalias'),
    hostKeyFingerprints: parseFingerprints(input.hostKeyFingerprint),
    forwards: [
      ...(input.localForwards ?? []).map(parseLocalForward),
      // ssh_config writes `LocalForward [bind:]port host:hostport`.
      ...(merged.localforward ?? []).map((v) => parseLocalForward(v.trim().replace(/\s+/, ':'))),
    ],
  };
}
