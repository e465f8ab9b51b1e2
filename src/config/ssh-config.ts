import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import SSHConfig, { LineType, type Directive, type Match } from 'ssh-config';
import { ConfigError } from '../errors.js';
import { matchPatternList } from './host-pattern.js';
import { HONOURED_OPTIONS, MULTI_VALUED, addOption, type OptionKey, type SshOptions } from './ssh-options.js';
import { expandTokens } from './tokens.js';

/** Values kept as one command line, quotes and all, as ssh_config writes them. */
const COMMAND_DIRECTIVE = /^(ProxyCommand|KnownHostsCommand)$/i;
/** How long a `Match exec` command may run. */
const EXEC_TIMEOUT_MS = 10_000;

/**
 * The options ssh_config gives `host`, with OpenSSH's rules: Host patterns (`*`, `?`, `!`),
 * Match (all, host, originalhost, user, localuser, exec, final; `!` negates a criterion), first
 * value wins, IdentityFile and the forwards accumulate (a repeat once). `given` (the command
 * line) is what is already set: it wins, and Match host/user see it. The `ssh-config` package
 * parses the file; matching is ours, because its glob lets `?` match zero characters.
 * A missing default file is no config; a missing explicit file (-F) is an error.
 */
export function readSshConfig(file: string, host: string, explicit: boolean, given: SshOptions = {}): SshOptions {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !explicit) return {};
    throw new ConfigError(`-F ${file}: cannot read the ssh config file (${code ?? String(err)}).`);
  }
  let config: SSHConfig;
  try {
    config = SSHConfig.parse(text);
  } catch (err) {
    throw new ConfigError(`${file}: cannot parse the ssh config file: ${(err as Error).message}`);
  }
  return new Evaluation(config, host, given, file).run();
}

function valuesOf(line: Directive): string[] {
  if (typeof line.value === 'string') return [line.value];
  if (COMMAND_DIRECTIVE.test(line.param)) {
    return [line.value.map(({ val, separator, quoted }) => `${separator}${quoted ? `"${val.replace(/"/g, '\\"')}"` : val}`).join('').trim()];
  }
  return line.value.map(({ val }) => val);
}

function localUser(): string {
  try {
    return os.userInfo().username;
  } catch {
    return process.env.USER ?? process.env.LOGNAME ?? '';
  }
}

/** One reading of a config for one host: a first pass, and a second one if `Match final` asks for it. */
class Evaluation {
  readonly #options: SshOptions = {};
  readonly #localUser = localUser();
  #finalPass = false;
  #wantsFinalPass = false;

  constructor(
    private readonly config: SSHConfig,
    private readonly host: string,
    private readonly given: SshOptions,
    private readonly file: string,
  ) {}

  run(): SshOptions {
    this.#pass();
    if (this.#wantsFinalPass) {
      this.#finalPass = true;
      this.#pass();
    }
    return this.#options;
  }

  #first(key: 'hostname' | 'user' | 'port'): string | undefined {
    return this.given[key]?.[0] ?? this.#options[key]?.[0];
  }

  #pass(): void {
    for (const line of this.config) {
      if (line.type !== LineType.DIRECTIVE) continue;
      if (/^host$/i.test(line.param)) {
        // Host matches the name as given (OpenSSH re-reads with the HostName only in the final pass).
        const name = this.#finalPass ? (this.#first('hostname') ?? this.host) : this.host;
        if (matchPatternList(valuesOf(line), name)) this.#applyAll((line as Match).config);
      } else if (/^match$/i.test(line.param)) {
        if (this.#matches((line as Match).criteria)) this.#applyAll((line as Match).config);
      } else {
        this.#apply(line);
      }
    }
  }

  #applyAll(lines: SSHConfig): void {
    for (const line of lines) if (line.type === LineType.DIRECTIVE) this.#apply(line);
  }

  #apply(line: Directive): void {
    const key = line.param.toLowerCase();
    if (!Object.hasOwn(HONOURED_OPTIONS, key)) return;
    const have = this.#options[key as OptionKey];
    // OpenSSH drops a repeated IdentityFile or forward (and the final pass reads everything again).
    const values = MULTI_VALUED.has(key as OptionKey) && have ? valuesOf(line).filter((v) => !have.includes(v)) : valuesOf(line);
    if (values.length) addOption(this.#options, key as OptionKey, values);
  }

  /** Every criterion must hold; `exec` runs only if the ones before it did. */
  #matches(criteria: Match['criteria']): boolean {
    for (const [keyword, raw] of Object.entries(criteria)) {
      const negated = keyword.startsWith('!');
      const name = (negated ? keyword.slice(1) : keyword).toLowerCase();
      const value = typeof raw === 'string' ? raw : raw.map(({ val }) => val).join(',');
      if (this.#criterion(name, value) === negated) return false;
    }
    return true;
  }

  #criterion(name: string, value: string): boolean {
    const list = value.split(',');
    const lower = list.map((p) => p.toLowerCase());
    switch (name) {
      case 'all':
        return true;
      case 'final':
        this.#wantsFinalPass = true;
        return this.#finalPass;
      case 'canonical':
        return this.#finalPass;
      // Host names compare case-insensitively here (OpenSSH's match_hostname), unlike Host lines.
      case 'host':
        return matchPatternList(lower, (this.#first('hostname') ?? this.host).toLowerCase());
      case 'originalhost':
        return matchPatternList(lower, this.host.toLowerCase());
      case 'user':
        return matchPatternList(list, this.#first('user') ?? this.#localUser);
      case 'localuser':
        return matchPatternList(list, this.#localUser);
      case 'exec':
        return this.#exec(value);
      default:
        // localnetwork, tagged, …: not implemented here, so the block does not apply.
        return false;
    }
  }

  /** `Match exec`: the command, tokens expanded, run by the shell; exit 0 is a match. */
  #exec(command: string): boolean {
    const tokens = {
      '%': '%',
      h: this.#first('hostname') ?? this.host,
      n: this.host,
      p: this.#first('port') ?? '22',
      r: this.#first('user') ?? this.#localUser,
      u: this.#localUser,
      l: os.hostname(),
      d: os.homedir(),
    };
    const line = expandTokens(command, tokens, os.homedir(), `${this.file}: Match exec`);
    const r = spawnSync(process.env.SHELL || '/bin/sh', ['-c', line], { stdio: 'ignore', timeout: EXEC_TIMEOUT_MS });
    return r.status === 0;
  }
}
