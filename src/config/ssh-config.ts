import fs from 'node:fs';
import path from 'node:path';
import SSHConfig, { LineType, type Directive, type Section } from 'ssh-config';
import { ConfigError, quoted } from '../errors.js';
import { matchPattern, matchPatternList } from './host-pattern.js';
import { HONOURED_OPTIONS, MULTI_VALUED, addOption, canonicalKey, ignoresUnknown, isOpenSshKeyword, noteUnhonoured, type OptionKey, type SshOptions, type Unhonoured } from './ssh-options.js';
import type { Sourced } from './sourced.js';
import { connectionTokens, expandHome, expandHostName, expandTokens } from './tokens.js';
import { readRegularFile } from './read-file.js';
import { homeDirectory, localUserName } from './local-user.js';
import { EXEC_TIMEOUT_MS, runMatchExec, shell } from './match-exec.js';

/** Values kept as one command line, quotes and all, as ssh_config writes them. */
const COMMAND_DIRECTIVE = /^(ProxyCommand|KnownHostsCommand)$/i;
/** Include nesting deeper than this is a loop (OpenSSH's READCONF_MAX_DEPTH). */
const MAX_INCLUDE_DEPTH = 16;

/**
 * The options ssh_config gives `host`, with OpenSSH's rules: Host patterns (`*`, `?`, `!`),
 * Match (all, host, originalhost, user, localuser, exec, final; `!` negates a criterion), first
 * value wins, IdentityFile and the forwards accumulate (a repeat once). `given` (the command
 * line) is what is already set: it wins, and Match host/user see it. Include reads files in
 * place (under ~/.ssh when relative, globs expanded). The `ssh-config` package parses each file;
 * matching is ours, because its glob lets `?` match zero characters.
 * A missing default file is no config; a missing explicit file is an error, naming what gave it
 * (`explicit`: true for -F, or the flag or variable, `SSHKEEP_SSH_CONFIG`).
 * Each value names its file and line (`~/.ssh/config line 12: Port`); `name` is how the file
 * is shown (as the user gave it), an Included file shows its own path.
 */
export function readSshConfig(
  file: string,
  host: string,
  explicit: boolean | string,
  given: SshOptions<Sourced> = {},
  name = file,
  unhonoured: Unhonoured = new Map(),
): SshOptions<Sourced> {
  const config = parseFile(file, explicit === false ? undefined : `${explicit === true ? '-F' : explicit} ${file}`);
  return config ? new Evaluation(config, host, given, name, unhonoured).run() : {};
}

/** A parsed file and the line of each of its directives (the parser keeps none). */
interface ParsedFile {
  config: SSHConfig;
  lines: Map<Directive, number>;
}

/** Line numbers from the text around each node: `before` and `after` hold every line break. */
function lineNumbers(config: SSHConfig): Map<Directive, number> {
  const lines = new Map<Directive, number>();
  let line = 1;
  const breaks = (text: string) => text.split(/\r\n|\r|\n/).length - 1;
  const walk = (nodes: SSHConfig) => {
    for (const node of nodes) {
      line += breaks(node.before);
      if (node.type === LineType.DIRECTIVE) lines.set(node, line);
      line += breaks(node.after);
      if (node.type === LineType.DIRECTIVE && 'config' in node) walk((node as Section).config);
    }
  };
  walk(config);
  return lines;
}

/** The parsed file; undefined when it does not exist and nobody named it (`namedBy` unset). */
function parseFile(file: string, namedBy: string | undefined): ParsedFile | undefined {
  let text: string;
  try {
    text = readRegularFile(file).toString('utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && namedBy === undefined) return undefined;
    throw new ConfigError(`${namedBy ?? file}: cannot read the ssh config file (${code ?? String(err)}).`);
  }
  try {
    const config = SSHConfig.parse(text);
    return { config, lines: lineNumbers(config) };
  } catch (err) {
    throw new ConfigError(`${file}: cannot parse the ssh config file: ${(err as Error).message}`);
  }
}

/**
 * The files an `Include` word names, in order: relative paths are under ~/.ssh, `*` and `?`
 * expand in any path component (not to hidden names), each pattern's matches sorted; a pattern
 * that matches nothing is no error (as ssh).
 */
function includedFiles(word: string): string[] {
  const home = homeDirectory();
  const expanded = expandHome(word, home);
  const absolute = path.isAbsolute(expanded) ? expanded : path.join(home, '.ssh', expanded);
  let found = ['/'];
  for (const part of absolute.split('/').filter(Boolean)) {
    if (!/[*?]/.test(part)) {
      found = found.map((dir) => path.join(dir, part));
      continue;
    }
    found = found.flatMap((dir) => {
      let names: string[];
      try {
        names = fs.readdirSync(dir);
      } catch {
        return [];
      }
      return names.filter((n) => !n.startsWith('.') && matchPattern(part, n)).sort().map((n) => path.join(dir, n));
    });
  }
  return found.filter((f) => {
    try {
      return fs.statSync(f).isFile();
    } catch {
      return false;
    }
  });
}

function valuesOf(line: Directive): string[] {
  if (typeof line.value === 'string') return [line.value];
  if (COMMAND_DIRECTIVE.test(line.param)) {
    return [line.value.map(({ val, separator, quoted }) => `${separator}${quoted ? `"${val.replace(/"/g, '\\"')}"` : val}`).join('').trim()];
  }
  return line.value.map(({ val }) => val);
}

/** Match criteria that take no argument. */
const BARE_CRITERIA = new Set(['all', 'canonical', 'final']);
/** Match criteria OpenSSH knows that sshkeep cannot evaluate: a Match line with one never applies. */
const UNEVALUATED_CRITERIA = new Set(['localnetwork', 'tagged', 'command', 'sessiontype', 'version']);
const EVALUATED_CRITERIA = new Set([...BARE_CRITERIA, 'exec', 'host', 'originalhost', 'user', 'localuser']);

interface Criterion {
  name: string;
  negated: boolean;
  value: string;
}

/** A Match line's criteria, in order (read from its words: the package's map keeps one per keyword). */
function criteriaOf(line: Directive, file: string): Criterion[] {
  const words = typeof line.value === 'string' ? line.value.split(/\s+/).filter(Boolean) : line.value.map(({ val }) => val);
  const criteria: Criterion[] = [];
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    const negated = word.startsWith('!');
    const name = (negated ? word.slice(1) : word).toLowerCase();
    if (!EVALUATED_CRITERIA.has(name) && !UNEVALUATED_CRITERIA.has(name)) {
      throw new ConfigError(`${file}: "Match ${word}": unknown Match criterion (OpenSSH's are all, canonical, final, exec, host, originalhost, user, localuser, localnetwork, tagged, …).`);
    }
    const value = BARE_CRITERIA.has(name) ? '' : words[++i];
    if (value === undefined) throw new ConfigError(`${file}: "Match ${word}" needs an argument.`);
    criteria.push({ name, negated, value });
  }
  if (criteria.some((c) => c.name === 'all') && criteria.some((c) => !BARE_CRITERIA.has(c.name))) {
    throw new ConfigError(`${file}: "Match all" cannot be combined with other criteria (only with canonical or final).`);
  }
  return criteria;
}

/** A value as compared for repeats: OpenSSH compares forwards parsed, so spacing does not count. */
const normalised = (v: string) => v.trim().replace(/\s+/g, ' ');

/** One reading of a config for one host: a first pass, and a second one if `Match final` asks for it. */
class Evaluation {
  readonly #options: SshOptions<Sourced> = {};
  readonly #localUser = localUserName();
  #finalPass = false;
  #wantsFinalPass = false;

  constructor(
    private readonly config: ParsedFile,
    private readonly host: string,
    private readonly given: SshOptions<Sourced>,
    private readonly file: string,
    /** Security options sshkeep cannot honour, recorded so that they are warned about, not ignored. */
    private readonly unhonoured: Unhonoured,
  ) {}

  run(): SshOptions<Sourced> {
    this.#read(this.config, this.file, 0);
    if (this.#wantsFinalPass) {
      this.#finalPass = true;
      this.#read(this.config, this.file, 0);
    }
    return this.#options;
  }

  #first(key: 'hostname' | 'user' | 'port' | 'hostkeyalias' | 'proxyjump' | 'ignoreunknown'): string | undefined {
    return (this.given[key]?.[0] ?? this.#options[key]?.[0])?.value;
  }

  /** HostName so far, `%h` expanded: what Match host, exec's %h and the final pass see. */
  #hostName(): string {
    return expandHostName(this.#first('hostname') ?? this.host, this.host, homeDirectory());
  }

  #read(parsed: ParsedFile, file: string, depth: number): void {
    for (const line of parsed.config) {
      if (line.type !== LineType.DIRECTIVE) continue;
      this.#checkLine(line, parsed, file);
      if (/^host$/i.test(line.param)) {
        // The first pass matches the name as given, case and all; the final pass the HostName, lower-cased.
        const name = this.#finalPass ? this.#hostName().toLowerCase() : this.host;
        if (matchPatternList(valuesOf(line), name)) this.#applyAll((line as Section).config, parsed, file, depth);
        else if (!this.#finalPass) this.#checkAll((line as Section).config, parsed, file, depth); // checked once, in the first pass
      } else if (/^match$/i.test(line.param)) {
        if (this.#matches(criteriaOf(line, file), `${file} line ${parsed.lines.get(line)}`)) this.#applyAll((line as Section).config, parsed, file, depth);
        else if (!this.#finalPass) this.#checkAll((line as Section).config, parsed, file, depth); // checked once, in the first pass
      } else {
        this.#apply(line, parsed, file, depth);
      }
    }
  }

  #applyAll(lines: SSHConfig, parsed: ParsedFile, file: string, depth: number): void {
    for (const line of lines) {
      if (line.type !== LineType.DIRECTIVE) continue;
      this.#checkLine(line, parsed, file);
      this.#apply(line, parsed, file, depth);
    }
  }

  /**
   * The lines of a block that does not apply, checked as OpenSSH checks them (it refuses a
   * keyword it does not know wherever it is), files they Include too; none is applied.
   */
  #checkAll(lines: SSHConfig, parsed: ParsedFile, file: string, depth: number): void {
    for (const line of lines) {
      if (line.type !== LineType.DIRECTIVE) continue;
      this.#checkLine(line, parsed, file);
      if (/^include$/i.test(line.param)) this.#include(line, file, depth, (p, f, d) => this.#checkAll(p.config, p, f, d));
      else if (/^(host|match)$/i.test(line.param)) this.#checkAll((line as Section).config, parsed, file, depth);
    }
  }

  /**
   * What ssh refuses in any line, applied or not: a keyword without an argument, and one it
   * does not know unless an IgnoreUnknown before it covers it.
   */
  #checkLine(line: Directive, parsed: ParsedFile, file: string): void {
    if (this.#finalPass) return;
    const where = `${file} line ${parsed.lines.get(line)}`;
    // The parser reads a keyword alone on its line with the next line: as one word (`HostName\nPort`), or that line as its value.
    const [keyword = ''] = line.param.split(/\s/);
    if (keyword !== line.param || /[\r\n]/.test(line.separator) || valuesOf(line).every((v) => v.trim() === '')) {
      throw new ConfigError(`${where}: ${quoted(keyword)} has no value; ssh refuses such a line too.`);
    }
    if (isOpenSshKeyword(keyword) || ignoresUnknown(this.#first('ignoreunknown'), keyword)) return;
    throw new ConfigError(
      `${where}: bad configuration option ${quoted(keyword)}. OpenSSH refuses it too (a misspelling?); ` +
        'IgnoreUnknown with its name, on a line before it, makes both skip it.',
    );
  }

  /** An Include reads each file in place (by `read`), its Host and Match lines starting their own blocks. */
  #include(line: Directive, file: string, depth: number, read = (p: ParsedFile, f: string, d: number) => this.#read(p, f, d)): void {
    if (depth >= MAX_INCLUDE_DEPTH) throw new ConfigError(`${file}: Include nested more than ${MAX_INCLUDE_DEPTH} deep (a file includes itself?).`);
    for (const word of valuesOf(line)) {
      for (const included of includedFiles(word)) {
        const parsed = parseFile(included, `${included} (Include in ${file})`)!;
        read(parsed, included, depth + 1);
      }
    }
  }

  #apply(line: Directive, parsed: ParsedFile, file: string, depth: number): void {
    if (/^include$/i.test(line.param)) return this.#include(line, file, depth);
    const key = canonicalKey(line.param) as OptionKey;
    if (noteUnhonoured(this.unhonoured, key, valuesOf(line).join(' '), `${file} line ${parsed.lines.get(line)}: `)) return;
    if (!Object.hasOwn(HONOURED_OPTIONS, key)) return;
    let values = valuesOf(line);
    if (MULTI_VALUED.has(key)) {
      // OpenSSH drops a repeated IdentityFile or forward (and the final pass reads everything again).
      const have = new Set([...(this.given[key] ?? []), ...(this.#options[key] ?? [])].map((v) => normalised(v.value)));
      values = values.filter((v) => !have.has(normalised(v)));
    }
    const source = `${file} line ${parsed.lines.get(line)}: ${HONOURED_OPTIONS[key]}`;
    if (values.length) addOption(this.#options, key, values.map((value) => ({ value, source })));
  }

  /** Every criterion must hold, in order: `exec` runs only if the ones before it did. `where`: the Match line. */
  #matches(criteria: Criterion[], where: string): boolean {
    // `final` asks for the final pass whatever the other criteria say.
    if (criteria.some((c) => c.name === 'final' && !c.negated)) this.#wantsFinalPass = true;
    if (criteria.some((c) => UNEVALUATED_CRITERIA.has(c.name))) return false;
    return criteria.every((c) => this.#holds(c, where) !== c.negated);
  }

  #holds({ name, value }: Criterion, where: string): boolean {
    switch (name) {
      case 'all':
        return true;
      case 'final':
      case 'canonical':
        return this.#finalPass;
      // Host names compare case-insensitively here (OpenSSH's match_hostname), unlike Host lines.
      case 'host':
        return matchPatternList(value.toLowerCase().split(','), this.#hostName().toLowerCase());
      case 'originalhost':
        return matchPatternList(value.toLowerCase().split(','), this.host.toLowerCase());
      case 'user':
        return matchPatternList(value.split(','), this.#first('user') ?? this.#localUser);
      case 'localuser':
        return matchPatternList(value.split(','), this.#localUser);
      default: // exec
        return this.#exec(value, where);
    }
  }

  /**
   * `Match exec`: the command, tokens expanded, run by the shell; exit 0 is a match. A shell that
   * cannot be run is an error, as in ssh; so is a command still running after EXEC_TIMEOUT_MS,
   * where ssh would wait: taking it as either answer would apply the wrong block in silence.
   */
  #exec(command: string, where: string): boolean {
    const tokens = connectionTokens({
      name: this.host,
      hostName: this.#hostName(),
      port: this.#first('port') ?? '22',
      user: this.#first('user') ?? this.#localUser,
      localUser: this.#localUser,
      home: homeDirectory(),
      hostKeyAlias: this.#first('hostkeyalias'),
      proxyJump: this.#first('proxyjump'),
    });
    const line = expandTokens(command, tokens, homeDirectory(), `${this.file}: Match exec`);
    if (line.includes('\0')) throw new ConfigError(`${this.file}: Match exec "${command.replace(/\0/g, '\\0')}": a NUL byte cannot be in a command.`);
    const outcome = runMatchExec(line);
    if ('timedOut' in outcome) {
      throw new ConfigError(`${where}: Match exec ${quoted(command)} did not finish within ${EXEC_TIMEOUT_MS / 1000} s, so whether the block applies is unknown (ssh would wait for it); make the command return sooner.`);
    }
    if ('cannotRun' in outcome) throw new ConfigError(`${where}: Match exec ${quoted(command)}: cannot run the shell ${shell()} (${outcome.cannotRun}), as ssh cannot.`);
    return outcome.status === 0;
  }
}
