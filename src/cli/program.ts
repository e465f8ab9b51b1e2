import { Command, CommanderError, Option } from 'commander';
import { ConfigError } from '../errors.js';
import { DEFAULTS } from '../config/defaults.js';
import type { LogFormat, LogLevel } from '../config/types.js';

/** What the command line and environment say, before a config file, ssh_config and defaults. */
export interface CliValues {
  destination?: string;
  local: string[];
  remote: string[];
  dynamic: string[];
  jump?: string;
  socksAuth?: string;
  allowOpenSocks?: boolean;
  port?: string;
  login?: string;
  identityFile: string[];
  sshConfig?: string;
  option: string[];
  hostKeyFingerprint?: string;
  insecureKeyPermissions?: boolean;
  keepaliveInterval?: string;
  keepaliveTimeout?: string;
  holdTimeout?: string;
  holdBuffer?: string;
  connections?: string;
  maxHeld?: string;
  maxConnections?: string;
  health?: string;
  minDrain?: string;
  maxDrain?: string;
  config?: string;
  logLevel?: LogLevel;
  logFormat?: LogFormat;
}

/** Options that may be given several times; from the environment they are comma- or newline-separated. */
const REPEATABLE = new Set(['local', 'remote', 'dynamic', 'identityFile', 'option']);

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

const EXAMPLES = `
Every long option can also come from the environment as SSHKEEP_<OPTION> (e.g. SSHKEEP_HOLD_TIMEOUT=10s,
SSHKEEP_LOCAL=5432:db:5432,6379:cache:6379), the destination as SSHKEEP_DESTINATION; precedence: flags > environment > --config file > ssh_config
> defaults. Secrets for containers: SSHKEEP_IDENTITY (private key content), SSHKEEP_KNOWN_HOSTS (content),
SSHKEEP_PASSPHRASE.

Examples:
  # A database behind a bastion, on localhost:15432
  sshkeep -L 15432:db.internal:5432 deploy@bastion.example.com

  # Reuse ~/.ssh/config (HostName, User, IdentityFile, Port of "prod-bastion")
  sshkeep -L 5432:db:5432 -L 6379:cache:6379 prod-bastion

  # A SOCKS proxy on localhost:1080 into a private network, through a jump host
  sshkeep -D 1080 -J jump.example.com deploy@inner.example.com

  # Publish a local dev server on the server's port 8080, re-requested after every reconnect
  sshkeep -R 8080:localhost:3000 deploy@bastion.example.com

  # As a sidecar: health endpoints on :9090, several bastions from a file
  sshkeep --health 0.0.0.0:9090 --config /etc/sshkeep/tunnels.yaml

  # Try it with nothing to set up: an embedded SSH server and HTTP target
  sshkeep demo

Commands: sshkeep check --config FILE (validate without connecting), sshkeep demo.
Exit codes: 0 clean shutdown, 2 usage or configuration error, 3 host key or authentication refused.`;

function program(): Command {
  // The environment variable must be set before addOption(): commander wires env reading then.
  const opt = (flags: string, description: string, group: string) => {
    const o = new Option(flags, description).helpGroup(group);
    const name = o.attributeName();
    if (o.long && !['quiet', 'verbose'].includes(name)) o.env(`SSHKEEP_${o.long.slice(2).replace(/-/g, '_').toUpperCase()}`);
    return o;
  };
  const fwd = 'Forwarding:';
  const ssh = 'SSH connection (as OpenSSH):';
  const res = 'Resilience:';
  const ops = 'Operations:';
  const log = 'Logging:';
  const cmd = new Command('sshkeep')
    .description('Keep local port forwards alive through managed, self-healing SSH tunnels.')
    .usage('[options] [user@]host')
    .argument('[destination]', '[user@]host, or an ssh_config Host alias')
    .addOption(
      opt('-L, --local <forward>', `[bind_address:]port:host:hostport, repeatable; bind_address defaults to ${DEFAULTS.bindAddress}; a Unix socket path may stand for either side`, fwd).argParser(collect),
    )
    .addOption(opt('-D, --dynamic <[bind_address:]port>', 'SOCKS4/5 proxy whose connections go through the tunnel (names resolved by the server), repeatable', fwd).argParser(collect))
    .addOption(opt('-R, --remote <forward>', '[bind_address:]port:host:hostport: the server listens, connections come back here; port 0 = the server picks; repeatable', fwd).argParser(collect))
    .addOption(opt('--socks-auth <user:pass>', 'require SOCKS5 username/password authentication on -D listeners', fwd))
    .addOption(opt('--allow-open-socks', 'allow a -D listener on a non-loopback address without --socks-auth', fwd))
    .addOption(opt('-J, --jump <[user@]host[:port],...>', 'jump hosts, connected in order (ProxyJump); "none" ignores a configured ProxyJump', ssh))
    .addOption(opt('-p, --port <port>', 'port of the SSH server (default: 22 or ssh_config Port)', ssh))
    .addOption(opt('-l, --login <user>', 'user to log in as (default: ssh_config User or your local user)', ssh))
    .addOption(opt('-i, --identity-file <file>', 'private key, repeatable (default: ~/.ssh/id_ed25519, id_ecdsa, id_rsa)', ssh).argParser(collect))
    .addOption(opt('-F, --ssh-config <file>', 'ssh_config file, or "none" (default: ~/.ssh/config)', ssh))
    .addOption(
      opt(
        '-o, --option <Key=Value>',
        'OpenSSH option, repeatable: HostName, Port, User, IdentityFile, IdentitiesOnly, ConnectTimeout (default 15s), ' +
          'ServerAliveInterval, ServerAliveCountMax, StrictHostKeyChecking=yes|accept-new|no (default yes), ' +
          'UserKnownHostsFile, GlobalKnownHostsFile, HostKeyAlias, IdentityAgent, ProxyJump, ProxyCommand, ExitOnForwardFailure',
        ssh,
      ).argParser(collect),
    )
    .addOption(opt('--host-key-fingerprint <SHA256:...>', 'pin the server host key instead of using known_hosts; comma-separated for several', ssh))
    .addOption(opt('--insecure-key-permissions', 'accept identity files that group or others can read (OpenSSH refuses them)', ssh))
    .addOption(opt('--keepalive-interval <duration>', 'probe the server after this much silence; 0 = only on demand (default: 15s, or ServerAliveInterval)', res))
    .addOption(opt('--keepalive-timeout <duration>', 'fixed probe deadline (default: adaptive, clamp(SRTT + 4·RTTVAR, 1s, 10s))', res))
    .addOption(opt('--hold-timeout <duration>', 'hold clients this long while the tunnel is down; 0 = reset them at once (default: 30s)', res))
    .addOption(opt('--hold-buffer <size>', 'bytes read from each held client before pausing it (default: 1MiB)', res))
    .addOption(opt('--connections <n>', 'SSH connections to keep to the server; new streams go to the least loaded ready one (default: 1)', res))
    .addOption(opt('--max-held <n>', 'held clients beyond this are reset (default: 1024)', res))
    .addOption(opt('--health <[host:]port>', 'serve /healthz /readyz /startupz /metrics over HTTP (default: off; host 127.0.0.1)', ops))
    .addOption(opt('--max-connections <n>', 'clients beyond this are reset and counted (default: 0 = unlimited)', ops))
    .addOption(opt('--min-drain <duration>', 'after SIGTERM keep accepting this long, for endpoint propagation (default: 0)', ops))
    .addOption(opt('--max-drain <duration>', 'then let open streams run this long before resetting them (default: 5s)', ops))
    .addOption(opt('--config <file>', 'YAML or JSON file with process settings and one or more tunnels', ops))
    .addOption(opt('--log-level <level>', 'how much to log (default: info)', log).choices(['error', 'warn', 'info', 'debug']))
    .addOption(opt('--log-format <format>', 'default: pretty on a terminal, json otherwise', log).choices(['pretty', 'json']))
    .addOption(opt('-q, --quiet', 'only errors (same as --log-level error)', log))
    .addOption(opt('-v, --verbose', 'debug output (same as --log-level debug)', log))
    .helpOption('-h, --help', 'show this help')
    .addHelpText('after', EXAMPLES)
    .showHelpAfterError(false)
    .allowExcessArguments(false);
  return cmd;
}

/**
 * Parses argv (without node and script) and the SSHKEEP_* environment. Usage errors
 * become ConfigErrors (exit 2); --help prints and returns null.
 */
export function parseCli(argv: string[], env: NodeJS.ProcessEnv, write: (s: string) => void = (s) => process.stdout.write(s)): CliValues | null {
  const cmd = program();
  cmd.exitOverride();
  cmd.configureOutput({ writeOut: write, writeErr: () => {} });
  try {
    cmd.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help') return null;
      // One paragraph: commander puts its "(Did you mean …?)" on a line of its own.
      const message = err.message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ').replace(/\.$/, '');
      throw new ConfigError(`${message}. Run sshkeep --help for usage.`);
    }
    throw err;
  }
  const o = cmd.opts<Record<string, unknown>>();
  for (const key of REPEATABLE) {
    // An environment value arrives as one string: split its list.
    if (cmd.getOptionValueSource(key) === 'env') o[key] = (o[key] as string[]).flatMap((v) => v.split(/[,\n]/)).map((v) => v.trim()).filter(Boolean);
  }
  if (o.quiet && o.verbose) throw new ConfigError('-q and -v contradict each other; give one.');
  const values: CliValues = {
    ...(o as Partial<CliValues>),
    destination: cmd.args[0] ?? env.SSHKEEP_DESTINATION,
    local: (o.local as string[] | undefined) ?? [],
    remote: (o.remote as string[] | undefined) ?? [],
    dynamic: (o.dynamic as string[] | undefined) ?? [],
    identityFile: (o.identityFile as string[] | undefined) ?? [],
    option: (o.option as string[] | undefined) ?? [],
  };
  if (o.quiet) values.logLevel = 'error';
  if (o.verbose) values.logLevel = 'debug';
  return values;
}
