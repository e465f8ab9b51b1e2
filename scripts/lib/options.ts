/** Command-line values the scripts share. */

/**
 * A script's command line, read by `parse` (which throws on an unknown option or a bad value)
 * before the script starts anything. -h or --help: the usage on stdout, exit 0. Anything wrong:
 * one line saying what, then the usage, on stderr, and exit 2, sshkeep's own code for a usage
 * error (runMain's 1 is for a run that failed).
 */
export function parseCommandLine<T>(name: string, usage: string, parse: (argv: string[]) => T, argv = process.argv.slice(2)): T {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(usage);
    process.exit(0);
  }
  try {
    return parse(argv);
  } catch (err) {
    process.stderr.write(`${name}: ${err instanceof Error ? err.message : String(err)}\n${usage}`);
    process.exit(2);
  }
}

/** A command-line option's value as an integer of at least `min`; a clear error otherwise. */
export function intOption(name: string, v: string | undefined, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got ${v}`);
  return n;
}

/** Splits a command-line fragment on whitespace, honouring '…' and "…" quotes and backslash escapes. */
export function splitArgs(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let has = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < s.length) cur += s[++i];
      else cur += c;
    } else if (c === '"' || c === "'") (quote = c), (has = true);
    else if (c === '\\' && i + 1 < s.length) (cur += s[++i]), (has = true);
    else if (/\s/.test(c)) {
      if (has) out.push(cur);
      cur = '';
      has = false;
    } else (cur += c), (has = true);
  }
  if (quote) throw new Error(`unbalanced ${quote} in --sshkeep-args ${JSON.stringify(s)}`);
  if (has) out.push(cur);
  return out;
}

/** A CPU amount as Kubernetes writes one, in cores ("0.1", "1") or millicores ("100m"); a clear error otherwise. */
export function coresOption(name: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?|\.\d+)(m?)$/.exec(v.trim());
  const cores = m ? Number(m[1]) / (m[2] ? 1000 : 1) : NaN;
  if (!(cores >= 0.01)) throw new Error(`--${name} must be a CPU amount of at least 0.01 cores, such as 0.1 or 100m, got ${v}`);
  return cores;
}
