# sshkeep-agent: the server side of `sshkeep --resume` (docs/resume-protocol.md), in Python 3.
#
# The same agent as sshkeep-agent.pl, for servers without perl (RHEL/Alma 9, Amazon Linux
# 2023, RHEL 8's /usr/libexec/platform-python): same frames, limits, replay buffer, acks,
# grace and socket rules. sshkeep runs it as `python3 -I -S -c LOADER sshkeep-agent
# <version> <session>`; the loader reads this program and, after its __END__ line, one
# parameter line from stdin, and runs the program with `parameters` and `end` set.
#
# Python 3.6 and its standard library only (RHEL 8's platform-python is 3.6). One process,
# one selectors loop, non-blocking sockets; bytes are moved as memoryviews, never per byte.
import errno
import hmac
import json
import os
import pwd
import re
import selectors
import signal
import socket
import stat
import struct
import sys
import time
from collections import deque

# Frame types and error codes, as in the protocol's table.
OPEN, ATTACH, ACCEPT, DATA, ACK, EOF, RESET, ERROR, GOODBYE, PING, PONG = range(1, 12)
E_PROTOCOL, E_UNKNOWN, E_OFFSET, E_CONNECT, E_LIMIT, E_SHUTDOWN = range(1, 7)
FRAME_NAME = '- OPEN ATTACH ACCEPT DATA ACK EOF RESET ERROR GOODBYE PING PONG'.split()

MAX_PAYLOAD = 1048576            # a longer frame is a protocol error
MAX_OFFSET = 9007199254740991    # 2^53-1: sshkeep counts in doubles; more is a protocol error
CHUNK = 65536                    # bytes per DATA frame
TARGET_READ = 262144             # bytes per target read, cut into DATA frames without copying
CHANNEL_READ = 262144            # bytes per channel read
REPLAY_MAX = 4 * 1048576         # per stream: unacknowledged bytes from the target
TARGET_HIGH = 1048576            # per stream: bytes for the target beyond which the channel waits and acks stop (see ackable)
CHANNEL_HIGH = 524288            # per channel: queued output beyond which nothing more is queued
ACK_BYTES = 262144               # a bare ACK after this many bytes received unacknowledged...
ACK_DELAY_MS = 100               # ...or this long after data, if nothing was sent since
MAX_STREAMS = 1024               # streams held at once (ERROR 5 beyond)
MAX_HELD = 256 * 1048576         # bytes held in all buffers (ERROR 5 for new streams, no reading beyond)
MAX_CHANNELS = 2048              # open channels, attached or not
IOV_MAX = 64                     # buffers per sendmsg: one system call for many frames

HEADER = struct.Struct('>BI')
U64 = struct.Struct('>Q')
TWO_U64 = struct.Struct('>QQ')
DATA_HEAD = struct.Struct('>BIQQ')  # a DATA frame's header with its offset and ack: one piece to pack, write and read
AGAIN = (BlockingIOError, InterruptedError)
NEVER = float('inf')             # the deadline of an ack owed since this turn (see data_from)


def now_ms():
    return time.monotonic() * 1000


def errname(err):
    return errno.errorcode.get(err, 'errno %d' % err)


class Queue:
    """Bytes to write or to replay, as a deque of bytes and memoryviews: nothing is joined."""
    __slots__ = ('chunks', 'len', 'front')

    def __init__(self):
        self.chunks = deque()
        self.len = 0
        self.front = 0  # bytes dropped from the first chunk: a view of it keeps them in memory

    def held(self):
        """The memory the queue keeps: its bytes and the dropped front of its first chunk (MAX_HELD counts this)."""
        return self.len + self.front

    def push(self, part):
        self.chunks.append(part)
        self.len += len(part)

    def drop(self, n):
        """Removes n bytes from the front."""
        self.len -= n
        chunks = self.chunks
        while n > 0:
            first = len(chunks[0])
            if first > n:
                chunks[0] = memoryview(chunks[0])[n:]
                self.front += n
                return
            chunks.popleft()
            self.front = 0
            n -= first

    def slice(self, start, n):
        """The bytes at [start, start + n) from the front, or fewer: never across a chunk's end."""
        for chunk in self.chunks:
            size = len(chunk)
            if start < size:
                return chunk if start == 0 and size <= n else memoryview(chunk)[start:start + n]
            start -= size
        return b''

    def write(self, sock):
        """Writes what the queue holds, many chunks per call: 0, or the errno of a failure."""
        parts = []
        for part in self.chunks:
            parts.append(part)
            if len(parts) == IOV_MAX:
                break
        try:
            n = sock.sendmsg(parts)
        except AGAIN:
            return 0
        except OSError as e:
            return e.errno or errno.EIO
        self.drop(n)
        return 0


# ---------------------------------------------------------------------------
# Start: parameters, directory, socket, the one line, detach.

def say(line):
    os.write(1, os.fsencode('sshkeep-agent: %s\n' % line))


def start_error(reason, text):
    say('error %s %s' % (reason, text))
    os._exit(1)


def parameters_from(line, end):
    """session, graceMs and version from sshkeep's JSON line, or a version error."""
    try:
        params = json.loads(line.decode('utf-8')) if end == b'__END__\n' else None
        session, grace_ms, version = params['session'], params['graceMs'], params['version']
        if (isinstance(session, str) and re.fullmatch('[0-9a-f]{16}', session) and isinstance(version, str)
                and re.fullmatch('[0-9a-f]{12}', version) and type(grace_ms) is int and 0 <= grace_ms < 10 ** 12):
            return session, grace_ms, version
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):
        pass
    text = line.decode('utf-8', 'replace').rstrip('\n')[:200]
    start_error('version', 'parameter line not understood (session, graceMs, version): ' + text)


def agent_dir():
    runtime = os.environ.get('XDG_RUNTIME_DIR')
    if runtime and runtime.startswith('/') and os.path.isdir(runtime):
        base = runtime
    else:
        home = os.environ.get('HOME')
        if home is None:
            try:
                home = pwd.getpwuid(os.getuid()).pw_dir
            except KeyError:
                pass
        if home is None or not os.path.isdir(home):
            start_error('directory', 'neither XDG_RUNTIME_DIR nor HOME names a directory')
        base = home + '/.cache'
        make_dir(base)
    path = base + '/sshkeep'
    make_dir(path)
    try:
        st = os.lstat(path)
    except OSError as e:
        start_error('directory', 'cannot stat %s: %s' % (path, e.strerror))
    if not stat.S_ISDIR(st.st_mode):
        start_error('directory', '%s is not a directory' % path)
    if st.st_uid != os.getuid():
        start_error('directory', '%s is owned by uid %d, not by this user (uid %d)' % (path, st.st_uid, os.getuid()))
    if st.st_mode & 0o022:
        start_error('directory', '%s is group- or world-writable (mode %04o); the agent will not put its socket there'
                    % (path, st.st_mode & 0o7777))
    if st.st_mode & 0o7777 != 0o700:
        os.chmod(path, 0o700)
    return path


def make_dir(path):
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        start_error('directory', 'cannot make %s: %s' % (path, e.strerror))


def listening_already(path):
    """An agent of this session already listening is success; a socket file nobody listens on is stale."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return True
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError as e:
        start_error('listen', '%s: %s' % (path, e.strerror))
    finally:
        probe.close()


def listen_here(path):
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            start_error('listen', '%s exists and is not a socket' % path)
        if listening_already(path):
            ready_and_exit(path)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            start_error('listen', 'cannot remove the stale %s: %s' % (path, e.strerror))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
    except OSError as e:
        # Another agent of this session won the race to bind: it serves.
        if e.errno == errno.EADDRINUSE and listening_already(path):
            ready_and_exit(path)
        start_error('listen', 'bind %s: %s' % (path, e.strerror))
    try:
        listener.listen(socket.SOMAXCONN)
    except OSError as e:
        start_error('listen', 'listen %s: %s' % (path, e.strerror))
    listener.setblocking(False)
    return listener


def ready_and_exit(path):
    say('ready ' + path)
    os._exit(0)


def detach(path):
    """The parent says ready and exits, so the exec channel ends; the child leaves the SSH
    session's process group and keeps nothing of the channel open. The parent says ready only
    once the child has its signal handlers (a byte on the pipe returned, written by the caller):
    a SIGTERM sent on "ready" would otherwise kill it with its socket left behind."""
    try:
        setup_r, setup_w = os.pipe()
        pid = os.fork()
    except OSError as e:
        os.unlink(path)
        start_error('listen', 'fork: %s' % e.strerror)
    if pid:
        os.close(setup_w)
        if os.read(setup_r, 1):
            ready_and_exit(path)
        start_error('listen', 'the agent ended while it was starting')
    os.close(setup_r)
    os.setsid()
    null = os.open('/dev/null', os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    os.chdir('/')
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # resolver children are reaped by the kernel
    return setup_w


# ---------------------------------------------------------------------------
# State. A channel is one connection to the socket; a stream is one target connection with
# its two directions:
#   from the target (to sshkeep): base = offset of replay's first byte; sent = next offset to
#     send on the attached channel; t_eof / t_reset when the target ended (EOF takes one offset).
#   to the target: received = sshkeep's bytes received (+1 after its EOF); tbuf = bytes not yet
#     written to the target; ack_sent = the most sshkeep was told it received (an ACK, a DATA, the ACCEPT).

class Channel:
    __slots__ = ('sock', 'fd', 'rbuf', 'rest', 'wbuf', 'stream', 'closed', 'closing', 'accept_pending', 'attached_once', 'mask')

    def __init__(self, sock):
        self.sock, self.fd = sock, sock.fileno()
        self.rbuf = b''
        self.rest = None  # of a DATA frame cut by a read's end: (bytes still to come, their offset, its ack)
        self.wbuf = Queue()
        self.stream = None
        self.closed = self.closing = self.accept_pending = self.attached_once = False
        self.mask = 0


class Stream:
    __slots__ = ('serial', 'id', 'grace_ms', 'host', 'port', 'addrs', 'err', 'sock', 'mask', 'resolver', 'connected',
                 'chan', 'detached_at', 'base', 'replay', 'sent', 't_eof', 't_reset', 'eof_acked', 'received', 'tbuf',
                 'in_eof', 'shut', 'ack_sent', 'ack_at', 'closed', 'born')

    def __init__(self, serial, sid, grace_ms, port, host, chan):
        self.serial, self.id, self.grace_ms, self.port, self.host = serial, sid, grace_ms, port, host
        self.addrs, self.err = [], 'EAI_NONAME'
        self.sock = self.resolver = None
        self.mask = 0
        self.connected = False
        self.chan, self.detached_at = chan, None
        self.base, self.replay, self.sent = 0, Queue(), 0
        self.t_eof, self.t_reset, self.eof_acked = False, None, False
        self.received, self.tbuf, self.in_eof, self.shut, self.ack_sent, self.ack_at = 0, Queue(), False, False, 0, None
        self.closed = False
        self.born = 0


class Resolver:
    """A child resolving a stream's target name, and the pipe it answers on."""
    __slots__ = ('stream', 'fd', 'answer', 'closed', 'mask')

    def __init__(self, stream, fd):
        self.stream, self.fd, self.answer, self.closed, self.mask = stream, fd, b'', False, 0


class Agent:
    def __init__(self, listener, socket_path, version, grace_ms):
        self.listener, self.socket_path, self.version, self.grace_ms = listener, socket_path, version, grace_ms
        self.selector = selectors.DefaultSelector()
        self.channels = {}    # fd => channel
        self.streams = {}     # serial => stream (looked up by id only through find_stream, in constant time)
        self.serial = 0
        # Ids sshkeep ATTACHed that were not held, for one grace (the newest MAX_STREAMS): see given_up.
        self.given_up_ids = deque(maxlen=MAX_STREAMS)  # (id, until)
        self.held = 0         # bytes in every replay buffer and tbuf
        self.idle_since = now_ms()
        self.term = 0
        self.accept_after = 0  # out of descriptors: accept again after a pause, not in a busy loop
        # Work per turn follows events, not the number of streams: a stream is settled right after
        # its event; only streams touched outside one (a timer, a channel's close, room in a
        # channel) wait for the top of the loop. Only streams with a deadline (a grace, an owed
        # ack) are scanned, when the earliest is due, and the clock is read only if one has one.
        self.dirty = {}
        self.timed = {}        # serial => stream with a deadline
        self.owed = {}         # serial => stream owing an ack since this turn, its deadline not yet set
        self.timer_at = NEVER
        self.held_full = False
        # Each turn of the loop has a number: a target socket made during a turn may reuse the
        # number of one closed in it, and must not be handed the old one's readiness.
        self.turn = 0
        self.listening = False
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)  # a signal interrupts the select (which Python would otherwise retry)
        self.selector.register(self.wake_r, selectors.EVENT_READ, self)
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        self.listener_interest()

    def on_signal(self, signum, frame):
        self.term = 1

    # --- what the selector waits for ---------------------------------------

    def want(self, thing, fd, read, write):
        mask = (selectors.EVENT_READ if read else 0) | (selectors.EVENT_WRITE if write else 0)
        if mask == thing.mask:
            return
        if not thing.mask:
            self.selector.register(fd, mask, thing)
        elif not mask:
            self.selector.unregister(fd)
        else:
            self.selector.modify(fd, mask, thing)
        thing.mask = mask

    def channel_interest(self, c):
        if c.closed:
            return
        s = c.stream
        # Past TARGET_HIGH in tbuf the channel waits, unless the stream waits on sshkeep's acks (its
        # replay is full) and memory allows: they come this way (see ackable).
        held_up = s and s.tbuf.len >= TARGET_HIGH and (s.replay.len < REPLAY_MAX or self.held_full)
        self.want(c, c.fd, not c.closing and not held_up, c.wbuf.len)

    def stream_interest(self, s):
        c = s.chan
        if c:
            self.channel_interest(c)
        if s.sock is None:
            return
        self.want(s, s.sock.fileno(),
                  s.connected and not s.t_eof and s.replay.len < REPLAY_MAX and not self.held_full
                  and (not c or c.wbuf.len < CHANNEL_HIGH),
                  not s.connected or s.tbuf.len or (s.in_eof and not s.shut))

    # --- channels ----------------------------------------------------------

    def send_frame(self, c, ftype, payload):
        self.queue(c, [HEADER.pack(ftype, len(payload)) + payload])

    def queue(self, c, parts):
        """Written at once when nothing waits before them (most often the socket takes it all, and
        no epoll_ctl is needed); else, or what it did not take, queued behind, and the channel
        waits to write. A failure is left for channel_writable to find."""
        if c.closed:
            return
        wbuf = c.wbuf
        if wbuf.len:
            for part in parts:
                wbuf.push(part)
            return
        try:
            n = c.sock.sendmsg(parts if len(parts) <= IOV_MAX else parts[:IOV_MAX])
        except OSError:
            n = 0
        for part in parts:
            size = len(part)
            if n >= size:
                n -= size
                continue
            wbuf.push(memoryview(part)[n:] if n else part)
            n = 0
        if wbuf.len:
            self.channel_interest(c)

    def close_channel(self, c):
        if c.closed:
            return
        c.closed = True
        self.want(c, c.fd, False, False)
        del self.channels[c.fd]
        self.listener_interest()
        c.sock.close()
        s = c.stream
        if s and s.chan is c:
            self.detach(s)

    def end_channel(self, c):
        """Flush what is queued, then close: after an ERROR, a PONG, a stream's end."""
        c.closing = True
        if not c.closed:
            self.want(c, c.fd, False, c.wbuf.len)
        if not c.wbuf.len:
            self.close_channel(c)

    def channel_error(self, c, code, message):
        self.send_frame(c, ERROR, bytes((code,)) + message.encode('utf-8', 'replace'))
        self.end_channel(c)

    def protocol_error(self, c, message):
        """ERROR 1 and a close. On a stream's channel the stream ends too, its target reset (sshkeep resets
        its client): once the two sides disagree, which bytes arrived is a guess, and a held target
        would wait its grace for an ATTACH that never comes."""
        s = c.stream
        if s and s.chan is c:
            return self.reset_stream(s, E_PROTOCOL, message)
        return self.channel_error(c, E_PROTOCOL, message)

    def detach(self, s):
        s.chan = None
        s.detached_at = now_ms()
        s.ack_at = None
        self.owed.pop(s.serial, None)
        self.deadline(s, s.detached_at + s.grace_ms)
        self.touch(s)  # its target may be read again (no channel to wait on)

    def deadline(self, s, at):
        self.timed[s.serial] = s
        if at < self.timer_at:
            self.timer_at = at

    @staticmethod
    def ackable(s):
        """What sshkeep may be told was received: all of it but what tbuf holds beyond TARGET_HIGH.
        A stream whose replay is full waits for sshkeep's acks, which come on the channel, so its
        channel is read however much tbuf holds (channel_interest): left unread while the target
        was not taking its bytes because it could not write its replies, for want of those acks,
        nothing would move again (an echo through a --resume bulk transfer, 2026-12-05). sshkeep
        sends no more than its replay buffer beyond the last ack, so tbuf stays within TARGET_HIGH
        plus that buffer."""
        over = s.tbuf.len - TARGET_HIGH
        return s.received - over if over > 0 else s.received

    def ack_sent(self, s):
        """No ack is owed any more; an attached stream then has no deadline, and a turn no need of the clock."""
        s.ack_sent = max(s.ack_sent, self.ackable(s))  # an ACCEPT may have said more
        s.ack_at = None
        if s.chan:
            self.timed.pop(s.serial, None)
        if self.owed:
            self.owed.pop(s.serial, None)

    def ack_due(self, s):
        return s.ack_at is not None and s.ack_at < NEVER and self.ackable(s) > s.ack_sent and now_ms() >= s.ack_at

    def touch(self, s):
        if s and not s.closed:
            self.dirty[s.serial] = s

    def add_held(self, q, part):
        q.push(part)
        self.held += len(part)

    # --- streams -----------------------------------------------------------

    def close_target(self, s, reset):
        sock = s.sock
        if sock is None:
            return
        if not reset:
            # A target lingers 0 from its start (see connect_next): the close sends a TCP reset, so
            # the target cannot take the stream for complete; only a stream that ended cleanly closes normally.
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 0, 0))
            except OSError:
                pass
        self.want(s, sock.fileno(), False, False)
        sock.close()
        s.sock = None

    def forget_stream(self, s, reset):
        """The stream is over: its target is closed (reset unless it ended cleanly), its channel ends."""
        self.close_resolver(s)
        self.close_target(s, reset)
        self.held -= s.replay.held() + s.tbuf.held()
        s.replay, s.tbuf = Queue(), Queue()
        self.streams.pop(s.serial, None)
        self.dirty.pop(s.serial, None)
        self.timed.pop(s.serial, None)
        self.owed.pop(s.serial, None)
        s.closed = True
        c = s.chan
        if c:
            c.stream = None
            self.end_channel(c)
        s.chan = None

    def reset_stream(self, s, code, message):
        if s.chan:
            self.channel_error(s.chan, code, message)
        self.forget_stream(s, True)

    def find_stream(self, sid):
        """Ids are secrets: compared in constant time with every held stream, never used as a dict key."""
        found = None
        for s in self.streams.values():
            if hmac.compare_digest(sid, s.id):
                found = s
        return found

    def give_up(self, sid):
        self.given_up_ids.append((sid, now_ms() + self.grace_ms))

    def given_up(self, sid):
        """
        An OPEN of an id sshkeep ATTACHed while the agent held no such stream is stale: it was stuck
        on a silent link that came back, and sshkeep, which cancels an unanswered OPEN this way, has
        opened that client's stream again with another id. The RESET it also sends behind the OPEN
        can be lost with its connection (sshd exits on the connection's end without writing what it
        still had for the channel).
        """
        if not self.given_up_ids:
            return False
        now = now_ms()
        while self.given_up_ids and self.given_up_ids[0][1] <= now:
            self.given_up_ids.popleft()
        found = False
        for old, _ in self.given_up_ids:
            if hmac.compare_digest(sid, old):
                found = True
        return found

    # --- targets: resolve, connect without blocking, read into the replay buffer, write tbuf ---

    def open_stream(self, c, sid, grace_ms, port, host):
        if self.find_stream(sid):
            return self.protocol_error(c, 'OPEN of a stream id that is already held')
        if self.given_up(sid):
            return self.channel_error(c, E_UNKNOWN, 'sshkeep gave that id up before its OPEN came')
        if len(self.streams) >= MAX_STREAMS:
            return self.channel_error(c, E_LIMIT, 'the agent holds %d streams already' % MAX_STREAMS)
        if self.held >= MAX_HELD:
            return self.channel_error(c, E_LIMIT, 'the agent holds %d bytes already' % self.held)
        self.serial += 1
        s = Stream(self.serial, sid, grace_ms, port, host, c)
        self.streams[s.serial] = s
        c.stream = s
        c.accept_pending = True
        if not (re.fullmatch('[0-9.]+', host) or ':' in host):
            return self.resolve_in_child(s)
        err, addrs = addresses(host, port, socket.AI_NUMERICHOST)
        if err:
            return self.connect_failed(s, err)
        s.addrs = addrs
        self.connect_next(s)

    def resolve_in_child(self, s):
        """A name may keep the resolver busy for seconds: a child resolves it, so the other streams go on."""
        try:
            r, w = os.pipe()
        except OSError:
            r = None
        pid = None
        if r is not None:
            try:
                pid = os.fork()
            except OSError:
                os.close(r)
                os.close(w)
                r = None
        if r is None:  # no child to be had: resolve here, blocking
            err, addrs = addresses(s.host, s.port, 0)
            if err:
                return self.connect_failed(s, err)
            s.addrs = addrs
            return self.connect_next(s)
        if pid == 0:
            # Nothing of the agent's stays open in the child: a target's close must not wait on it.
            os.closerange(0, w)
            os.closerange(w + 1, os.sysconf('SC_OPEN_MAX'))
            err, addrs = addresses(s.host, s.port, 0)
            answer = err or json.dumps([[family, list(address)] for family, address in addrs])
            try:
                os.write(w, answer.encode())
            finally:
                os._exit(0)
        os.close(w)
        os.set_blocking(r, False)
        s.resolver = Resolver(s, r)
        self.want(s.resolver, r, True, False)

    def close_resolver(self, s):
        r = s.resolver
        if r is None:
            return
        r.closed = True
        self.want(r, r.fd, False, False)
        os.close(r.fd)
        s.resolver = None

    def resolver_readable(self, r):
        s = r.stream
        try:
            chunk = os.read(r.fd, 65536)
        except AGAIN:
            return
        except OSError:
            chunk = b''
        if chunk:
            r.answer += chunk
            return
        self.close_resolver(s)
        answer = r.answer.decode('ascii', 'replace')
        if answer == '' or answer.startswith('EAI_'):
            return self.connect_failed(s, answer or 'EAI_FAIL')
        try:
            s.addrs = [(family, tuple(address)) for family, address in json.loads(answer)]
        except (ValueError, TypeError):
            return self.connect_failed(s, 'EAI_FAIL')
        self.connect_next(s)

    def connect_next(self, s):
        while s.addrs:
            family, address = s.addrs.pop(0)
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)
            except OSError as e:
                s.err = errname(e.errno)
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Linger 0 until the stream ends cleanly: should the agent die (killed, out of memory),
            # the kernel resets its targets rather than end them with a FIN that reads as a complete upload.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            s.sock = sock
            s.born = self.turn
            self.want(s, sock.fileno(), False, True)  # writable once connected
            err = sock.connect_ex(address)
            if err == 0:
                return self.connected(s)
            if err == errno.EINPROGRESS:
                return
            s.err = errname(err)
            self.close_target(s, False)
        self.connect_failed(s, s.err)

    def connect_failed(self, s, err):
        """Out of descriptors is a limit of the agent's, not the target's refusal."""
        if s.chan:
            self.channel_error(s.chan, E_LIMIT if err in ('EMFILE', 'ENFILE') else E_CONNECT, err)
        self.forget_stream(s, False)

    def connected(self, s):
        s.connected = True
        s.addrs = None
        if s.chan:
            self.accept_on(s.chan, s)

    def accept_on(self, c, s):
        c.accept_pending = False
        self.send_frame(c, ACCEPT, U64.pack(s.received))
        self.ack_sent(s)  # the ACCEPT acknowledges: no ack owed, no deadline left to find due
        s.ack_sent = s.received  # sshkeep takes the offset it resends from as acknowledged

    def target_writable(self, s):
        if not s.connected:
            err = s.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if not err:
                return self.connected(s)
            if err in (errno.ECONNRESET, errno.EPIPE):
                # It did connect, and the target reset it at once: as the plain path would show it,
                # what the target sent (still queued here), then a reset.
                self.connected(s)
                self.target_readable(s)
                s.t_eof = False  # a read after the error was taken can only say EOF
                if s.t_reset is None:
                    self.target_failed(s, errname(err))
                return
            s.err = errname(err)
            self.close_target(s, False)
            return self.connect_next(s)
        if s.tbuf.len:
            before = s.tbuf.held()
            err = s.tbuf.write(s.sock)
            if err:
                return self.target_failed(s, errname(err))
            self.held -= before - s.tbuf.held()
            if s.chan:
                self.owe_ack(s, s.chan)  # what left tbuf may be acknowledged now
        if not s.tbuf.len and s.in_eof and not s.shut:
            try:
                s.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            s.shut = True
            self.finish_if_done(s)

    def target_readable(self, s):
        """One read into the replay buffer, pumped at once. True when that leaves the stream settled
        (see settle): the reply of a request/reply, sent whole, nothing queued for the channel."""
        room = min(REPLAY_MAX - s.replay.len, TARGET_READ)
        try:
            part = s.sock.recv(room)
        except AGAIN:
            return False
        except OSError as e:
            self.target_failed(s, errname(e.errno))
            return False
        if not part:
            s.t_eof = True
            self.finish_if_done(s)
            return False
        self.add_held(s.replay, part)
        c = s.chan
        if not c:
            return False
        self.pump(s)
        return not c.wbuf.len and not c.closed and self.quiet(s)

    def quiet(self, s):
        """Nothing of the target's left to send, no end of it to tell, the replay below its limit (so the
        target is read as before): what a pump left settled, when nothing is queued for the channel."""
        return not s.t_eof and s.t_reset is None and s.replay.len < REPLAY_MAX and s.sent == s.base + s.replay.len

    def target_failed(self, s, reason):
        """The target reset (or failed): what it sent before is delivered, then a RESET."""
        s.t_reset = reason
        self.close_target(s, True)
        self.held -= s.tbuf.held()
        s.tbuf = Queue()

    def finish_if_done(self, s):
        if s.t_eof and s.eof_acked and s.in_eof and s.shut and s.ack_sent >= s.received:
            self.forget_stream(s, False)

    # --- frames from sshkeep -----------------------------------------------

    def take_ack(self, s, ack):
        """sshkeep acknowledged our bytes up to ack (and our EOF, one past the last byte)."""
        if ack > s.sent:
            return False
        end = s.base + s.replay.len
        free = min(ack, end) - s.base
        if free > 0:
            before = s.replay.held()
            s.replay.drop(free)
            self.held -= before - s.replay.held()
            s.base += free
        if s.t_eof and ack == end + 1:
            s.eof_acked = True
        return True

    def data_from(self, c, s, data, offset, ack, last):
        """DATA on a channel with a stream, the bulk of the frames, its offset and ack read with its
        header. Its bytes (a view of the read) are queued for the target; or, when nothing waits
        for the target before them and no other frame follows them in this read (a request of a
        request/reply), written to it at once, and only what it does not take is queued."""
        if offset > MAX_OFFSET or ack > MAX_OFFSET:
            return self.protocol_error(c, 'DATA offset beyond 2^53-1')
        if not self.take_ack(s, ack):
            return self.reset_stream(s, E_OFFSET, 'ack %d beyond the %d bytes sent' % (ack, s.sent))
        if offset != s.received or s.in_eof:
            if offset > s.received:
                return self.reset_stream(s, E_OFFSET, 'DATA at %d after a gap: %d received' % (offset, s.received))
            skip = s.received - offset  # a resend of bytes already here
            if skip >= len(data):
                return
            if s.in_eof:
                return self.reset_stream(s, E_PROTOCOL, 'DATA after EOF')
            data = data[skip:]
        n = len(data)
        s.received += n
        if s.t_reset is None:  # a reset target takes nothing more
            written = 0
            if last and not s.tbuf.len and s.connected and s.sock is not None:
                try:
                    written = s.sock.send(data)
                except AGAIN:
                    pass
                except OSError as e:
                    return self.target_failed(s, errname(e.errno))
            if written < n:
                self.add_held(s.tbuf, data[written:] if written else data)
        self.owe_ack(s, c)

    def owe_ack(self, s, c):
        """No ack was owed: one is due ACK_DELAY_MS from now, unless a frame carries it first (the
        reply of a request/reply): its deadline is set before the next select (see timeout)."""
        if self.ackable(s) <= s.ack_sent:  # what came is beyond TARGET_HIGH, or was acknowledged
            return
        if s.ack_at is None:
            s.ack_at = NEVER
            self.owed[s.serial] = s
        # At once, between the frames of one read: sshkeep's replay buffer waits on it.
        if self.ackable(s) - s.ack_sent >= ACK_BYTES and not c.accept_pending:
            self.send_ack(s)

    def take_eof(self, s, offset):
        if s.in_eof and offset + 1 == s.received:
            return  # a resend
        if s.in_eof or offset != s.received:
            return self.reset_stream(s, E_OFFSET, 'EOF at %d: %d received' % (offset, s.received))
        s.in_eof = True
        s.received = offset + 1
        if s.t_reset is not None:  # no target to shut down
            s.shut = True
            self.finish_if_done(s)

    def attach_stream(self, c, sid, received):
        s = self.find_stream(sid)
        if not s:
            self.give_up(sid)
            return self.channel_error(c, E_UNKNOWN, 'no stream with that id is held')
        end = s.base + s.replay.len + (1 if s.t_eof else 0)
        if received < s.base or received > end:
            c.stream = s
            old = s.chan
            s.chan = c
            if old:
                self.close_channel(old)
            return self.reset_stream(s, E_OFFSET, 'ATTACH with %d received: the agent holds %d to %d' % (received, s.base, end))
        # A new attach pre-empts the old channel, which may be dead without anyone knowing yet.
        old = s.chan
        if old:
            old.stream = None
            self.close_channel(old)
        s.chan = c
        s.detached_at = None
        if s.ack_at is None:
            self.timed.pop(s.serial, None)  # its grace was its one deadline; an owed ack keeps its own
        c.stream = s
        s.sent = received
        self.take_ack(s, received)
        if s.connected:
            self.accept_on(c, s)
        else:
            c.accept_pending = True

    def frame_from(self, c, ftype, payload):
        name = FRAME_NAME[ftype]
        size = len(payload)
        if ftype in PAYLOAD_SIZE and size != PAYLOAD_SIZE[ftype]:
            return self.protocol_error(c, '%s payload of %d bytes: it has %d' % (name, size, PAYLOAD_SIZE[ftype]))
        if ftype in PAYLOAD_MIN and size < PAYLOAD_MIN[ftype]:
            return self.protocol_error(c, '%s payload of %d bytes is too short' % (name, size))
        # Offsets sit right after the id in ATTACH and first elsewhere.
        if ftype == DATA:
            values = TWO_U64.unpack_from(payload, 0)
        elif ftype == ATTACH:
            values = U64.unpack_from(payload, 16)
        elif ftype in (ACK, EOF, RESET):
            values = U64.unpack_from(payload, 0)
        else:
            values = ()
        if any(v > MAX_OFFSET for v in values):
            return self.protocol_error(c, '%s offset beyond 2^53-1' % name)

        s = c.stream
        if not s and not c.attached_once:
            c.attached_once = True
            if ftype == OPEN:
                sid = bytes(payload[:16])
                grace_ms, port = struct.unpack_from('>IH', payload, 16)
                if port == 0:
                    return self.protocol_error(c, 'OPEN of port 0')
                try:
                    host = bytes(payload[22:]).decode('utf-8')
                except UnicodeDecodeError:
                    return self.protocol_error(c, 'OPEN host is not UTF-8')
                return self.open_stream(c, sid, grace_ms, port, host)
            if ftype == ATTACH:
                return self.attach_stream(c, bytes(payload[:16]), values[0])
            if ftype == PING:
                self.send_frame(c, PONG, self.version.encode() + struct.pack('>I', len(self.streams)))
                return self.end_channel(c)
            if ftype == GOODBYE:
                self.term = 2
                return
            return self.protocol_error(c, '%s cannot open a channel: OPEN, ATTACH, PING or GOODBYE can' % name)
        if ftype == ERROR:  # sshkeep found us wrong: it resets its client, we reset the target
            return self.forget_stream(s, True) if s else self.close_channel(c)
        if not s:
            return self.protocol_error(c, '%s on a channel whose stream ended' % name)
        if ftype == ACK:
            if not self.take_ack(s, values[0]):
                return self.reset_stream(s, E_OFFSET, 'ack %d beyond the %d bytes sent' % (values[0], s.sent))
            return self.finish_if_done(s)
        if ftype == EOF:
            return self.take_eof(s, values[0])
        if ftype == RESET:
            # What came before the reset goes to the target, as far as the socket takes it now; then a TCP reset.
            if s.sock is not None and s.connected and s.tbuf.len:
                before = s.tbuf.held()
                s.tbuf.write(s.sock)
                self.held -= before - s.tbuf.held()  # forget_stream gives back only what is left
            return self.forget_stream(s, True)
        return self.protocol_error(c, '%s is not a frame sshkeep sends on a stream' % name)

    def channel_readable(self, c):
        """True when that leaves the channel's stream settled (see settle)."""
        try:
            data = c.sock.recv(CHANNEL_READ)
        except AGAIN:
            return False
        except OSError:
            self.close_channel(c)
            return False
        if not data:
            self.close_channel(c)
            return False
        if c.rest:
            return self.rest_of_data(c, data)
        rbuf = c.rbuf
        if not rbuf:
            return self.frames(c, data, 0, True)
        # A frame begun in an earlier read is completed with only the bytes it lacks: one frame is
        # copied, not all of this read (a header cut short is joined with all of it).
        size = len(data)
        need = 5 + HEADER.unpack_from(rbuf)[1] - len(rbuf) if len(rbuf) >= 5 else size
        if need > size:
            c.rbuf = rbuf + data
            return False
        c.rbuf = b''
        settled = self.frames(c, rbuf + memoryview(data)[:need], 0, need == size)
        if need == size or c.closing or c.closed:
            return settled
        return self.frames(c, data, need, True)

    def rest_of_data(self, c, data):
        """The next bytes of a DATA frame begun in an earlier read, then the frames after them."""
        n, offset, ack = c.rest
        size = len(data)
        take = min(n, size)
        c.rest = (n - take, offset + take, ack) if take < n else None
        s = c.stream
        if s is None:  # its stream ended meanwhile, and the channel with it
            return False
        self.data_from(c, s, memoryview(data)[:take], offset, ack, take == size)
        if take == size or c.closing or c.closed:
            return False
        return self.frames(c, data, take, True)

    def frames(self, c, buf, at, ends_read):
        """The frames in buf from at, taken as views of it: a DATA frame's bytes are not copied. What
        is left of a frame waits in rbuf for the next read. ends_read: nothing of this read follows
        buf. True when that leaves the channel's stream settled (see settle)."""
        view = memoryview(buf)
        size = len(buf)
        settled = False
        while not c.closing and not c.closed and size - at >= 5:
            if size - at >= 21:  # a DATA frame's offset and ack come with its header
                ftype, length, offset, ack = DATA_HEAD.unpack_from(buf, at)
            else:
                ftype, length = HEADER.unpack_from(buf, at)
            if not OPEN <= ftype <= PONG:
                self.protocol_error(c, 'unknown frame type %d' % ftype)
                return False
            if length > MAX_PAYLOAD:
                self.protocol_error(c, '%s frame declares %d bytes, over the limit of %d' % (FRAME_NAME[ftype], length, MAX_PAYLOAD))
                return False
            end = at + 5 + length
            s = c.stream
            if end > size:
                if ftype == DATA and s and length >= 17 and size - at > 21 and ends_read:
                    # Bytes are placed by their offset: those of the frame that came go now, the rest
                    # when they come (see rest_of_data), not joined with them.
                    c.rest = (end - size, offset + size - at - 21, ack)
                    self.data_from(c, s, view[at + 21:size], offset, ack, True)
                    return False
                break
            if ftype == DATA and s and length >= 17:
                # The request of a request/reply, all there was to read, its stream quiet: if the
                # target took it all and nothing was queued for the channel, nothing changed that
                # settle would look at (an ack that frees replay bytes leaves the replay below its limit).
                last = end == size and ends_read
                was_quiet = last and at == 0 and self.quiet(s)
                self.data_from(c, s, view[at + 21:end], offset, ack, last)
                settled = (was_quiet and c.stream is s and not s.tbuf.len and not c.wbuf.len and not c.accept_pending
                           and s.t_reset is None)
            else:
                self.frame_from(c, ftype, view[at + 5:end])
            at = end
        if not c.closed and at < size:
            c.rbuf = bytes(view[at:])
        return settled

    def channel_writable(self, c):
        full = c.wbuf.len >= CHANNEL_HIGH
        if c.wbuf.write(c.sock):
            return self.close_channel(c)
        if full and c.wbuf.len < CHANNEL_HIGH:
            self.touch(c.stream)  # the pump waits on this room
        if c.closing and not c.wbuf.len:
            self.close_channel(c)

    # --- frames to sshkeep: data from the replay buffer, then EOF or RESET; acks ---

    def pump(self, s):
        c = s.chan
        if not c or c.accept_pending or c.closing:
            return
        end = s.base + s.replay.len
        if s.sent < end:
            # The frames of one pump go out in one system call.
            parts = []
            sent, room, ack = s.sent, CHANNEL_HIGH - c.wbuf.len, self.ackable(s)
            while sent < end and room > 0:
                part = s.replay.slice(sent - s.base, CHUNK)
                size = len(part)
                parts += (DATA_HEAD.pack(DATA, 16 + size, sent, ack), part)
                sent += size
                room -= 21 + size
            s.sent = sent
            self.queue(c, parts)
            self.ack_sent(s)  # each frame carried it
            if sent < end:
                return
        elif self.ack_due(s):  # the timer found it due
            self.send_ack(s)
        # All of the replay is sent: the target's end, if it came.
        if s.t_eof or s.t_reset is not None or s.in_eof:
            self.pump_end(s, c, end)

    def pump_end(self, s, c, end):
        if s.t_eof and s.sent == end:
            self.send_frame(c, EOF, U64.pack(end))
            s.sent = end + 1
        elif s.t_reset is not None:
            self.send_frame(c, RESET, U64.pack(s.sent) + s.t_reset.encode())
            return self.forget_stream(s, True)
        if self.ackable(s) > s.ack_sent and (s.in_eof or self.ack_due(s)):
            self.send_ack(s)
        self.finish_if_done(s)

    def send_ack(self, s):
        self.send_frame(s.chan, ACK, U64.pack(self.ackable(s)))
        self.ack_sent(s)

    # --- the loop ----------------------------------------------------------

    def accept_channels(self):
        while len(self.channels) < MAX_CHANNELS:
            try:
                sock, _ = self.listener.accept()
            except AGAIN:
                break
            except OSError:
                self.accept_after = now_ms() + 100
                break
            sock.setblocking(False)
            c = Channel(sock)
            self.channels[c.fd] = c
            self.want(c, c.fd, True, False)
            self.idle_since = None  # timers() counts idle time only while no channel is open
        self.listener_interest()

    def listener_interest(self):
        """Accepting stops at the channels' limit, and for a pause after running out of descriptors."""
        on = len(self.channels) < MAX_CHANNELS and not self.accept_after
        if on != self.listening:
            if on:
                self.selector.register(self.listener, selectors.EVENT_READ, self.listener)
            else:
                self.selector.unregister(self.listener)
            self.listening = on

    def shut_down(self, code):
        # The socket goes first: a client that sees its channel close may look for it at once.
        try:
            os.unlink(self.socket_path)
        except OSError:
            pass
        for c in list(self.channels.values()):
            if code:
                self.send_frame(c, ERROR, bytes((E_SHUTDOWN,)) + b'the agent is shutting down')
                if c.wbuf.len:
                    c.wbuf.write(c.sock)
            c.sock.close()
        for s in list(self.streams.values()):
            self.close_target(s, True)
        os._exit(0)

    def timers(self, now):
        """Streams whose grace ran out are forgotten, those whose ack is due touched; the next
        deadline, or None when there is none (select may then wait for ever)."""
        if self.timed and now >= self.timer_at:
            self.timer_at = NEVER
            for s in list(self.timed.values()):
                if not s.chan:
                    expiry = s.detached_at + s.grace_ms
                    if now >= expiry:
                        self.forget_stream(s, True)
                        continue
                    self.deadline(s, expiry)
                elif s.ack_at is None:
                    del self.timed[s.serial]
                elif self.ackable(s) <= s.ack_sent:  # all it held for the target beyond TARGET_HIGH: owed again as that goes (target_writable)
                    s.ack_at = None
                    del self.timed[s.serial]
                elif now >= s.ack_at:
                    self.touch(s)
                    self.deadline(s, now + ACK_DELAY_MS)  # again, should the pump not get it out this time
                else:
                    self.deadline(s, s.ack_at)
        wake = self.timer_at if self.timed else NEVER
        # Idle from the last channel's close, held streams or not: when sshkeep is gone, its streams
        # expire one grace after their channels closed, and the agent goes with them.
        if not self.channels:
            if self.idle_since is None:
                self.idle_since = now
            if not self.streams and now - self.idle_since >= self.grace_ms:
                # A channel sshd connected since the last select is served, not reset with the listener.
                self.accept_channels()
                if not self.channels:
                    self.shut_down(0)
            if not self.channels and not self.streams:
                wake = min(wake, self.idle_since + self.grace_ms)
        if self.accept_after:
            if now >= self.accept_after:  # out of descriptors a while ago: accept again
                self.accept_after = 0
                self.listener_interest()
            else:
                wake = min(wake, self.accept_after)
        return None if wake == NEVER else wake

    def timeout(self):
        """How long select may wait: not at all when a stream was touched, else until the earliest
        deadline; None (for ever) when nothing has one."""
        now = now_ms()
        # Acks owed since this turn's select get their deadline now, if still owed: the frame that
        # carried the data did not read the clock for it.
        for s in self.owed.values():
            if s.chan and s.ack_at == NEVER:
                s.ack_at = now + ACK_DELAY_MS
                self.deadline(s, s.ack_at)
        self.owed = {}
        # Nothing due, no channel-less idle time to count, no accept to resume: the earliest deadline stands.
        wake = self.timers(now) if now >= self.timer_at or self.accept_after or not self.channels else self.timer_at
        if self.dirty:
            return 0
        return None if wake is None or wake == NEVER else max(0, (wake - now) / 1000)

    def settle(self, s):
        """After an event on a stream, in the same turn: what it made ready to send goes out (queue
        wrote it, or the channel waits to write what it did not take), what is queued for the
        target is written as far as it takes it, and select's interest follows."""
        if s.closed:
            return
        self.pump(s)
        if s.tbuf.len and s.connected and s.sock is not None:
            self.target_writable(s)
        if not s.closed:
            self.stream_interest(s)

    def between_turns(self):
        """The rare work before a turn's select: a signal; streams touched outside an event of their
        own; every target's reading, which stops and starts again as all buffers together reach
        their limit or leave it."""
        if self.term:
            self.shut_down(1 if self.term == 1 else 0)
        if self.dirty:
            dirty = list(self.dirty.values())
            self.dirty = {}
            for s in dirty:
                self.settle(s)
        full = self.held >= MAX_HELD
        if full != self.held_full:
            self.held_full = full
            for s in list(self.streams.values()):
                self.stream_interest(s)

    def run(self):
        select = self.selector.select
        while True:
            if self.term or self.dirty or (self.held >= MAX_HELD) != self.held_full:
                self.between_turns()
            timeout = self.timeout() if self.dirty or self.owed or self.timed or self.accept_after or not self.channels else None
            self.turn += 1
            turn = self.turn
            # Each event names the object it was registered for: one closed during this turn is
            # skipped, and a stream's socket made during it gets no readiness of an old one's.
            # Each stream handled here is settled at once.
            for key, mask in select(timeout):
                thing = key.data
                kind = type(thing)
                if kind is Channel:
                    if thing.closed:
                        continue
                    if mask & selectors.EVENT_WRITE:
                        self.channel_writable(thing)
                    # A read that left the stream settled skips settle, unless a write in this
                    # event changed what settle looks at (the queue, the interest).
                    if (not thing.closed and mask & selectors.EVENT_READ and self.channel_readable(thing)
                            and not mask & selectors.EVENT_WRITE):
                        continue
                    s = thing.stream
                    if s:
                        self.settle(s)
                    else:
                        self.channel_interest(thing)  # a PONG, an ERROR
                elif kind is Stream:
                    if thing.closed:
                        continue
                    if thing.sock is not None and thing.born < turn:
                        if mask & selectors.EVENT_WRITE:
                            self.target_writable(thing)
                        if (mask & selectors.EVENT_READ and not thing.closed and thing.sock is not None
                                and thing.born < turn and thing.connected and self.target_readable(thing)
                                and not mask & selectors.EVENT_WRITE):
                            continue
                    self.settle(thing)
                elif kind is Resolver:
                    if not thing.closed:
                        self.resolver_readable(thing)
                        self.settle(thing.stream)
                elif thing is self.listener:
                    self.accept_channels()
                else:  # the signal's wakeup pipe
                    try:
                        while os.read(self.wake_r, 512):
                            pass
                    except OSError:
                        pass


PAYLOAD_SIZE = {ATTACH: 24, ACK: 8, EOF: 8, GOODBYE: 0, PING: 0}  # exact sizes; others have a minimum
PAYLOAD_MIN = {OPEN: 23, DATA: 17, RESET: 8, ERROR: 1}


def addresses(host, port, flags):
    """getaddrinfo: an error name and no addresses, or None and the addresses in the resolver's order."""
    try:
        found = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICSERV | flags)
    except socket.gaierror as e:
        return ('EAI_NONAME' if e.errno == socket.EAI_NONAME else 'EAI_AGAIN' if e.errno == socket.EAI_AGAIN else 'EAI_FAIL'), []
    except (OSError, UnicodeError):
        return 'EAI_FAIL', []
    return None, [(family, address) for family, _, _, _, address in found]


def main(parameter_line, end):
    session, grace_ms, version = parameters_from(parameter_line, end)
    path = '%s/agent-%s-%s.sock' % (agent_dir(), version, session)
    if len(os.fsencode(path)) > 107:
        start_error('listen', 'socket path %s is longer than 107 bytes' % path)
    listener = listen_here(path)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    setup = detach(path)
    agent = Agent(listener, path, version, grace_ms)
    os.write(setup, b'\0')  # the handlers are in place: the parent may say ready
    os.close(setup)
    agent.run()


main(globals().get('parameters', b''), globals().get('end'))
__END__
