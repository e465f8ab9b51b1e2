/**
 * What can be checked of the deployment files without a Docker engine, a cluster, a running
 * systemd or macOS: every file under deploy/ parses, and the Dockerfile, the Kubernetes
 * Deployment, the systemd unit and the launchd agent say what docs/deploy.md promises; systemd's
 * own reading of the unit (`systemd-analyze verify`) has nothing to say of it.
 *
 * Each check is named. The files in the repository must pass every check, and for every check
 * they run there is a mutation of those files that makes exactly that check fail, so no check
 * can pass vacuously (the last test enforces it).
 */
import t from 'tap';
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { parseDuration } from '../src/config/duration.js';
import { isLoopbackAddress, parseLocalForward } from '../src/config/forward-spec.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

// ---------------------------------------------------------------------------------------------
// Named checks
// ---------------------------------------------------------------------------------------------

interface Problem {
  check: string;
  detail: string;
}

class Checks {
  readonly evaluated = new Set<string>();
  readonly problems: Problem[] = [];
  /** Records that `check` ran; a false `ok` is a problem. Returns `ok`. */
  that(check: string, ok: boolean, detail: string): boolean {
    this.evaluated.add(check);
    if (!ok) this.problems.push({ check, detail });
    return ok;
  }
  failed(check: string): boolean {
    return this.problems.some((p) => p.check === check);
  }
}

/** Everything the checks read, as text, so a mutation is an edit of one file. */
interface Sources {
  dockerfile: string;
  dockerignore: string;
  packageJson: string;
  /** src/cli/main.ts: its shebang makes the bin runnable through a symlink. */
  cliMain: string;
  /** Paths relative to deploy/ → content. */
  deploy: Map<string, string>;
}

function walk(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : [p];
  });
}

function loadSources(): Sources {
  const read = (rel: string) => fs.readFileSync(path.join(ROOT, rel), 'utf8');
  const deployDir = path.join(ROOT, 'deploy');
  return {
    dockerfile: read('Dockerfile'),
    dockerignore: read('.dockerignore'),
    packageJson: read('package.json'),
    cliMain: read('src/cli/main.ts'),
    deploy: new Map(walk(deployDir).map((p) => [path.relative(deployDir, p).split(path.sep).join('/'), fs.readFileSync(p, 'utf8')])),
  };
}

const K8S_DEPLOYMENT = 'kubernetes/deployment.yaml';
const SYSTEMD_UNIT = 'systemd/sshkeep@.service';
const LAUNCHD_PLIST = 'launchd/com.sshkeep.plist';

// sshkeep's own defaults (README, --help); durations parse with sshkeep's own parser.
const DEFAULT_MIN_DRAIN = '0';
const DEFAULT_MAX_DRAIN = '5s';
/** A duration as sshkeep reads it; NaN (which fails every comparison) when sshkeep would refuse it. */
const ms = (text: string, what: string) => {
  try {
    return parseDuration(text, what);
  } catch {
    return NaN;
  }
};
/** Every interface, IPv6 and IPv4: an IPv6 or dual-stack pod IP is probed too. */
const WILDCARD_HOSTS = new Set(['::', '*', '']);

/** `[host:]port` as --health takes it; a missing host means 127.0.0.1 (sshkeep's default), an empty one every interface. */
function parseHealth(text: string): { host: string; port: number } | null {
  const m = /^(?:\[([^\]]+)\]:|([^:]*):)?(\d+)$/.exec(text.trim());
  return m ? { host: m[1] ?? m[2] ?? '127.0.0.1', port: Number(m[3]) } : null;
}

/**
 * Values of a flag in an argv: `-L v`, `-Lv`, `--local v`, `--local=v`. The flags that matter
 * here all take a value.
 */
function flagValues(args: readonly string[], short: string | undefined, long: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') break;
    if (a === long || a === short) {
      if (i + 1 < args.length) out.push(args[++i]!);
    } else if (a.startsWith(`${long}=`)) out.push(a.slice(long.length + 1));
    else if (short && a.startsWith(short) && !a.startsWith('--') && a.length > short.length) out.push(a.slice(short.length));
  }
  return out;
}

/** `-o Key=Value` options of an argv, keys lower-cased; the first value of a key wins, as in OpenSSH. */
function sshOptions(args: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const kv of flagValues(args, '-o', '--option')) {
    const m = /^\s*(\w+)\s*[= ]\s*(.*)$/.exec(kv);
    if (m && !out.has(m[1]!.toLowerCase())) out.set(m[1]!.toLowerCase(), m[2]!.trim());
  }
  return out;
}

/** The drain settings an argv and environment give sshkeep: flags > SSHKEEP_* > defaults. */
function drainMs(args: readonly string[], env: ReadonlyMap<string, string>): { min: number; max: number } {
  const pick = (flag: string, envName: string, dflt: string) => flagValues(args, undefined, flag).at(-1) ?? env.get(envName) ?? dflt;
  return {
    min: ms(pick('--min-drain', 'SSHKEEP_MIN_DRAIN', DEFAULT_MIN_DRAIN), '--min-drain'),
    max: ms(pick('--max-drain', 'SSHKEEP_MAX_DRAIN', DEFAULT_MAX_DRAIN), '--max-drain'),
  };
}

// ---------------------------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------------------------

interface Instruction {
  line: number;
  op: string;
  args: string;
}
interface Stage {
  from: string;
  name: string | undefined;
  instructions: Instruction[];
}

const DOCKER_OPS = new Set([
  'FROM', 'RUN', 'CMD', 'LABEL', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT', 'VOLUME', 'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL', 'MAINTAINER',
]);

/** Line by line: comments dropped, `\` continuations joined (comment lines inside them too, as Docker does). */
function parseDockerfile(text: string): { stages: Stage[]; errors: string[] } {
  const stages: Stage[] = [];
  const errors: string[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1;
    let logical = lines[i]!.trim();
    if (logical === '' || logical.startsWith('#')) continue;
    while (logical.endsWith('\\') && i + 1 < lines.length) {
      logical = logical.slice(0, -1);
      let next = lines[++i]!.trim();
      while (next.startsWith('#') && i + 1 < lines.length) next = lines[++i]!.trim();
      logical += ` ${next}`;
    }
    const m = /^(\S+)\s*(.*)$/.exec(logical)!;
    const op = m[1]!.toUpperCase();
    const args = m[2]!.trim();
    if (!DOCKER_OPS.has(op)) {
      errors.push(`line ${start}: unknown instruction ${m[1]}`);
      continue;
    }
    if (op === 'FROM') {
      const f = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (!f) errors.push(`line ${start}: FROM ${args}`);
      stages.push({ from: f?.[1] ?? args, name: f?.[2], instructions: [] });
      continue;
    }
    if (stages.length === 0) {
      if (op !== 'ARG') errors.push(`line ${start}: ${op} before FROM`);
      continue;
    }
    stages.at(-1)!.instructions.push({ line: start, op, args });
  }
  return { stages, errors };
}

/** Exec form (`["a", "b"]`) or null. */
function execForm(args: string): string[] | null {
  if (!args.startsWith('[')) return null;
  try {
    const v: unknown = JSON.parse(args);
    return Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : null;
  } catch {
    return null;
  }
}

/** Whitespace-separated words, quotes kept together and removed. */
function words(text: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text))) out.push(m[1] ?? m[2] ?? m[3]!);
  return out;
}

/** `ENV A=1 B="2"` or the legacy `ENV A 1`. */
function envOf(stage: Stage): Map<string, string> {
  const env = new Map<string, string>();
  for (const ins of stage.instructions.filter((i) => i.op === 'ENV')) {
    const w = words(ins.args);
    if (w.length > 0 && !w[0]!.includes('=')) env.set(w[0]!, w.slice(1).join(' '));
    else for (const kv of w) env.set(kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1));
  }
  return env;
}

/** COPY/ADD sources and flags. */
function copyOf(ins: Instruction): { from: string | undefined; sources: string[]; dest: string } {
  const exec = execForm(ins.args);
  const w = exec ?? words(ins.args);
  const flags = w.filter((x) => x.startsWith('--'));
  const rest = w.filter((x) => !x.startsWith('--'));
  const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
  return { from, sources: rest.slice(0, -1), dest: rest.at(-1) ?? '' };
}

const runs = (stage: Stage) => stage.instructions.filter((i) => i.op === 'RUN').map((i) => i.args);

function dockerHealth(src: Sources): { host: string; port: number } | null {
  const { stages } = parseDockerfile(src.dockerfile);
  const final = stages.at(-1);
  const value = final ? envOf(final).get('SSHKEEP_HEALTH') : undefined;
  return value === undefined ? null : parseHealth(value);
}

function checkDockerfile(src: Sources, c: Checks): void {
  const { stages, errors } = parseDockerfile(src.dockerfile);
  c.that('docker.parse', errors.length === 0, errors.join('; '));
  if (!c.that('docker.multi-stage', stages.length >= 2, `${stages.length} stage(s): build with dev dependencies, run with production ones`)) return;
  const final = stages.at(-1)!;
  const finalOps = final.instructions;
  c.that('docker.base-image', stages.every((s) => /^node:20-bookworm-slim(@sha256:[0-9a-f]{64})?$/.test(s.from) || stages.some((o) => o.name === s.from)), `bases: ${stages.map((s) => s.from).join(', ')}`);

  // The build stage: toolchain, dependencies pruned in place, binding verified after the prune.
  const copiesFromBuild = finalOps.filter((i) => i.op === 'COPY').map(copyOf).filter((cp) => cp.from !== undefined);
  const modulesFrom = copiesFromBuild.find((cp) => cp.sources.some((s) => /(^|\/)node_modules\/?$/.test(s)))?.from;
  const build = stages.find((s) => s.name === modulesFrom);
  if (!c.that('docker.prod-deps-pruned', build !== undefined && runs(build).some((r) => /\bnpm ci\b/.test(r) && /\bnpm prune\b[^&;|]*--omit=dev/.test(r) && r.indexOf('npm prune') > r.indexOf('npm ci')),
    `the final stage must copy node_modules from a stage that runs \`npm ci\` then \`npm prune --omit=dev\` (copies from: ${modulesFrom ?? 'none'})`)) return;
  const buildRuns = runs(build!).join(' && ');
  const installs = /apt-get install[^&;|]*/.exec(buildRuns)?.[0] ?? '';
  c.that('docker.build-toolchain', ['python3', 'make', 'g++'].every((p) => installs.split(/\s+/).includes(p)), `the build stage must apt-get install python3 make g++ for node-gyp (got: ${installs || 'nothing'})`);
  const prune = buildRuns.lastIndexOf('npm prune');
  // The size goal (docs/deploy.md): what only installing or type-checking needs is not in the image.
  const dropped = /npm pkg delete ([^&;|]*)/.exec(buildRuns);
  const dropsAt = dropped ? buildRuns.indexOf(dropped[0]) : -1;
  c.that('docker.install-only-deps-dropped', dropsAt >= 0 && dropsAt < prune && ['dependencies.patch-package', 'dependencies.@types/ssh2'].every((d) => dropped![1]!.split(/\s+/).map((w) => w.replace(/^'|'$/g, '')).includes(d)),
    'the build stage must `npm pkg delete dependencies.patch-package dependencies.@types/ssh2` before `npm prune --omit=dev`: 61 packages the command never loads');
  const verify = buildRuns.lastIndexOf('sshcrypto.node');
  c.that('docker.binding-verified', verify > prune && /test -[fe] \S*sshcrypto\.node/.test(buildRuns.slice(prune)),
    'the build stage must `test -f …/sshcrypto.node` after `npm prune` (ssh2 skips a failed compile silently)');

  // The final stage: production files only.
  const devInstall = runs(final).find((r) => /\bnpm (ci|install|i)\b/.test(r) && !/--omit=dev/.test(r));
  const compilers = runs(final).find((r) => /apt-get install/.test(r) && words(r).some((w) => ['g++', 'gcc', 'make', 'python3', 'build-essential'].includes(w)));
  const fromContext = finalOps.filter((i) => i.op === 'COPY' || i.op === 'ADD').map(copyOf).filter((cp) => cp.from === undefined);
  c.that('docker.final-no-dev-tooling', !devInstall && !compilers && fromContext.length === 0,
    [devInstall && `installs dev dependencies: ${devInstall}`, compilers && `installs a compiler: ${compilers}`, fromContext.length > 0 && `copies the build context: ${fromContext.map((cp) => cp.sources.join(' ')).join(', ')}`].filter(Boolean).join('; '));
  // ssh2's patches are applied by npm ci's postinstall: patches/ must be in place before it, and checked after the prune.
  const buildOps = build!.instructions;
  const patchesAt = buildOps.findIndex((i) => i.op === 'COPY' && copyOf(i).sources.some((x) => /^\.?\/?patches\/?$/.test(x)));
  const installAt = buildOps.findIndex((i) => i.op === 'RUN' && /\bnpm ci\b/.test(i.args));
  c.that('docker.ssh2-patched', patchesAt >= 0 && patchesAt < installAt && /grep -q \S+ \S*node_modules\/ssh2\//.test(buildRuns.slice(prune)),
    'the build stage must COPY patches/ before `npm ci` (its postinstall patches ssh2) and check a patched ssh2 file after `npm prune`');
  c.that('docker.resume-agent-at-runtime', copiesFromBuild.some((cp) => cp.sources.some((x) => /(^|\/)agent\/?$/.test(x))),
    'the final stage must copy agent/: --resume sends agent/sshkeep-agent.pl (or .py) to the server');
  c.that('docker.package-json-at-runtime', copiesFromBuild.some((cp) => cp.sources.some((s) => /(^|\/)package\.json$/.test(s))),
    'the final stage must copy package.json: its "type": "module" makes dist/*.js ES modules');

  // `sshkeep` on PATH: a symlink to package.json's bin, executable, with a node shebang.
  const pkg = JSON.parse(src.packageJson) as { bin?: string | Record<string, string> };
  const bin = typeof pkg.bin === 'string' ? pkg.bin : pkg.bin?.sshkeep;
  const workdir = finalOps.filter((i) => i.op === 'WORKDIR').at(-1)?.args ?? '/';
  const target = bin ? path.posix.join(workdir, bin) : '(package.json has no bin.sshkeep)';
  const links = runs(final).flatMap((r) => [...r.matchAll(/\bln\s+-s\w*\s+(\S+)\s+(\S+)/g)].map((m) => ({ target: m[1]!, link: m[2]! })));
  c.that('docker.bin-on-path', links.some((l) => l.target === target && l.link === '/usr/local/bin/sshkeep'), `the final stage must \`ln -s ${target} /usr/local/bin/sshkeep\` (links: ${JSON.stringify(links)})`);
  const executable = stages.flatMap(runs).some((r) =>
    [...r.matchAll(/\bchmod\s+(\S+)\s+(\S+)/g)].some((m) => {
      const mode = m[1]!;
      const others = /^[0-7]{3,4}$/.test(mode) ? (parseInt(mode, 8) & 0o001) !== 0 : /^[ao]*\+[rw]*x/.test(mode);
      return others && bin !== undefined && m[2]!.endsWith(bin.replace(/^\.\//, ''));
    }),
  );
  c.that('docker.bin-executable', executable, `${bin} must be made executable for uid 1000 (chmod 0755), whatever mode the build left`);
  c.that('docker.bin-shebang', /^#!\/usr\/bin\/env (node|-S node( \S+)+)\n/.test(src.cliMain), 'src/cli/main.ts must start with #!/usr/bin/env node (or env -S node flags) to run through the symlink');

  // Runs as a numeric non-root user.
  const user = finalOps.filter((i) => i.op === 'USER').at(-1)?.args;
  const uid = user && /^(\d+)(?::\d+)?$/.exec(user)?.[1];
  c.that('docker.non-root-user', uid !== undefined && uid !== null && uid !== '' && Number(uid) !== 0, `the final stage's USER must be a numeric non-root uid (got: ${user ?? 'none'})`);

  // Health: ENV, EXPOSE and HEALTHCHECK agree.
  const env = envOf(final).get('SSHKEEP_HEALTH');
  const health = env === undefined ? null : parseHealth(env);
  if (!c.that('docker.health-env', health !== null && WILDCARD_HOSTS.has(health.host), `ENV SSHKEEP_HEALTH must listen on every interface (got: ${env ?? 'none'})`)) return;
  const exposed = finalOps.filter((i) => i.op === 'EXPOSE').flatMap((i) => words(i.args)).map((p) => p.replace(/\/tcp$/, ''));
  c.that('docker.expose-health', exposed.includes(String(health!.port)), `EXPOSE ${health!.port} (got: ${exposed.join(' ') || 'none'})`);
  const hc = finalOps.filter((i) => i.op === 'HEALTHCHECK').at(-1)?.args ?? '';
  const cmd = /^(?:--\S+\s+)*CMD\s+(.*)$/s.exec(hc)?.[1] ?? '';
  const argv = execForm(cmd) ?? words(cmd);
  const url = /https?:\/\/(127\.0\.0\.1|localhost|\[::1\]):(\d+)(\/[^\s'"`]*)/.exec(argv.join(' '));
  c.that('docker.healthcheck', url !== null && url[3] === '/healthz' && Number(url[2]) === health!.port,
    `HEALTHCHECK must GET http://127.0.0.1:${health!.port}/healthz (got: ${url?.[0] ?? (hc || 'none')})`);
  c.that('docker.healthcheck-uses-node', argv[0] === 'node', `HEALTHCHECK must use node: slim images have no curl or wget (got: ${argv[0] ?? 'none'})`);

  // PID 1 is sshkeep itself (exec form), found on PATH.
  const ep = finalOps.filter((i) => i.op === 'ENTRYPOINT').at(-1)?.args ?? '';
  c.that('docker.entrypoint', JSON.stringify(execForm(ep)) === '["sshkeep"]', `ENTRYPOINT must be the exec form ["sshkeep"] (got: ${ep || 'none'})`);
}

// ---------------------------------------------------------------------------------------------
// .dockerignore
// ---------------------------------------------------------------------------------------------

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i]!;
    if (ch === '*' && glob[i + 1] === '*') {
      i++;
      if (glob[i + 1] === '/') {
        i++;
        re += '(?:.*/)?';
      } else re += '.*';
    } else if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Docker's rule: last matching pattern wins; a pattern matching a parent directory matches what is inside. */
function dockerignored(patterns: readonly string[], file: string): boolean {
  let excluded = false;
  const parts = file.split('/');
  for (const raw of patterns) {
    let p = raw.trim();
    if (p === '' || p.startsWith('#')) continue;
    const negate = p.startsWith('!');
    if (negate) p = p.slice(1).trim();
    const re = globToRegExp(path.posix.normalize(p).replace(/^\/+/, '').replace(/\/+$/, ''));
    if (parts.some((_, i) => re.test(parts.slice(0, i + 1).join('/')))) excluded = !negate;
  }
  return excluded;
}

function checkDockerignore(src: Sources, c: Checks): void {
  const patterns = src.dockerignore.split('\n');
  const leaks = ['node_modules', 'dist', '.git', '.tap', 'coverage', 'test/fixtures'].filter((p) => !dockerignored(patterns, `${p}/x`));
  c.that('dockerignore.excludes', leaks.length === 0, `not excluded from the build context: ${leaks.join(', ')}`);
  // Every file the Dockerfile copies from the context must still be in it.
  const { stages } = parseDockerfile(src.dockerfile);
  const sources = stages.flatMap((s) => s.instructions.filter((i) => i.op === 'COPY' || i.op === 'ADD').map(copyOf).filter((cp) => cp.from === undefined).flatMap((cp) => cp.sources));
  const files = sources.flatMap((s) => {
    const abs = path.join(ROOT, s);
    if (!fs.existsSync(abs)) return [`${s} (missing)`];
    return fs.statSync(abs).isDirectory() ? walk(abs).map((f) => path.relative(ROOT, f).split(path.sep).join('/')) : [path.posix.normalize(s)];
  });
  const dropped = files.filter((f) => f.endsWith('(missing)') || dockerignored(patterns, f));
  c.that('dockerignore.keeps-build-inputs', sources.length > 0 && dropped.length === 0, `copied by the Dockerfile but excluded or missing: ${dropped.slice(0, 5).join(', ')}`);
  // `npm ci` builds in the image: every script package.json's build runs must be copied there.
  const kept = new Set(files.filter((f) => !dropped.includes(f)));
  const scripts = buildScripts(src.packageJson);
  const absent = scripts.filter((f) => !kept.has(f));
  c.that('docker.build-scripts', scripts.length > 0 && absent.length === 0, `npm run build runs ${absent.join(', ')}, which the Dockerfile does not copy into the image`);
}

/** The scripts/ files package.json's build runs, and the ones they import (relative `from './x.js'`). */
function buildScripts(packageJson: string): string[] {
  const build = (JSON.parse(packageJson) as { scripts?: Record<string, string> }).scripts?.build ?? '';
  const todo = [...build.matchAll(/\bscripts\/\S+\.ts\b/g)].map((m) => m[0]);
  const seen = new Set<string>();
  for (let f; (f = todo.pop()) !== undefined; ) {
    if (seen.has(f)) continue;
    seen.add(f);
    const abs = path.join(ROOT, f);
    if (!fs.existsSync(abs)) continue;
    for (const m of fs.readFileSync(abs, 'utf8').matchAll(/from '(\.\.?\/[^']+)\.js'/g)) todo.push(path.posix.join(path.posix.dirname(f), `${m[1]}.ts`));
  }
  return [...seen];
}

// ---------------------------------------------------------------------------------------------
// Kubernetes
// ---------------------------------------------------------------------------------------------

// Manifests are free-form JSON; the checks below read them defensively.
type K8s = any;

function yamlDocs(text: string): K8s[] {
  return YAML.parseAllDocuments(text).map((d) => d.toJS() as K8s).filter((d) => d !== null && d !== undefined);
}

const isSshkeep = (ct: K8s) => typeof ct?.image === 'string' && /(^|\/)sshkeep(:|@|$)/.test(ct.image);

function checkKubernetes(src: Sources, c: Checks): void {
  const docs = [...src.deploy].filter(([f]) => f.startsWith('kubernetes/') && /\.ya?ml$/.test(f)).flatMap(([f, text]) => yamlDocs(text).map((d) => ({ f, d })));
  const untyped = docs.filter(({ d }) => typeof d?.apiVersion !== 'string' || typeof d?.kind !== 'string');
  c.that('k8s.manifests', untyped.length === 0, `documents without apiVersion/kind in ${untyped.map((u) => u.f).join(', ')}`);
  const deployments = docs.filter(({ d }) => d?.kind === 'Deployment');
  if (!c.that('k8s.deployment', deployments.length === 1, `${deployments.length} Deployment(s) under deploy/kubernetes/`)) return;
  const pod: K8s = deployments[0]!.d.spec?.template?.spec ?? {};
  const inits: K8s[] = pod.initContainers ?? [];
  const mains: K8s[] = pod.containers ?? [];

  const sidecar = [...inits, ...mains].find(isSshkeep);
  if (!c.that('k8s.sidecar-native', sidecar !== undefined && inits.includes(sidecar) && sidecar.restartPolicy === 'Always',
    'sshkeep must be an initContainers entry with restartPolicy: Always (a native sidecar: started before the app, stopped after it)')) return;
  c.that('k8s.app-container', mains.length > 0 && !mains.some(isSshkeep), 'containers must hold the app, and not sshkeep');
  c.that('k8s.sidecar-entrypoint', sidecar.command === undefined, 'the sidecar must keep the image ENTRYPOINT (sshkeep) and pass flags as args');

  const args: string[] = (sidecar.args ?? []).map(String);
  const env = new Map<string, string>((sidecar.env ?? []).filter((e: K8s) => typeof e?.value === 'string').map((e: K8s) => [e.name, e.value]));

  // Health: --health > SSHKEEP_HEALTH in the pod > the image's ENV.
  const healthText = flagValues(args, undefined, '--health').at(-1) ?? env.get('SSHKEEP_HEALTH');
  const health = healthText !== undefined ? parseHealth(healthText) : dockerHealth(src);
  if (!c.that('k8s.health-enabled', health !== null, `no usable --health (got: ${healthText ?? 'none'})`)) return;
  c.that('k8s.health-all-interfaces', WILDCARD_HOSTS.has(health!.host), `the kubelet probes the pod IP, IPv4 or IPv6: --health must listen on every interface, :port (got: ${health!.host})`);
  const probePort = (probe: K8s): number | undefined => {
    const port = probe?.httpGet?.port;
    if (typeof port === 'number') return port;
    return (sidecar.ports ?? []).find((p: K8s) => p?.name === port)?.containerPort;
  };
  const probe = (which: string, wanted: string) => {
    const p = sidecar[which];
    c.that(`k8s.${which}`, p?.httpGet?.path === wanted && probePort(p) === health!.port,
      `${which} must GET ${wanted} on the --health port ${health!.port} (got: ${p?.httpGet?.path ?? 'none'} on ${probePort(p) ?? 'none'})`);
  };
  probe('startupProbe', '/startupz');
  probe('livenessProbe', '/healthz');
  c.that('k8s.no-readyz-readiness', sidecar.readinessProbe?.httpGet?.path !== '/readyz',
    'no readinessProbe on /readyz: a tunnel blip would take the whole pod out of its Service (docs/deploy.md)');

  // Security context: the container's fields override the pod's.
  const sc = { ...(pod.securityContext ?? {}), ...(sidecar.securityContext ?? {}) };
  c.that('k8s.run-as-non-root', sc.runAsNonRoot === true, 'runAsNonRoot: true');
  c.that('k8s.run-as-user', typeof sc.runAsUser === 'number' && sc.runAsUser > 0, `runAsUser non-zero (got: ${sc.runAsUser})`);
  c.that('k8s.read-only-root', sidecar.securityContext?.readOnlyRootFilesystem === true, 'readOnlyRootFilesystem: true');
  c.that('k8s.no-privilege-escalation', sidecar.securityContext?.allowPrivilegeEscalation === false, 'allowPrivilegeEscalation: false');
  c.that('k8s.drop-all-capabilities', (sidecar.securityContext?.capabilities?.drop ?? []).includes('ALL'), 'capabilities: drop: [ALL]');

  // Shutdown: the pod's grace period covers sshkeep's drain.
  const drain = drainMs(args, env);
  const grace = pod.terminationGracePeriodSeconds ?? 30;
  c.that('k8s.grace-period', grace * 1000 > drain.min + drain.max,
    `terminationGracePeriodSeconds (${grace}) must exceed --min-drain + --max-drain (${(drain.min + drain.max) / 1000}s)`);

  // Forwards: the app reaches them over the pod's loopback, nobody else.
  const forwards = flagValues(args, '-L', '--local');
  const specs = forwards.length > 0 ? forwards : (env.get('SSHKEEP_LOCAL') ?? '').split(/[,\n]/).map((s) => s.trim()).filter(Boolean);
  if (c.that('k8s.forwards', specs.length > 0, 'the sidecar forwards nothing (-L)')) {
    const open = specs.filter((s) => {
      try {
        const { listen } = parseLocalForward(s);
        return listen.kind === 'tcp' && !isLoopbackAddress(listen.host);
      } catch {
        return true;
      }
    });
    c.that('k8s.forwards-loopback', open.length === 0, `-L must bind 127.0.0.1 in a pod (the app shares its loopback): ${open.join(', ')}`);
  }

  // Host keys are verified.
  const opts = sshOptions(args);
  c.that('k8s.host-key-checking', (opts.get('stricthostkeychecking') ?? 'yes').toLowerCase() !== 'no', 'StrictHostKeyChecking=no would trust any server');

  // Key and known_hosts files come from a Secret mounted read-only; secrets in env come from secretKeyRef.
  const volumes = new Map<string, K8s>((pod.volumes ?? []).map((v: K8s) => [v.name, v]));
  const secretFile = (file: string): { secret: string; key: string } | null => {
    for (const m of sidecar.volumeMounts ?? []) {
      const dir = String(m.mountPath).replace(/\/+$/, '');
      if (!file.startsWith(`${dir}/`) || m.readOnly !== true) continue;
      const secret = volumes.get(m.name)?.secret;
      if (!secret?.secretName) continue;
      const rel = file.slice(dir.length + 1);
      const items: K8s[] | undefined = secret.items;
      const key = items ? items.find((it) => it.path === rel)?.key : rel;
      if (key) return { secret: secret.secretName, key };
    }
    return null;
  };
  const files = [...flagValues(args, '-i', '--identity-file'), ...(opts.get('userknownhostsfile') ?? '').split(/\s+/).filter((f) => f && f !== 'none')];
  const unmounted = files.filter((f) => secretFile(f) === null);
  c.that('k8s.secret-files', files.length > 0 && unmounted.length === 0,
    `-i and UserKnownHostsFile must be files of a Secret volume mounted readOnly (not: ${unmounted.join(', ') || 'no files given'})`);
  const literal = (sidecar.env ?? []).filter((e: K8s) => ['SSHKEEP_IDENTITY', 'SSHKEEP_KNOWN_HOSTS', 'SSHKEEP_PASSPHRASE'].includes(e?.name) && e.valueFrom?.secretKeyRef === undefined);
  c.that('k8s.secret-env', literal.length === 0, `secrets must come from secretKeyRef, not literal values: ${literal.map((e: K8s) => e.name).join(', ')}`);

  // The example Secret provides what the Deployment reads.
  const secrets = new Map<string, K8s>(docs.filter(({ d }) => d?.kind === 'Secret').map(({ d }) => [d.metadata?.name, d]));
  const needed = [
    ...files.map(secretFile).filter((x): x is { secret: string; key: string } => x !== null),
    ...(sidecar.env ?? []).map((e: K8s) => e?.valueFrom?.secretKeyRef).filter((r: K8s) => r && r.optional !== true).map((r: K8s) => ({ secret: r.name, key: r.key })),
  ];
  const missing = needed.filter(({ secret, key }) => {
    const s = secrets.get(secret);
    return !s || !(key in { ...(s.data ?? {}), ...(s.stringData ?? {}) });
  });
  c.that('k8s.secret-example', missing.length === 0, `the example Secret lacks: ${missing.map((m) => `${m.secret}/${m.key}`).join(', ')}`);
}

// ---------------------------------------------------------------------------------------------
// systemd
// ---------------------------------------------------------------------------------------------

interface Unit {
  entries: Array<{ section: string; key: string; value: string }>;
  errors: string[];
}

function parseUnit(text: string): Unit {
  const entries: Unit['entries'] = [];
  const errors: string[] = [];
  let section = '';
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    let line = lines[i]!.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) line = `${line.slice(0, -1)} ${lines[++i]!.trim()}`;
    const s = /^\[([^\]]+)\]$/.exec(line);
    if (s) {
      section = s[1]!;
      continue;
    }
    const kv = /^([A-Za-z][A-Za-z0-9]*)\s*=\s*(.*)$/.exec(line);
    if (!kv) errors.push(`line ${n}: not [Section] or Key=Value: ${line}`);
    else if (section === '') errors.push(`line ${n}: ${kv[1]} outside a section`);
    else entries.push({ section, key: kv[1]!, value: kv[2]! });
  }
  return { entries, errors };
}

/** All values of a key; an empty assignment resets the list, as systemd does. */
function unitValues(unit: Unit, section: string, key: string): string[] {
  let out: string[] = [];
  for (const e of unit.entries) {
    if (e.section !== section || e.key !== key) continue;
    out = e.value === '' ? [] : [...out, e.value];
  }
  return out;
}

/** systemd time span: `15`, `15s`, `1min 30s`, `500ms`; seconds when unitless. Milliseconds, or NaN. */
function systemdTimespanMs(text: string): number {
  const unit: Record<string, number> = { us: 0.001, usec: 0.001, ms: 1, msec: 1, s: 1000, sec: 1000, second: 1000, seconds: 1000, m: 60_000, min: 60_000, minute: 60_000, minutes: 60_000, h: 3_600_000, hr: 3_600_000, hour: 3_600_000, hours: 3_600_000 };
  if (text.trim() === 'infinity') return Infinity;
  let total = 0;
  const re = /(\d+(?:\.\d+)?)\s*([a-z]*)/gy;
  const s = text.trim().replace(/\s+/g, ' ');
  let m: RegExpExecArray | null;
  let pos = 0;
  while (pos < s.length && (re.lastIndex = pos, (m = re.exec(s)))) {
    const factor = m[2] === '' ? 1000 : unit[m[2]!];
    if (factor === undefined) return NaN;
    total += Number(m[1]) * factor;
    pos = re.lastIndex;
    while (s[pos] === ' ') pos++;
  }
  return pos === s.length && s.length > 0 ? total : NaN;
}

function checkSystemd(src: Sources, c: Checks): void {
  const text = src.deploy.get(SYSTEMD_UNIT);
  if (!c.that('systemd.present', text !== undefined, `deploy/${SYSTEMD_UNIT} is missing`)) return;
  const unit = parseUnit(text!);
  c.that('systemd.parse', unit.errors.length === 0, unit.errors.join('; '));
  const one = (key: string, section = 'Service') => unitValues(unit, section, key).at(-1);

  c.that('systemd.restart', one('Restart') === 'on-failure', `Restart=on-failure (got: ${one('Restart') ?? 'none'})`);
  const prevent = unitValues(unit, 'Service', 'RestartPreventExitStatus').flatMap((v) => v.split(/\s+/));
  c.that('systemd.restart-prevent-exit-status', prevent.includes('2') && prevent.includes('3'), `RestartPreventExitStatus must hold 2 and 3: usage and host key/auth errors need a person (got: ${prevent.join(' ') || 'none'})`);
  const force = unitValues(unit, 'Service', 'RestartForceExitStatus').flatMap((v) => v.split(/\s+/));
  c.that('systemd.restart-on-listen-error', force.includes('4') && !prevent.includes('4'), `RestartForceExitStatus must hold 4 and RestartPreventExitStatus must not: a port still in use frees itself (got: force ${force.join(' ') || 'none'}, prevent ${prevent.join(' ') || 'none'})`);
  // Type=notify: sshkeep's sender is a child process, whose messages only NotifyAccess=all accepts.
  c.that('systemd.notify', one('Type') === 'notify' && one('NotifyAccess') === 'all', `Type=notify with NotifyAccess=all: sshkeep's notify sender is a child, not the main PID (got: Type=${one('Type') ?? 'simple'}, NotifyAccess=${one('NotifyAccess') ?? 'main'})`);
  // Long enough for a GC pause or a busy second (sshkeep pings every half of it), short enough to notice a hung loop.
  const watchdog = systemdTimespanMs(one('WatchdogSec') ?? '0');
  c.that('systemd.watchdog', watchdog >= 10_000 && watchdog <= 120_000, `WatchdogSec between 10s and 2min (got: ${one('WatchdogSec') ?? 'none'})`);
  const kill = one('KillSignal') ?? 'SIGTERM';
  c.that('systemd.kill-signal', kill === 'SIGTERM' || kill === 'TERM' || kill === '15', `KillSignal must be SIGTERM: sshkeep drains on it (got: ${kill})`);

  // ExecStart: an absolute program, the instance as the destination; drain settings from its flags or Environment=.
  const exec = one('ExecStart') ?? '';
  const argv = words(exec.replace(/^[-@:+!]+/, ''));
  c.that('systemd.exec-start', argv[0]?.startsWith('/') === true && argv.includes('%i') && argv.some((a) => /(^|\/)sshkeep$/.test(a)), `ExecStart must run sshkeep with %i as the destination (got: ${exec})`);
  const env = new Map<string, string>(unitValues(unit, 'Service', 'Environment').flatMap(words).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  const drain = drainMs(argv, env);
  const stop = systemdTimespanMs(one('TimeoutStopSec') ?? one('TimeoutSec') ?? '90s');
  c.that('systemd.timeout-stop', stop > drain.min + drain.max, `TimeoutStopSec (${one('TimeoutStopSec')}) must exceed --min-drain + --max-drain (${(drain.min + drain.max) / 1000}s)`);
  // systemctl reload: SIGHUP makes sshkeep read ssh_config (and --config) again and apply it without dropping anything.
  const reload = words((one('ExecReload') ?? '').replace(/^[-@:+!]+/, ''));
  c.that('systemd.exec-reload', reload[0]?.startsWith('/') === true && /(^|\/)kill$/.test(reload[0]) && ['-HUP', '-SIGHUP', '-s HUP'].some((f) => reload.slice(1, -1).join(' ') === f) && reload.at(-1) === '$MAINPID',
    `ExecReload=/bin/kill -HUP $MAINPID: sshkeep reloads on SIGHUP (got: ${one('ExecReload') ?? 'none'})`);
  const envFiles = unitValues(unit, 'Service', 'EnvironmentFile');
  c.that('systemd.environment-file', envFiles.some((f) => f.startsWith('-') && f.includes('%i')), `EnvironmentFile=-…/%i.env (optional, per instance) (got: ${envFiles.join(', ') || 'none'})`);

  // A user unit: no User=, installed into the user's default.target.
  c.that('systemd.user-unit', one('User') === undefined && one('Group') === undefined && unitValues(unit, 'Install', 'WantedBy').join(' ').split(/\s+/).includes('default.target'),
    'a user unit has no User=/Group= and is WantedBy=default.target');

  // Hardening that would break node or sshkeep.
  c.that('systemd.no-mdwe', !/^(yes|true|1|on)$/i.test(one('MemoryDenyWriteExecute') ?? 'no'), 'MemoryDenyWriteExecute=yes kills node (V8 JIT)');
  const families = unitValues(unit, 'Service', 'RestrictAddressFamilies').flatMap((v) => v.split(/\s+/));
  c.that('systemd.address-families', families.length === 0 || ['AF_INET', 'AF_INET6', 'AF_UNIX', 'AF_NETLINK'].every((f) => families.includes(f)),
    `RestrictAddressFamilies needs AF_INET AF_INET6 (SSH), AF_UNIX (ssh-agent) and AF_NETLINK (getifaddrs for the network watch) (got: ${families.join(' ')})`);
  const protect = one('ProtectSystem');
  if (protect === 'strict') {
    const rw = unitValues(unit, 'Service', 'ReadWritePaths').flatMap((v) => v.split(/\s+/)).map((p) => p.replace(/^-/, ''));
    c.that('systemd.known-hosts-writable', rw.some((p) => p === '%h/.ssh/known_hosts' || p === '%h/.ssh'), 'ProtectSystem=strict needs ReadWritePaths=%h/.ssh/known_hosts for accept-new');
  }
  // systemd ignores a key it does not know or a value it cannot parse, with a line on stderr only: a
  // misspelt hardening option would be silently off. systemd-analyze reads the unit as systemd would.
  const verdict = systemdVerify(text!);
  if (verdict !== undefined) c.that('systemd.analyze-verify', verdict === '', `systemd-analyze verify of an instance of the unit: ${verdict}`);
}

const SYSTEMD_ANALYZE = spawnSync('systemd-analyze', ['--version'], { stdio: 'ignore' }).status === 0;
/** Verdicts by unit text, all made before the checks run (verifyUnits): each takes systemd-analyze half a second. */
const verdicts = new Map<string, string>();

/**
 * What `systemd-analyze verify` says of the unit, as an instance (sshkeep@db.service): '' when
 * nothing; undefined when the tool is missing, outside CI (package systemd; .ci/run installs it).
 */
function systemdVerify(text: string): string | undefined {
  if (!SYSTEMD_ANALYZE) return process.env.CI === 'true' ? 'systemd-analyze not found (apt-get install systemd)' : undefined;
  return verdicts.get(text) ?? 'not verified (verifyUnits was not given this text)';
}

/** Runs systemd-analyze verify on each distinct unit text, at once. */
async function verifyUnits(texts: (string | undefined)[]): Promise<void> {
  if (!SYSTEMD_ANALYZE) return;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sshkeep-unit-'));
  try {
    await Promise.all([...new Set(texts)].filter((x) => x !== undefined).map(async (text, i) => {
      const file = path.join(dir, String(i), 'sshkeep@db.service');
      fs.mkdirSync(path.dirname(file));
      fs.writeFileSync(file, text);
      const r = await execFileResult('systemd-analyze', ['verify', '--generators=no', file]); // generators: seconds, and nothing of this unit
      verdicts.set(text, r.output.trim() || (r.code === 0 ? '' : `exit ${r.code}`));
    }));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function execFileResult(file: string, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 60_000 }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, output: `${stdout}${stderr}` }));
  });
}

// ---------------------------------------------------------------------------------------------
// launchd: a minimal XML property list parser
// ---------------------------------------------------------------------------------------------

type Plist = string | number | boolean | Plist[] | { [key: string]: Plist };

function parsePlist(xml: string): Plist {
  const body = xml
    .replace(/^\uFEFF?\s*<\?xml[^?]*\?>/, '')
    .replace(/<!DOCTYPE[^>]*>/, '')
    .replace(/<!--([\s\S]*?)-->/g, (_, inner: string) => {
      if (inner.includes('--')) throw new Error('"--" inside an XML comment');
      return '';
    });
  const tokens = body.match(/<[^>]*>|[^<]+/g) ?? [];
  let i = 0;
  const skipSpace = () => {
    while (i < tokens.length && !tokens[i]!.startsWith('<') && tokens[i]!.trim() === '') i++;
  };
  const expect = (tag: string) => {
    skipSpace();
    if (tokens[i] !== tag) throw new Error(`expected ${tag}, got ${tokens[i] ?? 'end of file'}`);
    i++;
  };
  const decode = (s: string) => {
    if (/&(?!(lt|gt|amp|quot|apos);)/.test(s)) throw new Error(`bad entity in ${s}`);
    return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
  };
  const text = (tag: string): string => {
    let s = '';
    if (tokens[i] !== undefined && !tokens[i]!.startsWith('<')) s = tokens[i++]!;
    expect(`</${tag}>`);
    return decode(s);
  };
  const value = (): Plist => {
    skipSpace();
    const tok = tokens[i++];
    switch (tok) {
      case '<true/>':
        return true;
      case '<false/>':
        return false;
      case '<string/>':
        return '';
      case '<string>':
      case '<date>':
      case '<data>':
        return text(tok.slice(1, -1));
      case '<integer>':
      case '<real>': {
        const s = text(tok.slice(1, -1)).trim();
        if (!/^[-+]?\d+(\.\d+)?$/.test(s)) throw new Error(`not a number: ${s}`);
        return Number(s);
      }
      case '<array/>':
        return [];
      case '<dict/>':
        return {};
      case '<array>': {
        const out: Plist[] = [];
        for (skipSpace(); tokens[i] !== '</array>'; skipSpace()) {
          if (i >= tokens.length) throw new Error('unterminated <array>');
          out.push(value());
        }
        i++;
        return out;
      }
      case '<dict>': {
        const out: { [key: string]: Plist } = {};
        for (skipSpace(); tokens[i] !== '</dict>'; skipSpace()) {
          if (i >= tokens.length) throw new Error('unterminated <dict>');
          expect('<key>');
          const k = text('key');
          if (k in out) throw new Error(`duplicate key ${k}`);
          out[k] = value();
        }
        i++;
        return out;
      }
      default:
        throw new Error(`unexpected ${tok ?? 'end of file'}`);
    }
  };
  skipSpace();
  if (!/^<plist( version="1\.0")?>$/.test(tokens[i] ?? '')) throw new Error(`expected <plist version="1.0">, got ${tokens[i] ?? 'end of file'}`);
  i++;
  const root = value();
  expect('</plist>');
  skipSpace();
  if (i !== tokens.length) throw new Error(`content after </plist>: ${tokens[i]}`);
  return root;
}

function checkLaunchd(src: Sources, c: Checks): void {
  const text = src.deploy.get(LAUNCHD_PLIST);
  if (!c.that('launchd.present', text !== undefined, `deploy/${LAUNCHD_PLIST} is missing`)) return;
  let root: Plist;
  try {
    root = parsePlist(text!);
  } catch (err) {
    c.that('launchd.parse', false, String(err));
    return;
  }
  const plist = root as { [key: string]: Plist };
  if (!c.that('launchd.parse', typeof root === 'object' && !Array.isArray(root), 'the root must be a <dict>')) return;
  const absent = ['Label', 'KeepAlive', 'ProgramArguments', 'RunAtLoad'].filter((k) => !(k in plist));
  c.that('launchd.keys', absent.length === 0, `missing keys: ${absent.join(', ')}`);
  const keepAlive = plist.KeepAlive as { [key: string]: Plist } | undefined;
  c.that('launchd.keep-alive', typeof keepAlive === 'object' && keepAlive.SuccessfulExit === false, 'KeepAlive must be <dict><key>SuccessfulExit</key><false/></dict>: restart after a failure, not after a clean stop');
  c.that('launchd.run-at-load', plist.RunAtLoad === true, 'RunAtLoad must be <true/>');
  const argv = plist.ProgramArguments;
  const args = Array.isArray(argv) && argv.every((a) => typeof a === 'string') ? (argv as string[]) : [];
  c.that('launchd.program', args[0]?.startsWith('/') === true && args.some((a) => /(^|\/)sshkeep$/.test(a)), `ProgramArguments must start with an absolute path and run sshkeep (got: ${JSON.stringify(argv)})`);
  // `#!/usr/bin/env node` (and /usr/bin/env sshkeep) search PATH, which launchd keeps minimal.
  const env = (plist.EnvironmentVariables ?? {}) as { [key: string]: Plist };
  const pathDirs = typeof env.PATH === 'string' ? env.PATH.split(':') : [];
  c.that('launchd.path', pathDirs.includes('/opt/homebrew/bin') && pathDirs.includes('/usr/local/bin'), `EnvironmentVariables PATH must include /opt/homebrew/bin and /usr/local/bin, where node is (got: ${pathDirs.join(':') || 'launchd default'})`);
  c.that('launchd.stderr', typeof plist.StandardErrorPath === 'string' && plist.StandardErrorPath.startsWith('/'), 'StandardErrorPath must be an absolute path: sshkeep logs to stderr, and launchd does not expand ~');
  const envMap = new Map(Object.entries(env).filter((e): e is [string, string] => typeof e[1] === 'string'));
  const drain = drainMs(args, envMap);
  const exitTimeout = typeof plist.ExitTimeOut === 'number' ? plist.ExitTimeOut : 20;
  c.that('launchd.exit-timeout', exitTimeout * 1000 > drain.min + drain.max, `ExitTimeOut (${exitTimeout}) must exceed --min-drain + --max-drain (${(drain.min + drain.max) / 1000}s)`);
}

// ---------------------------------------------------------------------------------------------
// Every file under deploy/ parses
// ---------------------------------------------------------------------------------------------

function checkParse(src: Sources, c: Checks): void {
  const bad: string[] = [];
  for (const [file, text] of src.deploy) {
    try {
      if (/\.ya?ml$/.test(file)) {
        for (const doc of YAML.parseAllDocuments(text)) {
          const errs = [...doc.errors, ...doc.warnings];
          if (errs.length > 0) throw new Error(errs.map((e) => e.message).join('; '));
        }
      } else if (file.endsWith('.json')) JSON.parse(text);
      else if (file.endsWith('.plist')) parsePlist(text);
      else if (/\.(service|timer|socket)$/.test(file)) {
        const { errors } = parseUnit(text);
        if (errors.length > 0) throw new Error(errors.join('; '));
      } else if (!file.endsWith('.md')) throw new Error('no parser for this kind of file: add one to test/deploy.test.ts');
    } catch (err) {
      bad.push(`deploy/${file}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  c.that('deploy.parse', src.deploy.size > 0 && bad.length === 0, bad.join('\n'));
}

const AREAS = {
  'every file under deploy/ parses': checkParse,
  'Dockerfile': checkDockerfile,
  '.dockerignore': checkDockerignore,
  'Kubernetes Deployment': checkKubernetes,
  'systemd user unit': checkSystemd,
  'launchd agent': checkLaunchd,
} as const;

function runAll(src: Sources): Checks {
  const c = new Checks();
  for (const check of Object.values(AREAS)) check(src, c);
  return c;
}

// ---------------------------------------------------------------------------------------------
// Mutations: one per check, each must make that check fail
// ---------------------------------------------------------------------------------------------

type DeployFile = typeof K8S_DEPLOYMENT | typeof SYSTEMD_UNIT | typeof LAUNCHD_PLIST;
type Field = 'dockerfile' | 'dockerignore' | 'cliMain' | DeployFile;

/** Replaces `from` (which must occur) in one file. */
function edit(src: Sources, field: Field, from: string | RegExp, to: string): Sources {
  const text = field === 'dockerfile' || field === 'dockerignore' || field === 'cliMain' ? src[field] : src.deploy.get(field)!;
  const next = text.replace(from, to);
  if (next === text) throw new Error(`mutation did not apply: ${String(from)} in ${field}`);
  return withText(src, field, next);
}

function withText(src: Sources, field: Field | string, text: string): Sources {
  if (field === 'dockerfile' || field === 'dockerignore' || field === 'cliMain') return { ...src, [field]: text };
  return { ...src, deploy: new Map([...src.deploy, [field, text]]) };
}

/** Edits the parsed Deployment and writes it back as YAML. */
function editDeployment(src: Sources, change: (pod: K8s, sidecar: K8s, docs: K8s[]) => void): Sources {
  const docs = yamlDocs(src.deploy.get(K8S_DEPLOYMENT)!);
  const pod = docs.find((d) => d.kind === 'Deployment').spec.template.spec;
  change(pod, pod.initContainers.find(isSshkeep), docs);
  return withText(src, K8S_DEPLOYMENT, docs.map((d) => YAML.stringify(d)).join('---\n'));
}

/** Replaces the value after `flag` in the sidecar's args. */
const setArg = (sidecar: K8s, flag: string, value: string) => {
  const i = sidecar.args.indexOf(flag);
  if (i < 0) throw new Error(`no ${flag} in the sidecar args`);
  sidecar.args[i + 1] = value;
};

const MUTATIONS: Array<{ check: string; how: string; mutate: (src: Sources) => Sources }> = [
  { check: 'deploy.parse', how: 'a YAML file with a syntax error', mutate: (s) => withText(s, 'kubernetes/broken.yaml', 'a: [1, 2\nb: }') },
  { check: 'deploy.parse', how: 'a YAML file with a duplicate key', mutate: (s) => withText(s, 'kubernetes/dup.yaml', 'kind: Secret\nkind: ConfigMap\n') },
  { check: 'deploy.parse', how: 'a JSON file that does not parse', mutate: (s) => withText(s, 'extra.json', '{"a": 1,}') },
  { check: 'deploy.parse', how: 'a plist with an unclosed tag', mutate: (s) => edit(s, LAUNCHD_PLIST, '</dict>\n</plist>', '</plist>') },
  { check: 'deploy.parse', how: 'a unit line that is not Key=Value', mutate: (s) => edit(s, SYSTEMD_UNIT, 'KillSignal=SIGTERM', 'KillSignal SIGTERM') },

  { check: 'docker.parse', how: 'an unknown instruction', mutate: (s) => edit(s, 'dockerfile', 'EXPOSE 9090', 'EXPOSE 9090\nEXPOZE 9091') },
  { check: 'docker.multi-stage', how: 'a single stage', mutate: (s) => withText(s, 'dockerfile', s.dockerfile.slice(s.dockerfile.lastIndexOf('FROM node:20-bookworm-slim\n'))) },
  { check: 'docker.base-image', how: 'a full Debian base', mutate: (s) => edit(s, 'dockerfile', /FROM node:20-bookworm-slim\n/, 'FROM node:20\n') },
  { check: 'docker.prod-deps-pruned', how: 'no npm prune', mutate: (s) => edit(s, 'dockerfile', /&& npm prune --omit=dev[^\n]*\n/, '\\\n') },
  { check: 'docker.build-toolchain', how: 'no g++', mutate: (s) => edit(s, 'dockerfile', 'python3 make g++', 'python3 make') },
  { check: 'docker.binding-verified', how: 'the binding tested only before the prune', mutate: (s) => edit(s, 'dockerfile', /(npm prune[^\n]*\n)\s*&& test -f [^\n]*\n/, '$1') },
  { check: 'docker.final-no-dev-tooling', how: 'npm ci in the final stage', mutate: (s) => edit(s, 'dockerfile', 'USER 1000:1000', 'RUN npm ci\nUSER 1000:1000') },
  { check: 'docker.final-no-dev-tooling', how: 'a compiler in the final stage', mutate: (s) => edit(s, 'dockerfile', 'USER 1000:1000', 'RUN apt-get install -y g++\nUSER 1000:1000') },
  { check: 'docker.final-no-dev-tooling', how: 'sources copied into the final stage', mutate: (s) => edit(s, 'dockerfile', 'USER 1000:1000', 'COPY src ./src\nUSER 1000:1000') },
  { check: 'docker.ssh2-patched', how: 'patches/ not copied before npm ci', mutate: (s) => edit(s, 'dockerfile', /(# patches\/ before[^\n]*\n)COPY patches \.\/patches\n/, '$1') },
  { check: 'docker.ssh2-patched', how: 'no check of the patched ssh2', mutate: (s) => edit(s, 'dockerfile', /\s*&& grep -q [^\n]*\n/g, '\n') },
  { check: 'docker.resume-agent-at-runtime', how: 'no agent/ at run time', mutate: (s) => edit(s, 'dockerfile', 'COPY --from=build /app/agent ./agent\n', '') },
  { check: 'docker.package-json-at-runtime', how: 'no package.json at run time', mutate: (s) => edit(s, 'dockerfile', 'COPY --from=build /app/package.json ./package.json\n', '') },
  { check: 'docker.bin-on-path', how: 'the link points elsewhere', mutate: (s) => edit(s, 'dockerfile', 'ln -s /app/dist/bin/sshkeep.js', 'ln -s /app/dist/cli/main.js') },
  { check: 'docker.install-only-deps-dropped', how: 'none dropped', mutate: (s) => edit(s, 'dockerfile', "    && npm pkg delete dependencies.patch-package 'dependencies.@types/ssh2' \\\n", '') },
  { check: 'docker.install-only-deps-dropped', how: 'patch-package kept', mutate: (s) => edit(s, 'dockerfile', 'npm pkg delete dependencies.patch-package ', 'npm pkg delete ') },
  { check: 'docker.bin-executable', how: 'no chmod', mutate: (s) => edit(s, 'dockerfile', /\s*&& chmod 0755 dist\/bin\/sshkeep\.js/, '') },
  { check: 'docker.bin-executable', how: 'a chmod that leaves others without x', mutate: (s) => edit(s, 'dockerfile', 'chmod 0755', 'chmod 0744') },
  { check: 'docker.bin-shebang', how: 'no shebang', mutate: (s) => edit(s, 'cliMain', /^#!.*\n/, '') },
  { check: 'docker.non-root-user', how: 'USER 0', mutate: (s) => edit(s, 'dockerfile', 'USER 1000:1000', 'USER 0:0') },
  { check: 'docker.non-root-user', how: 'a user name kubelet cannot verify', mutate: (s) => edit(s, 'dockerfile', 'USER 1000:1000', 'USER node') },
  { check: 'docker.non-root-user', how: 'no USER', mutate: (s) => edit(s, 'dockerfile', 'USER 1000:1000\n', '') },
  { check: 'docker.health-env', how: 'health on loopback only', mutate: (s) => edit(s, 'dockerfile', 'SSHKEEP_HEALTH=:9090', 'SSHKEEP_HEALTH=9090') },
  { check: 'docker.health-env', how: 'health on IPv4 only', mutate: (s) => edit(s, 'dockerfile', 'SSHKEEP_HEALTH=:9090', 'SSHKEEP_HEALTH=0.0.0.0:9090') },
  { check: 'docker.expose-health', how: 'another port exposed', mutate: (s) => edit(s, 'dockerfile', 'EXPOSE 9090', 'EXPOSE 8080') },
  { check: 'docker.healthcheck', how: 'HEALTHCHECK on another port', mutate: (s) => edit(s, 'dockerfile', '127.0.0.1:9090/healthz', '127.0.0.1:9091/healthz') },
  { check: 'docker.healthcheck', how: 'HEALTHCHECK on /readyz', mutate: (s) => edit(s, 'dockerfile', '127.0.0.1:9090/healthz', '127.0.0.1:9090/readyz') },
  { check: 'docker.healthcheck-uses-node', how: 'HEALTHCHECK with curl', mutate: (s) => edit(s, 'dockerfile', /CMD \["node", "-e", [^\n]*/, 'CMD ["curl", "-f", "http://127.0.0.1:9090/healthz"]') },
  { check: 'docker.entrypoint', how: 'shell-form ENTRYPOINT', mutate: (s) => edit(s, 'dockerfile', 'ENTRYPOINT ["sshkeep"]', 'ENTRYPOINT sshkeep') },
  { check: 'docker.entrypoint', how: 'ENTRYPOINT through node', mutate: (s) => edit(s, 'dockerfile', 'ENTRYPOINT ["sshkeep"]', 'ENTRYPOINT ["node", "/app/dist/bin/sshkeep.js"]') },

  { check: 'dockerignore.excludes', how: 'node_modules not ignored', mutate: (s) => edit(s, 'dockerignore', /^node_modules\n/m, '') },
  { check: 'dockerignore.keeps-build-inputs', how: 'src ignored', mutate: (s) => withText(s, 'dockerignore', `${s.dockerignore}src\n`) },
  { check: 'docker.build-scripts', how: 'the bundler script not copied', mutate: (s) => edit(s, 'dockerfile', 'COPY scripts/build-bin.ts ./scripts/\n', '') },
  { check: 'docker.build-scripts', how: 'a module it imports not copied', mutate: (s) => edit(s, 'dockerfile', 'COPY scripts/lib/options.ts ./scripts/lib/\n', '') },
  { check: 'docker.build-scripts', how: 'a module it imports ignored', mutate: (s) => edit(s, 'dockerignore', '!scripts/lib/options.ts\n', '') },
  { check: 'dockerignore.keeps-build-inputs', how: 'a source file ignored by a glob', mutate: (s) => withText(s, 'dockerignore', `${s.dockerignore}**/main.ts\n`) },

  { check: 'k8s.manifests', how: 'a document without kind', mutate: (s) => withText(s, 'kubernetes/extra.yaml', 'apiVersion: v1\nmetadata: {name: x}\n') },
  { check: 'k8s.deployment', how: 'no Deployment', mutate: (s) => edit(s, K8S_DEPLOYMENT, 'kind: Deployment', 'kind: StatefulSet') },
  { check: 'k8s.sidecar-native', how: 'no restartPolicy Always', mutate: (s) => editDeployment(s, (_, sc) => delete sc.restartPolicy) },
  { check: 'k8s.sidecar-native', how: 'sshkeep as a regular container', mutate: (s) => editDeployment(s, (pod, sc) => { pod.containers.push(sc); pod.initContainers = []; }) },
  { check: 'k8s.app-container', how: 'no app container', mutate: (s) => editDeployment(s, (pod) => { pod.containers = []; }) },
  { check: 'k8s.sidecar-entrypoint', how: 'a command override', mutate: (s) => editDeployment(s, (_, sc) => { sc.command = ['node', '/app/dist/bin/sshkeep.js']; }) },
  { check: 'k8s.health-enabled', how: 'an unparseable --health', mutate: (s) => editDeployment(s, (_, sc) => setArg(sc, '--health', 'nine')) },
  { check: 'k8s.health-all-interfaces', how: '--health on loopback', mutate: (s) => editDeployment(s, (_, sc) => setArg(sc, '--health', '127.0.0.1:9090')) },
  { check: 'k8s.health-all-interfaces', how: '--health without host (sshkeep defaults to 127.0.0.1)', mutate: (s) => editDeployment(s, (_, sc) => setArg(sc, '--health', '9090')) },
  { check: 'k8s.health-all-interfaces', how: '--health on IPv4 only (an IPv6 pod IP is not probed)', mutate: (s) => editDeployment(s, (_, sc) => setArg(sc, '--health', '0.0.0.0:9090')) },
  { check: 'k8s.startupProbe', how: 'startupProbe on /healthz', mutate: (s) => editDeployment(s, (_, sc) => { sc.startupProbe.httpGet.path = '/healthz'; }) },
  { check: 'k8s.startupProbe', how: '--health moved, probes not', mutate: (s) => editDeployment(s, (_, sc) => setArg(sc, '--health', ':9191')) },
  { check: 'k8s.livenessProbe', how: 'livenessProbe on /readyz', mutate: (s) => editDeployment(s, (_, sc) => { sc.livenessProbe.httpGet.path = '/readyz'; }) },
  { check: 'k8s.livenessProbe', how: 'livenessProbe on a numeric other port', mutate: (s) => editDeployment(s, (_, sc) => { sc.livenessProbe.httpGet.port = 8080; }) },
  { check: 'k8s.no-readyz-readiness', how: 'a readinessProbe on /readyz', mutate: (s) => editDeployment(s, (_, sc) => { sc.readinessProbe = { httpGet: { path: '/readyz', port: 9090 } }; }) },
  { check: 'k8s.run-as-non-root', how: 'runAsNonRoot false in the container', mutate: (s) => editDeployment(s, (_, sc) => { sc.securityContext.runAsNonRoot = false; }) },
  { check: 'k8s.run-as-user', how: 'runAsUser 0', mutate: (s) => editDeployment(s, (_, sc) => { sc.securityContext.runAsUser = 0; }) },
  { check: 'k8s.read-only-root', how: 'writable root filesystem', mutate: (s) => editDeployment(s, (_, sc) => { delete sc.securityContext.readOnlyRootFilesystem; }) },
  { check: 'k8s.no-privilege-escalation', how: 'privilege escalation allowed', mutate: (s) => editDeployment(s, (_, sc) => { sc.securityContext.allowPrivilegeEscalation = true; }) },
  { check: 'k8s.drop-all-capabilities', how: 'capabilities kept', mutate: (s) => editDeployment(s, (_, sc) => { delete sc.securityContext.capabilities; }) },
  { check: 'k8s.grace-period', how: 'a grace period shorter than the drain', mutate: (s) => editDeployment(s, (pod) => { pod.terminationGracePeriodSeconds = 10; }) },
  { check: 'k8s.grace-period', how: 'a longer --max-drain', mutate: (s) => editDeployment(s, (_, sc) => setArg(sc, '--max-drain', '1m')) },
  { check: 'k8s.grace-period', how: 'the default grace period with --min-drain 30s', mutate: (s) => editDeployment(s, (pod, sc) => { delete pod.terminationGracePeriodSeconds; setArg(sc, '--min-drain', '30s'); }) },
  { check: 'k8s.forwards', how: 'no -L', mutate: (s) => editDeployment(s, (_, sc) => { sc.args = sc.args.filter((_a: string, i: number, all: string[]) => all[i] !== '-L' && all[i - 1] !== '-L'); }) },
  { check: 'k8s.forwards-loopback', how: '-L on 0.0.0.0', mutate: (s) => editDeployment(s, (_, sc) => setArg(sc, '-L', '0.0.0.0:5432:db.internal:5432')) },
  { check: 'k8s.forwards-loopback', how: '-L on * (all interfaces)', mutate: (s) => editDeployment(s, (_, sc) => setArg(sc, '-L', '*:5432:db.internal:5432')) },
  { check: 'k8s.host-key-checking', how: 'StrictHostKeyChecking=no', mutate: (s) => editDeployment(s, (_, sc) => { sc.args[sc.args.indexOf('StrictHostKeyChecking=yes')] = 'StrictHostKeyChecking=no'; }) },
  { check: 'k8s.secret-files', how: 'the secret mounted read-write', mutate: (s) => editDeployment(s, (_, sc) => { sc.volumeMounts[0].readOnly = false; }) },
  { check: 'k8s.secret-files', how: '-i outside the mount', mutate: (s) => editDeployment(s, (_, sc) => setArg(sc, '-i', '/home/node/.ssh/id_ed25519')) },
  { check: 'k8s.secret-env', how: 'a passphrase as a literal value', mutate: (s) => editDeployment(s, (_, sc) => { sc.env = [{ name: 'SSHKEEP_PASSPHRASE', value: 'hunter2' }]; }) },
  { check: 'k8s.secret-example', how: 'a key the example Secret lacks', mutate: (s) => editDeployment(s, (pod) => { pod.volumes[0].secret.items[0].key = 'id_rsa'; }) },

  { check: 'systemd.present', how: 'no unit', mutate: (s) => ({ ...s, deploy: new Map([...s.deploy].filter(([f]) => f !== SYSTEMD_UNIT)) }) },
  { check: 'systemd.parse', how: 'a key before any section', mutate: (s) => withText(s, SYSTEMD_UNIT, `Description=x\n${s.deploy.get(SYSTEMD_UNIT)!}`) },
  { check: 'systemd.restart', how: 'Restart=always', mutate: (s) => edit(s, SYSTEMD_UNIT, 'Restart=on-failure', 'Restart=always') },
  { check: 'systemd.restart-prevent-exit-status', how: 'exit 3 restarted', mutate: (s) => edit(s, SYSTEMD_UNIT, 'RestartPreventExitStatus=2 3', 'RestartPreventExitStatus=2') },
  { check: 'systemd.restart-prevent-exit-status', how: 'the list reset by an empty assignment', mutate: (s) => edit(s, SYSTEMD_UNIT, 'RestartPreventExitStatus=2 3', 'RestartPreventExitStatus=2 3\nRestartPreventExitStatus=') },
  { check: 'systemd.restart-on-listen-error', how: 'no RestartForceExitStatus', mutate: (s) => edit(s, SYSTEMD_UNIT, 'RestartForceExitStatus=4\n', '') },
  { check: 'systemd.restart-on-listen-error', how: 'exit 4 prevented', mutate: (s) => edit(s, SYSTEMD_UNIT, 'RestartPreventExitStatus=2 3', 'RestartPreventExitStatus=2 3 4') },
  { check: 'systemd.notify', how: 'Type=exec', mutate: (s) => edit(s, SYSTEMD_UNIT, /^Type=notify$/m, 'Type=exec') },
  { check: 'systemd.notify', how: 'NotifyAccess=main (the sender child is not heard)', mutate: (s) => edit(s, SYSTEMD_UNIT, /^NotifyAccess=all$/m, 'NotifyAccess=main') },
  { check: 'systemd.watchdog', how: 'no WatchdogSec', mutate: (s) => edit(s, SYSTEMD_UNIT, /^WatchdogSec=.*\n/m, '') },
  { check: 'systemd.watchdog', how: 'WatchdogSec=1s (a GC pause would kill it)', mutate: (s) => edit(s, SYSTEMD_UNIT, /^WatchdogSec=.*$/m, 'WatchdogSec=1s') },
  { check: 'systemd.kill-signal', how: 'SIGKILL', mutate: (s) => edit(s, SYSTEMD_UNIT, 'KillSignal=SIGTERM', 'KillSignal=SIGKILL') },
  { check: 'systemd.exec-start', how: 'no %i', mutate: (s) => edit(s, SYSTEMD_UNIT, /^ExecStart=.*$/m, 'ExecStart=/usr/bin/env sshkeep prod-bastion') },
  { check: 'systemd.timeout-stop', how: 'TimeoutStopSec below the default drain', mutate: (s) => edit(s, SYSTEMD_UNIT, /^TimeoutStopSec=.*$/m, 'TimeoutStopSec=3') },
  { check: 'systemd.timeout-stop', how: 'a longer drain in Environment=', mutate: (s) => edit(s, SYSTEMD_UNIT, /^KillSignal=SIGTERM$/m, 'KillSignal=SIGTERM\nEnvironment=SSHKEEP_MIN_DRAIN=5s SSHKEEP_MAX_DRAIN=10s') },
  { check: 'systemd.timeout-stop', how: 'a longer drain on ExecStart', mutate: (s) => edit(s, SYSTEMD_UNIT, 'sshkeep %i', 'sshkeep --max-drain 1m %i') },
  { check: 'systemd.exec-reload', how: 'no ExecReload', mutate: (s) => edit(s, SYSTEMD_UNIT, /^ExecReload=.*\n/m, '') },
  { check: 'systemd.exec-reload', how: 'SIGTERM for a reload', mutate: (s) => edit(s, SYSTEMD_UNIT, 'kill -HUP', 'kill -TERM') },
  { check: 'systemd.exec-reload', how: 'kill without $MAINPID', mutate: (s) => edit(s, SYSTEMD_UNIT, '-HUP $MAINPID', '-HUP sshkeep') },
  { check: 'systemd.environment-file', how: 'a required environment file', mutate: (s) => edit(s, SYSTEMD_UNIT, 'EnvironmentFile=-', 'EnvironmentFile=') },
  { check: 'systemd.user-unit', how: 'WantedBy=multi-user.target', mutate: (s) => edit(s, SYSTEMD_UNIT, 'WantedBy=default.target', 'WantedBy=multi-user.target') },
  { check: 'systemd.user-unit', how: 'User= in a user unit', mutate: (s) => edit(s, SYSTEMD_UNIT, /^Type=notify$/m, 'Type=notify\nUser=sshkeep') },
  { check: 'systemd.no-mdwe', how: 'MemoryDenyWriteExecute=yes', mutate: (s) => edit(s, SYSTEMD_UNIT, 'LockPersonality=yes', 'LockPersonality=yes\nMemoryDenyWriteExecute=yes') },
  { check: 'systemd.address-families', how: 'no AF_NETLINK', mutate: (s) => edit(s, SYSTEMD_UNIT, /^(RestrictAddressFamilies=.*) AF_NETLINK/m, '$1') },
  { check: 'systemd.known-hosts-writable', how: 'no ReadWritePaths', mutate: (s) => edit(s, SYSTEMD_UNIT, /^ReadWritePaths=.*$/m, '') },
  { check: 'systemd.analyze-verify', how: 'a misspelt hardening option', mutate: (s) => edit(s, SYSTEMD_UNIT, 'LockPersonality=yes', 'LockPersonalty=yes') },
  { check: 'systemd.analyze-verify', how: 'a value systemd cannot parse', mutate: (s) => edit(s, SYSTEMD_UNIT, /^ProtectSystem=.*$/m, 'ProtectSystem=maybe') },

  { check: 'launchd.present', how: 'no plist', mutate: (s) => ({ ...s, deploy: new Map([...s.deploy].filter(([f]) => f !== LAUNCHD_PLIST)) }) },
  { check: 'launchd.parse', how: 'an array at the root', mutate: (s) => withText(s, LAUNCHD_PLIST, '<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0"><array/></plist>\n') },
  { check: 'launchd.parse', how: '"--" inside a comment', mutate: (s) => edit(s, LAUNCHD_PLIST, '<!-- env(1)', '<!-- -- env(1)') },
  { check: 'launchd.keys', how: 'no RunAtLoad', mutate: (s) => edit(s, LAUNCHD_PLIST, /<key>RunAtLoad<\/key>\s*<true\/>/, '') },
  { check: 'launchd.keep-alive', how: 'KeepAlive true (restarts after a clean stop too)', mutate: (s) => edit(s, LAUNCHD_PLIST, /<key>KeepAlive<\/key>\s*<dict>[\s\S]*?<\/dict>/, '<key>KeepAlive</key><true/>') },
  { check: 'launchd.run-at-load', how: 'RunAtLoad false', mutate: (s) => edit(s, LAUNCHD_PLIST, /(<key>RunAtLoad<\/key>\s*)<true\/>/, '$1<false/>') },
  { check: 'launchd.program', how: 'a relative program', mutate: (s) => edit(s, LAUNCHD_PLIST, '<string>/usr/bin/env</string>', '<string>env</string>') },
  { check: 'launchd.path', how: 'no PATH for node', mutate: (s) => edit(s, LAUNCHD_PLIST, /<key>EnvironmentVariables<\/key>\s*<dict>[\s\S]*?<\/dict>/, '') },
  { check: 'launchd.stderr', how: 'a ~ path', mutate: (s) => edit(s, LAUNCHD_PLIST, /(<key>StandardErrorPath<\/key>\s*<string>)[^<]*/, '$1~/Library/Logs/sshkeep.log') },
  { check: 'launchd.exit-timeout', how: 'ExitTimeOut below the drain', mutate: (s) => edit(s, LAUNCHD_PLIST, /(<key>ExitTimeOut<\/key>\s*<integer>)\d+/, '$13') },
  { check: 'launchd.exit-timeout', how: 'a longer drain in ProgramArguments', mutate: (s) => edit(s, LAUNCHD_PLIST, '<string>sshkeep</string>', '<string>sshkeep</string><string>--max-drain</string><string>30s</string>') },
];

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

const sources = loadSources();
await verifyUnits([sources, ...MUTATIONS.map((m) => m.mutate(sources))].map((s) => s.deploy.get(SYSTEMD_UNIT)));

for (const [area, check] of Object.entries(AREAS)) {
  t.test(`deploy – what is checked: ${area}`, async (t) => {
    const c = new Checks();
    check(sources, c);
    t.ok(c.evaluated.size > 0, 'ran at least one check');
    for (const id of c.evaluated) {
      const problems = c.problems.filter((p) => p.check === id);
      t.equal(problems.length, 0, id, { problems: problems.map((p) => p.detail) });
    }
  });
}

t.test('deploy – what is checked: every check can fail', async (t) => {
  const base = runAll(sources);
  t.strictSame(base.problems, [], 'the repository files pass every check');
  for (const m of MUTATIONS) {
    const c = runAll(m.mutate(sources));
    t.ok(c.failed(m.check), `${m.check} fails with ${m.how}`, { problems: c.problems });
  }
  const covered = new Set(MUTATIONS.map((m) => m.check));
  const uncovered = [...base.evaluated].filter((id) => !covered.has(id));
  t.strictSame(uncovered, [], 'every check that runs on the repository files has a mutation that fails it');
});
