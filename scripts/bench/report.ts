/** The Markdown tables: one row per metric, the ratio sshkeep/ssh and the goal of issue #6. */
import type { ToolName } from '../lib/forwarder.js';
import { median, quantile } from '../lib/stats.js';
import type { Options } from './options.js';
import type { FullSample, IdleKey, IdleSample, Mode, RssSample } from './samples.js';

interface Goal {
  /** Compare the ratio sshkeep/ssh, or sshkeep's own value. */
  on: 'ratio' | 'sshkeep';
  op: '>=' | '<=' | '<';
  limit: number;
  text: string;
}

interface Row {
  metric: string;
  unit: string;
  higherIsBetter: boolean;
  digits: number;
  sshkeep: number;
  ssh: number;
  /** undefined: not applicable to autossh (its data path is ssh's). */
  autossh: number | undefined;
  ratio: number;
  goal?: Goal;
  met?: 'PASS' | 'MISS' | 'n/a';
  /** Shown instead of sshkeep's value when it has none. */
  note?: string;
}

const ratioGoal = (op: Goal['op'], limit: number): Goal => ({ on: 'ratio', op, limit, text: `ratio ${op === '>=' ? '≥' : op === '<=' ? '≤' : '<'} ${limit.toFixed(1)}` });

function met(r: Row): Row['met'] {
  if (!r.goal) return undefined;
  const x = r.goal.on === 'ratio' ? r.ratio : r.sshkeep;
  if (!Number.isFinite(x)) return 'n/a';
  const ok = r.goal.op === '>=' ? x >= r.goal.limit : r.goal.op === '<=' ? x <= r.goal.limit : x < r.goal.limit;
  return ok ? 'PASS' : 'MISS';
}

export function modeName(mode: Mode): string {
  return mode.cipher ? `same cipher ${mode.cipher}` : 'default ciphers';
}

export function summarize(mode: Mode, opts: Options, autossh: boolean): Row[] {
  const of = (tool: ToolName) => mode.full.filter((s) => s.tool === tool);
  const rows: Row[] = [];
  const idleOf = (k: IdleKey) => mode.idle.filter((s) => s.tool === k);
  const perRound = <S>(xs: S[], g: (s: S) => number) => median(xs.map(g));
  const pooled = <S>(xs: S[], g: (s: S) => number[], p: number) => quantile(xs.flatMap(g), p);
  const push = (r: Omit<Row, 'ratio' | 'met'>) => {
    const row: Row = { ...r, ratio: r.sshkeep / r.ssh };
    row.met = met(row);
    rows.push(row);
  };
  const add = (metric: string, unit: string, higherIsBetter: boolean, digits: number, f: (xs: FullSample[]) => number, goal?: Goal) =>
    push({ metric, unit, higherIsBetter, digits, sshkeep: f(of('sshkeep')), ssh: f(of('ssh')), autossh: undefined, ...(goal ? { goal } : {}) });

  const tput = ratioGoal('>=', mode.cipher ? 0.9 : 1.0);
  const n = opts.streams;
  add('Upload, 1 stream', 'MB/s', true, 0, (xs) => perRound(xs, (s) => s.upload.mbps), tput);
  add('Download, 1 stream', 'MB/s', true, 0, (xs) => perRound(xs, (s) => s.download.mbps), tput);
  add(`Upload, ${n} parallel streams (aggregate)`, 'MB/s', true, 0, (xs) => perRound(xs, (s) => s.parallelUpload.mbps), ratioGoal('>=', 1.0));
  add(`Download, ${n} parallel streams (aggregate)`, 'MB/s', true, 0, (xs) => perRound(xs, (s) => s.parallelDownload.mbps), ratioGoal('>=', 1.0));
  if (opts.multiConnections > 0) {
    const m = opts.multiConnections;
    const ok = mode.multi.filter((s) => s.supported);
    const note = ok.length ? undefined : 'n/a (flag not supported)';
    for (const dir of ['Upload', 'Download'] as const) {
      const key = dir === 'Upload' ? 'parallelUpload' : 'parallelDownload';
      push({
        metric: `${dir}, ${n} parallel streams, sshkeep --connections ${m}`,
        unit: 'MB/s',
        higherIsBetter: true,
        digits: 0,
        sshkeep: ok.length ? perRound(ok, (s) => s[key]!.mbps) : NaN,
        ssh: perRound(of('ssh'), (s) => s[key].mbps),
        autossh: undefined,
        goal: ratioGoal('>=', 1.0),
        ...(note ? { note } : {}),
      });
    }
  }
  const lat = ratioGoal('<=', 1.0);
  add('Ping-pong RTT 1 B, median', 'µs', false, 0, (xs) => pooled(xs, (s) => s.pingUs, 0.5), lat);
  add('Ping-pong RTT 1 B, p99', 'µs', false, 0, (xs) => pooled(xs, (s) => s.pingUs, 0.99));
  add('Ping-pong RTT 4 KiB, median', 'µs', false, 0, (xs) => pooled(xs, (s) => s.ping4kUs, 0.5), lat);
  add('Ping-pong RTT 4 KiB, p99', 'µs', false, 0, (xs) => pooled(xs, (s) => s.ping4kUs, 0.99));
  add('New connection + first echo, median', 'µs', false, 0, (xs) => pooled(xs, (s) => s.connectUs, 0.5), lat);
  add('New connection + first echo, p99', 'µs', false, 0, (xs) => pooled(xs, (s) => s.connectUs, 0.99));
  add('Forwarder CPU, upload', 's/GiB', false, 2, (xs) => perRound(xs, (s) => s.upload.cpuSecondsPerGiB));
  add('Forwarder CPU, download', 's/GiB', false, 2, (xs) => perRound(xs, (s) => s.download.cpuSecondsPerGiB));
  add('Forwarder CPU in user space, upload', 's/GiB', false, 2, (xs) => perRound(xs, (s) => s.upload.userCpuSecondsPerGiB));
  add('Forwarder CPU in user space, download', 's/GiB', false, 2, (xs) => perRound(xs, (s) => s.download.userCpuSecondsPerGiB));
  add('sshd session CPU, upload (server side, for reference)', 's/GiB', false, 2, (xs) => perRound(xs, (s) => s.upload.sshdCpuSecondsPerGiB));
  add('sshd session CPU, download (server side, for reference)', 's/GiB', false, 2, (xs) => perRound(xs, (s) => s.download.sshdCpuSecondsPerGiB));

  const MB = 1.024e-3; // KiB → MB (10^6 bytes)
  const au = autossh ? mode.autossh : [];
  const withAutossh = (r: Omit<Row, 'ratio' | 'met' | 'autossh'>, g: (s: RssSample) => number) =>
    push({ ...r, autossh: autossh ? perRound(au, g) : undefined });
  withAutossh(
    { metric: 'RSS idle (tunnel up)', unit: 'MB', higherIsBetter: false, digits: 1, sshkeep: perRound(of('sshkeep'), (s) => s.rssKiB * MB), ssh: perRound(of('ssh'), (s) => s.rssKiB * MB) },
    (s) => s.rssKiB * MB,
  );
  withAutossh(
    {
      metric: `RSS with ${opts.rssConns.toLocaleString('en-US')} idle connections`,
      unit: 'MB',
      higherIsBetter: false,
      digits: 1,
      sshkeep: perRound(of('sshkeep'), (s) => s.rssConnsKiB * MB),
      ssh: perRound(of('ssh'), (s) => s.rssConnsKiB * MB),
      goal: { on: 'sshkeep', op: '<=', limit: 80, text: 'sshkeep ≤ 80 MB' },
    },
    (s) => s.rssConnsKiB * MB,
  );

  const idle = (metric: string, unit: string, digits: number, g: (s: IdleSample) => number, goal?: Goal) =>
    push({
      metric,
      unit,
      higherIsBetter: false,
      digits,
      sshkeep: perRound(idleOf('sshkeep'), g),
      ssh: perRound(idleOf('ssh'), g),
      autossh: autossh ? perRound(idleOf('autossh'), g) : undefined,
      ...(goal ? { goal } : {}),
    });
  idle('Idle CPU', 'ms/min', 1, (s) => s.cpuSecondsPerMin * 1000);
  idle('Idle CPU, % of a core', '%', 3, (s) => s.corePercent, { on: 'sshkeep', op: '<', limit: 0.1, text: 'sshkeep < 0.1 %' });
  idle('Idle wake-ups (context switches)', '/min', 0, (s) => s.wakeupsPerMin);
  idle('Idle bytes on the wire, both ways (keepalive 15 s)', 'B/min', 0, (s) => s.bytesPerMin);
  push({
    metric: 'Startup: spawn → first echo',
    unit: 'ms',
    higherIsBetter: false,
    digits: 0,
    sshkeep: perRound(of('sshkeep'), (s) => s.startupMs),
    ssh: perRound(of('ssh'), (s) => s.startupMs),
    autossh: autossh ? perRound(au, (s) => s.startupMs) : undefined,
  });
  return rows;
}

function verdict(r: Row): string {
  if (!Number.isFinite(r.ratio) || r.ratio === 0) return 'n/a';
  const better = r.higherIsBetter ? r.ratio > 1 : r.ratio < 1;
  if (Math.abs(r.ratio - 1) < 0.03) return 'about equal';
  const factor = r.ratio >= 1 ? r.ratio : 1 / r.ratio;
  const cost = ['s/GiB', 'ms/min', '%', '/min', 'B/min'].includes(r.unit);
  const how = r.higherIsBetter ? (better ? 'faster' : 'slower') : r.unit === 'MB' ? (better ? 'smaller' : 'larger') : cost ? (better ? 'cheaper' : 'costlier') : better ? 'faster' : 'slower';
  return `${factor.toFixed(2)}× ${how}`;
}

function table(rows: Row[], autossh: boolean): string[] {
  const lines = [
    `| metric | sshkeep | ssh -L |${autossh ? ' autossh -M 0 |' : ''} ratio sshkeep/ssh | sshkeep is | goal | met |`,
    `|---|---:|---:|${autossh ? '---:|' : ''}---:|---|---|---|`,
  ];
  for (const r of rows) {
    const fmt = (x: number | undefined) =>
      x === undefined ? '—' : Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: r.digits, maximumFractionDigits: r.digits }) : 'n/a';
    const keep = r.note && !Number.isFinite(r.sshkeep) ? r.note : fmt(r.sshkeep);
    lines.push(
      `| ${r.metric} (${r.unit}, ${r.higherIsBetter ? 'higher' : 'lower'} is better) | ${keep} | ${fmt(r.ssh)} |${autossh ? ` ${fmt(r.autossh)} |` : ''} ` +
        `${Number.isFinite(r.ratio) ? r.ratio.toFixed(2) : 'n/a'} | ${verdict(r)} | ${r.goal?.text ?? ''} | ${r.met ?? ''} |`,
    );
  }
  return lines;
}

export function modeSection(mode: Mode, rows: Row[], opts: Options, autossh: boolean): string {
  const ciphers = (tool: ToolName) => [...new Set([...mode.full, ...mode.autossh].filter((s) => s.tool === tool).map((s) => s.cipher))].join(', ') || 'n/a';
  const noKa = mode.idle.filter((s) => s.tool === 'sshNoKeepalive');
  const lines = [
    `### ${mode.cipher ? `Same cipher on both sides: ${mode.cipher}` : "Each tool's default cipher"}`,
    '',
    `- **cipher mode:** ${mode.cipher ? `sshd restricted to \`Ciphers ${mode.cipher}\`, ssh/autossh given \`-c ${mode.cipher}\`` : "each tool's own default"}`,
    `- **negotiated cipher (from sshd log):** sshkeep: ${ciphers('sshkeep')}; ssh -L: ${ciphers('ssh')}${autossh ? `; autossh: ${ciphers('autossh')}` : ''}`,
  ];
  if (opts.multiConnections > 0) {
    const ok = mode.multi.filter((s) => s.supported);
    lines.push(
      `- **sshkeep --connections ${opts.multiConnections}:** ` +
        (ok.length
          ? `SSH connections authenticated per round: ${ok.map((s) => s.sshConnections).join(', ')}`
          : `n/a (${mode.multi[0]?.note ?? 'not run'})`),
    );
  }
  lines.push(
    `- **idle, ssh -L with its default (no ServerAliveInterval):** ` +
      (noKa.length
        ? `${median(noKa.map((s) => s.bytesPerMin)).toFixed(0)} B/min on the wire, ${median(noKa.map((s) => s.wakeupsPerMin)).toFixed(0)} wake-ups/min, ` +
          `${median(noKa.map((s) => s.corePercent)).toFixed(3)} % of a core`
        : 'not measured'),
    '',
    ...table(rows, autossh),
    '',
  );
  return lines.join('\n');
}
