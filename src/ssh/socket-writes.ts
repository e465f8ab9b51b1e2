import net from 'node:net';
import type { Duplex } from 'node:stream';
import { errnoError, streamWrap as wrap, type WriteReq } from '../stream-wrap.js';

/** libuv's TCP handle, the write side, as Node's stream_wrap binding exposes it. */
interface WriteHandle {
  writeBuffer(req: WriteReq, bytes: Buffer): number;
  writev(req: WriteReq, chunks: Buffer[], allBuffers: true): number;
}

/** The fields of a net.Socket this file reads or replaces (Node 20). */
interface SocketInternals {
  _handle: Partial<WriteHandle> | null;
  _final(cb: (err?: Error | null) => void): void;
}

/**
 * The SSH connection's writes, straight to its TCP socket's libuv handle. ssh2 writes each packet
 * with `sock.write()`; through net.Socket's Writable each write costs a WriteWrap, the Writable's
 * state and buffer, and a tick for its callback, which a new connection (a handful of packets)
 * paid about 100,000 instructions for while V8 warms up (BENCHMARKS.md, issue 17). Here a write
 * goes to libuv at once, or, after hold(), with the others of this turn of the event loop in one
 * writev in the check phase, as OpenSSH's poll loop sends them (what cork() and uncork() did).
 *
 * Order: libuv writes a stream's requests in the order given, a write the kernel could not take
 * at once before any later one; and every write of the socket comes here, so its Writable stays
 * empty. `end()` sends what is held before the FIN (net.Socket's `_final`, which libuv queues
 * behind the writes). A write that fails destroys the socket with the error, as net.Socket does.
 * After the server's FIN ssh2 no longer writes (its isWritable() sees the Readable ended), so the
 * `write` Node then puts on a socket that does not allow half-open, which would go through the
 * Writable and overtake what is held, is never called.
 */
export interface SocketWrites {
  /** Holds this turn's writes until the event loop's check phase, then sends them in one system call. */
  hold(): void;
}

/**
 * Takes over `sock`'s writes if it is a connected TCP socket whose handle is as this file knows it
 * and whose Writable holds nothing; undefined otherwise (a jump host's channel, a ProxyCommand's
 * pipes), and writes stay the stream's. The state is in closures, not a class's private fields:
 * V8 reached those through megamorphic keyed loads from ssh2's inlined sendPacket.
 */
export function takeWrites(sock: Duplex): SocketWrites | undefined {
  if (!wrap || !(sock instanceof net.Socket) || sock.connecting || !sock.writable || sock.writableLength > 0 || sock.writableCorked > 0) return undefined;
  const internals = sock as unknown as SocketInternals;
  if (typeof internals._handle?.writeBuffer !== 'function' || typeof internals._handle.writev !== 'function') return undefined;
  /** The writes of this turn, held for the check phase (hold()); undefined: written at once. */
  let held: Buffer[] | undefined;

  /** Hands `bytes` to libuv; those it cannot write at once are kept until it has. */
  const send = (bytes: Buffer | Buffer[]): void => {
    // Not sock.destroyed: its getter reads the stream states through a load V8 finds megamorphic. destroy() drops the handle.
    const handle = internals._handle as WriteHandle | null;
    if (!handle) return;
    const req = new wrap!.WriteWrap();
    req.handle = handle;
    const err = Array.isArray(bytes) ? handle.writev(req, bytes, true) : handle.writeBuffer(req, bytes);
    if (err) return void sock.destroy(errnoError(err, 'write'));
    if (!wrap!.streamBaseState[wrap!.kLastWriteWasAsync]) return;
    req.buffer = bytes;
    req.oncomplete = (status) => void (status < 0 && sock.destroy(errnoError(status, 'write')));
  };
  const flush = (): void => {
    const chunks = held;
    held = undefined;
    if (chunks?.length === 1) send(chunks[0]!);
    else if (chunks?.length) send(chunks);
  };

  const final = internals._final;
  internals._final = (cb) => {
    flush();
    final.call(sock, cb);
  };
  (sock as { write: (chunk: Buffer) => boolean }).write = (chunk) => {
    if (held) held.push(chunk);
    else send(chunk);
    return true;
  };
  return {
    hold: () => {
      if (held) return;
      held = [];
      setImmediate(flush);
    },
  };
}
