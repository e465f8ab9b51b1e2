/** The known name `name` is most likely a misspelling of (at most two letters off), if any. */
export function nearest(name: string, known: readonly string[]): string | undefined {
  return known.find((k) => editDistance(name, k) <= 2);
}

/** Levenshtein distance: letters inserted, deleted or replaced to turn `a` into `b`. */
function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length]!;
}
