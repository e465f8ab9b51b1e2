import t from 'tap';
import { createLogger } from '../src/log.js';
import { LogCapture } from './fixtures/tunnel.js';

// Each forwarded connection gets a child logger that is made in winston only when it first writes
// (issue 17): its lines must still carry its fields and its parent's, filtered by the parent's level.
t.test('log – a child writes its fields and its parent’s, at the level in force only', async (t) => {
  const logs = new LogCapture();
  const tunnel = createLogger('warn', 'json', logs).child({ tunnel: 'db' });
  const conn = tunnel.child({ forward: '5432', conn: 7 });
  t.equal(conn.isDebug(), false);
  conn.info('not written: below warn', { event: 'conn_end' });
  conn.debug('not written either');
  conn.warn('client connection reset', { event: 'conn_end', reset: true });
  conn.error('written too', { event: 'x' });
  t.same(
    logs.lines.map(({ level, msg, tunnel, forward, conn, reset }) => ({ level, msg, tunnel, forward, conn, reset })),
    [
      { level: 'warn', msg: 'client connection reset', tunnel: 'db', forward: '5432', conn: 7, reset: true },
      { level: 'error', msg: 'written too', tunnel: 'db', forward: '5432', conn: 7, reset: undefined },
    ],
  );
});

t.test('log – at debug, every level of a child is written', async (t) => {
  const logs = new LogCapture();
  const conn = createLogger('debug', 'json', logs).child({ conn: 1 });
  t.equal(conn.isDebug(), true);
  conn.debug('d');
  conn.info('i');
  t.same(logs.lines.map((l) => [l.level, l.msg, l.conn]), [['debug', 'd', 1], ['info', 'i', 1]]);
});
