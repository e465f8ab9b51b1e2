import { Command, CommanderError } from 'commander';
import { ConfigError, EXIT } from '../errors.js';
import { parsePort } from '../config/forward-spec.js';
import { parseDuration } from '../config/duration.js';
import { createLogger, type Logger } from '../log.js';
import { get, narrateOutages, startDemo } from '../demo/demo.js';
import { usageMessage } from './program.js';

/** `sshkeep demo`: a tunnel to an embedded SSH server and HTTP target, no setup needed. */
export async function runDemo(argv: string[], onSignal: (stop: () => Promise<void>) => void): Promise<number> {
  const cmd = new Command('sshkeep demo')
    .description('Run sshkeep against an embedded SSH server and HTTP target: nothing to set up.')
    .option('--port <port>', 'local port to forward (default: any free port)', '0')
    .option('--once', 'make one request through the tunnel, print it, and exit')
    .option('--outage-every <seconds>', 'cut the link this often to show a held request being served (0 = never)', '15')
    .exitOverride()
    .configureOutput({ writeErr: () => {} });
  try {
    cmd.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed') return EXIT.ok;
      throw new ConfigError(`${usageMessage(err)}. Run sshkeep demo --help for usage.`);
    }
    throw err;
  }
  const opts = cmd.opts<{ port: string; once?: boolean; outageEvery: string }>();
  const everyMs = parseDuration(opts.outageEvery, '--outage-every');
  const logger: Logger = createLogger('info', process.stderr.isTTY ? 'pretty' : 'json');
  const demo = await startDemo(logger, parsePort(opts.port, '--port', true));
  const say = (s: string) => process.stdout.write(`${s}\n`);
  say(`sshkeep demo: embedded SSH server on 127.0.0.1:${demo.sshPort}, HTTP target on 127.0.0.1:${demo.targetPort}.`);
  say(`Forwarding ${demo.url} through the SSH tunnel to the target.`);
  if (opts.once) {
    say(`GET ${demo.url} -> ${(await get(demo.url)).trim()}`);
    // Let sshkeep see the connection's close before stopping, so it is not logged as cut.
    for (let turn = 0; turn < 1000 && demo.tunnel.unfinished() > 0; turn++) await new Promise((r) => setTimeout(r, 1));
    await demo.stop();
    return EXIT.ok;
  }
  say(`Try: curl ${demo.url}    (Ctrl-C to stop)`);
  const stopShow = everyMs > 0 ? narrateOutages(demo, (line) => say(`demo: ${line}`), everyMs) : () => {};
  if (everyMs > 0) say(`Every ${everyMs / 1000} s the demo cuts the link for 3 s and shows a request held through the outage.`);
  return new Promise<number>((resolve) =>
    onSignal(() => {
      stopShow();
      return demo.stop().then(() => resolve(EXIT.ok));
    }),
  );
}
