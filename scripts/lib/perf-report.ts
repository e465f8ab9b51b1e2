/** Reading `perf report` (scripts/bench-profile.ts): its samples, and what kind of code each one is. */

/** The kinds of code a sample can fall in, in a table's order. */
export const KINDS = ['kernel', 'JavaScript (compiled)', 'V8 builtins', 'V8 runtime', 'garbage collection', 'compilers', 'node C++', 'libuv', 'cryptography', 'libc', 'the program (ssh)', 'other'] as const;
export type Kind = (typeof KINDS)[number];

/** OpenSSL (linked into node, or libcrypto for ssh). */
const CRYPTO = /^(EVP_|OSSL_|ossl_|ERR_|CRYPTO_|aesni|_aesni|gcm_|aes_|chacha|poly1305|Poly1305|ChaCha)/;
const GC = /Scaveng|Heap::|Sweep|MarkCompact|Marking|Evacuat|MemoryAllocator|MemoryChunk|RememberedSet|SlotSet/;
const COMPILER = /compiler::|maglev::|baseline::|Compile|Parser|ParseInfo|Scanner|BytecodeGenerator/;

/** The kind of code `symbol` in `dso` (perf's "Shared Object") is. */
export function kindOf(dso: string, symbol: string): Kind {
  if (dso.startsWith('[kernel')) return 'kernel';
  // JIT code: named through node's --perf-basic-prof map ("[JIT] tid N"), else anonymous memory.
  if (dso.startsWith('[JIT]') || dso.startsWith('perf-') || dso === '[unknown]' || dso === '//anon') return 'JavaScript (compiled)';
  if (dso.startsWith('libcrypto') || dso === 'sshcrypto.node') return 'cryptography';
  if (dso.startsWith('libc.so') || dso.startsWith('libc-')) return 'libc';
  if (dso === 'ssh') return 'the program (ssh)';
  if (dso !== 'node') return 'other';
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
  dso: string;
  symbol: string;
  count: number;
}

/** The samples per (dso, symbol) in the text of `perf report --no-children --sort dso,sym --stdio -n`. */
export function parseReport(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    // "    12.34%          1234  node                 [.] Builtins_LoadIC"
    const m = /^\s*[\d.]+%\s+(\d+)\s+(\S+(?: tid \d+)?)\s+\[[.k]\]\s+(.*)$/.exec(line);
    if (m) out.push({ count: Number(m[1]), dso: m[2]!, symbol: m[3]!.trim() });
  }
  return out;
}
