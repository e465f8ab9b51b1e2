/** The clients of the scenarios: a request whose failure is classified, an idle connection that reports how it ends. */
import net from 'node:net';
import { HOST, deadline } from '../../test/fixtures/net.js';
import { now } from './tool.js';

export type FailKind = 'refused' | 'reset' | 'eof' | 'timeout' | 'corrupt' | 'closed' | `error:${string}`;

export interface Req {
  /** When the connection was started (performance.now()). */
  t0: number;
  ok: boolean;
  firstByteAt?: number;
  doneAt?: number;
  failure?: FailKind;
  failedAt?: number;
}

let reqSeq = 0;

/**
 * One request through the forward: connect, send a unique payload, wait for all of it to come back
 * (the target echoes). Never rejects: failures are classified.
 */
export function request(port: number, timeoutMs: number): Promise<Req> {
  const payload = Buffer.from(`request ${++reqSeq} ${'x'.repeat(40)}\n`);
  const r: Req = { t0: now(), ok: false };
  return new Promise((resolve) => {
    const s = net.connect({ port, host: HOST });
    s.setNoDelay(true);
    const got: Buffer[] = [];
    let n = 0;
    let settled = false;
    const finish = (failure?: FailKind) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (failure) {
        r.failure = failure;
        r.failedAt = now();
      } else {
        r.ok = true;
        r.doneAt = now();
      }
      s.on('error', () => {});
      s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    s.once('connect', () => s.write(payload));
    s.on('data', (c: Buffer) => {
      r.firstByteAt ??= now();
      got.push(c);
      n += c.length;
      if (n >= payload.length) finish(Buffer.concat(got).subarray(0, payload.length).equals(payload) ? undefined : 'corrupt');
    });
    s.on('end', () => finish('eof'));
    s.on('error', (e: NodeJS.ErrnoException) =>
      finish(e.code === 'ECONNREFUSED' ? 'refused' : e.code === 'ECONNRESET' || e.code === 'EPIPE' ? 'reset' : `error:${e.code ?? e.message}`),
    );
    s.on('close', () => finish('closed'));
  });
}

export interface IdleOutcome {
  kind: 'eof' | 'reset' | 'closed' | 'still open' | `error:${string}`;
  at?: number;
}

/** An established, idle forwarded connection (one round trip done); `outcome` tells how it ends. */
export async function openIdle(port: number): Promise<{ outcome: Promise<IdleOutcome>; destroy(): void }> {
  const s = net.connect({ port, host: HOST });
  s.setNoDelay(true);
  const outcome = new Promise<IdleOutcome>((resolve) => {
    s.on('end', () => resolve({ kind: 'eof', at: now() }));
    s.on('error', (e: NodeJS.ErrnoException) => resolve({ kind: e.code === 'ECONNRESET' ? 'reset' : `error:${e.code ?? e.message}`, at: now() }));
    s.on('close', () => resolve({ kind: 'closed', at: now() }));
  });
  await deadline(
    new Promise<void>((resolve, reject) => {
      s.once('connect', () => s.write('hello'));
      s.once('data', () => resolve());
      s.once('error', reject);
      s.once('close', () => reject(new Error('idle connection closed before its first echo')));
    }),
    10_000,
    'the idle connection\'s first echo',
  );
  return { outcome, destroy: () => s.destroy() };
}
