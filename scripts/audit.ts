/**
 * `npm audit --omit=dev --json`, judged (issue 7: "npm audit --omit=dev reports no high or critical vulnerability").
 *
 *   npm run audit
 *
 * Exit 0: the audit ran and found no high or critical vulnerability in the production dependencies (lower ones are
 * listed as a note). Exit 1: at least one high or critical vulnerability; each is printed. Exit 2: the audit could not
 * be done (no network, a registry mirror without the audit endpoint — some answer 405 — or output that is not an
 * audit report): "could not check: <reason>", so the caller (CI) decides whether that is fatal.
 */
import { runAudit } from './audit/judge.js';

const verdict = runAudit();
const out = verdict.code === 2 ? process.stderr : process.stdout;
out.write(`${verdict.lines.join('\n')}\n`);
process.exitCode = verdict.code;
