import { ConfigError } from '../errors.js';
import { matchPatternList } from './host-pattern.js';

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
  ignoreunknown: 'IgnoreUnknown',
  refuseconnection: 'RefuseConnection',
} as const;

export type OptionKey = keyof typeof HONOURED_OPTIONS;

/** Older names OpenSSH still reads for an option, by lower-case name. */
const ALIASES: Record<string, string> = {
  identityfile2: 'identityfile',
  pubkeyacceptedkeytypes: 'pubkeyacceptedalgorithms',
  hostbasedkeytypes: 'hostbasedacceptedalgorithms',
  challengeresponseauthentication: 'kbdinteractiveauthentication',
  skeyauthentication: 'kbdinteractiveauthentication',
  tisauthentication: 'kbdinteractiveauthentication',
  dsaauthentication: 'pubkeyauthentication',
  smartcarddevice: 'pkcs11provider',
  keepalive: 'tcpkeepalive',
};

/**
 * The rest of OpenSSH's keywords (readconf.c of OpenSSH 10, with Debian's and Fedora's GSSAPI
 * additions and Apple's UseKeychain): they change nothing in what sshkeep does (it opens no
 * session, terminal or X11 display, and redials on its own), or name what OpenSSH itself has
 * dropped. Accepted, so that a config ssh reads is one sshkeep reads.
 */
const NO_EFFECT = new Set([
  'addkeystoagent', 'batchmode', 'canonicaldomains', 'canonicalizefallbacklocal', 'canonicalizemaxdots',
  'canonicalizepermittedcnames', 'connectionattempts', 'controlmaster', 'controlpath', 'controlpersist',
  'enableescapecommandline', 'enablesshkeysign', 'escapechar', 'fingerprinthash', 'forkafterauthentication',
  'forwardagent', 'forwardx11', 'forwardx11timeout', 'forwardx11trusted', 'gssapiclientidentity',
  'gssapikexalgorithms', 'gssapirenewalforcesrekey', 'gssapiserveridentity', 'gssapitrustdns',
  'hostbasedacceptedalgorithms', 'ipqos', 'kbdinteractivedevices', 'localcommand', 'loglevel', 'logverbose',
  'numberofpasswordprompts', 'obscurekeystroketiming', 'permitlocalcommand', 'permitremoteopen', 'remotecommand',
  'requesttty', 'sendenv', 'sessiontype', 'setenv', 'stdinnull', 'syslogfacility', 'tag', 'tcpkeepalive',
  'tunneldevice', 'usekeychain', 'versionaddendum', 'visualhostkey', 'warnweakcrypto', 'xauthlocation',
  // Deprecated or unsupported in OpenSSH itself.
  'afstokenpassing', 'cipher', 'compressionlevel', 'fallbacktorsh', 'globalknownhostsfile2', 'kerberosauthentication',
  'kerberostgtpassing', 'protocol', 'rhostsauthentication', 'rhostsrsaauthentication', 'rsaauthentication',
  'useprivilegedport', 'userknownhostsfile2', 'useroaming', 'usersh',
]);

/** Keywords that shape a config file and are no option: not for -o. */
const STRUCTURE = new Set(['host', 'match', 'include']);

const KEYS_AND_AGENT = 'sshkeep authenticates with ssh-agent keys, then identity files, then (on a terminal) a password';
const yes = (v: string) => /^(yes|true)$/i.test(v);
const no = (v: string) => /^(no|false)$/i.test(v);

/**
 * Options that change security, authentication or the connection and that sshkeep cannot
 * honour: never ignored in silence, from -o or ssh_config. Each says what sshkeep does instead, for the values that
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
  gssapikeyexchange: { name: 'GSSAPIKeyExchange', instead: (v) => (yes(v) ? 'GSSAPI key exchange is not supported: the key exchange checks the host key' : undefined) },
  nohostauthenticationforlocalhost: { name: 'NoHostAuthenticationForLocalhost', instead: (v) => (yes(v) ? "localhost's host key is checked as any other host's" : undefined) },
  casignaturealgorithms: { name: 'CASignatureAlgorithms', instead: () => 'certificates are not checked against this list of CA signature algorithms' },
  requiredrsasize: { name: 'RequiredRSASize', instead: () => 'RSA keys are not checked against this minimum size' },
  rekeylimit: { name: 'RekeyLimit', instead: (v) => (/^default(\s+none)?$/i.test(v.trim()) ? undefined : 'sshkeep does not start a re-key by volume or time; the server may') },
  bindaddress: { name: 'BindAddress', instead: () => 'the connection to the server leaves from the address the system picks' },
  bindinterface: { name: 'BindInterface', instead: () => 'the connection to the server leaves from the interface the system picks' },
  canonicalizehostname: { name: 'CanonicalizeHostname', instead: (v) => (no(v) ? undefined : 'host names are not canonicalized: HostName (or the destination) is looked up as given') },
  clearallforwardings: { name: 'ClearAllForwardings', instead: (v) => (yes(v) ? 'the forwards given are all set up' : undefined) },
  channeltimeout: { name: 'ChannelTimeout', instead: (v) => (v.toLowerCase() === 'none' ? undefined : 'idle channels are not closed') },
  tunnel: { name: 'Tunnel', instead: (v) => (no(v) ? undefined : 'tun/tap forwarding is not supported') },
  proxyusefdpass: { name: 'ProxyUseFdpass', instead: (v) => (yes(v) ? "the ProxyCommand's standard input and output carry the connection; no descriptor is passed" : undefined) },
  streamlocalbindunlink: { name: 'StreamLocalBindUnlink', instead: (v) => (yes(v) ? 'a -L socket file is replaced only when nothing answers on it' : undefined) },
  streamlocalbindmask: { name: 'StreamLocalBindMask', instead: (v) => (/^0*177$/.test(v.trim()) ? undefined : '-L socket files are made for their owner only (mask 0177)') },
};

/** Options sshkeep cannot honour (UNHONOURED), by lower-case key, first value of each (as OpenSSH): see `unhonouredWarnings`. */
export type Unhonoured = Map<string, { value: string; where: string }>;

/** Records an unhonoured option's first value and where it was given (`-o `, `~/.ssh/config line 3: `); false if the key is not one of them. */
export function noteUnhonoured(into: Unhonoured, key: string, value: string, where: string): boolean {
  const lower = canonicalKey(key);
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

/** An option's lower-case key, its older names read as the current one (IdentityFile2 as IdentityFile). */
export function canonicalKey(name: string): string {
  const lower = name.toLowerCase();
  return Object.hasOwn(ALIASES, lower) ? ALIASES[lower]! : lower;
}

/** Is `name` a keyword OpenSSH knows (in any case, under any of its names)? */
export function isOpenSshKeyword(name: string): boolean {
  const key = canonicalKey(name);
  return Object.hasOwn(HONOURED_OPTIONS, key) || Object.hasOwn(UNHONOURED, key) || NO_EFFECT.has(key) || STRUCTURE.has(key);
}

/** Does an IgnoreUnknown value (a pattern list, compared in lower case as OpenSSH does) cover `name`? */
export function ignoresUnknown(patterns: string | undefined, name: string): boolean {
  return patterns !== undefined && matchPatternList(patterns.toLowerCase().split(','), name.toLowerCase());
}

/**
 * Parses one `-o Key=Value` (or `Key Value`). A key OpenSSH does not know is exit 2, as in
 * OpenSSH, unless `ignoreUnknown` (an IgnoreUnknown given before it) covers it: then null.
 */
export function parseDashO(text: string, ignoreUnknown?: string): DashO | null {
  const m = /^\s*([A-Za-z0-9]+)\s*(?:=\s*|\s+)(.*?)\s*$/.exec(text);
  if (!m || m[2] === '') {
    throw new ConfigError(`-o ${text}: expected Key=Value, e.g. -o ServerAliveInterval=5.`);
  }
  const key = canonicalKey(m[1]!);
  const value = m[2]!.replace(/^"(.*)"$/, '$1');
  if (Object.hasOwn(HONOURED_OPTIONS, key)) return { key: key as OptionKey, name: HONOURED_OPTIONS[key as OptionKey], value };
  if (STRUCTURE.has(key)) throw new ConfigError(`-o ${text}: ${m[1]} belongs in an ssh_config file (-F), not on the command line, as in OpenSSH.`);
  if (isOpenSshKeyword(key)) return { key: null, name: m[1]!, value };
  if (ignoresUnknown(ignoreUnknown, key)) return null;
  throw new ConfigError(
    `-o ${text}: unknown option "${m[1]}": OpenSSH has no such option either (a misspelling?); -o IgnoreUnknown=${m[1]} before it would skip it. ` +
      `sshkeep honours ${Object.values(HONOURED_OPTIONS).join(', ')}.`,
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
