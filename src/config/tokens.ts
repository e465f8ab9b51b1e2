import path from 'node:path';
import { ConfigError } from '../errors.js';

/** OpenSSH's `%` tokens (an unknown one is an error, as in ssh) and a leading `~`. */
export function expandTokens(text: string, tokens: Record<string, string>, home: string, what: string): string {
  const expanded = text.replace(/%(.)/g, (_, c: string) => {
    const v = tokens[c];
    if (v === undefined) throw new ConfigError(`${what}: unknown token %${c} in "${text}".`);
    return v;
  });
  return expanded === '~' ? home : expanded.startsWith('~/') ? path.join(home, expanded.slice(2)) : expanded;
}
