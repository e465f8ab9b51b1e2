import { Command, CommanderError, Option } from 'commander';
import { ConfigError } from '../errors.js';
import { DEFAULTS } from '../config/defaults.js';
import type { LogFormat, LogLevel } from '../config/types.js';
import type { TunnelInput } from '../config/resolve.js';

export interface CliArgs {
  tunnel: TunnelInput;
  logLevel: LogLevel;
  logFormat: LogFormat;
}

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

const EXAMPLES = `
Examples:
  # A database behind a bastion, on localhost:15432
  sshkeep -L 15432:db.internal:5432 deploy@bastion.example.com

  # Reuse ~/.ssh/config (HostName, User, IdentityFile, Port of "prod-bastion")
  sshkeep -L 5432:db:5432 -L 6379:cache:6379 prod-bastion

  # Try it with nothing to set up: an embedded SSH server and HTTP target
  sshkeep demo

Exit codes: 0 clean shutdown, 2 usage or configuration error, 3 host key or authentication refused.`;

function program(): Command {
  const opt = (flags: string, description: string, group: string) => new Option(flags, description).helpGroup(group);
  const fwd = 'Forwarding:';
  const ssh = 'SSH connection (as OpenSSH):';
  const log = 'Logging:';
  const res = 'Resilience:';
  return new Command('sshkeep')
    .description('Keep local port forwards alive through one managed, self-healing SSH tunnel.')
    .usage('[options] [user@]host')
    .argument('<destination>', '[user@]host, or an ssh_config Host alias')
    .addOption(
      opt('-L <forward>', `[bind_address:]port:host:hostport, repeatable; bind_address defaults to ${DEFAULTS.bindAddress}`, fwd)
        .argParser(collect),
    )
    .addOption(opt('-p <port>', 'port of the SSH server (default: 22 or ssh_config Port)', ssh))
    .addOption(opt('-l <user>', 'user to log in as (default: ssh_config User or your local user)', ssh))
    .addOption(opt('-i <identity_file>', 'private key, repeatable (default: ~/.ssh/id_ed25519, id_ecdsa, id_rsa)', ssh).argParser(collect))
    .addOption(opt('-F <configfile>', 'ssh_config file, or "none" (default: ~/.ssh/config)', ssh))
    .addOption(
      opt(
        '-o <option>',
        'Key=Value, repeatable: HostName, Port, User, IdentityFile, IdentitiesOnly, ConnectTimeout (default 15s), ' +
          'ServerAliveInterval (default 15s), ServerAliveCountMax (default 3), StrictHostKeyChecking=yes|accept-new|no (default yes), ' +
          'UserKnownHostsFile, GlobalKnownHostsFile, HostKeyAlias, IdentityAgent',
        ssh,
      )
        .argParser(collect),
    )
    .addOption(opt('--keepalive-interval <duration>', 'probe the server after this much silence; 0 = only on demand (default: 15s, or ServerAliveInterval)', res))
    .addOption(opt('--keepalive-timeout <duration>', 'fixed probe deadline (default: adaptive, clamp(SRTT + 4·RTTVAR, 1s, 10s))', res))
    .addOption(opt('--hold-timeout <duration>', 'hold clients this long while the tunnel is down; 0 = reset them at once (default: 30s)', res))
    .addOption(opt('--hold-buffer <size>', 'bytes read from each held client before pausing it (default: 1MiB)', res))
    .addOption(opt('--max-held <n>', 'held clients beyond this are reset (default: 1024)', res))
    .addOption(opt('--log-level <level>', 'how much to log', log).choices(['error', 'warn', 'info', 'debug']).default('info'))
    .addOption(opt('--log-format <format>', 'default: pretty on a terminal, json otherwise', log).choices(['pretty', 'json']))
    .addOption(opt('-q, --quiet', 'only errors (same as --log-level error)', log))
    .addOption(opt('-v, --verbose', 'debug output (same as --log-level debug)', log))
    .helpOption('-h, --help', 'show this help')
    .addHelpText('after', EXAMPLES)
    .showHelpAfterError(false)
    .allowExcessArguments(false);
}

/** Parses argv (without node and script). Usage errors become ConfigErrors (exit 2); --help prints and returns null. */
export function parseCli(argv: string[], isTty: boolean, write: (s: string) => void = (s) => process.stdout.write(s)): CliArgs | null {
  const cmd = program();
  cmd.exitOverride();
  cmd.configureOutput({ writeOut: write, writeErr: () => {} });
  try {
    cmd.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help') return null;
      throw new ConfigError(`${err.message.replace(/^error: /, '')}. Run sshkeep --help for usage.`);
    }
    throw err;
  }
  const o = cmd.opts<{
    L?: string[]; p?: string; l?: string; i?: string[]; F?: string; o?: string[];
    logLevel: LogLevel; logFormat?: LogFormat; quiet?: boolean; verbose?: boolean;
    keepaliveInterval?: string; keepaliveTimeout?: string; holdTimeout?: string; holdBuffer?: string; maxHeld?: string;
  }>();
  if (o.quiet && o.verbose) throw new ConfigError('-q and -v contradict each other; give one.');
  return {
    tunnel: {
      destination: cmd.args[0]!,
      port: o.p,
      user: o.l,
      identityFiles: o.i ?? [],
      configFile: o.F,
      options: o.o ?? [],
      localForwards: o.L ?? [],
      keepaliveInterval: o.keepaliveInterval,
      keepaliveTimeout: o.keepaliveTimeout,
      holdTimeout: o.holdTimeout,
      holdBuffer: o.holdBuffer,
      maxHeld: o.maxHeld,
    },
    logLevel: o.quiet ? 'error' : o.verbose ? 'debug' : o.logLevel,
    logFormat: o.logFormat ?? (isTty ? 'pretty' : 'json'),
  };
}
