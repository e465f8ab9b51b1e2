/** The events of a local socket: net.Socket's, each with at most one argument. */
export type SocketEvent = 'data' | 'end' | 'drain' | 'finish' | 'error' | 'close';

/**
 * What holding and pumping need of a local socket: a net.Socket (--resume, Unix sockets), or over
 * TCP a TcpClient (src/forward/tcp-client.ts: -L and -D clients, -R targets). Its events are
 * net.Socket's: 'data' (Buffer) while resumed, 'end' at the peer's FIN, 'drain', 'finish' once
 * our FIN is out, 'error' (an errno error), 'close'.
 */
export interface LocalSocket {
  on(event: SocketEvent, listener: (...args: any[]) => void): this;
  once(event: SocketEvent, listener: (...args: any[]) => void): this;
  off(event: SocketEvent, listener: (...args: any[]) => void): this;
  pause(): this;
  resume(): this;
  /** False: wait for 'drain' before writing more. */
  write(chunk: Buffer): boolean;
  /** Sends FIN after what was written; `cb` once it is out. */
  end(cb?: () => void): this;
  destroy(): this;
  /** Closes with a TCP reset (TCP only). */
  resetAndDestroy(): this;
  readonly destroyed: boolean;
  readonly writableEnded: boolean;
  readonly writableFinished: boolean;
  /** Undefined for a Unix socket. */
  readonly remoteFamily?: string | undefined;
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
  readonly bytesRead: number;
  readonly bytesWritten: number;
  /** A TcpClient's small reads as views to a reader that copies what it keeps, instead of 'data' (TcpClient.lendReads). */
  lendReads?(borrower: ((view: Uint8Array) => void) | undefined): void;
}
