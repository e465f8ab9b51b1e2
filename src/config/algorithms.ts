/**
 * OpenSSH's algorithm options (HostKeyAlgorithms, PubkeyAcceptedAlgorithms, KexAlgorithms,
 * Ciphers, MACs), read as ssh_config(5) reads them: a list replaces the default, `+list` appends
 * to it, `-list` removes from it, `^list` puts first; `*` and `?` patterns match the names
 * supported. Names are those ssh2 negotiates; one it does not know is exit 2, naming it.
 */
import { ConfigError } from '../errors.js';
import { matchPattern } from './host-pattern.js';

export interface AlgorithmCatalogue {
  /** What is asked for when the option is not given, in order of preference. */
  default: readonly string[];
  /** Every name the option may list. */
  supported: readonly string[];
}

const isPattern = (name: string) => /[*?]/.test(name);

/** The names of `supported` that an entry (a name or a pattern) stands for; a plain name ssh2 does not know is an error. */
function expand(entry: string, catalogue: AlgorithmCatalogue, what: string): string[] {
  if (!isPattern(entry)) {
    if (catalogue.supported.includes(entry)) return [entry];
    throw new ConfigError(`${what}: "${entry}" is not an algorithm sshkeep's SSH library (ssh2) supports; it supports ${catalogue.supported.join(', ')}.`);
  }
  return catalogue.supported.filter((name) => matchPattern(entry, name));
}

/** The algorithm list a value of one of these options asks for, in order, without repeats. */
export function parseAlgorithms(text: string, what: string, catalogue: AlgorithmCatalogue): string[] {
  const form = /^[+\-^]/.test(text) ? text[0] : '';
  const entries = text.slice(form.length).split(',').map((e) => e.trim());
  if (entries.some((e) => e === '')) throw new ConfigError(`${what}: "${text}" has an empty name; expected a comma-separated list, optionally after +, - or ^.`);
  const named = entries.flatMap((e) => expand(e, catalogue, what));
  let list: string[];
  if (form === '+') list = [...catalogue.default, ...named];
  else if (form === '^') list = [...named, ...catalogue.default];
  else if (form === '-') list = catalogue.default.filter((name) => !named.includes(name));
  else list = named;
  list = [...new Set(list)];
  if (list.length === 0) throw new ConfigError(`${what}: "${text}" leaves no algorithm to negotiate.`);
  return list;
}
