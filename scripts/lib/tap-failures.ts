/** What failed in tap's saved results (`.tap/test-results`), for the end of a long CI log. */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const DIAGNOSTIC_LINES = 30;

function* tapFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* tapFiles(path);
    else if (entry.name.endsWith('.tap')) yield path;
  }
}

/** The `not ok` lines of one file's TAP, each with the start of its YAML block; [] if it passed. */
export function failures(tap: string): string[] {
  const lines = tap.split('\n');
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!/^\s*not ok /.test(line) || /#\s*(TODO|SKIP)\b/i.test(line)) continue;
    out.push(line);
    if (lines[i + 1]?.trim() !== '---') continue;
    const indent = line.length - line.trimStart().length;
    const inBlock = (l: string) => l.trim() !== '...' && (l.trim() === '' || l.length - l.trimStart().length > indent);
    const block: string[] = [];
    for (let n = i + 2; n < lines.length && inBlock(lines[n]!); n++) block.push(lines[n]!);
    out.push(...block.slice(0, DIAGNOSTIC_LINES));
    if (block.length > DIAGNOSTIC_LINES) out.push(`${' '.repeat(indent + 2)}(${block.length - DIAGNOSTIC_LINES} more lines)`);
  }
  if (!/^1\.\.\d+/m.test(tap)) out.push('# no plan at the top level: the file ended early (a crash or a timeout)');
  return out;
}

/**
 * A report of every failing file under `dir` written at `sinceMs` or later (tap leaves the results
 * of earlier runs there), and how many there were.
 */
export function failureReport(dir: string, sinceMs = 0): { failed: number; lines: string[] } {
  if (!existsSync(dir)) return { failed: 0, lines: [`# no test results in ${dir}: tap did not run`] };
  const lines: string[] = [];
  let failed = 0;
  for (const file of tapFiles(dir)) {
    if (statSync(file).mtimeMs < sinceMs) continue;
    const found = failures(readFileSync(file, 'utf8'));
    if (found.length === 0) continue;
    failed++;
    lines.push('', `# FAILED: ${relative(dir, file).replace(/\.tap$/, '')}`, ...found);
  }
  lines.push('', failed > 0 ? `# ${failed} test file(s) with failures in ${dir}` : `# no failing test in ${dir}: tap failed otherwise (see above)`);
  return { failed, lines };
}
