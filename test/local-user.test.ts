import os from 'node:os';
import t from 'tap';
import { homeDirectory, localUserName } from '../src/config/local-user.js';
import { processEnv, resolveTunnel } from '../src/config/resolve.js';

/** What libuv says for a uid without a passwd entry (a container under Kubernetes' runAsUser). */
function noPasswdEntry(): never {
  throw Object.assign(new Error('A system error occurred: uv_os_get_passwd returned ENOENT (no such file or directory)'), { code: 'ERR_SYSTEM_ERROR' });
}

t.test('local user – a uid without a passwd entry is named by $USER, $LOGNAME or the uid, and resolving a tunnel works', async (t) => {
  const saved = { userInfo: os.userInfo, homedir: os.homedir, USER: process.env.USER, LOGNAME: process.env.LOGNAME };
  t.teardown(() => {
    Object.assign(os, { userInfo: saved.userInfo, homedir: saved.homedir });
    for (const k of ['USER', 'LOGNAME'] as const) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });
  Object.assign(os, { userInfo: noPasswdEntry });
  process.env.USER = 'from-user';
  process.env.LOGNAME = 'from-logname';
  t.equal(localUserName(), 'from-user');
  delete process.env.USER;
  t.equal(localUserName(), 'from-logname');
  delete process.env.LOGNAME;
  t.equal(localUserName(), String(process.getuid!()));
  const tunnel = resolveTunnel({ destination: 'deploy@127.0.0.1', configFile: 'none', localForwards: ['0:db:5432'] });
  t.equal(tunnel.user, 'deploy', 'the destination names the user');
  t.equal(resolveTunnel({ destination: '127.0.0.1', configFile: 'none', localForwards: ['0:db:5432'] }).user, String(process.getuid!()), 'or the uid is the user, as %u');
  Object.assign(os, { homedir: noPasswdEntry });
  t.equal(homeDirectory(), '/', 'no $HOME and no passwd entry: /');
  t.equal(processEnv().home, '/');
});
