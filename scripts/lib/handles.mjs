// Sockets without net.Socket, for the floor measures of issue 17 (scripts/bench-connections.ts
// --tools …,bare-handles,proxy-handles): libuv's TCP handles as node's own net module drives them
// (process.binding('tcp_wrap') and ('stream_wrap'), deprecated, DEP0111), without the stream
// layers, ticks and events a net.Socket adds to every connection. What a connection costs a Node
// forwarder built this way against one on net.Socket. Node 20's internals; not for sshkeep itself.
const { TCP, TCPConnectWrap, constants } = process.binding('tcp_wrap');
const { WriteWrap, ShutdownWrap, streamBaseState, kReadBytesOrError, kArrayBufferOffset, kLastWriteWasAsync } = process.binding('stream_wrap');

const UV_EOF = -4095;

/** Listens on 127.0.0.1 (a free port); `onConnection(handle)` for each accepted one. Returns the port. */
export function listen(onConnection) {
  const server = new TCP(constants.SERVER);
  const err = server.bind('127.0.0.1', 0) || server.listen(511);
  if (err) throw new Error(`listen: libuv error ${err}`);
  server.onconnection = (status, handle) => {
    if (status === 0) onConnection(handle);
  };
  const out = {};
  server.getsockname(out);
  return out.port;
}

/** Connects to 127.0.0.1:`port`; `done(handle)` once connected, `done(undefined)` if not. */
export function connect(port, done) {
  const handle = new TCP(constants.SOCKET);
  const req = new TCPConnectWrap();
  req.oncomplete = (status) => (status === 0 ? done(handle) : (handle.close(), done(undefined)));
  const err = handle.connect(req, '127.0.0.1', port);
  if (err) {
    handle.close();
    done(undefined);
  }
}

/**
 * Reads `handle` into `sink`: `data(Buffer)` for each read (on memory of its own), `end()` at EOF, `error(code)` on a failed read. Reading stops at EOF or an error.
 */
export function read(handle, sink) {
  handle.onread = (arrayBuffer) => {
    const n = streamBaseState[kReadBytesOrError];
    if (n > 0) return sink.data(Buffer.from(arrayBuffer, streamBaseState[kArrayBufferOffset], n));
    if (n === 0) return undefined;
    handle.readStop();
    return n === UV_EOF ? sink.end() : sink.error(n);
  };
  handle.readStart();
}

/** Writes `bytes` (which must not change until `done`); `done()` once written, at once if the kernel took it all. True if it did. */
export function write(handle, bytes, done) {
  const req = new WriteWrap();
  req.handle = handle;
  req.oncomplete = done;
  req.async = false;
  const err = handle.writeBuffer(req, bytes);
  if (err) return done(err), true;
  if (streamBaseState[kLastWriteWasAsync]) return false;
  done(0);
  return true;
}

/** Sends FIN once what was written has gone. */
export function shutdown(handle) {
  const req = new ShutdownWrap();
  req.handle = handle;
  req.oncomplete = () => {};
  handle.shutdown(req);
}
