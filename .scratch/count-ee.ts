import { EventEmitter } from 'node:events';
import net from 'node:net';
import { once } from 'node:events';
import { startEchoTunnel } from '../test/fixtures/tunnel.js';

const teardowns: (() => unknown)[] = [];
const t = { teardown: (f: () => unknown) => teardowns.push(f) } as never;
const counts = new Map<string, number>();
let on = false;
for (const m of ['on', 'addListener', 'once', 'removeListener', 'off', 'emit', 'prependListener'] as const) {
  const orig = (EventEmitter.prototype as any)[m];
  (EventEmitter.prototype as any)[m] = function (this: object, ev: string | symbol, ...rest: unknown[]) {
    if (on) {
      const k = `${m} ${this.constructor?.name}.${String(ev)}`;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    return orig.call(this, ev, ...rest);
  };
}
const { bound } = await startEchoTunnel(t);
const port = bound[0]!.port;
async function one() {
  const s = net.connect(port, '127.0.0.1');
  s.setNoDelay(true);
  await once(s, 'connect');
  s.write('x');
  await once(s, 'data');
  s.end();
  await once(s, 'close');
}
for (let i = 0; i < 200; i++) await one();
await new Promise((r) => setTimeout(r, 200));
on = true;
const N = 100;
for (let i = 0; i < N; i++) await one();
await new Promise((r) => setTimeout(r, 200));
on = false;
const rows = [...counts].filter(([k]) => !k.includes(' Socket.') || true).sort((a, b) => b[1] - a[1]);
for (const [k, v] of rows) if (v / N >= 0.5) console.log((v / N).toFixed(2).padStart(6), k);
for (const f of teardowns.reverse()) await f();
process.exit(0);
