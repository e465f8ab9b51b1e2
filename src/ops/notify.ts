/**
 * systemd's notify protocol (sd_notify(3)) for `Type=notify` units: READY=1, STATUS=,
 * RELOADING=1, STOPPING=1 and WATCHDOG=1, as datagrams to the socket named by $NOTIFY_SOCKET.
 *
 * How the datagrams leave. Node has no Unix datagram sockets, so something else sends them.
 * Weighed and decided:
 * - `systemd-notify` once per message: the tool exits as soon as it has sent, and systemd
 *   attributes a message to a unit by the sender's PID, looked up when it reads the message;
 *   a sender that is gone by then is dropped, even with NotifyAccess=all (sd_notify(3)). Since
 *   systemd 246 it waits on a barrier, but that is a process per STATUS and per watchdog ping,
 *   and with NotifyAccess=main a child's message is dropped anyway. Not used.
 * - npm packages: `sd-notify` and `unix-dgram` compile C++ at install (node-gyp, and for the
 *   first libsystemd headers); `node-unix-socket` ships prebuilt binaries per platform, a
 *   native third-party binary in a network daemon for ten lines of work. Not used.
 * - Chosen: one long-lived sender child for the whole service lifetime, fed NUL-separated
 *   messages on stdin, sending each as one datagram with `sendto`. It lives in the service's
 *   cgroup from start to exit, so there is no attribution race; the unit says NotifyAccess=all
 *   (the sender is not the main PID). It is perl (`Socket`, in perl-base, which is Essential on
 *   Debian and Ubuntu), or python3 where perl is missing (RHEL, Fedora, Amazon Linux): no
 *   compiler, no dependency. It ignores SIGTERM/SIGINT/SIGHUP (systemd signals the whole
 *   cgroup; STOPPING=1 must still go out) and exits when our end of its stdin closes, so it
 *   never outlives us. An abstract socket (`@name`) becomes a leading NUL, as sd_notify does.
 *   With neither interpreter, one warning names both and sshkeep runs on.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import type { Socket } from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import type { Logger } from '../log.js';
import type { TunnelReport } from '../sshkeep.js';
import type { ConnectionStatus } from '../ssh/connection.js';

/** Sends each NUL-terminated message on stdin as one datagram; a failure's reason goes to stderr, one line each. */
const PERL_SENDER = `
$0 = 'sshkeep-notify'; $SIG{$_} = 'IGNORE' for qw(TERM INT HUP);
use Socket; my $to = pack_sockaddr_un($ENV{NOTIFY_SOCKET} =~ s/^@/\\0/r);
socket(my $s, AF_UNIX, SOCK_DGRAM, 0) or die "socket: $!\\n";
$/ = "\\0"; $| = 1;
while (my $m = <STDIN>) { chomp $m; send($s, $m, 0, $to) or print STDERR "$!\\n"; }
`;

const PYTHON_SENDER = `
import os, signal, socket, sys
for n in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP): signal.signal(n, signal.SIG_IGN)
to = os.environ['NOTIFY_SOCKET']; to = '\\0' + to[1:] if to.startswith('@') else to
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); rest = b''
for chunk in iter(lambda: os.read(0, 65536), b''):
    *messages, rest = (rest + chunk).split(b'\\0')
    for m in messages:
        try: s.sendto(m, to)
        except OSError as e: print(e.strerror, file=sys.stderr, flush=True)
`;

const SENDERS = [
  { program: 'perl', args: ['-e', PERL_SENDER] },
  { program: 'python3', args: ['-c', PYTHON_SENDER] },
];

/** The first executable `program` on PATH. */
function onPath(program: string, pathVar: string | undefined): string | undefined {
  for (const dir of (pathVar ?? '').split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, program);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** What the notifier reads of the tunnels: a Fleet. */
export interface Observed {
  readonly tunnels: readonly {
    on(event: 'status', listener: (s: ConnectionStatus) => void): unknown;
    readonly remoteForwards: readonly { on(event: 'state', listener: () => void): unknown }[];
  }[];
  /** Every tunnel has been ready (or, with --skip-failed-tunnels, was skipped while the others were). */
  isStarted(): boolean;
  reports(): TunnelReport[];
}

export interface NotifierOptions {
  /** STATUS= is sent at most this often; state changes in between are coalesced. */
  statusIntervalMs?: number;
}

/** The one line of STATUS=: how many tunnels are ready, which are not and why, clients now. */
export function statusText(reports: TunnelReport[]): string {
  const ready = reports.filter((r) => r.state === 'ready').length;
  const down = reports.filter((r) => r.state !== 'ready').map((r) => `${r.tunnel} ${r.state}${r.lastError ? ` (${r.lastError})` : ''}`);
  const active = reports.reduce((n, r) => n + r.active, 0);
  const held = reports.reduce((n, r) => n + r.held, 0);
  const line = [`${ready}/${reports.length} tunnel(s) ready`, ...down, `${active} active, ${held} held`].join('; ');
  // One line, of a length `systemctl status` shows whole.
  return line.replace(/[\x00-\x1f\x7f]+/g, ' ').slice(0, 300);
}

/** systemd's watchdog interval for us, in ms: WATCHDOG_USEC, when WATCHDOG_PID (if set) is our pid. */
function watchdogMs(env: NodeJS.ProcessEnv): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isSafeInteger(usec) || usec <= 0) return undefined;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== process.pid) return undefined;
  return usec / 1000;
}

/**
 * Tells systemd how sshkeep is doing, through one sender child. Created only when
 * $NOTIFY_SOCKET is set; every method is harmless after a failure (logged once).
 */
export class SystemdNotifier {
  readonly #socket: string;
  readonly #logger: Logger;
  readonly #statusIntervalMs: number;
  #child: ChildProcess | undefined;
  #warned = false;
  #closed = false;
  #fleet: Observed | undefined;
  readonly #watched = new WeakSet<object>();
  #readySent = false;
  #stopping = false;
  #lastStatus = '';
  #lastStatusAt = -Infinity;
  #statusTimer: NodeJS.Timeout | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  readonly #watchdogMs: number | undefined;

  /**
   * From the environment: undefined without NOTIFY_SOCKET. Removes NOTIFY_SOCKET and the
   * WATCHDOG_* variables from `env`, as sd_notify's unset_environment does, so a ProxyCommand
   * or another sshkeep started from here cannot speak for this unit.
   */
  static fromEnv(env: NodeJS.ProcessEnv, logger: Logger, options: NotifierOptions = {}): SystemdNotifier | undefined {
    const socket = env.NOTIFY_SOCKET;
    const watchdog = watchdogMs(env);
    for (const k of ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID']) delete env[k];
    if (!socket) return undefined;
    return new SystemdNotifier(socket, watchdog, env, logger, options);
  }

  private constructor(socket: string, watchdog: number | undefined, env: NodeJS.ProcessEnv, logger: Logger, options: NotifierOptions) {
    this.#socket = socket;
    this.#logger = logger;
    this.#statusIntervalMs = options.statusIntervalMs ?? 1000;
    this.#watchdogMs = watchdog;
    const sender = SENDERS.map((s) => ({ ...s, file: onPath(s.program, env.PATH) })).find((s) => s.file);
    if (!sender) {
      this.#warn('neither perl nor python3 is on PATH, and sshkeep needs one of them to send datagrams to NOTIFY_SOCKET. A Type=notify unit will time out waiting for READY=1: install perl, or use Type=exec');
      return;
    }
    const child = spawn(sender.file!, sender.args, { stdio: ['pipe', 'ignore', 'pipe'], env: { ...env, NOTIFY_SOCKET: socket } });
    this.#child = child;
    child.stdin!.on('error', () => {}); // its exit is reported below
    child.on('error', (err) => this.#warn(`cannot start ${sender.program} to send them (${err.message})`));
    child.on('exit', (code, signal) => {
      this.#child = undefined;
      if (!this.#closed) this.#warn(`the sender (${sender.program}) ended (${signal ?? `exit ${code}`})`);
    });
    readline.createInterface({ input: child.stderr! }).on('line', (reason) => this.#warn(reason));
    // Neither the child nor its pipes keep the process alive: it exits when we do.
    child.unref();
    for (const pipe of [child.stdin, child.stderr]) (pipe as Socket).unref();
  }

  /** Watches `fleet`: READY=1 once it has started, STATUS= on state changes, WATCHDOG=1 if asked. */
  watch(fleet: Observed): void {
    this.#fleet = fleet;
    this.#observe();
    if (this.#watchdogMs !== undefined && !this.#watchdog) {
      // A timer of the main event loop: a loop stuck for WatchdogSec sends nothing, and systemd
      // restarts us, which is what the watchdog is for.
      this.#watchdog = setInterval(() => this.#send(['WATCHDOG=1']), this.#watchdogMs / 2).unref();
      this.#send(['WATCHDOG=1']);
    }
  }

  /** A configuration reload begins (Type=notify-reload needs MONOTONIC_USEC, the CLOCK_MONOTONIC time). */
  reloading(): void {
    if (this.#stopping) return;
    this.#send(['RELOADING=1', `MONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`, 'STATUS=reloading the configuration']);
  }

  /** The reload is done (tunnels added by it are watched from now on), or the first start. */
  ready(): void {
    if (this.#stopping) return;
    // A reload before the first start (a SIGHUP while connecting) ends RELOADING=1 without
    // READY=1: that waits, as ever, for every tunnel to be ready.
    if (!this.#readySent && this.#fleet && !this.#fleet.isStarted()) {
      this.#observe();
      return this.#send([`STATUS=${this.#statusNow()}`]);
    }
    this.#readySent = true;
    this.#observe();
    this.#lastStatus = this.#statusNow();
    this.#lastStatusAt = performance.now();
    this.#send(['READY=1', `STATUS=${this.#lastStatus}`]);
  }

  /** Draining before exit: no READY= after this. */
  stopping(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    clearTimeout(this.#statusTimer);
    this.#send(['STOPPING=1', 'STATUS=stopping: draining open clients']);
  }

  /** Stops the timers and lets the sender exit (its stdin closes). */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#statusTimer);
    clearInterval(this.#watchdog);
    this.#child?.stdin?.end();
  }

  #observe(): void {
    for (const tunnel of this.#fleet?.tunnels ?? []) {
      if (this.#watched.has(tunnel)) continue;
      this.#watched.add(tunnel);
      tunnel.on('status', () => this.#changed());
      for (const r of tunnel.remoteForwards) r.on('state', () => this.#changed());
    }
    this.#changed();
  }

  #statusNow(): string {
    return this.#fleet ? statusText(this.#fleet.reports()) : 'starting';
  }

  /**
   * READY=1 the first time every tunnel is ready, not when the listeners are up: a client
   * arriving before then would be held, not refused, but units ordered After= this one expect
   * the forwards to carry traffic. Then STATUS=, at most once per statusIntervalMs.
   */
  #changed(): void {
    if (this.#stopping || !this.#fleet) return;
    if (!this.#readySent) {
      if (this.#fleet.isStarted()) this.ready();
      return;
    }
    if (this.#statusTimer) return;
    const wait = this.#lastStatusAt + this.#statusIntervalMs - performance.now();
    this.#statusTimer = setTimeout(() => {
      this.#statusTimer = undefined;
      if (this.#stopping) return;
      const status = this.#statusNow();
      if (status === this.#lastStatus) return;
      this.#lastStatus = status;
      this.#lastStatusAt = performance.now();
      this.#send([`STATUS=${status}`]);
    }, Math.max(0, wait)).unref();
  }

  #send(fields: string[]): void {
    this.#child?.stdin?.write(`${fields.join('\n')}\0`);
  }

  /** One warning for the first problem; later ones only at debug. */
  #warn(reason: string): void {
    const message = `cannot notify systemd at NOTIFY_SOCKET=${this.#socket}: ${reason}; running on`;
    if (this.#warned) return this.#logger.debug(message, { event: 'notify' });
    this.#warned = true;
    this.#logger.warn(message, { event: 'notify' });
  }
}
