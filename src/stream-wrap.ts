import { getSystemErrorName } from 'node:util';

/**
 * Node's stream bindings (process.binding('stream_wrap'), Node 20, DEP0111): the requests and
 * shared state with which net.Socket drives libuv's handles. TcpClient (-L and -D clients) and
 * connectTcp (-R targets) drive handles with them, without net.Socket's stream layers.
 */

/** A write request: `oncomplete` is called only for a write libuv finishes later, which must keep its bytes until then. */
export interface WriteReq {
  handle: object;
  oncomplete: (status: number) => void;
  bytes: number;
  buffer: Buffer | Buffer[];
}

export interface ShutdownReq {
  handle: object;
  oncomplete: (status: number) => void;
}

export interface StreamWrap {
  WriteWrap: new () => WriteReq;
  ShutdownWrap: new () => ShutdownReq;
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
  kLastWriteWasAsync: number;
}

/**
 * Node's internal binding `name` when `check` finds it as this code knows it; undefined otherwise,
 * or where asking for it would warn: pending deprecation (however it was turned on: flag,
 * NODE_OPTIONS or NODE_PENDING_DEPRECATION) wraps process.binding in Node's deprecation wrapper.
 */
export function nodeBinding<T>(name: string, check: (binding: Partial<T>) => boolean): T | undefined {
  const binding = (process as unknown as { binding?: (name: string) => unknown }).binding;
  if (typeof binding !== 'function' || binding.name === 'deprecated') return undefined;
  try {
    const b = binding(name) as Partial<T>;
    return check(b) ? (b as T) : undefined;
  } catch {
    return undefined;
  }
}

export const streamWrap = nodeBinding<StreamWrap>(
  'stream_wrap',
  (w) => typeof w.WriteWrap === 'function' && typeof w.ShutdownWrap === 'function' && w.streamBaseState instanceof Int32Array &&
    typeof w.kReadBytesOrError === 'number' && typeof w.kLastWriteWasAsync === 'number',
);

/** A libuv error code as net.Socket reports it: `${syscall} ${code}`, with errno, code and syscall set. */
export function errnoError(errno: number, syscall: string): NodeJS.ErrnoException {
  const code = getSystemErrorName(errno);
  return Object.assign(new Error(`${syscall} ${code}`), { errno, code, syscall });
}
