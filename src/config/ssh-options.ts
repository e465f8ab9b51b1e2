import { ConfigError } from '../errors.js';

/** The OpenSSH options sshkeep honours, by lower-case name (OpenSSH keys are case-insensitive). */
export const HONOURED_OPTIONS = {
  hostname: 'HostName',
  port: 'Port',
  user: 'User',
  identityfile: 'IdentityFile',
  certificatefile: 'CertificateFile',
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
  addressfamily: 'AddressFamily',
  compression: 'Compression',
  gatewayports: 'GatewayPorts',
  hostkeyalgorithms: 'HostKeyAlgorithms',
  pubkeyacceptedalgorithms: 'PubkeyAcceptedAlgorithms',
  kexalgorithms: 'KexAlgorithms',
  ciphers: 'Ciphers',
  macs: 'MACs',
} as const;

export type OptionKey = keyof typeof HONOURED_OPTIONS;

/** Options a user may carry over from OpenSSH habit that do not change what sshkeep does. */
const ACCEPTED_AND_IGNORED = new Set([
  'addkeystoagent', 'batchmode', 'controlmaster', 'controlpath', 'controlpersist', 'forwardagent', 'forwardx11',
  'loglevel', 'requesttty', 'sendenv', 'setenv', 'tcpkeepalive', 'visualhostkey',
]);

const KEYS_AND_AGENT = 'sshkeep authenticates with ssh-agent keys, then identity files, then (on a terminal) a password';
const yes = (v: string) => /^(yes|true)$/i.test(v);
const no = (v: string) => /^(no|false)$/i.test(v);

/**
 * Options that change security or authentication and that sshkeep cannot honour: never ignored
 * in silence, from -o or ssh_config. Each says what sshkeep does instead, for the values that
 * ask for something else (`GSSAPIAuthentication no` is what sshkeep does anyway).
 */
const UNHONOURED: Record<string, { name: string; instead: (value: string) => string | undefined }> = {
  pkcs11provider: { name: 'PKCS11Provider', instead: (v) => (v.toLowerCase() === 'none' ? undefined : `PKCS#11 tokens are not supported: ${KEYS_AND_AGENT} (add the token's key to ssh-agent: ssh-add -s)`) },
  securitykeyprovider: { name: 'SecurityKeyProvider', instead: () => `security key middleware is not supported: ${KEYS_AND_AGENT}` },
  gssapiauthentication: { name: 'GSSAPIAuthentication', instead: (v) => (yes(v) ? `GSSAPI (Kerberos) is not supported: ${KEYS_AND_AGENT}` : undefined) },
  gssapidelegatecredentials: { name: 'GSSAPIDelegateCredentials', instead: (v) => (yes(v) ? 'no credentials are delegated: sshkeep does not use GSSAPI' : undefined) },
  hostbasedauthentication: { name: 'HostbasedAuthentication', instead: (v) => (yes(v) ? `host-based authentication is not supported: ${KEYS_AND_AGENT}` : undefined) },
  pubkeyauthentication: { name: 'PubkeyAuthentication', instead: (v) => (no(v) ? 'keys are still offered; limit them with IdentitiesOnly=yes and IdentityAgent=none' : undefined) },
  passwordauthentication: { name: 'PasswordAuthentication', instead: (v) => (no(v) ? 'a password is still asked for on a terminal when keys fail; without a terminal none is asked' : undefined) },
  kbdinteractiveauthentication: { name: 'KbdInteractiveAuthentication', instead: (v) => (no(v) ? 'keyboard-interactive is still tried on a terminal when keys fail; without a terminal it is not' : undefined) },
  preferredauthentications: { name: 'PreferredAuthentications', instead: () => `the order is fixed: ${KEYS_AND_AGENT} or keyboard-interactive` },
  verifyhostkeydns: { name: 'VerifyHostKeyDNS', instead: (v) => (no(v) ? undefined : 'SSHFP records are not checked: host keys are checked against known_hosts or --host-key-fingerprint') },
  hashknownhosts: { name: 'HashKnownHosts', instead: (v) => (yes(v) ? 'a host key accepted with StrictHostKeyChecking=accept-new is recorded under its plain host name' : undefined) },
  checkhostip: { name: 'CheckHostIP', instead: (v) => (yes(v) ? "the host key is checked under the host's name (or HostKeyAlias) only, not its address" : undefined) },
  revokedhostkeys: { name: 'RevokedHostKeys', instead: (v) => (v.toLowerCase() === 'none' ? undefined : 'that file is not read: only @revoked lines in known_hosts refuse a key') },
  knownhostscommand: { name: 'KnownHostsCommand', instead: (v) => (v.toLowerCase() === 'none' ? undefined : 'the command is not run: host keys are checked against known_hosts files or --host-key-fingerprint') },
  updatehostkeys: { name: 'UpdateHostKeys', instead: (v) => (no(v) ? undefined : 'keys the server offers after authentication are not learnt: known_hosts is only appended to by accept-new') },
};

/** Security and authentication options sshkeep cannot honour, by lower-case key, first value of each (as OpenSSH): see `unhonouredWarnings`. */
export type Unhonoured = Map<string, { value: string; where: string }>;

/** Records an unhonoured option's first value and where it was given (`-o `, `~/.ssh/config line 3: `); false if the key is not one of them. */
export function noteUnhonoured(into: Unhonoured, key: string, value: string, where: string): boolean {
  const lower = key.toLowerCase();
  if (!Object.hasOwn(UNHONOURED, lower)) return false;
  if (!into.has(lower)) into.set(lower, { value, where });
  return true;
}

/** One warning per recorded option whose value asks for what sshkeep does not do: the option, and what sshkeep does instead. */
export function unhonouredWarnings(from: Unhonoured): string[] {
  return [...from].flatMap(([key, { value, where }]) => {
    const { name, instead } = UNHONOURED[key]!;
    const text = instead(value);
    return text ? [`${where}${name} ${value}: not honoured; ${text}`] : [];
  });
}

/** Keys that may appear several times and accumulate instead of first-wins. */
export const MULTI_VALUED: ReadonlySet<OptionKey> = new Set(['identityfile', 'certificatefile', 'localforward', 'remoteforward', 'dynamicforward']);

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
  if (ACCEPTED_AND_IGNORED.has(lower) || Object.hasOwn(UNHONOURED, lower)) return { key: null, name: m[1]!, value };
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
