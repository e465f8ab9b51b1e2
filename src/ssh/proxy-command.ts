import { spawn } from 'node:child_process';
import { Duplex } from 'node:stream';
import type { Logger } from '../log.js';

/**
 * ProxyCommand: runs the command through the shell, as OpenSSH does (`exec` so signals reach
 * it), and returns its stdin/stdout as the stream the SSH connection runs over. Its stderr
 * goes to the log; its exit ends the stream, and destroying the stream kills it.
 */
export function proxyCommandStream(command: string, logger: Logger): Duplex {
  const child = spawn(process.env.SHELL || '/bin/sh', ['-c', `exec ${command}`], { stdio: ['pipe', 'pipe', 'pipe'] });
  const stream = Duplex.from({ readable: child.stdout, writable: child.stdin });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text: string) => {
    for (const line of text.split('\n').filter(Boolean)) logger.warn(`ProxyCommand: ${line}`, { event: 'proxy_command', command });
  });
  child.on('error', (err) => stream.destroy(new Error(`ProxyCommand "${command}" could not run: ${err.message}`)));
  child.on('exit', (code, signal) => {
    logger.debug('ProxyCommand exited', { event: 'proxy_command', command, code, signal });
    // Whatever it wrote is delivered first; then the connection over it is finished.
    if (child.stdout.readableEnded) stream.destroy();
    else child.stdout.once('end', () => stream.destroy());
  });
  stream.on('close', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill();
  });
  stream.on('error', () => {}); // reported through the SSH client's own error
  return stream;
}
