import { callerCosts } from '../scripts/lib/callgrind-functions.js';
const r = callerCosts(['/tmp/cg6/sshkeep.callgrind.out.1-01'], 300, '/tmp/cg6/sshkeep.perf.map', ['Builtins_LoadIC_Megamorphic', 'Builtins_DeleteProperty']);
for (const [fn, callers] of r) { console.log(fn); for (const [c, v] of [...callers].sort((a,b)=>b[1]-a[1]).slice(0,6)) console.log('  ', Math.round(v), c); }
