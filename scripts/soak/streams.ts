/**
 * The soak's client streams through sshkeep's forwards, each checked end to end: uploads and downloads
 * (sha256), short echoes, idle connections. Each ends in one outcome; a reset the Node client saw as a
 * clean EOF is told apart through /proc/net/tcp.
 */
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { HOST } from '../../test/fixtures/net.js';
import { sendRandom } from './targets.js';
import { tcpPairListed } from './tcp-pair.js';
import { OUTCOMES, type Active, type Outcome, type SoakReport, type StreamCtl, type StreamKind, type StreamRecord } from './types.js';

export class Streams {
  readonly active = new Set<Active>();
  readonly counts = Object.fromEntries(
    (['upload', 'download', 'echo', 'idle'] as StreamKind[]).map((k) => [k, { started: 0, bytesVerified: 0, ...Object.fromEntries(OUTCOMES.map((o) => [o, 0])) }]),
  ) as SoakReport['streams'];
  /** Every non-ok record (resets included). */
  readonly kept: StreamRecord[] = [];
  resetSeenAsEof = 0;
  #seq = 0;
  readonly #sockets = new Set<net.Socket>();
  readonly #at: () => number;
  readonly #bulkRate: number;
  readonly #fwd: { sink: number; source: number; echo: number };
  /** Resolves at the final phase (idle connections then send their last echo). */
  readonly #finalPhase: Promise<void>;
  startFinal!: () => void;

  /** `at`: ms since the start of the run; `fwd`: sshkeep's local ports for the sink, the source and the echo. */
  constructor(at: () => number, bulkRate: number, fwd: { sink: number; source: number; echo: number }) {
    this.#at = at;
    this.#bulkRate = bulkRate;
    this.#fwd = fwd;
    this.#finalPhase = new Promise<void>((r) => (this.startFinal = r));
  }

  /** Settles as stalled every busy stream without progress for `stallMs`. */
  settleStalled(stallMs: number): void {
    const now = performance.now();
    for (const a of [...this.active]) if (!a.idle && now - a.lastProgress > stallMs) a.settle('stalled', `no progress for ${Math.round((now - a.lastProgress) / 1000)} s`);
  }

  /** Settles what still runs as `outcome`. */
  settleAll(outcome: Outcome, detail: string): void {
    for (const a of [...this.active]) a.settle(outcome, detail);
  }

  destroyAll(): void {
    for (const s of this.#sockets) s.destroy();
  }

  /** Streams with the given outcomes, over every kind. */
  total(...outcomes: Outcome[]): number {
    return Object.values(this.counts).reduce((n, c) => n + outcomes.reduce((m, o) => m + c[o], 0), 0);
  }

  #run(kind: StreamKind, size: number, port: number, body: (s: net.Socket, ctl: StreamCtl) => void): Promise<StreamRecord> {
    return new Promise((resolve) => {
      const rec: StreamRecord = { id: ++this.#seq, kind, size, startMs: this.#at(), endMs: 0, outcome: 'ok' };
      this.counts[kind].started++;
      const sock = net.connect({ port, host: HOST, allowHalfOpen: true });
      sock.setNoDelay(true);
      this.#sockets.add(sock);
      let settled = false;
      const a: Active = {
        rec,
        lastProgress: performance.now(),
        idle: false,
        settle: (outcome, detail) => {
          if (settled) return;
          settled = true;
          if (outcome === 'truncated' && rec.localPort !== undefined && tcpPairListed(rec.localPort, port) === false) {
            // No FIN exchange on record: sshkeep reset the stream and libuv reported the RST as EOF.
            outcome = 'reset';
            detail = `ECONNRESET seen as EOF by the Node client (${detail ?? ''}); no FIN exchange in /proc/net/tcp`;
            this.resetSeenAsEof++;
          }
          rec.endMs = this.#at();
          rec.outcome = outcome;
          if (detail) rec.detail = detail;
          this.active.delete(a);
          this.#sockets.delete(sock);
          sock.destroy();
          this.counts[kind][outcome]++;
          if (outcome === 'ok') this.counts[kind].bytesVerified += size;
          else this.kept.push(rec);
          resolve(rec);
        },
      };
      this.active.add(a);
      const ctl: StreamCtl = {
        get settled() {
          return settled;
        },
        progress: () => (a.lastProgress = performance.now()),
        settle: a.settle,
        setIdle: (idle) => {
          a.idle = idle;
          a.lastProgress = performance.now();
        },
      };
      sock.once('connect', () => {
        rec.localPort = sock.localPort;
        ctl.progress();
      });
      sock.on('error', (e: NodeJS.ErrnoException) => a.settle(e.code === 'ECONNRESET' || e.code === 'EPIPE' ? 'reset' : 'error', e.code ?? e.message));
      sock.on('close', () => a.settle('error', 'closed without an end or an error'));
      body(sock, ctl);
    });
  }

  upload(size: number): Promise<StreamRecord> {
    return this.#run('upload', size, this.#fwd.sink, (sock, ctl) => {
      let reply = '';
      let digest: string | undefined;
      let wrote = false;
      sock.on('data', (c: Buffer) => {
        ctl.progress();
        reply += c.toString('latin1');
        if (reply.length > 200) ctl.settle('corrupt', `unexpected reply: ${JSON.stringify(reply.slice(0, 80))}…`);
      });
      sock.on('end', () => {
        if (!wrote) return ctl.settle('truncated', `clean EOF after ${reply.length} reply bytes, before the upload was written`);
        const m = /^(\d+) ([0-9a-f]{64})\n$/.exec(reply);
        if (!m) return ctl.settle(reply.endsWith('\n') ? 'corrupt' : 'truncated', `reply ${JSON.stringify(reply.slice(0, 100))}`);
        if (Number(m[1]) !== size || m[2] !== digest) return ctl.settle('corrupt', `sink got ${m[1]} bytes ${m[2]!.slice(0, 12)}…, sent ${size} bytes ${digest!.slice(0, 12)}…`);
        ctl.settle('ok');
      });
      sock.once('connect', () => {
        void sendRandom(sock, size, this.#bulkRate, () => !ctl.settled, ctl.progress).then((d) => {
          if (d === undefined || ctl.settled) return;
          digest = d;
          wrote = true;
          sock.end();
        });
      });
    });
  }

  download(size: number): Promise<StreamRecord> {
    return this.#run('download', size, this.#fwd.source, (sock, ctl) => {
      const hash = createHash('sha256');
      let got = 0;
      let trailer = '';
      sock.on('data', (c: Buffer) => {
        ctl.progress();
        const body = Math.max(0, Math.min(c.length, size - got));
        if (body > 0) hash.update(c.subarray(0, body));
        if (body < c.length) trailer += c.subarray(body).toString('latin1');
        got += c.length;
        if (got > size + 64) ctl.settle('corrupt', `${got - size - 64} bytes more than announced`);
      });
      sock.on('end', () => {
        if (got < size + 64) return ctl.settle('truncated', `clean EOF after ${got} of ${size + 64} bytes`);
        const mine = hash.digest('hex');
        if (trailer !== mine) return ctl.settle('corrupt', `announced ${trailer.slice(0, 12)}…, received data hashes to ${mine.slice(0, 12)}…`);
        ctl.settle('ok');
      });
      sock.once('connect', () => sock.end(`${size}\n`));
    });
  }

  echo(size: number): Promise<StreamRecord> {
    return this.#run('echo', size, this.#fwd.echo, (sock, ctl) => {
      const payload = randomBytes(size);
      const got: Buffer[] = [];
      let n = 0;
      sock.on('data', (c: Buffer) => {
        ctl.progress();
        got.push(c);
        n += c.length;
        if (n > size) ctl.settle('corrupt', `${n} bytes echoed for ${size} sent`);
      });
      sock.on('end', () => {
        if (n < size) return ctl.settle('truncated', `clean EOF after ${n} of ${size} echoed bytes`);
        if (!Buffer.concat(got).equals(payload)) return ctl.settle('corrupt', 'echoed bytes differ');
        ctl.settle('ok');
      });
      sock.once('connect', () => sock.end(payload));
    });
  }

  /** A connection that echoes once, idles until startFinal(), echoes once more and ends. */
  idle(): Promise<StreamRecord> {
    return this.#run('idle', 64, this.#fwd.echo, (sock, ctl) => {
      const hello = randomBytes(32);
      const last = randomBytes(32);
      let expect = hello;
      let got = Buffer.alloc(0);
      let phase: 'hello' | 'idle' | 'final' = 'hello';
      sock.on('data', (c: Buffer) => {
        ctl.progress();
        if (phase === 'idle') return ctl.settle('corrupt', `${c.length} unexpected bytes while idle`);
        got = Buffer.concat([got, c]);
        if (got.length < expect.length) return;
        if (got.length > expect.length || !got.equals(expect)) return ctl.settle('corrupt', `wrong ${phase} echo`);
        got = Buffer.alloc(0);
        if (phase === 'hello') {
          phase = 'idle';
          ctl.setIdle(true);
          void this.#finalPhase.then(() => {
            if (ctl.settled) return;
            phase = 'final';
            expect = last;
            ctl.setIdle(false);
            sock.write(last);
          });
        } else {
          sock.end(); // the echo server ends when we do
          phase = 'idle';
          ctl.setIdle(false);
        }
      });
      sock.on('end', () => {
        if (phase === 'idle' && expect === last) return ctl.settle('ok');
        ctl.settle('truncated', `clean EOF in the ${phase} phase`);
      });
      sock.once('connect', () => sock.write(hello));
    });
  }
}
