/**
 * OpenSSH's match_pattern: `*` matches any run of characters, `?` exactly one, anything else
 * itself (case-sensitive). Greedy with one backtrack point, so linear in practice and never
 * exponential, whatever the pattern.
 */
export function matchPattern(pattern: string, name: string): boolean {
  let p = 0;
  let n = 0;
  let star = -1;
  let resumeAt = 0;
  while (n < name.length) {
    const c = pattern[p];
    if (c === '*') {
      star = p++;
      resumeAt = n;
    } else if (c !== undefined && (c === '?' || c === name[n])) {
      p++;
      n++;
    } else if (star >= 0) {
      // Let the last `*` take one more character and retry from there.
      p = star + 1;
      n = ++resumeAt;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}

/**
 * OpenSSH's match_pattern_list: true when some entry matches `name` and no negated (`!`) entry
 * does, whatever their order. Empty entries match nothing.
 */
export function matchPatternList(patterns: readonly string[], name: string): boolean {
  let positive = false;
  for (const entry of patterns) {
    const negated = entry.startsWith('!');
    const pattern = negated ? entry.slice(1) : entry;
    if (!pattern || !matchPattern(pattern, name)) continue;
    if (negated) return false;
    positive = true;
  }
  return positive;
}
