#!/usr/bin/env -S node --max-semi-space-size=1 --single-threaded-gc --no-allocation-site-pretenuring
// GC on the main thread: V8's GC helper threads took the CPU the data path needs once the
// process had served many connections. A 1 MB young generation: less memory. No pretenuring: each
// connection's short-lived objects stay young, where a cheap scavenge frees them. See BENCHMARKS.md.
import { catchEarlySignals } from './signals.js';

// Signals first: the rest takes about 0.25 s to load, and until a listener is set a SIGHUP or
// SIGUSR2 ends the process.
catchEarlySignals();
await import('./run.js');
