# sshkeep-agent: the server side of `sshkeep --resume` (docs/resume-protocol.md).
#
# sshkeep runs `perl - sshkeep-agent` over an SSH exec channel with this program on
# stdin, followed after __END__ by one parameter line. The agent listens on a Unix
# socket in a 0700 directory, says `ready` once and detaches; sshkeep then reaches it
# over direct-streamlocal channels. For each stream the agent holds the target's TCP
# socket and a replay buffer of what the target sent and sshkeep has not acknowledged,
# so a stream outlives the SSH connection that carried it.
#
# Only modules of Debian's perl-base (Essential, on every Debian/Ubuntu server): no
# JSON, no Time::HiRes, no Digest. One process, one select() loop, non-blocking I/O.
use strict;
use warnings;
use Config;
use Errno qw(EAGAIN EWOULDBLOCK EINTR EINPROGRESS ECONNREFUSED ECONNRESET EPIPE ENOENT EADDRINUSE);
use Fcntl qw(F_GETFL F_SETFL O_NONBLOCK);
use POSIX ();
use Socket qw(AF_UNIX SOCK_STREAM SOL_SOCKET SO_ERROR SO_LINGER SOMAXCONN IPPROTO_TCP TCP_NODELAY
  AI_NUMERICHOST AI_NUMERICSERV EAI_NONAME EAI_AGAIN getaddrinfo pack_sockaddr_un);

# Frame types and error codes, as in the protocol's table.
use constant {
  OPEN => 1, ATTACH => 2, ACCEPT => 3, DATA => 4, ACK => 5, EOF => 6, RESET => 7,
  ERROR => 8, GOODBYE => 9, PING => 10, PONG => 11,
};
use constant { E_PROTOCOL => 1, E_UNKNOWN => 2, E_OFFSET => 3, E_CONNECT => 4, E_LIMIT => 5, E_SHUTDOWN => 6 };
my @FRAME_NAME = qw(- OPEN ATTACH ACCEPT DATA ACK EOF RESET ERROR GOODBYE PING PONG);

use constant {
  MAX_PAYLOAD => 1_048_576,           # a longer frame is a protocol error
  MAX_OFFSET => 9_007_199_254_740_991, # 2^53-1: sshkeep counts in doubles; more is a protocol error
  CHUNK => 262_144,                    # bytes per target read and per DATA frame: the interpreter's work is per
                                       # read and per frame, and costs more than the page faults of buffers above
                                       # glibc's mmap threshold (BENCHMARKS.md, "the agent's bulk data path")
  HEADER => 21,                        # a DATA frame's header: type, length, offset, ack
  SPARES => 4,                         # read buffers kept for reuse (see q_drop)
  DIRECT_BYTES => 8_192,               # sshkeep's bytes in a frame this large are written to the target alone (see data_from)
  CHANNEL_READ => 262_144,             # bytes per channel read (a persistent buffer, so it may be large)
  BURST => 16,                         # target reads relayed in one turn, without a select between them
  REPLAY_MAX => 4 * 1_048_576,         # per stream: unacknowledged bytes from the target
  TARGET_HIGH => 1_048_576,            # per stream: bytes for the target beyond which the channel waits and acks stop (see ackable)
  CHANNEL_HIGH => 524_288,             # per channel: queued output beyond which nothing more is queued
  ACK_BYTES => 262_144,                # a bare ACK after this many bytes received unacknowledged...
  ACK_DELAY_MS => 100,                 # ...or this long after data, if nothing was sent since
  MAX_STREAMS => 1024,                 # streams held at once (ERROR 5 beyond)
  MAX_HELD => 256 * 1_048_576,         # bytes held in all buffers (ERROR 5 for new streams, no reading beyond)
  MAX_CHANNELS => 2048,                # open channels, attached or not
};

# 64-bit offsets: 'Q>' where perl has 64-bit integers, else two 32-bit halves in a double
# (exact up to 2^53, which is all the protocol allows).
my $QUADS = $Config{ivsize} >= 8;
sub u64 { my ($n) = @_; return $QUADS ? pack('Q>', $n) : pack('NN', int($n / 4294967296), $n - int($n / 4294967296) * 4294967296) }
sub read_u64 { my ($bytes) = @_; return unpack('Q>', $bytes) if $QUADS; my ($hi, $lo) = unpack('NN', $bytes); return $hi * 4294967296 + $lo }

# Milliseconds on a clock that does not jump: times() counts clock ticks since an
# arbitrary moment (10 ms steps at the usual 100 Hz, enough for grace and ack timers).
# It is a system call, as costly as a small read: read once a turn at most (see now), and
# only in a turn that sets or checks a deadline.
my $TICKS = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;
sub now_ms { my ($ticks) = POSIX::times(); return $ticks * 1000 / $TICKS }
my $NOW; # this turn's now_ms(), once read; forgotten at each select
sub now { return $NOW //= now_ms() }

my %ERRNAME;
$ERRNAME{ Errno->can($_)->() } //= $_ for grep { Errno->can($_) } sort @Errno::EXPORT_OK;
sub errname { my ($n) = @_; return $ERRNAME{ 0 + $n } // "errno " . (0 + $n) }

# Byte queues, as lists of strings that are read into and written from where they lie: a copy of
# a chunk costs the agent about as much as the system calls that move it. A chunk is not cut at
# its front either (a Perl string cut there is moved back whole when next appended to): `first`
# says where the queue's bytes start in its first chunk. A queue may keep `head` bytes of room at
# the start of each chunk: the replay buffer does, for a DATA frame's header (see pump).
sub q_new { my ($head) = @_; $head //= 0; return { chunks => [], len => 0, head => $head, first => $head } }

# Appends a chunk; $from, on an empty queue, where its bytes start if not at its head (a frame a
# socket took in part).
sub q_push {
  my ($q, $bytes, $from) = @_;
  $from //= $q->{head};
  $q->{first} = $from unless @{ $q->{chunks} };
  push @{ $q->{chunks} }, $bytes;
  $q->{len} += length($bytes) - $from;
}

# Reads at most $n bytes from $fh into a new chunk, after its head: sysread's answer. The read is
# into one buffer kept for all reads, a few bytes longer than a head and a CHUNK. Perl shares a
# string's buffer when it is copied (copy on write) only if less than 80 bytes of the buffer are
# spare (perl 5.36): a read that nearly fills it hands the buffer to its chunk, and the next read
# gets a spare one (see q_drop) or a new one; any shorter read is copied into a string of its own
# size, and the buffer serves the next read (a held reply of a few bytes does not keep a buffer of
# a CHUNK).
my $READ = '';
my @SPARE;
sub q_read {
  my ($q, $fh, $n) = @_;
  my $got = sysread($fh, $READ, $n, $q->{head});
  return $got unless $got;
  push @{ $q->{chunks} }, $READ;
  $READ = @SPARE ? pop @SPARE : '' if $got > CHUNK - 64;
  $q->{len} += $got;
  return $got;
}

# Removes $n bytes from the front. The replay buffer's chunks (a queue with a head) are kept as
# spare buffers for the next reads, a few: glibc gives a freed buffer of a CHUNK back to the kernel
# (it is above its mmap threshold, or at the top of the heap), and a new one costs a page fault
# for each 4 KiB written into it.
sub q_drop {
  my ($q, $n) = @_;
  $q->{len} -= $n;
  my $chunks = $q->{chunks};
  if ($q->{len} == 0) { # all of it: what a write or an ack most often takes
    spare(@$chunks) if $q->{head} && length $chunks->[0] >= CHUNK / 2; # (not for the reply of a request/reply)
    @$chunks = ();
    $q->{first} = $q->{head};
    return;
  }
  while ($n > 0) {
    my $left = length($chunks->[0]) - $q->{first};
    if ($left > $n) { $q->{first} += $n; return }
    spare($chunks->[0]) if $q->{head};
    shift @$chunks;
    $q->{first} = $q->{head};
    $n -= $left;
  }
}

sub spare { for (@_) { push @SPARE, $_ if @SPARE < SPARES && length >= CHUNK / 2 } }

# The bytes a queue's chunks take, heads aside: its length, and the front of its first chunk already taken
# (acknowledged, or written), which stays in memory until the whole chunk goes. What is held is counted so
# (MAX_HELD): counting only the length would leave up to a CHUNK per stream uncounted.
sub q_held { my ($q) = @_; return $q->{len} + $q->{first} - $q->{head} }

# Writes what a queue without a head holds: its first chunk from where it lies, or small chunks
# (acks, short frames) joined, up to CHUNK; false on an error.
sub q_write {
  my ($q, $fh) = @_;
  return 1 unless $q->{len}; # a write bit left set by a turn that emptied the queue
  my $chunks = $q->{chunks};
  my $n;
  if (@$chunks > 1 && length($chunks->[0]) - $q->{first} + length($chunks->[1]) <= CHUNK) {
    my ($out, $i) = (substr($chunks->[0], $q->{first}) . $chunks->[1], 2);
    $out .= $chunks->[$i++] while $i < @$chunks && length($out) + length($chunks->[$i]) <= CHUNK;
    $n = syswrite($fh, $out);
  } else {
    $n = syswrite($fh, $chunks->[0], length($chunks->[0]) - $q->{first}, $q->{first});
  }
  return $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR unless defined $n;
  q_drop($q, $n);
  return 1;
}

sub nonblocking {
  my ($fh) = @_;
  my $flags = fcntl($fh, F_GETFL, 0) or return 0;
  return fcntl($fh, F_SETFL, $flags | O_NONBLOCK);
}

# ---------------------------------------------------------------------------
# Start: parameters, directory, socket, the one line, detach.

$| = 1;
$SIG{PIPE} = 'IGNORE';
$SIG{HUP} = 'IGNORE';

sub start_error {
  my ($reason, $text) = @_;
  print "sshkeep-agent: error $reason $text\n";
  exit 1;
}

my $params = <DATA> // '';
# The line is sshkeep's JSON of three known fields; perl-base has no JSON parser, and no more is needed.
my ($SESSION) = $params =~ /"session"\s*:\s*"([0-9a-f]{16})"/;
my ($GRACE_MS) = $params =~ /"graceMs"\s*:\s*(\d{1,12})\b/;
my ($VERSION) = $params =~ /"version"\s*:\s*"([0-9a-f]{12})"/;
unless (defined $SESSION && defined $GRACE_MS && defined $VERSION) {
  chomp $params;
  start_error('version', 'parameter line not understood (session, graceMs, version): ' . substr($params, 0, 200));
}

sub agent_dir {
  my $runtime = $ENV{XDG_RUNTIME_DIR};
  my $base;
  if (defined $runtime && $runtime =~ m{^/} && -d $runtime) {
    $base = $runtime;
  } else {
    my $home = $ENV{HOME} // (getpwuid($<))[7];
    start_error('directory', 'neither XDG_RUNTIME_DIR nor HOME names a directory') unless defined $home && -d $home;
    $base = "$home/.cache";
    mkdir $base, 0700 or $!{EEXIST} or start_error('directory', "cannot make $base: $!");
  }
  my $dir = "$base/sshkeep";
  mkdir $dir, 0700 or $!{EEXIST} or start_error('directory', "cannot make $dir: $!");
  my @st = lstat $dir or start_error('directory', "cannot stat $dir: $!");
  start_error('directory', "$dir is not a directory") unless -d _ && !-l _;
  start_error('directory', "$dir is owned by uid $st[4], not by this user (uid $<)") if $st[4] != $<;
  start_error('directory', sprintf('%s is group- or world-writable (mode %04o); the agent will not put its socket there', $dir, $st[2] & 07777))
    if $st[2] & 022;
  chmod 0700, $dir if ($st[2] & 07777) != 0700;
  return $dir;
}

my $DIR = agent_dir();
my $SOCKET_PATH = "$DIR/agent-$VERSION-$SESSION.sock";
start_error('listen', "socket path $SOCKET_PATH is longer than 107 bytes") if length $SOCKET_PATH > 107;

# An agent of this session already listening is success; a socket file nobody listens on is stale.
sub listening_already {
  socket(my $probe, AF_UNIX, SOCK_STREAM, 0) or return 0;
  return 1 if connect($probe, pack_sockaddr_un($SOCKET_PATH));
  start_error('listen', "$SOCKET_PATH: $!") unless $! == ECONNREFUSED || $! == ENOENT;
  return 0;
}

sub ready_and_exit {
  print "sshkeep-agent: ready $SOCKET_PATH\n";
  exit 0;
}

my $LISTENER;
sub listen_here {
  if (-e $SOCKET_PATH || -l $SOCKET_PATH) {
    start_error('listen', "$SOCKET_PATH exists and is not a socket") unless -S $SOCKET_PATH && !-l $SOCKET_PATH;
    ready_and_exit() if listening_already();
    unlink $SOCKET_PATH or $!{ENOENT} or start_error('listen', "cannot remove the stale $SOCKET_PATH: $!");
  }
  socket($LISTENER, AF_UNIX, SOCK_STREAM, 0) or start_error('listen', "socket: $!");
  unless (bind($LISTENER, pack_sockaddr_un($SOCKET_PATH))) {
    # Another agent of this session won the race to bind: it serves.
    ready_and_exit() if $! == EADDRINUSE && listening_already();
    start_error('listen', "bind $SOCKET_PATH: $!");
  }
  listen($LISTENER, SOMAXCONN) or start_error('listen', "listen $SOCKET_PATH: $!");
  nonblocking($LISTENER) or start_error('listen', "fcntl: $!");
}
listen_here();

# A signal that comes after the loop looked at $TERM and before its select would wait there for the
# next event, for ever when nothing has a deadline: its handler also makes this pipe, which select
# watches, readable.
my ($WAKE_R, $WAKE_W);
unless (pipe($WAKE_R, $WAKE_W) && nonblocking($WAKE_R) && nonblocking($WAKE_W)) { unlink $SOCKET_PATH; start_error('listen', "pipe: $!") }

# Detach: the parent says ready and exits, so the exec channel ends; the child leaves the
# SSH session's process group and keeps nothing of the channel open. The parent says ready only
# once the child has its name and its signal handlers (a byte on $SETUP_W): a SIGTERM sent on
# "ready" would otherwise kill it with its socket left behind, or find no agent of that name.
my ($SETUP_R, $SETUP_W);
unless (pipe($SETUP_R, $SETUP_W)) { unlink $SOCKET_PATH; start_error('listen', "pipe: $!") }
{
  my $pid = fork;
  unless (defined $pid) { unlink $SOCKET_PATH; start_error('listen', "fork: $!") }
  if ($pid) {
    close $SETUP_W;
    ready_and_exit() if sysread($SETUP_R, my $byte, 1);
    start_error('listen', 'the agent ended while it was starting');
  }
  close $SETUP_R;
  POSIX::setsid();
  open STDIN, '<', '/dev/null';
  open STDOUT, '>', '/dev/null';
  open STDERR, '>&', \*STDOUT;
  chdir '/';
  $SIG{CHLD} = 'IGNORE'; # resolver children are reaped by the kernel
  $0 = "sshkeep-agent $VERSION $SESSION";
}

# ---------------------------------------------------------------------------
# State. A channel is one connection to the socket; a stream is one target connection
# with its two directions:
#   from the target (to sshkeep): base = offset of replay's first byte; sent = next offset to
#     send on the attached channel; t_eof / t_reset when the target ended (EOF takes one offset).
#   to the target: received = sshkeep's bytes received (+1 after its EOF); tbuf = bytes not yet
#     written to the target; ack_sent = the most sshkeep was told it received (an ACK, a DATA, the ACCEPT).

my %CHANNELS;   # fileno => channel
my %STREAMS;    # serial => stream (looked up by id only through find_stream, in constant time)
my %TARGETS;    # fileno => stream whose target socket that is
my %RESOLVERS;  # fileno => stream whose target name a child is resolving
my $SERIAL = 0;
my $HELD = 0;   # bytes in every replay buffer and tbuf (see q_held)
my $IDLE_SINCE = now_ms();
my $NEVER = 9**9**9; # a deadline that never comes
my $TERM = 0;
# Each turn of the loop has a number: a socket made during a turn may reuse the number of one
# closed in it, and must not be handed the old one's readiness.
my $LOOP = 0;
my $ACCEPT_AFTER = 0; # out of descriptors: accept again after a pause, not in a busy loop
# Work per turn follows events, not the number of streams: only streams touched in a turn are
# pumped, and the timers are scanned only when the earliest deadline is due.
my %DIRTY;      # serial => stream touched outside an event of its own, settled before the next select
my %TIMED;      # serial => stream that may have a deadline: detached (grace) or an ack due
my $TIMER_AT = $NEVER; # no deadline of a stream in %TIMED is before this
# Of streams owing an ack without a deadline yet (see data_from), serial => stream: since this turn,
# and since before the last select. Swapped after each select that had any.
my ($OWED, $WAITED) = ({}, {});
my $WAITED_MS = 0; # how long the last select waited, for $WAITED
# What select() waits for, kept from turn to turn: a bit is set where output is queued or a socket
# made, cleared where one is closed, and worked out again for what a turn touched.
my ($RIN, $WIN) = ('', '');
my $HELD_FULL = 0; # $HELD >= MAX_HELD at the end of the last turn (it stops every target's reads)

sub want {
  my ($fd, $read, $write) = @_;
  vec($RIN, $fd, 1) = $read ? 1 : 0;
  vec($WIN, $fd, 1) = $write ? 1 : 0;
}
$SIG{TERM} = $SIG{INT} = sub { $TERM = 1; syswrite($WAKE_W, "\0") };
syswrite($SETUP_W, "\0");
close $SETUP_W;

# The payload's parts are joined once, with the header: a DATA frame's bytes are copied once here.
sub send_frame {
  my ($c, $type, @parts) = @_;
  my $length = 0;
  $length += length for @parts;
  queue_frame($c, join('', pack('CN', $type, $length), @parts));
}

# Written at once when nothing waits before it (most often the socket takes it all); else, or
# for what it did not take, queued behind. A write error is left for channel_writable to find.
# The frame is $_[1] itself, not a copy: most often a chunk of the replay buffer (see pump).
sub queue_frame {
  my $c = $_[0];
  return if $c->{closed};
  my $wbuf = $c->{wbuf};
  my $n = 0;
  unless ($wbuf->{len}) {
    $n = syswrite($c->{fh}, $_[1]) // 0;
    return if $n == length $_[1];
  }
  q_push($wbuf, $_[1], $n); # shares the string's buffer (copy on write)
  vec($WIN, $c->{fd}, 1) = 1;
}

sub close_channel {
  my ($c) = @_;
  return if $c->{closed};
  $c->{closed} = 1;
  want($c->{fd}, 0, 0);
  delete $CHANNELS{ $c->{fd} };
  listener_interest();
  close $c->{fh};
  my $s = $c->{stream};
  detach($s) if $s && $s->{chan} && $s->{chan} == $c;
}

# Flush what is queued, then close: after an ERROR, a PONG, a stream's end.
sub end_channel {
  my ($c) = @_;
  $c->{closing} = 1;
  vec($RIN, $c->{fd}, 1) = 0;
  close_channel($c) unless $c->{wbuf}{len};
}

sub channel_error {
  my ($c, $code, $message) = @_;
  send_frame($c, ERROR, pack('C', $code) . $message);
  end_channel($c);
}

# ERROR 1 and a close. On a stream's channel the stream ends too, its target reset (sshkeep resets
# its client): once the two sides disagree, which bytes arrived is a guess, and a held target
# would wait its grace for an ATTACH that never comes.
sub protocol_error {
  my ($c, $message) = @_;
  my $s = $c->{stream};
  return reset_stream($s, E_PROTOCOL, $message) if $s && $s->{chan} && $s->{chan} == $c;
  channel_error($c, E_PROTOCOL, $message);
}

sub detach {
  my ($s) = @_;
  $s->{chan} = undef;
  $s->{detached_at} = now();
  $s->{ack_at} = undef;
  deadline($s, $s->{detached_at} + $s->{grace_ms});
  touch($s); # its target may be read again (no channel to wait on)
}

sub deadline { my ($s, $at) = @_; $TIMED{ $s->{serial} } = $s; $TIMER_AT = $at if $at < $TIMER_AT }

# What sshkeep may be told was received: all of it but what tbuf holds beyond TARGET_HIGH. A
# stream whose replay is full waits for sshkeep's acks, which come on the channel, so its channel
# is read however much tbuf holds (channel_interest): left unread while the target was not taking
# its bytes because it could not write its replies, for want of those acks, nothing would move
# again (an echo through a --resume bulk transfer, 2026-12-05). sshkeep sends no more than its
# replay buffer beyond the last ack, so tbuf stays within TARGET_HIGH plus that buffer.
sub ackable {
  my ($s) = @_;
  my $over = $s->{tbuf}{len} - TARGET_HIGH;
  return $over > 0 ? $s->{received} - $over : $s->{received};
}

# No ack is due any more; an attached stream then has no deadline, and a turn no need of the clock.
sub ack_sent {
  my ($s) = @_;
  my $ack = ackable($s);
  $s->{ack_sent} = $ack if $ack > $s->{ack_sent}; # an ACCEPT may have said more
  $s->{ack_at} = undef;
  delete $TIMED{ $s->{serial} } if $s->{chan};
  delete $WAITED->{ $s->{serial} } if %$WAITED;
}
sub touch { my ($s) = @_; $DIRTY{ $s->{serial} } = $s if $s }

# Acks owed since before the last select, which waited $ms: their deadlines (see data_from).
sub owed_acks_waited {
  my ($ms) = @_;
  for my $s (values %$WAITED) {
    next unless $s->{chan} && defined $s->{ack_at} && $s->{ack_at} == $NEVER; # sent, or detached, since
    $s->{ack_at} = now() + ACK_DELAY_MS - $ms;
    deadline($s, $s->{ack_at});
  }
  %$WAITED = ();
}

sub ack_due { my ($s) = @_; return defined $s->{ack_at} && $s->{ack_at} < $NEVER && ackable($s) > $s->{ack_sent} && now() >= $s->{ack_at} }

sub add_held { my ($s, $key, $bytes) = @_; q_push($s->{$key}, $bytes); $HELD += length $bytes }

# Writes tbuf to the target as far as it takes it (what it took is held no more: see q_held); false on an error.
sub write_tbuf {
  my ($s) = @_;
  my $before = q_held($s->{tbuf});
  my $ok = q_write($s->{tbuf}, $s->{fh});
  $HELD -= $before - q_held($s->{tbuf});
  return $ok;
}

sub close_target {
  my ($s, $reset) = @_;
  my $fh = $s->{fh} or return;
  # A target lingers 0 from its start (see connect_next): the close sends a TCP reset, so the
  # target cannot take the stream for complete; only a stream that ended cleanly closes normally.
  setsockopt($fh, SOL_SOCKET, SO_LINGER, pack('ii', 0, 0)) unless $reset;
  want(fileno $fh, 0, 0);
  delete $TARGETS{ fileno $fh };
  close $fh;
  $s->{fh} = undef;
}

# The stream is over: its target is closed (reset unless it ended cleanly), its channel ends.
sub forget_stream {
  my ($s, $reset) = @_;
  close_resolver($s);
  close_target($s, $reset);
  $HELD -= q_held($s->{replay}) + q_held($s->{tbuf});
  $s->{replay} = q_new(HEADER);
  $s->{tbuf} = q_new();
  delete $STREAMS{ $s->{serial} };
  delete $TIMED{ $s->{serial} };
  if (my $c = $s->{chan}) { $c->{stream} = undef; end_channel($c) }
  $s->{chan} = undef;
}

sub reset_stream {
  my ($s, $code, $message) = @_;
  my $c = $s->{chan};
  channel_error($c, $code, $message) if $c;
  forget_stream($s, 1);
}

# Ids are secrets: compared in constant time with every held stream, never used as a hash key.
sub same_id { my $diff = $_[0] ^ $_[1]; return ($diff =~ tr/\0//c) == 0 }

sub find_stream {
  my ($id) = @_;
  my $found;
  for my $s (values %STREAMS) { $found = $s if same_id($id, $s->{id}) }
  return $found;
}

# Ids that sshkeep ATTACHed while the agent held no such stream, for one grace (the newest
# MAX_STREAMS). An OPEN of one that comes later is stale: it was stuck on a silent link that came
# back, and sshkeep, which cancels an unanswered OPEN this way, has opened that client's stream
# again with another id. The RESET it also sends behind the OPEN can be lost with its connection
# (sshd exits on the connection's end without writing what it still had for the channel).
my @GIVEN_UP; # [id, until]

sub give_up {
  my ($id) = @_;
  push @GIVEN_UP, [$id, now() + $GRACE_MS];
  shift @GIVEN_UP while @GIVEN_UP > MAX_STREAMS;
}

sub given_up {
  my ($id) = @_;
  return 0 unless @GIVEN_UP;
  shift @GIVEN_UP while @GIVEN_UP && $GIVEN_UP[0][1] <= now();
  my $found = 0;
  for (@GIVEN_UP) { $found = 1 if same_id($id, $_->[0]) }
  return $found;
}

# ---------------------------------------------------------------------------
# Targets: resolve, connect without blocking, read into the replay buffer, write tbuf.

sub open_stream {
  my ($c, $id, $grace_ms, $port, $host) = @_;
  return protocol_error($c, 'OPEN of a stream id that is already held') if find_stream($id);
  return channel_error($c, E_UNKNOWN, 'sshkeep gave that id up before its OPEN came') if given_up($id);
  return channel_error($c, E_LIMIT, 'the agent holds ' . MAX_STREAMS . ' streams already') if keys %STREAMS >= MAX_STREAMS;
  return channel_error($c, E_LIMIT, "the agent holds $HELD bytes already") if $HELD >= MAX_HELD;
  my $s = {
    serial => ++$SERIAL, id => $id, grace_ms => $grace_ms, host => $host, port => $port, addrs => [], err => 'EAI_NONAME',
    fh => undef, resolver => undef, connected => 0, chan => $c, detached_at => undef,
    base => 0, replay => q_new(HEADER), sent => 0, t_eof => 0, t_reset => undef, eof_acked => 0,
    received => 0, tbuf => q_new(), in_eof => 0, shut => 0, ack_sent => 0, ack_at => undef,
  };
  $STREAMS{ $s->{serial} } = $s;
  $c->{stream} = $s;
  $c->{accept_pending} = 1;
  return resolve_in_child($s) unless $host =~ /^[0-9.]+$/ || $host =~ /:/;
  my ($err, @addrs) = addresses($host, $port, AI_NUMERICHOST);
  return connect_failed($s, $err) if $err;
  $s->{addrs} = \@addrs;
  connect_next($s);
}

# getaddrinfo: an error name, or undef and the addresses (IPv4 and IPv6, in the resolver's order).
sub addresses {
  my ($host, $port, $flags) = @_;
  my ($err, @addrs) = getaddrinfo($host, $port, { socktype => SOCK_STREAM, flags => AI_NUMERICSERV | $flags });
  return ($err == EAI_NONAME ? 'EAI_NONAME' : $err == EAI_AGAIN ? 'EAI_AGAIN' : 'EAI_FAIL') if $err;
  return (undef, @addrs);
}

# A name may keep the resolver busy for seconds: a child resolves it, so the other streams go on.
sub resolve_in_child {
  my ($s) = @_;
  my ($r, $w);
  my $pid = pipe($r, $w) ? fork : undef;
  unless (defined $pid) { # no child to be had: resolve here, blocking
    my ($err, @addrs) = addresses($s->{host}, $s->{port}, 0);
    return connect_failed($s, $err) if $err;
    $s->{addrs} = \@addrs;
    return connect_next($s);
  }
  if ($pid == 0) {
    POSIX::close($_) for fileno $LISTENER, fileno $WAKE_R, fileno $WAKE_W, keys %CHANNELS, keys %TARGETS, keys %RESOLVERS, fileno $r;
    my ($err, @addrs) = addresses($s->{host}, $s->{port}, 0);
    syswrite($w, $err // join('', map { pack('n N/a*', $_->{family}, $_->{addr}) } @addrs));
    POSIX::_exit(0);
  }
  close $w;
  nonblocking($r);
  @$s{qw(resolver answer born)} = ($r, '', $LOOP);
  $RESOLVERS{ fileno $r } = $s;
  want(fileno $r, 1, 0);
}

sub close_resolver {
  my ($s) = @_;
  my $r = $s->{resolver} or return;
  want(fileno $r, 0, 0);
  delete $RESOLVERS{ fileno $r };
  close $r;
  $s->{resolver} = undef;
}

sub resolver_readable {
  my ($s) = @_;
  my $n = sysread($s->{resolver}, $s->{answer}, 65_536, length $s->{answer});
  return if $n || (!defined $n && ($! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR));
  close_resolver($s);
  my $answer = delete $s->{answer};
  return connect_failed($s, $answer =~ /^EAI_/ ? $answer : 'EAI_FAIL') if $answer eq '' || $answer =~ /^EAI_/;
  while (length $answer >= 6) {
    my ($family, $addr) = unpack('n N/a*', $answer);
    push @{ $s->{addrs} }, { family => $family, addr => $addr };
    substr($answer, 0, 6 + length $addr, '');
  }
  connect_next($s);
}

sub connect_next {
  my ($s) = @_;
  while (my $ai = shift @{ $s->{addrs} }) {
    my $fh;
    unless (socket($fh, $ai->{family}, SOCK_STREAM, 0) && nonblocking($fh)) { $s->{err} = errname($!); next }
    setsockopt($fh, IPPROTO_TCP, TCP_NODELAY, 1);
    # Linger 0 until the stream ends cleanly: should the agent die (killed, out of memory), the
    # kernel resets its targets rather than end them with a FIN that reads as a complete upload.
    setsockopt($fh, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
    $s->{fh} = $fh;
    $s->{born} = $LOOP;
    $TARGETS{ fileno $fh } = $s;
    want(fileno $fh, 0, 1); # writable once connected
    return connected($s) if connect($fh, $ai->{addr});
    return if $! == EINPROGRESS;
    $s->{err} = errname($!);
    close_target($s, 0);
  }
  connect_failed($s, $s->{err});
}

# Out of descriptors is a limit of the agent's, not the target's refusal.
sub connect_failed {
  my ($s, $err) = @_;
  channel_error($s->{chan}, $err eq 'EMFILE' || $err eq 'ENFILE' ? E_LIMIT : E_CONNECT, $err) if $s->{chan};
  forget_stream($s, 0);
}

sub connected {
  my ($s) = @_;
  $s->{connected} = 1;
  $s->{addrs} = undef;
  my $c = $s->{chan} or return;
  accept_on($c, $s);
}

sub accept_on {
  my ($c, $s) = @_;
  $c->{accept_pending} = 0;
  send_frame($c, ACCEPT, u64($s->{received}));
  ack_sent($s);
  $s->{ack_sent} = $s->{received}; # sshkeep takes the offset it resends from as acknowledged
}

sub target_writable {
  my ($s) = @_;
  unless ($s->{connected}) {
    my $err = unpack('i', getsockopt($s->{fh}, SOL_SOCKET, SO_ERROR) // pack('i', 0));
    return connected($s) unless $err;
    if ($err == ECONNRESET || $err == EPIPE) {
      # It did connect, and the target reset it at once: as the plain path would show it,
      # what the target sent (still queued here), then a reset.
      connected($s);
      target_read($s);
      $s->{t_eof} = 0; # a read after the error was taken can only say EOF
      return target_failed($s, errname($err)) unless defined $s->{t_reset};
      return;
    }
    $s->{err} = errname($err);
    close_target($s, 0);
    return connect_next($s);
  }
  if ($s->{tbuf}{len}) {
    return target_failed($s, errname($!)) unless write_tbuf($s);
    owe_ack($s, $s->{chan}) if $s->{chan}; # what left tbuf may be acknowledged now
  }
  if (!$s->{tbuf}{len} && $s->{in_eof} && !$s->{shut}) {
    shutdown($s->{fh}, 1);
    $s->{shut} = 1;
    finish_if_done($s);
  }
}

# One read into the replay buffer; true when it got all it asked for, so the target may have more.
sub target_read {
  my ($s) = @_;
  my $room = REPLAY_MAX - $s->{replay}{len} > CHUNK ? CHUNK : REPLAY_MAX - $s->{replay}{len};
  my $n = q_read($s->{replay}, $s->{fh}, $room);
  unless ($n) {
    if (defined $n) { # its EOF
      $s->{t_eof} = 1;
      finish_if_done($s);
    } elsif ($! != EAGAIN && $! != EWOULDBLOCK && $! != EINTR) {
      target_failed($s, errname($!));
    }
    return 0;
  }
  $HELD += $n;
  return $n == $room;
}

# While the target has more and the channel takes all of it, what is read is relayed at once:
# a select (and a turn of this loop) per read would cost more than the read and the write.
# True when that leaves the stream settled (see settle): the reply of a request/reply, a short
# read sent whole in one DATA frame, with nothing queued and the replay below its limit after it.
sub target_readable {
  my ($s) = @_;
  for (1 .. BURST) {
    my $more = target_read($s);
    my $c = $s->{chan} or return 0;
    pump($s);
    # (Not when an earlier read of the burst left the channel's write bit set: settle clears it.)
    return !$c->{closed} && !$c->{wbuf}{len} && !vec($WIN, $c->{fd}, 1) && quiet($s) unless $more;
    channel_writable($c) if !$c->{closed} && $c->{wbuf}{len};
    return 0 if $c->{closed} || $c->{wbuf}{len} || !$s->{fh} || $s->{replay}{len} >= REPLAY_MAX || $HELD >= MAX_HELD;
  }
  return 0;
}

# Nothing of the target's left to send, no end of it to tell, and the replay below its limit (so the
# target is read as before): what a pump left settled, when nothing is queued for the channel.
sub quiet {
  my ($s) = @_;
  return !$s->{t_eof} && !defined $s->{t_reset} && $s->{replay}{len} < REPLAY_MAX && $s->{sent} == $s->{base} + $s->{replay}{len};
}

# The target reset (or failed): what it sent before is delivered, then a RESET.
sub target_failed {
  my ($s, $reason) = @_;
  $s->{t_reset} = $reason;
  close_target($s, 1);
  $HELD -= q_held($s->{tbuf});
  $s->{tbuf} = q_new();
}

sub finish_if_done {
  my ($s) = @_;
  forget_stream($s, 0) if $s->{t_eof} && $s->{eof_acked} && $s->{in_eof} && $s->{shut} && $s->{ack_sent} >= $s->{received};
}

# ---------------------------------------------------------------------------
# Frames from sshkeep.

# sshkeep acknowledged our bytes up to $ack (and our EOF, one past the last byte).
sub take_ack {
  my ($s, $ack) = @_;
  return 0 if $ack > $s->{sent};
  my $end = $s->{base} + $s->{replay}{len};
  my $free = ($ack < $end ? $ack : $end) - $s->{base};
  if ($free > 0) {
    my $replay = $s->{replay};
    my $first = $replay->{first};
    q_drop($replay, $free);
    $HELD -= $free + $first - $replay->{first}; # as q_held counts: a chunk's acknowledged front is held while the chunk stays
    $s->{base} += $free;
  }
  $s->{eof_acked} = 1 if $s->{t_eof} && $ack == $end + 1;
  return 1;
}

sub take_eof {
  my ($s, $offset) = @_;
  return if $s->{in_eof} && $offset + 1 == $s->{received}; # a resend
  return reset_stream($s, E_OFFSET, "EOF at $offset: $s->{received} received") if $s->{in_eof} || $offset != $s->{received};
  $s->{in_eof} = 1;
  $s->{received} = $offset + 1;
  if (defined $s->{t_reset}) { $s->{shut} = 1; finish_if_done($s) } # no target to shut down
}

sub attach_stream {
  my ($c, $id, $received) = @_;
  my $s = find_stream($id);
  unless ($s) {
    give_up($id);
    return channel_error($c, E_UNKNOWN, 'no stream with that id is held');
  }
  my $end = $s->{base} + $s->{replay}{len} + ($s->{t_eof} ? 1 : 0);
  if ($received < $s->{base} || $received > $end) {
    $c->{stream} = $s;
    my $old = $s->{chan};
    $s->{chan} = $c;
    close_channel($old) if $old;
    return reset_stream($s, E_OFFSET, "ATTACH with $received received: the agent holds $s->{base} to $end");
  }
  # A new attach pre-empts the old channel, which may be dead without anyone knowing yet.
  if (my $old = $s->{chan}) { $old->{stream} = undef; close_channel($old) }
  $s->{chan} = $c;
  $s->{detached_at} = undef;
  delete $TIMED{ $s->{serial} } unless defined $s->{ack_at};
  $c->{stream} = $s;
  $s->{sent} = $received;
  take_ack($s, $received);
  if ($s->{connected}) { accept_on($c, $s) } else { $c->{accept_pending} = 1 }
}

# DATA on a channel with its stream $s, the bulk of the frames, without frame_from's copy of the payload
# and its checks for every type: its $n bytes at $from in the channel's read buffer are written to the
# target from where they lie when nothing waits for the target before them, and only what it does not
# take is copied into tbuf. Small payloads with more frames behind them in this read are queued
# instead, to leave in one write with those. $offset and $ack come with the header.
sub data_from {
  my ($c, $s, $from, $n, $offset, $ack, $last) = @_;
  return protocol_error($c, 'DATA offset beyond 2^53-1') if $offset > MAX_OFFSET || $ack > MAX_OFFSET;
  # (An ack no further than the replay's start, as in every frame of an upload, frees nothing.)
  return reset_stream($s, E_OFFSET, "ack $ack beyond the $s->{sent} bytes sent") unless $ack <= $s->{base} || take_ack($s, $ack);
  if ($offset != $s->{received} || $s->{in_eof}) {
    return reset_stream($s, E_OFFSET, "DATA at $offset after a gap: $s->{received} received") if $offset > $s->{received};
    my $skip = $s->{received} - $offset; # a resend of bytes already here
    return if $skip >= $n;
    return reset_stream($s, E_PROTOCOL, 'DATA after EOF') if $s->{in_eof};
    $n -= $skip;
    $from += $skip;
  }
  $s->{received} += $n;
  unless ($s->{t_reset}) { # a reset target takes nothing more
    my $written = ($last || $n >= DIRECT_BYTES) && !$s->{tbuf}{len} && $s->{connected} && $s->{fh} ? syswrite($s->{fh}, $c->{rbuf}, $n, $from) : 0;
    unless (defined $written) {
      return target_failed($s, errname($!)) unless $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
      $written = 0;
    }
    add_held($s, 'tbuf', substr($c->{rbuf}, $from + $written, $n - $written)) if $written < $n;
  }
  owe_ack($s, $c);
}

# No ack was owed: one is due ACK_DELAY_MS from now, unless a frame carries it first (the reply
# of a request/reply, most often after the next select). Reading the clock for it would be a
# system call per request: it gets its deadline only if still owed after the next select,
# counted back by the time that select waited (select's time left says it; owed_acks_waited).
sub owe_ack {
  my ($s, $c) = @_;
  return if ackable($s) <= $s->{ack_sent}; # what came is beyond TARGET_HIGH, or was acknowledged
  unless (defined $s->{ack_at}) {
    $s->{ack_at} = $NEVER;
    $OWED->{ $s->{serial} } = $s;
  }
  # At once, between the frames of one read: sshkeep's replay buffer waits on it.
  send_ack($s) if ackable($s) - $s->{ack_sent} >= ACK_BYTES && !$c->{accept_pending};
}

# A frame's header and, were it DATA, its offset and ack (as unpack 'CNQ>Q>' reads them on a 64-bit perl).
sub header_without_quads {
  my ($rbuf, $at) = @_;
  my ($type, $len) = unpack("x$at CN", $rbuf);
  return ($type, $len) if length $rbuf < $at + 21;
  return ($type, $len, read_u64(substr($rbuf, $at + 5, 8)), read_u64(substr($rbuf, $at + 13, 8)));
}

my %PAYLOAD_SIZE = (ATTACH, 24, ACK, 8, EOF, 8, GOODBYE, 0, PING, 0); # exact sizes; others have a minimum
my %PAYLOAD_MIN = (OPEN, 23, DATA, 17, RESET, 8, ERROR, 1);

sub frame_from {
  my ($c, $type, $payload) = @_;
  my $name = $FRAME_NAME[$type];
  my $len = length $payload;
  return protocol_error($c, "$name payload of $len bytes: it has " . $PAYLOAD_SIZE{$type})
    if exists $PAYLOAD_SIZE{$type} && $len != $PAYLOAD_SIZE{$type};
  return protocol_error($c, "$name payload of $len bytes is too short") if exists $PAYLOAD_MIN{$type} && $len < $PAYLOAD_MIN{$type};
  # Offsets sit right after the id in ATTACH and first elsewhere.
  my @offsets = $type == ATTACH ? (16) : $type == DATA ? (0, 8) : $type == ACK || $type == EOF || $type == RESET ? (0) : ();
  my @values = map { read_u64(substr($payload, $_, 8)) } @offsets;
  return protocol_error($c, "$name offset beyond 2^53-1") if grep { $_ > MAX_OFFSET } @values;

  my $s = $c->{stream};
  unless ($s || $c->{attached_once}) {
    $c->{attached_once} = 1;
    if ($type == OPEN) {
      my ($id, $grace_ms, $port) = unpack('a16 N n', $payload);
      my $host = substr($payload, 22);
      return protocol_error($c, 'OPEN of port 0') if $port == 0;
      return protocol_error($c, 'OPEN host is not UTF-8') unless utf8::decode(my $check = $host);
      return open_stream($c, $id, $grace_ms, $port, $host);
    }
    return attach_stream($c, substr($payload, 0, 16), $values[0]) if $type == ATTACH;
    if ($type == PING) {
      send_frame($c, PONG, $VERSION . pack('N', scalar keys %STREAMS));
      return end_channel($c);
    }
    if ($type == GOODBYE) { $TERM = 2; return }
    return protocol_error($c, "$name cannot open a channel: OPEN, ATTACH, PING or GOODBYE can");
  }
  if ($type == ERROR) { # sshkeep found us wrong: it resets its client, we reset the target
    return $s ? forget_stream($s, 1) : close_channel($c);
  }
  return protocol_error($c, "$name on a channel whose stream ended") unless $s;
  if ($type == ACK) {
    return reset_stream($s, E_OFFSET, "ack $values[0] beyond the $s->{sent} bytes sent") unless take_ack($s, $values[0]);
    return finish_if_done($s);
  }
  return take_eof($s, $values[0]) if $type == EOF;
  if ($type == RESET) {
    # What came before the reset goes to the target, as far as the socket takes it now; then a TCP reset.
    write_tbuf($s) if $s->{fh} && $s->{connected} && $s->{tbuf}{len};
    return forget_stream($s, 1);
  }
  return protocol_error($c, "$name is not a frame sshkeep sends on a stream");
}

# True when that leaves the channel's stream settled (see settle).
sub channel_readable {
  my ($c) = @_;
  my $n = sysread($c->{fh}, $c->{rbuf}, CHANNEL_READ, length $c->{rbuf});
  unless ($n) {
    close_channel($c) unless !defined $n && ($! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR); # its end, or an error
    return 0;
  }
  # Frames are read at an offset and the buffer cut once, after them (see q_new).
  my ($at, $settled, $size) = (0, 0, length $c->{rbuf});
  while (!$c->{closing} && !$c->{closed} && $size - $at >= 5) {
    my ($type, $len, $offset, $ack) = $QUADS ? unpack("x$at CNQ>Q>", $c->{rbuf}) : header_without_quads($c->{rbuf}, $at);
    if ($type < OPEN || $type > PONG || $len > MAX_PAYLOAD) {
      protocol_error($c, $type < OPEN || $type > PONG ? "unknown frame type $type" : "$FRAME_NAME[$type] frame declares $len bytes, over the limit of " . MAX_PAYLOAD);
      return 0;
    }
    last if $size - $at < 5 + $len;
    if ($type == DATA && (my $s = $c->{stream}) && $len >= $PAYLOAD_MIN{+DATA}) {
      my $last = $at + 5 + $len == $size;
      # The request of a request/reply, all there was to read, its stream quiet: if the target took
      # it all and nothing was queued for the channel, nothing changed that settle would look at
      # (the ack it may free replay bytes with leaves the replay below its limit, where it was).
      my $was_quiet = $last && $at == 0 && quiet($s);
      data_from($c, $s, $at + 21, $len - 16, $offset, $ack, $last);
      # (Of what quiet() looks at, only a target that failed on the write can have changed.)
      $settled = $was_quiet && $c->{stream} && !$s->{tbuf}{len} && !$c->{wbuf}{len} && !$c->{accept_pending} && !defined $s->{t_reset};
    } else {
      frame_from($c, $type, substr($c->{rbuf}, $at + 5, $len));
    }
    $at += 5 + $len;
  }
  substr($c->{rbuf}, 0, $at, '') unless $c->{closed};
  return $settled;
}

sub channel_writable {
  my ($c) = @_;
  my $full = $c->{wbuf}{len} >= CHANNEL_HIGH;
  return close_channel($c) unless q_write($c->{wbuf}, $c->{fh});
  touch($c->{stream}) if $full && $c->{wbuf}{len} < CHANNEL_HIGH; # the pump waits on this room
  close_channel($c) if $c->{closing} && !$c->{wbuf}{len};
}

# ---------------------------------------------------------------------------
# Frames to sshkeep: data from the replay buffer, then EOF or RESET; acks.

sub pump {
  my ($s) = @_;
  my $c = $s->{chan};
  return if !$c || $c->{accept_pending} || $c->{closing};
  my $replay = $s->{replay};
  my $end = $s->{base} + $replay->{len};
  if ($s->{sent} < $end) {
    # A DATA frame per chunk, from the first unsent byte: its chunk is looked for from the back, as
    # it is most often the last read.
    my $chunks = $replay->{chunks};
    my ($i, $unsent, $size) = ($#$chunks, $end - $s->{sent});
    while ($unsent > ($size = length($chunks->[$i]) - ($i ? HEADER : $replay->{first}))) { $unsent -= $size; $i-- }
    while ($s->{sent} < $end && $c->{wbuf}{len} < CHANNEL_HIGH) {
      my $at = length($chunks->[$i]) - $unsent; # where chunk $i's unsent bytes start
      # DATA: its header (type, length, offset, ack), then the bytes.
      my $ack = ackable($s);
      my $header = $QUADS ? pack('CNQ>Q>', DATA, 16 + $unsent, $s->{sent}, $ack)
        : pack('CN', DATA, 16 + $unsent) . u64($s->{sent}) . u64($ack);
      if ($at == HEADER) { # all of the chunk: the header goes in the room before its bytes, the chunk is the frame
        substr($chunks->[$i], 0, HEADER, $header);
        queue_frame($c, $chunks->[$i]);
      } else { # from within a chunk: a resend after an ATTACH
        queue_frame($c, $header . substr($chunks->[$i], $at));
      }
      $s->{sent} += $unsent;
      $unsent = ++$i < @$chunks ? length($chunks->[$i]) - HEADER : 0;
    }
    ack_sent($s); # each frame carried it
    return if $s->{sent} < $end;
  } elsif (ack_due($s)) { # the timer found it due
    send_ack($s);
  }
  # All of the replay is sent: the target's end, if it came.
  pump_end($s, $c, $end) if $s->{t_eof} || defined $s->{t_reset} || $s->{in_eof};
}

sub pump_end {
  my ($s, $c, $end) = @_;
  if ($s->{t_eof} && $s->{sent} == $end) {
    send_frame($c, EOF, u64($end));
    $s->{sent} = $end + 1;
  } elsif (defined $s->{t_reset}) {
    send_frame($c, RESET, u64($s->{sent}) . $s->{t_reset});
    return forget_stream($s, 1);
  }
  send_ack($s) if ackable($s) > $s->{ack_sent} && ($s->{in_eof} || ack_due($s));
  finish_if_done($s);
}

sub send_ack {
  my ($s) = @_;
  send_frame($s->{chan}, ACK, u64(ackable($s)));
  ack_sent($s);
}

# ---------------------------------------------------------------------------
# The loop.

sub accept_channels {
  while (keys %CHANNELS < MAX_CHANNELS) {
    my $fh;
    unless (accept($fh, $LISTENER)) {
      $ACCEPT_AFTER = now() + 100 unless $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
      return;
    }
    nonblocking($fh);
    $CHANNELS{ fileno $fh } = { fh => $fh, fd => fileno $fh, rbuf => '', wbuf => q_new(), stream => undef, born => $LOOP };
    want(fileno $fh, 1, 0);
    $IDLE_SINCE = undef; # timers() counts idle time only while no channel is open
  }
  listener_interest();
}

# Accepting stops at the channels' limit, and for a pause after running out of descriptors.
sub listener_interest { vec($RIN, fileno $LISTENER, 1) = keys %CHANNELS < MAX_CHANNELS && !$ACCEPT_AFTER ? 1 : 0 }

sub shut_down {
  my ($code) = @_;
  unlink $SOCKET_PATH; # first: a client that sees its channel close may look for it at once
  for my $c (values %CHANNELS) {
    if ($code) { send_frame($c, ERROR, pack('C', E_SHUTDOWN) . 'the agent is shutting down'); q_write($c->{wbuf}, $c->{fh}) }
    close $c->{fh};
  }
  close_target($_, 1) for values %STREAMS;
  exit 0;
}

# Streams whose grace ran out are forgotten, those whose ack is due pumped; the next deadline,
# or undef when there is none (select may then wait for ever). The clock is read only when
# something has a deadline: a busy stream's turn has none.
sub timers {
  if (%TIMED && now() >= $TIMER_AT) {
    $TIMER_AT = $NEVER;
    for my $s (values %TIMED) {
      if (!$s->{chan}) {
        my $expiry = $s->{detached_at} + $s->{grace_ms};
        if (now() >= $expiry) { forget_stream($s, 1); next }
        deadline($s, $expiry);
      } elsif (!defined $s->{ack_at}) {
        delete $TIMED{ $s->{serial} };
      } elsif (ackable($s) <= $s->{ack_sent}) { # all it held for the target beyond TARGET_HIGH: owed again as that goes (target_writable)
        $s->{ack_at} = undef;
        delete $TIMED{ $s->{serial} };
      } elsif (now() >= $s->{ack_at}) {
        touch($s);
        deadline($s, now() + ACK_DELAY_MS); # again, should the pump not get it out this time
      } else {
        deadline($s, $s->{ack_at});
      }
    }
  }
  my $next = %TIMED ? $TIMER_AT : undef;
  # Idle from the last channel's close, held streams or not: when sshkeep is gone, its streams
  # expire one grace after their channels closed, and the agent goes with them.
  unless (%CHANNELS) {
    $IDLE_SINCE //= now();
    unless (%STREAMS) {
      my $exit = $IDLE_SINCE + $GRACE_MS;
      if (now() >= $exit) {
        accept_channels(); # a channel sshd connected since the last select is served, not reset with the listener
        shut_down(0) unless %CHANNELS;
      }
      $next = $exit if !%CHANNELS && (!defined $next || $exit < $next);
    }
  }
  if ($ACCEPT_AFTER) {
    if (now() >= $ACCEPT_AFTER) { $ACCEPT_AFTER = 0; listener_interest() } elsif (!defined $next || $ACCEPT_AFTER < $next) { $next = $ACCEPT_AFTER }
  }
  return $next;
}

# The descriptors set in a select() vector, found at C speed rather than by testing each one.
sub fds_in {
  my ($vec) = @_;
  my $bits = unpack('b*', $vec);
  my @fds;
  my $fd = -1;
  push @fds, $fd while ($fd = index($bits, '1', $fd + 1)) >= 0;
  return @fds;
}

sub channel_interest {
  my ($c) = @_;
  return if $c->{closed};
  my $s = $c->{stream};
  # Past TARGET_HIGH in tbuf the channel waits, unless the stream waits on sshkeep's acks (its
  # replay is full) and memory allows: they come this way (see ackable).
  vec($RIN, $c->{fd}, 1) = !$c->{closing} && !($s && $s->{tbuf}{len} >= TARGET_HIGH && ($s->{replay}{len} < REPLAY_MAX || $HELD_FULL)) ? 1 : 0;
  vec($WIN, $c->{fd}, 1) = $c->{wbuf}{len} ? 1 : 0;
}

sub stream_interest {
  my ($s) = @_;
  my $c = $s->{chan};
  channel_interest($c) if $c;
  my $fh = $s->{fh} or return;
  vec($RIN, fileno $fh, 1) =
    $s->{connected} && !$s->{t_eof} && $s->{replay}{len} < REPLAY_MAX && !$HELD_FULL && (!$c || $c->{wbuf}{len} < CHANNEL_HIGH) ? 1 : 0;
  vec($WIN, fileno $fh, 1) = !$s->{connected} || $s->{tbuf}{len} || ($s->{in_eof} && !$s->{shut}) ? 1 : 0;
}

# After an event on a stream, in the same turn: what it made ready to send goes out, what is
# queued for either socket is written as far as it takes it, and select's interest follows.
sub settle {
  my ($s) = @_;
  pump($s);
  my $c = $s->{chan};
  channel_writable($c) if $c && $c->{wbuf}{len} && !$c->{closed};
  target_writable($s) if $s->{tbuf}{len} && $s->{connected} && $s->{fh};
  stream_interest($s);
}

# Every bit from scratch: should a bit outlive its descriptor, select() fails with EBADF at every
# turn, and the agent would spin instead of serving.
sub all_interest {
  ($RIN, $WIN) = ('', '');
  channel_interest($_) for values %CHANNELS;
  stream_interest($_) for values %STREAMS;
  vec($RIN, $_, 1) = 1 for keys %RESOLVERS;
  listener_interest();
  vec($RIN, fileno $WAKE_R, 1) = 1;
}

# The rare work before a turn's select: a signal; streams touched outside an event of their own (a
# timer, a channel's close, room in a channel); every target's reading, which stops and starts
# again as all buffers together reach their limit or leave it; acks owed since before the last select.
sub between_turns {
  shut_down($TERM == 1 ? 1 : 0) if $TERM;
  if (%DIRTY) {
    my @dirty = values %DIRTY;
    %DIRTY = ();
    settle($_) for @dirty;
  }
  if (($HELD >= MAX_HELD ? 1 : 0) != $HELD_FULL) {
    $HELD_FULL = $HELD_FULL ? 0 : 1;
    stream_interest($_) for values %STREAMS;
  }
  owed_acks_waited($WAITED_MS) if %$WAITED;
}

# How long select may wait: none when a stream was touched (by a timer), else a tick past the
# earliest deadline (times() steps in 10 ms) and no longer than an owed ack may wait; undef (for
# ever) when nothing has a deadline.
sub timeout {
  my $next = %TIMED || $ACCEPT_AFTER || !%CHANNELS ? timers() : undef; # after the settling: an ack it sent is no deadline
  return 0 if %DIRTY;
  my $wait = defined $next ? ($next > now() ? ($next - now()) / 1000 + 0.005 : 0) : undef;
  return %$OWED && (!defined $wait || $wait > ACK_DELAY_MS / 1000) ? ACK_DELAY_MS / 1000 : $wait;
}

my $LISTENER_FD = fileno $LISTENER;
listener_interest();
vec($RIN, fileno $WAKE_R, 1) = 1; # never read: the turn it wakes ends the agent
for (;;) {
  between_turns() if $TERM || %DIRTY || ($HELD >= MAX_HELD ? 1 : 0) != $HELD_FULL || %$WAITED;
  my $wait = %DIRTY || %TIMED || %$OWED || $ACCEPT_AFTER || !%CHANNELS ? timeout() : undef;
  $LOOP++;
  my ($rout, $wout) = ($RIN, $WIN =~ tr/\0//c ? $WIN : undef); # most turns wait for no socket to take output
  my ($ready, $left) = select($rout, $wout, undef, $wait);
  $NOW = undef;
  ($WAITED, $OWED, $WAITED_MS) = ($OWED, $WAITED, ($wait - $left) * 1000) if %$OWED; # $WAITED was emptied before
  if ($ready <= 0) {
    all_interest() if $ready < 0 && !$!{EINTR};
    next;
  }

  # Each stream handled here is settled at once. Looked up at each step: a handler may close
  # another descriptor, or reuse its number (what was made in this turn is not handled: see $LOOP).
  for my $fd (defined $wout ? fds_in($wout) : ()) { # when anything waits to be written
    if (my $c = $CHANNELS{$fd}) {
      next if $c->{born} == $LOOP;
      channel_writable($c);
      if (my $s = $c->{stream}) { settle($s) } else { channel_interest($c) }
    } elsif (my $s = $TARGETS{$fd}) {
      next if $s->{born} == $LOOP;
      target_writable($s);
      settle($s);
    }
  }
  my ($bits, $fd) = (unpack('b*', $rout), -1);
  while (($fd = index($bits, '1', $fd + 1)) >= 0) {
    if (my $c = $CHANNELS{$fd}) {
      next if $c->{born} == $LOOP || channel_readable($c);
      if (my $s = $c->{stream}) { settle($s) } else { channel_interest($c) } # a PONG, an ERROR
    } elsif (my $s = $TARGETS{$fd}) {
      settle($s) unless $s->{born} == $LOOP || target_readable($s);
    } elsif ($fd == $LISTENER_FD) {
      accept_channels();
    } elsif ($s = $RESOLVERS{$fd}) {
      next if $s->{born} == $LOOP;
      resolver_readable($s);
      settle($s);
    }
  }
}
__END__
