/** Reading `perf report` (scripts/bench-profile.ts): its samples, and what kind of code each one is. */
import path from 'node:path';

/** The kinds of code a sample can fall in, in a table's order. */
export const KINDS = ['kernel', 'JavaScript (compiled)', 'V8 builtins', 'V8 runtime', 'garbage collection', 'compilers', 'node C++', 'libuv', 'cryptography', 'libc', 'the program (ssh)', 'other'] as const;
export type Kind = (typeof KINDS)[number];

/** OpenSSL (linked into node, or libcrypto for ssh). */
const CRYPTO = /^(EVP_|OSSL_|ossl_|ERR_|CRYPTO_|aesni|_aesni|gcm_|aes_|chacha|poly1305|Poly1305|ChaCha)/;
// Loose on purpose: a V8 allocation path (Heap::AllocateRaw) counts as GC, a JSON parser as a compiler.
const GC = /Scaveng|Heap::|Sweep|MarkCompact|Marking|Evacuat|MemoryAllocator|MemoryChunk|RememberedSet|SlotSet/;
const COMPILER = /compiler::|maglev::|baseline::|Compile|Parser|ParseInfo|Scanner|BytecodeGenerator/;

/** Where node started with --perf-basic-prof writes its map of compiled code: V8 writes under /tmp (under valgrind the pid is the program's). */
export function perfMapOf(pid: number): string {
  return `/tmp/perf-${pid}.map`;
}

/** The name node's own code is under in perf's "Shared Object" column: node's executable (`nodejs` on some distributions). */
const NODE = path.basename(process.execPath);

/** The kind of code a sample is: in the kernel (any kernel code, modules too), or `symbol` in `dso` (perf's "Shared Object"). */
export function kindOf(sample: Pick<Sample, 'kernel' | 'dso' | 'symbol'>): Kind {
  const { dso, symbol } = sample;
  if (sample.kernel) return 'kernel';
  // JIT code: named through node's --perf-basic-prof map ("[JIT] tid N"), else anonymous memory.
  if (dso.startsWith('[JIT]') || dso.startsWith('perf-') || dso === '[unknown]' || dso === '//anon') return 'JavaScript (compiled)';
  if (dso.startsWith('libcrypto') || dso === 'sshcrypto.node') return 'cryptography';
  if (dso.startsWith('libc.so') || dso.startsWith('libc-')) return 'libc';
  if (dso === 'ssh') return 'the program (ssh)';
  if (dso !== NODE) return 'other';
  if (symbol.startsWith('Builtins_')) return 'V8 builtins';
  if (GC.test(symbol)) return 'garbage collection';
  if (COMPILER.test(symbol)) return 'compilers';
  if (CRYPTO.test(symbol)) return 'cryptography';
  if (/^uv_|^uv__/.test(symbol)) return 'libuv';
  if (/^(v8::|Nan::)/.test(symbol)) return 'V8 runtime';
  if (/^node::|^non-virtual thunk to node::/.test(symbol)) return 'node C++';
  return 'other';
}

export interface Sample {
  /** perf marked it [k]: kernel code. */
  kernel: boolean;
  dso: string;
  symbol: string;
  count: number;
}

/** The samples per (dso, symbol) in the text of `perf report --no-children --sort dso,sym --stdio -n`. */
export function parseReport(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    // "    12.34%          1234  node                 [.] Builtins_LoadIC"
    const m = /^\s*[\d.]+%\s+(\d+)\s+(\S+(?: tid \d+)?)\s+\[([.k])\]\s+(.*)$/.exec(line);
    if (m) out.push({ count: Number(m[1]), kernel: m[3] === 'k', dso: m[2]!, symbol: m[4]!.trim() });
  }
  return out;
}
