/** scripts/lib/perf-report.ts: reading `perf report` and sorting its samples into kinds of code (scripts/bench-profile.ts). */
import path from 'node:path';
import t from 'tap';
import { kindOf, parseReport } from '../scripts/lib/perf-report.js';

// Lines as perf 6.1 prints them (`perf report --no-children --sort dso,sym --stdio -n`), header included;
// node's own code is under its executable's name.
const NODE = path.basename(process.execPath);
const REPORT = `# Samples: 9K of event 'cpu-clock'
# Overhead       Samples  Shared Object        Symbol
# ........  ............  ...................  ......
#
    19.39%          1846  [kernel.kallsyms]    [k] finish_task_switch.isra.0
     1.13%           108  node                 [.] Builtins_KeyedLoadIC_Megamorphic
     0.99%            94  [JIT] tid 9440       [.] JS:*CHANNEL_DATA /work/main/node_modules/ssh2/lib/client.js:572:23
     0.88%            84  libc.so.6            [.] _int_malloc
     0.85%            81  node                 [.] v8::internal::(anonymous namespace)::Invoke
     0.30%            29  sshcrypto.node       [.] Nan::imp::FunctionCallbackWrapper
     0.25%            24  node                 [.] EVP_CIPHER_CTX_ctrl
     0.20%            19  node                 [.] v8::internal::Scavenger::ScavengePage
     0.10%             9  ssh                  [.] 0x000000000005c9a8
     0.05%             4  [nf_conntrack]       [k] nf_conntrack_in
`.replaceAll('  node  ', `  ${NODE}  `);

t.test('every sample line is read, with its count, shared object and symbol; the header is not', async (t) => {
  const samples = parseReport(REPORT);
  t.equal(samples.length, 10);
  t.same(samples[0], { count: 1846, kernel: true, dso: '[kernel.kallsyms]', symbol: 'finish_task_switch.isra.0' });
  t.same(samples[2], { count: 94, kernel: false, dso: '[JIT] tid 9440', symbol: 'JS:*CHANNEL_DATA /work/main/node_modules/ssh2/lib/client.js:572:23' });
  t.same(samples[4], { count: 81, kernel: false, dso: NODE, symbol: 'v8::internal::(anonymous namespace)::Invoke' });
  t.equal(samples.reduce((a, s) => a + s.count, 0), 1846 + 108 + 94 + 84 + 81 + 29 + 24 + 19 + 9 + 4);
});

t.test('each sample falls in its kind of code', async (t) => {
  const kinds = parseReport(REPORT).map(kindOf);
  t.same(kinds, ['kernel', 'V8 builtins', 'JavaScript (compiled)', 'libc', 'V8 runtime', 'cryptography', 'cryptography', 'garbage collection', 'the program (ssh)', 'kernel']);
  t.equal(kindOf({ kernel: false, dso: NODE, symbol: 'uv__io_poll' }), 'libuv');
  t.equal(kindOf({ kernel: false, dso: NODE, symbol: 'node::StreamBase::WriteBuffer' }), 'node C++');
  t.equal(kindOf({ kernel: false, dso: NODE, symbol: 'v8::internal::compiler::GraphReducer::ReduceTop' }), 'compilers');
  t.equal(kindOf({ kernel: false, dso: 'libcrypto.so.3', symbol: 'EVP_Cipher' }), 'cryptography');
  t.equal(kindOf({ kernel: false, dso: 'libstdc++.so.6.0.30', symbol: 'operator delete' }), 'other');
  t.equal(kindOf({ kernel: false, dso: NODE, symbol: 'main' }), 'other');
});
