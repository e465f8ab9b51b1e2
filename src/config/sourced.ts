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
