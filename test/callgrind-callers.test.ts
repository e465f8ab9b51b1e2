/**
 * scripts/lib/callgrind-functions.ts's reading of `callgrind_annotate --tree=caller`: the callers of
 * a builtin, with compiled JavaScript (an address to callgrind) named from node's perf map.
 */
import t from 'tap';
import { parseCallerTree } from '../scripts/lib/callgrind-functions.js';

// As callgrind_annotate 3.19 prints it, cut down: two functions, their callers above each.
const TREE = `
--------------------------------------------------------------------------------
Ir                  file:function
--------------------------------------------------------------------------------
2,192,540 ( 3.44%)  < ???:Builtins_KeyedLoadICTrampoline_Megamorphic (8,404x) [/usr/bin/node]
  397,200 ( 0.62%)  < ???:0x000000000d154600 (2,700x) [???]
  327,600 ( 0.51%)  < ???:0x000000000d11a440'2 (3,000x) [???]
2,192,540 ( 3.44%)  *  ???:Builtins_KeyedLoadIC_Megamorphic [/usr/bin/node]

  230,700 ( 0.36%)  < ???:0x000000000d12f0c0 (300x) [???]
  199,500 ( 0.31%)  *  ???:Builtins_DeleteProperty [/usr/bin/node]

  100,000 ( 0.20%)  < ???:0x000000000d154600 (300x) [???]
   50,000 ( 0.10%)  *  ???:0x000000000d11a440 [???]
`;

const MAP: Array<[number, number, string]> = [
  [0x0d154600, 0x200, 'JS:*listener.onconnection file:///x/accept-handles.js:16:42'],
  [0x0d11a440, 0x100, 'JS:*Readable.on node:internal/streams/readable:1127:33'],
];
const name = (a: number) => MAP.find(([start, size]) => start <= a && a < start + size)?.[2];

t.test("the callers of a builtin, by the perf map's names, per unit", async (t) => {
  const out = parseCallerTree(TREE, 300, name, ['KeyedLoadIC_Megamorphic']);
  t.same([...out.keys()], ['Builtins_KeyedLoadIC_Megamorphic'], 'only the function asked for');
  t.same(Object.fromEntries(out.get('Builtins_KeyedLoadIC_Megamorphic')!), {
    Builtins_KeyedLoadICTrampoline_Megamorphic: 2_192_540 / 300,
    'JS:*listener.onconnection file:///x/accept-handles.js:16:42': 397_200 / 300,
    'JS:*Readable.on node:internal/streams/readable:1127:33': 327_600 / 300, // a recursive call's '2 too
  });
});

t.test('a block ends at its function: callers of one are not counted for the next; compiled code is found by its name', async (t) => {
  const out = parseCallerTree(TREE, 1, name, ['DeleteProperty', 'Readable.on']);
  t.same(Object.fromEntries(out.get('Builtins_DeleteProperty')!), { 'JIT code, unnamed': 230_700 }, 'an address outside the map');
  t.same(Object.fromEntries(out.get('JS:*Readable.on node:internal/streams/readable:1127:33')!), {
    'JS:*listener.onconnection file:///x/accept-handles.js:16:42': 100_000,
  });
});
