/**
 * One launcher for the forwarders the scripts compare: sshkeep (the built CLI), OpenSSH `ssh -N -L`
 * and `autossh -M 0`, each logging in to a test sshd (or a relay in front of it) in its own process
 * group, so stop() and a script's cleanup end it with whatever it started (autossh's ssh).
 */
import fs from 'node:fs';
import path from 'node:path';
import { CLI_MAIN, shebangNodeArgs } from '../../test/fixtures/bin.js';
import { spawnLogged, type Spawned } from '../../test/fixtures/child.js';
import { loginArgs, sshArgs, type Login } from '../../test/fixtures/login.js';
import { deadline, echoProbe } from '../../test/fixtures/net.js';
import { killGroup } from '../../test/fixtures/proc.js';
import { sleep } from './sleep.js';

export type ToolName = 'sshkeep' | 'ssh' | 'autossh';

export interface ForwarderSpec {
  tool: ToolName;
  login: Login;
  /** -L specs (or with `remote`, -R specs), e.g. `0:127.0.0.1:5000`. */
  forwards: string[];
  /** Forward with -R: each listening port is the server's. */
  remote?: boolean;
  /** More arguments for the tool, before the destination (ssh: -c, -o …; sshkeep: its flags). */
  args?: string[];
  /** sshkeep's entry point (default dist/bin/sshkeep.js). */
  cli?: string;
  /** sshkeep: node's flags instead of those of the CLI's shebang. */
  nodeArgs?: string[];
  /** Added to the child's environment (e.g. AUTOSSH_*). */
  env?: NodeJS.ProcessEnv;
  /** Keep only this much of its output (default 64 KiB): a forwarder may log for a long time. */
  tail?: number;
  /** The command line as run (e.g. CpuLimit.wrap: in a cgroup from its start); the pid must stay the tool's. */
  wrap?: ((cmd: string, args: string[]) => [string, string[]]) | undefined;
}

export interface Forwarder extends Spawned {
  /** The command line, for error messages. */
  command: string;
  /** SIGCONT (a stopped process does not act on SIGTERM), SIGTERM, and SIGKILL to its group after 5 s. */
  stop(): Promise<void>;
}

const live = new Set<Forwarder>();

/** The environment for a forwarder under test: keys come from -i only, no SSHKEEP_* settings (tap's loader stays out through `untracked` spawns). */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  delete env.SSH_AUTH_SOCK;
  for (const k of Object.keys(env)) if (k.startsWith('SSHKEEP_') && !(k in extra)) delete env[k]; // defaults mean defaults
  // The caller's coverage run would ask V8 for block coverage: a slower forwarder than users run.
  if (!('NODE_V8_COVERAGE' in extra)) delete env.NODE_V8_COVERAGE;
  return env;
}

/** Continues and SIGKILLs every forwarder still running (a script's SIGINT/SIGTERM cleanup). */
export function killForwarders(): void {
  for (const f of live) {
    killGroup(f.child.pid, 'SIGCONT');
    killGroup(f.child.pid, 'SIGKILL');
  }
}

/** Throws "… is missing: run npm run build first" without a built CLI. */
export function assertBuilt(cli = CLI_MAIN): void {
  if (!fs.existsSync(cli)) throw new Error(`${path.relative(process.cwd(), cli)} is missing: run npm run build first`);
}

function command(spec: ForwarderSpec): [string, string[]] {
  const L = spec.forwards.flatMap((f) => [spec.remote ? '-R' : '-L', f]);
  const extra = [...(spec.args ?? []), ...L];
  if (spec.tool === 'sshkeep') {
    const cli = path.resolve(spec.cli ?? CLI_MAIN);
    return [process.execPath, [...(spec.nodeArgs ?? shebangNodeArgs(cli)), cli, ...loginArgs(spec.login, extra)]];
  }
  const ssh = sshArgs(spec.login, extra);
  // autossh's own defaults otherwise (AUTOSSH_POLL 600 s): what a user of `autossh -M 0` runs.
  return spec.tool === 'ssh' ? ['ssh', ssh] : ['autossh', ['-M', '0', ...ssh]];
}

export function startForwarder(spec: ForwarderSpec): Forwarder {
  const [cmd, args] = spec.wrap ? spec.wrap(...command(spec)) : command(spec);
  const spawned = spawnLogged(cmd, args, { name: spec.tool, env: childEnv(spec.env), detached: true, tail: spec.tail ?? 65536 });
  const f: Forwarder = {
    ...spawned,
    command: `${cmd} ${args.join(' ')}`,
    async stop() {
      const pid = spawned.child.pid;
      killGroup(pid, 'SIGCONT');
      if (!spawned.exitInfo()) {
        killGroup(pid, 'SIGTERM');
        await spawned.exited(5_000).catch(() => killGroup(pid, 'SIGKILL'));
        await spawned.exited(5_000).catch(() => {});
      }
      killGroup(pid, 'SIGKILL'); // nothing should be left in its group (autossh's ssh); make sure
      live.delete(f);
    },
  };
  live.add(f);
  spawned.child.on('close', () => live.delete(f));
  return f;
}

/**
 * Resolves once a byte echoes through `port` (ssh listens only after authentication; sshkeep listens
 * at once and holds early connections), or rejects with why not within `ms`.
 */
export async function untilEchoes(f: Pick<Forwarder, 'exitInfo'>, port: number, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  let lastError = '';
  for (;;) {
    const exit = f.exitInfo();
    if (exit) throw new Error(exit);
    if (Date.now() > until) throw new Error(`not ready within ${ms / 1000} s (last probe: ${lastError})`);
    try {
      await deadline(echoProbe(port), 5_000, 'echo probe');
      return;
    } catch (err) {
      lastError = (err as Error).message;
      await sleep(10);
    }
  }
}
