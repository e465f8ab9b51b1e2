import { ConfigError } from '../errors.js';

/** A raw setting as given, with where it was given, so an error names that place. */
export interface Sourced {
  value: string;
  /** `--hold-timeout`, `SSHKEEP_HOLD_TIMEOUT`, `tunnels.yaml: tunnels[1].holdTimeout`, `~/.ssh/config line 12: Port`. */
  source: string;
}

/** A library caller's plain string, or a value that names its source. */
export type Raw = string | Sourced;

/** A plain string is named by `fallback` (the flag a library caller stands in for). */
export function sourced(raw: Raw, fallback: string): Sourced {
  return typeof raw === 'string' ? { value: raw, source: fallback } : raw;
}

/** The string alone, whichever form it was given in. */
export const textOf = (raw: Raw): string => (typeof raw === 'string' ? raw : raw.value);

/** The strings alone, for what reads values but names no source. */
export const valuesOf = (list: readonly Sourced[] | undefined): string[] => (list ?? []).map((s) => s.value);

/** Names a part of a value (`-J a:0: port`), after the value's own place unless that is the flag the part already names. */
export function partOf(raw: Sourced, flag: string, part: string): string {
  return raw.source === flag ? part : `${raw.source}: ${part}`;
}

/**
 * A bad value whose message starts with its source: nothing above it adds a place (a file
 * tunnel's path). To a user and to callers it is a ConfigError, name included.
 */
export class SourcedError extends ConfigError {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Parses a value with `parse(text, what)`, its errors naming the value's source. */
export function parseSourced<T>(raw: Sourced, parse: (text: string, what: string) => T): T {
  try {
    return parse(raw.value, raw.source);
  } catch (err) {
    if (err instanceof ConfigError && !(err instanceof SourcedError)) throw new SourcedError(err.message);
    throw err;
  }
}

/**
 * Parses a value whose parser names the value itself (`-L spec: …`): an error is put after the
 * value's place, unless that place is the flag the message already starts with.
 */
export function parseNamed<T>(raw: Sourced, flag: string, parse: (text: string) => T): T {
  try {
    return parse(raw.value);
  } catch (err) {
    if (!(err instanceof ConfigError) || raw.source === flag) throw err;
    throw new SourcedError(`${raw.source}: ${err.message}`);
  }
}
