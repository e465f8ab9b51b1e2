/** How often the watch looks at the clocks. */
const TICK_MS = 1_000;
/** A tick this much later than due means the process or the machine was suspended. */
const LATE_MS = 2_000;

/**
 * Notices that timers fired far too late: the process was stopped (SIGSTOP, a
 * debugger) or the laptop slept. The monotonic clock catches the first (it keeps
 * running while the process is frozen); the wall clock catches the second (the
 * monotonic clock stops during system suspend). Returns a stop function.
 */
export function watchForWake(
  onWake: (pausedMs: number) => void,
  clocks = { mono: () => performance.now(), wall: () => Date.now() },
): () => void {
  let mono = clocks.mono();
  let wall = clocks.wall();
  const timer = setInterval(() => {
    const nowMono = clocks.mono();
    const nowWall = clocks.wall();
    const late = Math.max(nowMono - mono, nowWall - wall) - TICK_MS;
    mono = nowMono;
    wall = nowWall;
    if (late > LATE_MS) onWake(Math.round(late));
  }, TICK_MS);
  timer.unref();
  return () => clearInterval(timer);
}
