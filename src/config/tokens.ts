import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '../errors.js';

/** OpenSSH's `%` tokens (an unknown one is an error, as in ssh) and a leading `~`. */
export function expandTokens(text: string, tokens: Record<string, string>, home: string, what: string): string {
  const expanded = text.replace(/%(.)/g, (_, c: string) => {
    const v = Object.hasOwn(tokens, c) ? tokens[c] : undefined;
    if (v === undefined) throw new ConfigError(`${what}: unknown token %${c} in "${text}".`);
    return v;
  });
  return expandHome(expanded, home);
}

/** A leading `~` is the home directory. */
export function expandHome(file: string, home: string): string {
  return file === '~' ? home : file.startsWith('~/') ? path.join(home, file.slice(2)) : file;
}

/** HostName with its tokens: `%h` (and `%n`) is the name given. */
export function expandHostName(hostName: string, name: string, home: string): string {
  return expandTokens(hostName, { '%': '%', h: name, n: name }, home, 'HostName');
}

export interface Connection {
  /** The name given (`%n`). */
  name: string;
  /** HostName, tokens expanded (`%h`). */
  hostName: string;
  port: string;
  user: string;
  localUser: string;
  home: string;
  hostKeyAlias?: string | undefined;
  proxyJump?: string | undefined;
}

/** The tokens ssh_config's TOKENS section lists for ProxyCommand, IdentityFile, Match exec, … */
export function connectionTokens(c: Connection): Record<string, string> {
  const localHost = os.hostname();
  return {
    '%': '%',
    C: createHash('sha1').update(`${localHost}${c.hostName}${c.port}${c.user}`).digest('hex'),
    d: c.home,
    h: c.hostName,
    i: String(process.getuid?.() ?? ''),
    j: c.proxyJump ?? '',
    k: c.hostKeyAlias ?? c.name,
    L: localHost.split('.')[0]!,
    l: localHost,
    n: c.name,
    p: c.port,
    r: c.user,
    u: c.localUser,
  };
}
