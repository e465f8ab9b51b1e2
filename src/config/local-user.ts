import os from 'node:os';

/**
 * Who runs sshkeep, for `%u`, Match localuser and the default User: the passwd entry's name; a
 * container run under a uid without one (Kubernetes' runAsUser, OpenShift) has $USER, $LOGNAME
 * or, failing both, the uid itself.
 */
export function localUserName(): string {
  try {
    return os.userInfo().username;
  } catch {
    return process.env.USER || process.env.LOGNAME || String(process.getuid?.() ?? 'unknown');
  }
}

/** The home directory `~` expands to: $HOME, else the passwd entry's; `/` when there is neither. */
export function homeDirectory(): string {
  try {
    return os.homedir();
  } catch {
    return '/';
  }
}
