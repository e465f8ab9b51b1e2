/**
 * Runs a script's main(), cleaning up (processes, sshd) on success, failure, SIGINT and
 * SIGTERM, and exits with 0, 1 or 130.
 */
export function runMain(name: string, main: () => Promise<void>, cleanup: () => Promise<void>, verbose = false): void {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\n${sig}: cleaning up\n`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  main()
    .then(
      () => 0,
      (err: unknown) => {
        process.stderr.write(`${name} failed: ${err instanceof Error ? (verbose ? err.stack ?? err.message : err.message) : String(err)}\n`);
        return 1;
      },
    )
    .then(async (code) => {
      await cleanup();
      process.exit(code);
    });
}
