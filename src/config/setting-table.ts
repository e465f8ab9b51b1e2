import { ConfigError } from '../errors.js';
import { DEFAULTS } from './defaults.js';
import { MIN_HEARTBEAT_MS, formatDuration, parseDuration, parseHeartbeatInterval, parseHeartbeatTimeout, parsePositiveDuration } from './duration.js';
import { parseAddressRanges, parseHostPort } from './host-port.js';
import { parseYesNo } from './ssh-options.js';
import { formatSize, parseCount, parseSize } from './size.js';
import { parseSourced, type Sourced } from './sourced.js';
import type { LogFormat, LogLevel } from './types.js';
import { nearest } from './nearest.js';

/**
 * Every sshkeep setting, declared once: its flags, environment variable, config-file key,
 * default, parser and help. The commander options and --help, the SSHKEEP_* mapping, the
 * config-file keys, the JSON Schema of tunnels.yaml and the README's flag table are made
 * from this table. Precedence (flags > environment > file > ssh_config > defaults) is
 * `first` in settings.ts, then resolveTunnel's ssh_config step.
 */

/**
 * Where a setting may stand in the config file: `top` (the process), `tunnel` (one tunnel's own),
 * `both` (top level is every tunnel's default). Flags and environment follow the same split: a
 * `tunnel` flag describes the command-line tunnel, a `both` flag applies to every tunnel.
 */
export type FileScope = 'top' | 'tunnel' | 'both';

/** `value`: one string or number; `list`: repeatable; `options`: `-o` Key=Value pairs; `switch`: present or not. */
export type Shape = 'value' | 'list' | 'options' | 'switch';

export type HelpGroup = 'Forwarding:' | 'SSH connection (as OpenSSH):' | 'Resilience:' | 'Operations:' | 'Logging:';

export interface Setting {
  /** Commander syntax, short flag first: `-L, --local <forward>`. None: the file (and environment) only. */
  flags?: string;
  /** Where the config file may give it; none: not in the file. */
  file?: FileScope;
  /** The key in the config file when it differs from the setting's name (a list's plural). */
  fileKey?: string;
  shape: Shape;
  help: string;
  group?: HelpGroup;
  /** The default as a value in the setting's own syntax (help, JSON Schema), made from DEFAULTS. */
  default?: string;
  /** The default as help says it, when it is more than one value (`22, or ssh_config Port`). */
  defaultText?: string;
  choices?: readonly string[];
  /** No SSHKEEP_* variable (-q, -v: the environment says SSHKEEP_LOG_LEVEL). */
  noEnv?: true;
  /** More for the README's table than fits in one line of --help. */
  more?: string;
  /** Parses and checks a raw value; an error is a SourcedError naming its source. */
  parse?: (raw: Sourced) => unknown;
}

/** More SSH connections than this to one server only adds authentication load. */
const MAX_CONNECTIONS = 16;

const FWD = 'Forwarding:';
const SSH = 'SSH connection (as OpenSSH):';
const RES = 'Resilience:';
const OPS = 'Operations:';
const LOG = 'Logging:';

/** A setting's parser from a text parser: its errors name the value's source. */
const from = <T>(parse: (text: string, what: string) => T) => (raw: Sourced): T => parseSourced(raw, parse);

function choice<T extends string>(choices: readonly T[]) {
  return from((value, what): T => {
    if (!(choices as readonly string[]).includes(value)) throw new ConfigError(`${what}: expected ${choices.slice(0, -1).join(', ')} or ${choices.at(-1)}.`);
    return value as T;
  });
}

const duration = from(parseDuration);
const size = from(parseSize);
/** A replay buffer: 0 bytes would pause every resumable client after its first read, for good. */
const bufferSize = from((text, what) => {
  const bytes = parseSize(text, what);
  if (bytes === 0) throw new ConfigError(`${what}: "${text}" must be more than 0: resumable clients pause while their replay buffer is full.`);
  return bytes;
});
const count = (min: number, max?: number) => from((text, what) => parseCount(text, what, min, max));

const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const satisfies readonly LogLevel[];
const LOG_FORMATS = ['pretty', 'json'] as const satisfies readonly LogFormat[];

/** Keeps each entry's literal type, so `SETTINGS.holdTimeout.parse` returns a number. */
const def = <S extends Setting>(s: S): S => s;

/** In --help order. */
export const SETTINGS = {
  destination: def({
    file: 'tunnel', shape: 'value', help: '[user@]host, ssh://[user@]host[:port], or an ssh_config Host alias (required)',
  }),
  name: def({ file: 'tunnel', shape: 'value', help: 'name of the tunnel in logs, metrics and /readyz (default: the destination)', noEnv: true }),
  local: def({
    flags: '-L, --local <forward>', file: 'tunnel', shape: 'list', group: FWD,
    help: '[bind_address:]port:host:hostport, repeatable; a Unix socket path may stand for either side',
    defaultText: `bind_address localhost: ${DEFAULTS.bindAddress} and ::1`,
    more: 'localhost, written out or not, is both loopbacks on one port, as ssh binds them, so a client that tries ::1 first is not refused (with -4 or -6 the one of that family; where ::1 cannot be bound, 127.0.0.1 alone, logged); IPv6 in brackets (`[::1]:8080:db:5432`), an IPv6 listener taking IPv6 only, as with ssh; `*` or an empty address (`:8080:db:5432`) is every interface, 0.0.0.0 and :: on one port; a non-loopback bind is made only when written out or with -g (GatewayPorts yes, also from ssh_config), and logged as a warning; port 0 picks a free port (logged)',
  }),
  dynamic: def({
    flags: '-D, --dynamic <[bind_address:]port>', file: 'tunnel', shape: 'list', group: FWD,
    help: 'SOCKS4/5 proxy whose clients go through the tunnel (names resolved by the server), repeatable',
    defaultText: `bind_address localhost: ${DEFAULTS.bindAddress} and ::1`,
  }),
  remote: def({
    flags: '-R, --remote <forward>', file: 'tunnel', shape: 'list', group: FWD,
    help: '[bind_address:]port:host:hostport: the server listens, its clients are connected to host:hostport from here; [bind_address:]port alone: a SOCKS proxy on the server, its clients connected where they ask from here (OpenSSH 7.6); port 0 = the server picks; repeatable',
    more: 'requested again after every reconnect',
  }),
  socksAuth: def({
    flags: '--socks-auth <user:pass>', file: 'tunnel', shape: 'value', group: FWD,
    help: 'require SOCKS5 username/password authentication on -D listeners',
    more: 'a file tunnel without its own takes this one; on a shared host prefer `SSHKEEP_SOCKS_AUTH` (the command line shows in `ps`)',
  }),
  gatewayPorts: def({
    flags: '-g, --gateway-ports', shape: 'switch', group: FWD, noEnv: true,
    help: 'a -L or -D without a bind_address listens on every interface, 0.0.0.0 and :: (GatewayPorts yes); logged as a warning, -D still needs --socks-auth',
    more: 'for every tunnel; in the file or ssh_config, `GatewayPorts yes`',
  }),
  allowOpenSocks: def({ flags: '--allow-open-socks', shape: 'switch', group: FWD, help: 'allow a -D listener on a non-loopback address without --socks-auth' }),
  jump: def({
    flags: '-J, --jump <[user@]host[:port],...>', file: 'tunnel', shape: 'value', group: SSH,
    help: 'jump hosts, connected in order (ProxyJump); "none" ignores a configured ProxyJump',
  }),
  port: def({
    flags: '-p, --port <port>', file: 'tunnel', shape: 'value', group: SSH, help: 'port of the SSH server',
    default: String(DEFAULTS.port), defaultText: `${DEFAULTS.port} or ssh_config Port`,
  }),
  login: def({ flags: '-l, --login <user>', file: 'tunnel', shape: 'value', group: SSH, help: 'user to log in as', defaultText: 'ssh_config User or your local user' }),
  identityFile: def({
    flags: '-i, --identity-file <file>', file: 'tunnel', fileKey: 'identityFiles', shape: 'list', group: SSH,
    help: 'private key (OpenSSH or PEM format), repeatable', defaultText: DEFAULTS.identityFiles.join(', '),
  }),
  sshConfig: def({ flags: '-F, --ssh-config <file>', file: 'tunnel', shape: 'value', group: SSH, help: 'ssh_config file, or "none"', default: DEFAULTS.sshConfigFile }),
  option: def({
    flags: '-o, --option <Key=Value>', file: 'tunnel', fileKey: 'options', shape: 'options', group: SSH,
    help:
      `OpenSSH option, repeatable: HostName, Port, User, IdentityFile, IdentitiesOnly, ConnectTimeout (default ${formatDuration(DEFAULTS.connectTimeoutMs)}), ` +
      `ServerAliveInterval, ServerAliveCountMax, StrictHostKeyChecking=yes|accept-new|no (default ${DEFAULTS.strictHostKeyChecking}), ` +
      'UserKnownHostsFile, GlobalKnownHostsFile, HostKeyAlias, IdentityAgent, CertificateFile, ProxyJump, ProxyCommand, ExitOnForwardFailure, AddressFamily, Compression, GatewayPorts, ' +
      'HostKeyAlgorithms, PubkeyAcceptedAlgorithms, KexAlgorithms, Ciphers, MACs (a list, or +, - or ^ and a list)',
    more: 'in the file, a mapping (`ServerAliveInterval: 10`) or a list of `Key=Value`',
  }),
  ipv4: def({
    flags: '-4, --ipv4', shape: 'switch', group: SSH, noEnv: true,
    help: 'connect over IPv4 only, and a localhost bind is 127.0.0.1 (AddressFamily inet)',
    more: 'for every tunnel and its jump hosts; in the file or ssh_config, `AddressFamily inet`',
  }),
  ipv6: def({
    flags: '-6, --ipv6', shape: 'switch', group: SSH, noEnv: true,
    help: 'connect over IPv6 only, and bind to ::1 by default (AddressFamily inet6)',
    more: 'for every tunnel and its jump hosts; in the file or ssh_config, `AddressFamily inet6`',
  }),
  compression: def({
    flags: '-C, --compression', shape: 'switch', group: SSH, noEnv: true,
    help: 'compress with zlib (Compression yes): for slow links, it costs CPU on fast ones',
    more: 'for every tunnel; in the file or ssh_config, `Compression yes`',
  }),
  noCommand: def({ flags: '-N', shape: 'switch', group: SSH, noEnv: true, help: 'accepted as in ssh -N; changes nothing: sshkeep never runs a remote command' }),
  noTty: def({ flags: '-T', shape: 'switch', group: SSH, noEnv: true, help: 'accepted as in ssh -T; changes nothing: sshkeep never asks for a terminal' }),
  noStdin: def({ flags: '-n', shape: 'switch', group: SSH, noEnv: true, help: 'accepted as in ssh -n; changes nothing: sshkeep never reads stdin for the server' }),
  monitorPort: def({
    flags: '-M, --monitor-port <port>', shape: 'value', group: RES, noEnv: true,
    help: "autossh's monitoring port: only 0 (off) is accepted, as sshkeep's heartbeat replaces it (--keepalive-interval)",
    parse: from((value, what) => {
      if (value.trim() !== '0') {
        throw new ConfigError(`${what} ${value}: autossh's monitoring port is not used: sshkeep watches the link with its own heartbeat. Give -M 0 or leave it out; tune the heartbeat with --keepalive-interval.`);
      }
      return 0;
    }),
  }),
  background: def({
    flags: '-f', shape: 'switch', group: OPS, noEnv: true,
    help: 'refused: sshkeep stays in the foreground, for a supervisor (systemd, launchd, a container) to restart; use one, or nohup … &',
    parse: () => {
      throw new ConfigError(
        '-f: sshkeep does not go to the background: it stays in the foreground so that a supervisor (systemd, launchd, a container runtime) ' +
          'restarts it and sees its exit code. Run it under one, or from a shell with nohup sshkeep … & (and -E FILE for a log that outlives the terminal).',
      );
    },
  }),
  hostKeyFingerprint: def({
    flags: '--host-key-fingerprint <SHA256:...>', file: 'tunnel', shape: 'value', group: SSH,
    help: 'pin the server host key instead of using known_hosts; comma-separated for several',
  }),
  insecureKeyPermissions: def({
    flags: '--insecure-key-permissions', shape: 'switch', group: SSH, help: 'accept identity files that group or others can read (OpenSSH refuses them)',
  }),
  keepaliveInterval: def({
    flags: '--keepalive-interval <duration>', file: 'both', shape: 'value', group: RES,
    help: 'probe the server after this much silence; 0 = only on demand',
    default: formatDuration(DEFAULTS.keepaliveIntervalMs), defaultText: `${formatDuration(DEFAULTS.keepaliveIntervalMs)}, or ServerAliveInterval`,
    more: `at least ${formatDuration(MIN_HEARTBEAT_MS)}`,
    parse: from(parseHeartbeatInterval),
  }),
  keepaliveTimeout: def({
    flags: '--keepalive-timeout <duration>', file: 'both', shape: 'value', group: RES,
    help: 'fixed probe deadline', defaultText: `adaptive, SRTT + 4·RTTVAR of the measured round trips, within ${formatDuration(DEFAULTS.probeTimeoutMinMs)}-${formatDuration(DEFAULTS.probeTimeoutMaxMs)}`,
    more: `at least ${formatDuration(MIN_HEARTBEAT_MS)}`,
    parse: from(parseHeartbeatTimeout),
  }),
  holdTimeout: def({
    flags: '--hold-timeout <duration>', file: 'both', shape: 'value', group: RES,
    help: 'hold clients this long while no SSH connection is ready; 0 = reset them at once', default: formatDuration(DEFAULTS.holdTimeoutMs),
    parse: duration,
  }),
  holdBuffer: def({
    flags: '--hold-buffer <size>', file: 'both', shape: 'value', group: RES,
    help: 'bytes read from each held client before pausing it', default: formatSize(DEFAULTS.holdBufferBytes),
    parse: size,
  }),
  connections: def({
    flags: '--connections <n>', file: 'both', shape: 'value', group: RES,
    help: `SSH connections to keep to the server, at most ${MAX_CONNECTIONS}; new streams go to the least loaded ready one`, default: String(DEFAULTS.connections),
    more: 'each connection has its own heartbeat and reconnect',
    parse: count(1, MAX_CONNECTIONS),
  }),
  resume: def({
    flags: '--resume', file: 'both', shape: 'switch', group: RES,
    help: 'open -L and -D streams survive the death of the SSH connection: an agent started on the server (perl or python3, over exec) holds each target socket until sshkeep reconnects',
    more: 'off by default, as it starts a process on the server (README, "Resumable streams"); -R stays plain; where the agent cannot run, one warning and plain forwarding',
    parse: from(parseYesNo),
  }),
  resumeGrace: def({
    flags: '--resume-grace <duration>', file: 'both', shape: 'value', group: RES,
    help: 'with --resume: how long a stream waits for a new SSH connection before its client and target are reset', default: formatDuration(DEFAULTS.resumeGraceMs),
    parse: from(parsePositiveDuration),
  }),
  resumeBuffer: def({
    flags: '--resume-buffer <size>', file: 'both', shape: 'value', group: RES,
    help: 'with --resume: unacknowledged bytes kept per stream to send again after a reconnect; a full buffer pauses the client', default: formatSize(DEFAULTS.resumeBufferBytes),
    parse: bufferSize,
  }),
  resumeBufferTotal: def({
    flags: '--resume-buffer-total <size>', file: 'top', shape: 'value', group: RES,
    help: 'with --resume: the replay buffers of all streams together; when full, every resumable client is paused', default: formatSize(DEFAULTS.resumeBufferTotalBytes),
    parse: bufferSize,
  }),
  maxHeld: def({
    flags: '--max-held <n>', file: 'top', shape: 'value', group: RES, help: 'held clients beyond this are reset', default: String(DEFAULTS.maxHeld),
    parse: count(0),
  }),
  health: def({
    flags: '--health <[host:]port>', file: 'top', shape: 'value', group: OPS,
    help: 'serve /healthz /readyz /startupz /metrics over HTTP; :port or *:port is every interface (IPv6 and IPv4), off turns it off (the Docker image sets :9090)', defaultText: `off; host ${DEFAULTS.bindAddress}`,
    parse: (raw) => (/^(off|none)$/i.test(raw.value.trim()) ? undefined : from(parseHostPort)(raw)),
  }),
  admin: def({
    flags: '--admin', file: 'top', shape: 'switch', group: OPS,
    help: 'with --health: POST /quitquitquit drains and stops the process (sshkeep shutdown), from loopback peers only unless --admin-from',
    more: 'a peer on any other address gets 403, whatever address --health listens on',
    parse: from(parseYesNo),
  }),
  adminFrom: def({
    flags: '--admin-from <address[/prefix],...>', file: 'top', shape: 'value', group: OPS,
    help: 'with --admin: also accept POST /quitquitquit from these addresses or CIDR networks, or "any"; logged as a warning at start',
    defaultText: 'loopback only',
    more: 'e.g. 10.0.0.0/8,fd00::/8; IP addresses only, never names; loopback is always accepted',
    parse: from(parseAddressRanges),
  }),
  maxConnections: def({
    flags: '--max-connections <n>', file: 'top', shape: 'value', group: OPS,
    help: 'clients beyond this are reset and counted', default: String(DEFAULTS.maxConnections), defaultText: `${DEFAULTS.maxConnections} = unlimited`,
    parse: count(0),
  }),
  minDrain: def({
    flags: '--min-drain <duration>', file: 'top', shape: 'value', group: OPS,
    help: 'after SIGTERM keep accepting this long, for endpoint propagation', default: formatDuration(DEFAULTS.minDrainMs),
    parse: duration,
  }),
  maxDrain: def({
    flags: '--max-drain <duration>', file: 'top', shape: 'value', group: OPS,
    help: 'then let open streams run this long before resetting them', default: formatDuration(DEFAULTS.maxDrainMs),
    parse: duration,
  }),
  skipFailedTunnels: def({
    flags: '--skip-failed-tunnels', file: 'top', shape: 'switch', group: OPS,
    help: 'a tunnel whose first connect is refused (authentication, host key) keeps retrying (at least 1 min apart), not ready, while the others run; without it: exit 3',
    parse: from(parseYesNo),
  }),
  config: def({ flags: '--config <file>', shape: 'value', group: OPS, help: 'YAML or JSON file with process settings and one or more tunnels' }),
  logLevel: def({
    flags: '--log-level <level>', file: 'top', shape: 'value', group: LOG, help: 'how much to log', default: DEFAULTS.logLevel, choices: LOG_LEVELS,
    parse: choice(LOG_LEVELS),
  }),
  logFormat: def({
    flags: '--log-format <format>', file: 'top', shape: 'value', group: LOG, help: 'log line format', defaultText: 'pretty on a terminal, json otherwise',
    choices: LOG_FORMATS, parse: choice(LOG_FORMATS),
  }),
  logFile: def({
    flags: '-E, --log-file <file>', file: 'top', shape: 'value', group: LOG,
    help: 'append the log to this file instead of stderr (created 0600; json unless --log-format pretty, never coloured); SIGHUP reopens it, for logrotate',
    defaultText: 'stderr',
    more: 'usage errors still go to stderr; a FIFO or socket (such as /proc/1/fd/1 in a container) is written without blocking, so a reader that stalls never stops the tunnels (a FIFO no process reads is refused, exit 2, and at a SIGHUP the file open before stays): past 1 MiB queued, lines are dropped and a log_dropped warning counts them (stderr too, when it is a pipe)',
  }),
  quiet: def({ flags: '-q, --quiet', shape: 'switch', group: LOG, help: 'only errors (same as --log-level error)', noEnv: true }),
  verbose: def({ flags: '-v, --verbose', shape: 'switch', group: LOG, help: 'debug output (same as --log-level debug)', noEnv: true }),
} as const satisfies Record<string, Setting>;

export type SettingName = keyof typeof SETTINGS;

export const SETTING_NAMES = Object.keys(SETTINGS) as SettingName[];

/** One entry read as a Setting (the table keeps each entry's literal type). */
export const settingOf = (name: SettingName): Setting => SETTINGS[name];

/** `SSHKEEP_HOLD_TIMEOUT` for holdTimeout; undefined for a setting the environment cannot give. */
export function envName(name: SettingName): string | undefined {
  return settingOf(name).noEnv ? undefined : `SSHKEEP_${name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

/** Variables sshkeep reads besides the settings': secrets, which have no flag (a flag shows in ps). */
export const SECRET_VARIABLES = ['SSHKEEP_IDENTITY', 'SSHKEEP_KNOWN_HOSTS', 'SSHKEEP_PASSPHRASE'];

/** A warning for each SSHKEEP_* variable that sshkeep does not read (a misspelt one would be ignored without a word), naming the nearest it does. */
export function unknownVariables(env: NodeJS.ProcessEnv): string[] {
  const known = [...SETTING_NAMES.flatMap((n) => envName(n) ?? []), ...SECRET_VARIABLES];
  return Object.keys(env).filter((k) => k.startsWith('SSHKEEP_') && !known.includes(k)).sort().map((k) => {
    const near = nearest(k, known);
    return `${k} is not a variable sshkeep reads${near ? ` (did you mean ${near}?)` : ''}; it is ignored.`;
  });
}

/** The flag as usually typed, to name a value in errors: the short one (`-p`), else the long one (`--hold-timeout`). */
export function flagName(name: SettingName): string {
  return settingOf(name).flags!.split(/[ ,]+/)[0]!;
}

/** `--hold-timeout`: the long flag. */
export function longFlag(name: SettingName): string {
  return settingOf(name).flags!.split(/[ ,]+/).find((f) => f.startsWith('--'))!;
}

export function fileKey(name: SettingName): string {
  return settingOf(name).fileKey ?? name;
}

/** The settings the file allows at its top level (`top`, `both`) or in a tunnel (`tunnel`, `both`). */
export function fileSettings(where: 'top' | 'tunnel'): SettingName[] {
  return SETTING_NAMES.filter((n) => {
    const scope = settingOf(n).file;
    return scope === where || scope === 'both';
  });
}

/** A repeatable flag; from the environment, a comma- or newline-separated list. */
export const isRepeatable = (name: SettingName): boolean => ['list', 'options'].includes(settingOf(name).shape);

/** The default as --help and the README say it. */
function defaultText(name: SettingName): string | undefined {
  const s = settingOf(name);
  return s.defaultText ?? s.default;
}

/** One line of --help: what it does, then the default. */
export function helpLine(name: SettingName): string {
  const d = defaultText(name);
  return d === undefined ? settingOf(name).help : `${settingOf(name).help} (default: ${d})`;
}
