import t from 'tap';
import { deadline, refusedPort, httpGet } from './fixtures/net.js';
import { runCli, spawnCliFor, type SpawnedCli } from './fixtures/cli.js';

const HELLO = 'Hello from the far side of the tunnel';

/** Resolves with the first match of `re` in the CLI's stdout (already written or still to come). */
function waitForStdout(cli: SpawnedCli, re: RegExp, timeoutMs: number, what: string): Promise<RegExpMatchArray> {
  const seen = re.exec(cli.stdout());
  if (seen) return Promise.resolve(seen);
  const stdout = cli.child.stdout!;
  let onData: (() => void) | undefined;
  const found = new Promise<RegExpMatchArray>((resolve, reject) => {
    // The fixture's own 'data' listener was added first, so cli.stdout() already has the chunk.
    onData = () => {
      const m = re.exec(cli.stdout());
      if (m) resolve(m);
    };
    stdout.on('data', onData);
    void cli.exited(timeoutMs + 1000).then(
      ({ code }) => reject(new Error(`sshkeep demo exited (code ${code}) before ${what}; stdout:\n${cli.stdout()}\nstderr:\n${cli.stderr()}`)),
      () => {},
    );
  });
  return deadline(found, timeoutMs, `${what}; stdout so far:\n${cli.stdout()}`).finally(() => stdout.off('data', onData!));
}


t.test('demo – --once: one request through the tunnel, printed, exit 0', async (t) => {
  const started = performance.now();
  const r = await runCli(['demo', '--once'], { timeoutMs: 20_000 });
  const tookMs = performance.now() - started;
  t.equal(r.code, 0, 'exit 0');
  t.ok(tookMs < 20_000, `within 20 s (${Math.round(tookMs)} ms)`);
  const line = r.stdout.split('\n').find((l) => l.includes(HELLO));
  t.ok(line, `a line with the hello on stdout; stdout:\n${r.stdout}`);
  t.match(line ?? '', /^GET http:\/\/127\.0\.0\.1:\d+\/ -> /, 'names the URL it fetched');
  t.notMatch(r.stderr, /"level":"error"/, 'no error lines');
});

t.test('demo – long-running: prints a curl hint, serves it through the tunnel, SIGINT exits 0', async (t) => {
  const cli = spawnCliFor(t, ['demo']);
  const [, url] = await waitForStdout(cli, /curl (http:\/\/127\.0\.0\.1:\d+\/)/, 20_000, 'the curl hint');
  t.ok(url, `a curl hint on stdout: ${url}`);

  const first = await httpGet(Number(new URL(url!).port), '/');
  t.equal(first.status, 200, 'HTTP 200 through the tunnel');
  t.match(first.body, HELLO, 'the hello from the target');
  t.match(first.body, /request #1, GET \/\n$/, 'the first request the target served');
  const second = await httpGet(Number(new URL(url!).port), '/');
  t.match(second.body, /request #2,/, 'a second request is served too');

  cli.kill('SIGINT');
  const { code, signal } = await cli.exited(10_000);
  t.equal(code, 0, 'SIGINT: exit 0');
  t.equal(signal, null, 'handled the signal and exited by itself');
  t.notOk(cli.logs().some((l) => l.level === 'error'), 'no error lines');
});

t.test('demo – --port N forwards that port', async (t) => {
  const port = await refusedPort() /* free a moment ago */;
  const cli = spawnCliFor(t, ['demo', '--port', String(port)]);
  const [, url] = await waitForStdout(cli, /curl (http:\/\/127\.0\.0\.1:\d+\/)/, 20_000, 'the curl hint');
  t.equal(url, `http://127.0.0.1:${port}/`, 'the hint names the port asked for');
  t.match((await httpGet(Number(new URL(url!).port), '/')).body, HELLO, 'served on that port');
  cli.kill('SIGINT');
  t.equal((await cli.exited(10_000)).code, 0);
});

t.test('demo – an unknown option: exit 2, one sshkeep: line', async (t) => {
  const r = await runCli(['demo', '--bogus'], { timeoutMs: 10_000 });
  t.equal(r.code, 2, 'exit 2 (usage)');
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  t.equal(lines.length, 1, `one line on stderr; got:\n${r.stderr}`);
  t.match(lines[0] ?? '', /^sshkeep: /, 'starts with sshkeep:');
  t.match(lines[0] ?? '', /--bogus/, 'names the option');
  t.equal(r.stdout, '', 'nothing on stdout');
  const extra = await runCli(['demo', 'extra'], { timeoutMs: 10_000 });
  t.equal(extra.code, 2, 'an argument: exit 2 too');
  t.equal(extra.stderr, 'sshkeep: too many arguments. Expected 0 arguments but got 1. Run sshkeep demo --help for usage.\n', 'one sentence, one period');
});

// Issue 13, item 8: each move of the demo's outage was printed twice, as a log line and as narration.
t.test('demo – an outage is narrated without repeating the log, and logged once at its start and once at its end', async (t) => {
  const cli = spawnCliFor(t, ['demo', '--outage-every', '1']);
  await waitForStdout(cli, /held request served \d+ ms after it was sent/, 20_000, 'a held request served');
  cli.kill('SIGINT');
  await cli.exited(10_000);
  const narration = cli.stdout().split('\n').filter((l) => l.startsWith('demo: '));
  t.ok(narration.length >= 4, `the demo narrated its own steps:\n${narration.join('\n')}`);
  t.notOk(narration.some((l) => / -> /.test(l)), 'no narration repeats a state line of the log');
  const shown = cli.logs().filter((l) => l.event === 'state' || l.event === 'reconnect' || l.event === 'outage');
  const lost = shown.findIndex((l) => l.to === 'reconnecting');
  const restored = shown.findIndex((l, i) => i > lost && l.to === 'ready');
  t.ok(lost >= 0 && restored > lost, 'the outage began and ended');
  t.match(shown.slice(lost, restored + 1), [
    { level: 'warn', from: 'ready', to: 'reconnecting' },
    { level: 'info', to: 'ready', msg: /restored after \d+\.\d s, \d+ attempts/ },
  ], 'two lines at the default level: its start and its end');
});
