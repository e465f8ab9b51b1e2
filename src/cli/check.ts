import { formatEndpoint, forwardName } from '../config/forward-spec.js';
import type { Settings } from '../config/settings.js';
import type { HostConfig } from '../config/types.js';
import { silentLogger } from '../log.js';
import { loadIdentities } from '../ssh/identities.js';
import type { Prompter } from '../ssh/prompter.js';
import { checkLogFile } from './log-file.js';

/** Thrown by check's prompter: the key is encrypted and the run would ask for its passphrase. */
class WouldAsk extends Error {}
const wouldAsk: Prompter = {
  ask: () => Promise.reject(new WouldAsk()),
};

/**
 * Reads every identity file and SSHKEEP_IDENTITY key the run would read at its start, as it
 * reads them (permissions, format, SSHKEEP_PASSPHRASE), without asking anything: an unreadable
 * or wrong one is the run's error now (thrown), and so is an encrypted one the run could not
 * open without a terminal. Returns how many were read, which would have their passphrase asked
 * at start, and which given ones do not exist (the run skips them).
 */
async function checkKeys(settings: Settings, passphrase: string | undefined, onTerminal: boolean): Promise<{ read: number; asked: string[]; missing: string[] }> {
  const sources = { passphrase, prompter: onTerminal ? wouldAsk : undefined, insecurePermissions: settings.insecureKeyPermissions };
  const seen = new Set<string>();
  let read = 0;
  const asked: string[] = [];
  const missing: string[] = [];
  const load = async (files: (string | { name: string; data: string })[], explicit: boolean) => {
    for (const file of files) {
      const name = typeof file === 'string' ? file : file.name;
      if (seen.has(name)) continue;
      seen.add(name);
      try {
        const loaded = await loadIdentities([file], explicit, sources, silentLogger);
        read += loaded.identities.length;
        missing.push(...loaded.missing);
      } catch (err) {
        if (!(err instanceof WouldAsk)) throw err;
        asked.push(name);
      }
    }
  };
  for (const tunnel of settings.tunnels) {
    await load(tunnel.inlineIdentities, true);
    for (const host of [...tunnel.jumps, tunnel] as HostConfig[]) await load(host.identityFiles, host.identityFilesExplicit);
  }
  return { read, asked, missing };
}

/**
 * `sshkeep check`: the configuration as it would run, its keys read and its -E file checked, or
 * the run's error. `onTerminal`: the run would have a terminal to ask passphrases on.
 */
export async function describeChecked(settings: Settings, passphrase: string | undefined, onTerminal: boolean): Promise<string> {
  if (settings.logFile) checkLogFile(settings.logFile);
  const keys = await checkKeys(settings, passphrase, onTerminal);
  const lines = settings.tunnels.map(
    (t) =>
      `  ${t.name}: ${[...t.jumps, t].map((h) => `${h.user}@${h.hostName}:${h.port}`).join(' -> ')}, ` +
      [...t.forwards, ...t.remoteForwards].map((f) => forwardName(f).replace('->', ' -> ')).join(', '),
  );
  const h = settings.process.health;
  const asked = keys.asked.length ? `; encrypted, its passphrase asked at start (or SSHKEEP_PASSPHRASE): ${keys.asked.join(', ')}` : '';
  const missing = keys.missing.length ? `; missing, skipped as ssh skips them: ${keys.missing.join(', ')}` : '';
  return `sshkeep check: configuration OK, ${settings.tunnels.length} tunnel(s)\n${lines.join('\n')}\n  health: ${h ? formatEndpoint({ kind: 'tcp', ...h }) : 'off'}\n  keys: ${keys.read} read${asked}${missing}\n`;
}
