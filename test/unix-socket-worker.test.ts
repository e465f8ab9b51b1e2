import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import t from 'tap';
import { REPO_ROOT } from './fixtures/bin.js';

// The library in a worker thread, which cannot set the process's umask (npm test builds dist/ first).
t.test('unix socket – a -L socket made in a worker thread is 0600 too', async (t) => {
  // A short path: a socket's is limited to 107 bytes, which t.testdir()'s can exceed.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sshkeep-w-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const sock = path.join(dir, 'w.sock');
  const module = path.join(REPO_ROOT, 'dist', 'forward', 'unix-socket.js');
  const worker = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     const net = require('node:net');
     const fs = require('node:fs');
     import(workerData.module).then(({ listenPrivately }) => {
       const server = net.createServer();
       server.on('error', (err) => parentPort.postMessage({ error: err.message }));
       server.on('listening', () => setImmediate(() => {
         parentPort.postMessage({ mode: fs.statSync(workerData.sock).mode & 0o777 });
         server.close();
       }));
       listenPrivately(server, workerData.sock);
     }, (err) => parentPort.postMessage({ error: String(err) }));`,
    { eval: true, workerData: { module, sock } },
  );
  t.teardown(() => worker.terminate());
  const [answer] = (await once(worker, 'message')) as [{ mode?: number; error?: string }];
  t.strictSame(answer, { mode: 0o600 }, 'listening, mode 0600 (no "process.umask() is not supported in workers")');
});
