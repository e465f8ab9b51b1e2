import { ConfigError } from '../errors.js';

/** The OpenSSH options sshkeep honours, by lower-case name (OpenSSH keys are case-insensitive). */
export const HONOURED_OPTIONS = {
  hostname: 'HostName',
  port: 'Port',
  user: 'User',
  identityfile: 'IdentityFile',
  identitiesonly: 'IdentitiesOnly',
  identityagent: 'IdentityAgent',
  connecttimeout: 'ConnectTimeout',
  serveraliveinterval: 'ServerAliveInterval',
  serveralivecountmax: 'ServerAliveCountMax',
  stricthostkeychecking: 'StrictHostKeyChecking',
  userknownhostsfile: 'UserKnownHostsFile',
  globalknownhostsfile: 'GlobalKnownHostsFile',
  hostkeyalias: 'HostKeyAlias',
  localforward: 'LocalForward',
  remoteforward: 'RemoteForward',
  dynamicforward: 'DynamicForward',
  exitonforwardfailure: 'ExitOnForwardFailure',
  proxyjump: 'ProxyJump',
  proxycommand: 'ProxyCommand',
} as const;

export type OptionKey = keyof typeof HONOURED_OPTIONS;

/** Options a user may carry over from OpenSSH habit that do not change what sshkeep does. */
const ACCEPTED_AND_IGNORED = new Set([
  'addkeystoagent', 'batchmode', 'checkhostip', 'compression', 'controlmaster', 'controlpath',
  'controlpersist', 'forwardagent', 'forwardx11', 'hashknownhosts',
  'loglevel', 'requesttty', 'sendenv', 'setenv', 'tcpkeepalive', 'updatehostkeys', 'visualhostkey',
  'gssapiauthentication', 'preferredauthentications', 'passwordauthentication',
  'kbdinteractiveauthentication', 'pubkeyauthentication', 'addressfamily',
]);

/** Keys that may appear several times and accumulate instead of first-wins. */
export const MULTI_VALUED: ReadonlySet<OptionKey> = new Set(['identityfile', 'localforward', 'remoteforward', 'dynamicforward']);

/** Values by option; `V` is a plain string, or a Sourced value naming its -o or ssh_config line. */
export type SshOptions<V = string> = { [K in OptionKey]?: V[] };

export interface DashO {
  key: OptionKey | null;
  /** The canonical spelling of an honoured key; for an ignored one, as the user wrote it. */
  name: string;
  value: string;
}

/** Parses one `-o Key=Value` (or `Key Value`). Unknown keys are exit 2, as in OpenSSH. */
export function parseDashO(text: string): DashO {
  const m = /^\s*([A-Za-z0-9]+)\s*(?:=\s*|\s+)(.*?)\s*$/.exec(text);
  if (!m || m[2] === '') {
    throw new ConfigError(`-o ${text}: expected Key=Value, e.g. -o ServerAliveInterval=5.`);
  }
  const lower = m[1]!.toLowerCase();
  const value = m[2]!.replace(/^"(.*)"$/, '$1');
  if (Object.hasOwn(HONOURED_OPTIONS, lower)) {
    const key = lower as OptionKey;
    return { key, name: HONOURED_OPTIONS[key], value };
  }
  if (ACCEPTED_AND_IGNORED.has(lower)) return { key: null, name: m[1]!, value };
  throw new ConfigError(
    `-o ${text}: unknown option "${m[1]}". sshkeep honours ${Object.values(HONOURED_OPTIONS).join(', ')}.`,
  );
}

/**
 * Adds a value with OpenSSH's precedence: the first value obtained wins,
 * except for keys that accumulate.
 */
export function addOption<V>(into: SshOptions<V>, key: OptionKey, values: V[]): void {
  const have = into[key];
  if (have === undefined) into[key] = [...values];
  else if (MULTI_VALUED.has(key)) have.push(...values);
}

export function parseYesNo(value: string, name: string): boolean {
  const v = value.toLowerCase();
  if (v === 'yes' || v === 'true') return true;
  if (v === 'no' || v === 'false') return false;
  throw new ConfigError(`${name}: "${value}" must be yes or no.`);
}
