import fs from 'node:fs';
import SSHConfig from 'ssh-config';
import { ConfigError } from '../errors.js';
import { HONOURED_OPTIONS, addOption, type OptionKey, type SshOptions } from './ssh-options.js';

/**
 * The options ssh_config gives `host`, with OpenSSH's rules (Host patterns,
 * first match wins) as implemented by the `ssh-config` package.
 * A missing default file is no config; a missing explicit file (-F) is an error.
 */
export function readSshConfig(file: string, host: string, explicit: boolean): SshOptions {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !explicit) return {};
    throw new ConfigError(`-F ${file}: cannot read the ssh config file (${code ?? String(err)}).`);
  }
  let computed: Record<string, string | string[]>;
  try {
    computed = SSHConfig.parse(text).compute(host, { ignoreCase: true });
  } catch (err) {
    throw new ConfigError(`${file}: cannot parse the ssh config file: ${(err as Error).message}`);
  }
  const options: SshOptions = {};
  for (const [key, value] of Object.entries(computed)) {
    if (Object.hasOwn(HONOURED_OPTIONS, key)) {
      addOption(options, key as OptionKey, Array.isArray(value) ? value : [value]);
    }
  }
  return options;
}
