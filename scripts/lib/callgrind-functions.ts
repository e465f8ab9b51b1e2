/**
 * Instructions per function in a callgrind dump, with JavaScript names. Under valgrind, code
 * V8 compiled at run time has no symbol: callgrind names it by address (`???:0x…`). Node
 * started with --perf-basic-prof writes /tmp/perf-PID.map (start, size, name per compiled
 * function, in order of compilation), which names those addresses: the last entry that covers
 * an address is the code there now (V8 reuses code space).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

/** `callgrind_annotate`'s self (exclusive) instructions per function of one dump. */
function selfCosts(dump: string): Map<string, number> {
  const r = spawnSync('callgrind_annotate', ['--inclusive=no', '--threshold=100', dump], { encoding: 'utf8', maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`callgrind_annotate ${dump} failed: ${r.stderr}`);
  const costs = new Map<string, number>();
  for (const line of r.stdout.split('\n')) {
    const m = /^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$/.exec(line);
    if (m && !m[2]!.includes('PROGRAM TOTALS')) costs.set(m[2]!, (costs.get(m[2]!) ?? 0) + Number(m[1]!.replaceAll(',', '')));
  }
  return costs;
}

/** A lookup from an address to the compiled JavaScript function there, from a perf map. */
function perfMap(file: string): (address: number) => string | undefined {
  const entries = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line, order) => {
      const [start, size, ...name] = line.split(' ');
      return { start: parseInt(start!, 16), end: parseInt(start!, 16) + parseInt(size!, 16), name: name.join(' '), order };
    });
  return (address) => {
    let best: (typeof entries)[number] | undefined;
    for (const e of entries) if (e.start <= address && address < e.end && (!best || e.order > best.order)) best = e;
    return best?.name;
  };
}

/** Names of compiled JavaScript from the perf map `mapFile`, if there is one; none otherwise. */
const namesFrom = (mapFile: string | undefined): ((address: number) => string | undefined) =>
  mapFile && fs.existsSync(mapFile) ? perfMap(mapFile) : () => undefined;

/** A function's name as callgrind gives it, with compiled JavaScript named by `name`. */
function displayName(fn: string, name: (address: number) => string | undefined): string {
  const jit = /^\?\?\?:0x([0-9a-f]+)(?:'\d+)? \[\?\?\?\]$/.exec(fn);
  return jit ? (name(parseInt(jit[1]!, 16)) ?? 'JIT code, unnamed') : fn.replace(/ \[[^\]]*\]$/, '').replace(/^\?\?\?:/, '');
}

/** The dumps callgrind wrote: it leaves an empty file under the name it was given, and numbers the dumps beside it. */
const written = (dumps: string[]) => dumps.filter((d) => fs.statSync(d).size > 0);

/**
 * Self instructions per function in `dumps` (one process's), divided by `per`; compiled
 * JavaScript named from `mapFile` when given ("JS:*name file:line", * optimized, ^ baseline).
 */
export function functionCosts(dumps: string[], per: number, mapFile: string | undefined): Map<string, number> {
  const name = namesFrom(mapFile);
  const out = new Map<string, number>();
  for (const dump of written(dumps)) {
    for (const [fn, ir] of selfCosts(dump)) {
      const key = displayName(fn, name);
      out.set(key, (out.get(key) ?? 0) + ir / per);
    }
  }
  return out;
}

/**
 * Who calls the functions whose names contain one of `targets` (a builtin such as
 * Builtins_LoadIC_Megamorphic is called from compiled JavaScript, which only the perf map names):
 * for each such function, its callers and the instructions of the calls from each, divided by `per`.
 */
export function callerCosts(dumps: string[], per: number, mapFile: string | undefined, targets: string[]): Map<string, Map<string, number>> {
  const name = namesFrom(mapFile);
  const out = new Map<string, Map<string, number>>();
  for (const dump of written(dumps)) {
    const r = spawnSync('callgrind_annotate', ['--tree=caller', '--inclusive=no', '--threshold=100', dump], { encoding: 'utf8', maxBuffer: 256 << 20 });
    if (r.status !== 0) throw new Error(`callgrind_annotate ${dump} failed: ${r.stderr}`);
    parseCallerTree(r.stdout, per, name, targets, out);
  }
  return out;
}

/**
 * Adds to `out` the callers of the `targets` functions in `callgrind_annotate --tree=caller`'s
 * output: blocks of "N (p%)  < caller (Kx) [object]" lines, each ended by the function's own
 * "N (p%)  *  function [object]" line.
 */
export function parseCallerTree(text: string, per: number, name: (address: number) => string | undefined, targets: string[], out = new Map<string, Map<string, number>>()): Map<string, Map<string, number>> {
  let callers: [string, number][] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*([\d,]+) \(\s*[\d.]+%\)\s+([<*])\s+(.*)$/.exec(line);
    if (!m) {
      callers = [];
      continue;
    }
    const ir = Number(m[1]!.replaceAll(',', ''));
    const fn = m[3]!.replace(/ \([\d,]+x\)/, ''); // without its number of calls
    if (m[2] === '<') {
      callers.push([fn, ir]);
      continue;
    }
    const shown = displayName(fn, name);
    if (targets.some((t) => shown.includes(t))) {
      const into = out.get(shown) ?? new Map<string, number>();
      out.set(shown, into);
      for (const [caller, cost] of callers) {
        const key = displayName(caller, name);
        into.set(key, (into.get(key) ?? 0) + cost / per);
      }
    }
    callers = [];
  }
  return out;
}

/** A Markdown table of the `top` functions with the most instructions in any column, one column per tool. */
export function functionTable(columns: Array<[tool: string, costs: Map<string, number>]>, top: number): string {
  const names = new Set<string>();
  for (const [, costs] of columns) for (const [fn] of [...costs].sort((a, b) => b[1] - a[1]).slice(0, top)) names.add(fn);
  const cell = (n: number | undefined) => (n === undefined ? '—' : Math.round(n).toLocaleString('en-US'));
  const short = (fn: string) => (fn.length > 110 ? `${fn.slice(0, 107)}...` : fn).replaceAll('|', '\\|');
  return [
    `| function (self instructions per round trip) | ${columns.map(([t]) => t).join(' | ')} |`,
    `|---|${columns.map(() => '---:').join('|')}|`,
    ...[...names]
      .sort((a, b) => Math.max(...columns.map(([, c]) => c.get(b) ?? 0)) - Math.max(...columns.map(([, c]) => c.get(a) ?? 0)))
      .map((fn) => `| ${short(fn)} | ${columns.map(([, c]) => cell(c.get(fn))).join(' | ')} |`),
  ].join('\n');
}
