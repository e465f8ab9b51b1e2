import fs from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { ConfigError } from '../errors.js';
import type { Layer } from '../config/settings.js';
import { parseYesNo } from '../config/ssh-options.js';
import { SETTINGS, SETTING_NAMES, envName, flagName, helpLine, isRepeatable, settingOf, type SettingName } from '../config/setting-table.js';

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

/** package.json's version (src/cli and dist/cli are both two levels below it). */
const version = () => (JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

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

  # An ssh or autossh command line carries over: only the program name changes
  sshkeep -M 0 -N -L 15432:db.internal:5432 deploy@bastion.example.com

  # Try it with nothing to set up: an embedded SSH server and HTTP target
  sshkeep demo

Commands: sshkeep check --config FILE (validate it and read its keys, without connecting), sshkeep demo, and for a running
instance, through its --health address (or SSHKEEP_HEALTH): sshkeep wait [--timeout d] (until it has
started), sshkeep status [--json] (each tunnel; exit 1 if any is not ready), sshkeep reload (as SIGHUP:
read the configuration again; exit 1 if refused), sshkeep reconnect (as SIGUSR2), sshkeep shutdown (drain
and stop; the instance needs --admin). Each takes --help.
Signals: SIGHUP reloads --config and ssh_config (and reopens -E's file), SIGUSR2 (or autossh's SIGUSR1) reconnects every tunnel
make-before-break, SIGINT/SIGTERM drain and stop.
Exit codes: 0 clean shutdown, 1 internal error (a bug), 2 usage or configuration error, 3 host key or
authentication refused, 4 could not listen (a port or socket in use after retries, no permission, -R refused
with ExitOnForwardFailure), 130 Ctrl-C at a prompt.`;

/** The commander option of one setting of the table: its help line, SSHKEEP_* variable, list and choices. */
function option(name: SettingName): Option {
  const s = settingOf(name);
  const o = new Option(s.flags!, helpLine(name)).helpGroup(s.group!);
  // The environment variable must be set before addOption(): commander wires env reading then.
  const env = envName(name);
  if (env) o.env(env);
  if (isRepeatable(name)) o.argParser(collect);
  if (s.choices) o.choices(s.choices);
  return o;
}

function program(): Command {
  const cmd = new Command('sshkeep')
    .description('Keep local port forwards alive through managed, self-healing SSH tunnels.')
    .usage('[options] [user@]host')
    .argument('[destination]', '[user@]host, or an ssh_config Host alias');
  for (const name of SETTING_NAMES) if (settingOf(name).flags) cmd.addOption(option(name));
  return cmd
    .version(`sshkeep ${version()}`, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show this help')
    .addHelpText('after', EXAMPLES)
    .showHelpAfterError(false)
    .allowExcessArguments(false);
}

/** Where commander keeps a setting's value: its name, or for a short-only flag (`-N`) the letter. */
function attributeOf(name: SettingName): string {
  const flags = settingOf(name).flags;
  return flags && !flags.includes('--') ? new Option(flags).attributeName() : name;
}

/** How a value is named in errors: its flag, or its variable. */
const sourceOf = (cmd: Command, name: SettingName): string => (cmd.getOptionValueSource(attributeOf(name)) === 'env' ? envName(name)! : flagName(name));

/** A commander usage error as one sentence without its final stop: commander puts its "(Did you mean …?)" on a line of its own. */
export const usageMessage = (err: CommanderError): string => err.message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ').replace(/\.$/, '');

/**
 * A repeatable setting's environment variable: its items separated by commas or newlines. In
 * SSHKEEP_OPTION a comma not followed by another Key=Value (or "Key value") continues the
 * option before it, so SSHKEEP_OPTION='Ciphers=aes128-ctr,aes256-ctr' is one option, as -o reads it.
 */
function envList(raw: string, options: boolean): string[] {
  const items: string[] = [];
  for (const line of raw.split('\n')) {
    for (const [i, piece] of line.split(',').entries()) {
      const continues = options && i > 0 && !/^\s*[A-Za-z][A-Za-z0-9]*\s*[=\s]\s*\S/.test(piece);
      if (continues) items[items.length - 1] += `,${piece.trim()}`;
      else items.push(piece.trim());
    }
  }
  return items.filter(Boolean);
}

/**
 * Parses argv (without node and script) and the SSHKEEP_* environment. Usage errors
 * become ConfigErrors (exit 2); --help prints and returns null.
 */
export function parseCli(argv: string[], env: NodeJS.ProcessEnv, write: (s: string) => void = (s) => process.stdout.write(s)): Layer | null {
  const cmd = program();
  cmd.exitOverride();
  cmd.configureOutput({ writeOut: write, writeErr: () => {} });
  try {
    cmd.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (['commander.helpDisplayed', 'commander.help', 'commander.version'].includes(err.code)) return null;
      throw new ConfigError(`${usageMessage(err)}. Run sshkeep --help for usage.`);
    }
    throw err;
  }
  const o = cmd.opts<Record<string, unknown>>();
  const layer: Layer = {};
  for (const name of SETTING_NAMES) {
    const v = o[attributeOf(name)];
    if (v === undefined) continue;
    const source = sourceOf(cmd, name);
    // commander turns a switch's variable on whatever it holds: SSHKEEP_ALLOW_OPEN_SOCKS=false must not open anything.
    // An explicit no stays for a switch the file may also set, so the variable beats the file.
    if (settingOf(name).shape === 'switch' && source === envName(name)) {
      const raw = process.env[source] ?? ''; // where commander read it
      if (raw === '') continue;
      if (!parseYesNo(raw, source)) {
        if (settingOf(name).file) layer[name] = [{ value: 'no', source }];
        continue;
      }
    }
    let values = Array.isArray(v) ? (v as string[]) : [v === true ? 'yes' : String(v)];
    // An environment value arrives as one string: split its list.
    if (source === envName(name) && isRepeatable(name)) values = values.flatMap((x) => envList(x, settingOf(name).shape === 'options'));
    layer[name] = values.map((value) => ({ value, source }));
  }
  if (o.quiet && o.verbose) throw new ConfigError('-q and -v contradict each other; give one.');
  if (o.ipv4 && o.ipv6) throw new ConfigError('-4 and -6 contradict each other; give one.');
  if (layer.background) SETTINGS.background.parse();
  if (layer.monitorPort) SETTINGS.monitorPort.parse(layer.monitorPort[0]!);
  // The destination is an argument, which commander reads from no variable.
  const variable = envName('destination')!;
  const destination = cmd.args[0] ?? env[variable];
  if (destination !== undefined) layer.destination = [{ value: destination, source: cmd.args[0] === undefined ? variable : 'destination' }];
  if (o.quiet) layer.logLevel = [{ value: 'error', source: '-q' }];
  if (o.verbose) layer.logLevel = [{ value: 'debug', source: '-v' }];
  return layer;
}
