/** npm audit's JSON report, judged: exit 0 clean, 1 high or critical, 2 could not check (scripts/audit.ts). */
import { spawnSync } from 'node:child_process';
import { REPO_ROOT } from '../../test/fixtures/bin.js';

const BLOCKING = ['critical', 'high'] as const;

export interface AuditVerdict {
  /** 0 clean, 1 high/critical found, 2 could not check. */
  code: 0 | 1 | 2;
  /** What to print, one line each. */
  lines: string[];
}

interface Via {
  source?: number;
  name?: string;
  title?: string;
  url?: string;
  severity?: string;
  range?: string;
}

interface Vulnerability {
  name?: string;
  severity?: string;
  isDirect?: boolean;
  via?: Array<Via | string>;
  range?: string;
  fixAvailable?: boolean | { name?: string; version?: string; isSemVerMajor?: boolean };
}

/** The first line of npm's complaint on stderr, without its "npm warn"/"npm error" prefix and config noise. */
function stderrReason(stderr: string): string | undefined {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/Unknown (user|project|env) config/i.test(l) && !/complete log of this run/i.test(l));
  const line = lines.find((l) => /^npm (ERR!|error)/i.test(l)) ?? lines.find((l) => /^npm warn audit/i.test(l)) ?? lines[0];
  return line?.replace(/^npm (ERR!|error|warn)\s*/i, '');
}

/** Judges npm audit's JSON output (npm 7+, auditReportVersion 2). Pure, for tests. */
export function judgeAudit(stdout: string, stderr: string, spawnError?: string): AuditVerdict {
  const couldNot = (reason: string): AuditVerdict => ({ code: 2, lines: [`could not check: ${reason}`] });
  if (spawnError) return couldNot(`npm audit did not run (${spawnError})`);
  let report: Record<string, unknown>;
  try {
    report = JSON.parse(stdout) as Record<string, unknown>;
  } catch {
    return couldNot(`npm audit printed no JSON report${stderrReason(stderr) ? ` (${stderrReason(stderr)})` : ''}`);
  }
  if (report === null || typeof report !== 'object') return couldNot('npm audit printed no JSON report');
  const error = report.error as { code?: string; summary?: string; detail?: string } | undefined;
  if (error || typeof report.statusCode === 'number' || (typeof report.message === 'string' && !('vulnerabilities' in report))) {
    const parts = [
      typeof report.message === 'string' ? report.message : undefined,
      error?.code,
      error?.summary,
      error?.detail,
    ].filter((p): p is string => !!p && p.trim() !== '');
    const reason = parts.join(': ') || stderrReason(stderr) || 'the audit endpoint returned an error';
    return couldNot(`the registry's audit endpoint did not answer with a report (${reason.replace(/\s+/g, ' ').trim()})`);
  }
  if (report.auditReportVersion !== 2 || typeof report.vulnerabilities !== 'object' || report.vulnerabilities === null) {
    return couldNot(`not an npm 7+ audit report (auditReportVersion ${JSON.stringify(report.auditReportVersion)})`);
  }
  const vulns = Object.entries(report.vulnerabilities as Record<string, Vulnerability>);
  const meta = (report.metadata as { vulnerabilities?: Record<string, number>; dependencies?: Record<string, number> } | undefined) ?? {};
  const counts = meta.vulnerabilities ?? {};
  const deps = meta.dependencies?.prod ?? meta.dependencies?.total;
  const blocking = vulns.filter(([, v]) => (BLOCKING as readonly string[]).includes(String(v.severity)));
  const lines: string[] = [];
  if (blocking.length === 0) {
    const lower = ['moderate', 'low', 'info'].map((s) => `${s} ${counts[s] ?? vulns.filter(([, v]) => v.severity === s).length}`).join(', ');
    lines.push(`npm audit --omit=dev: no high or critical vulnerability${deps !== undefined ? ` in ${deps} production dependencies` : ''} (${lower})`);
    return { code: 0, lines };
  }
  lines.push(`npm audit --omit=dev: ${blocking.length} package(s) with a high or critical vulnerability:`);
  for (const [name, v] of blocking.sort(([, a], [, b]) => BLOCKING.indexOf(a.severity as never) - BLOCKING.indexOf(b.severity as never))) {
    const advisories = (v.via ?? []).filter((x): x is Via => typeof x === 'object' && x !== null);
    const through = (v.via ?? []).filter((x): x is string => typeof x === 'string');
    const fix =
      v.fixAvailable === true ? 'fix: npm audit fix'
      : v.fixAvailable && typeof v.fixAvailable === 'object' ? `fix: ${v.fixAvailable.name}@${v.fixAvailable.version}${v.fixAvailable.isSemVerMajor ? ' (semver major)' : ''}`
      : 'no fix available';
    lines.push(`  ${String(v.severity).toUpperCase()} ${v.name ?? name} ${v.range ?? ''}${v.isDirect ? ' (direct dependency)' : ''}; ${fix}`);
    for (const a of advisories) lines.push(`    - ${a.severity ?? ''} ${a.title ?? '(no title)'}${a.url ? ` ${a.url}` : ''}${a.range ? ` (affected ${a.name ?? ''} ${a.range})` : ''}`);
    if (through.length) lines.push(`    - through ${through.join(', ')}`);
  }
  return { code: 1, lines };
}

export function runAudit(cwd = REPO_ROOT): AuditVerdict {
  const r = spawnSync('npm', ['audit', '--omit=dev', '--json'], { cwd, encoding: 'utf8', timeout: 120_000, maxBuffer: 64 * 1024 * 1024 });
  const spawnError = r.error ? (r.error as NodeJS.ErrnoException).code ?? r.error.message : undefined;
  return judgeAudit(r.stdout ?? '', r.stderr ?? '', spawnError);
}
