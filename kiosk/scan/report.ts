/**
 * Renders a scan for people (plain text, every drive-supplied value escaped)
 * and for programs (the documented --json shape).
 */
import type { Predicate } from '../../manifest/index.ts';
import { EXIT } from '../exit-codes.ts';
import type { Decision, DriveVerdict } from './decide.ts';
import type { ScanReport } from './scan-session.ts';

export interface ScanSummaryInput {
  readonly root: string;
  readonly report: ScanReport;
  readonly engines: Predicate['engines'];
  readonly policy: { id: string; digest: string };
  readonly allowlist: { version: string; digest: string } | null;
  readonly notes: readonly string[];
}

export function exitCodeFor(verdict: DriveVerdict): number {
  return verdict === 'approved' ? EXIT.OK : verdict === 'partial' ? EXIT.PARTIAL : EXIT.REJECTED;
}

/** The --json document: stable field names, documented in docs/scanning.md. */
export function scanJson(input: ScanSummaryInput): unknown {
  const d: Decision = input.report.decision;
  return {
    verdict: d.verdict,
    driveReasons: d.driveReasons.map((r) => ({ code: r.code, detail: r.detail })),
    files: d.files.map((f) => ({
      path: f.display,
      verdict: f.verdict,
      reasons: f.reasons.map((r) => ({ code: r.code, detail: r.detail })),
      size: f.size,
      sha256: f.digest?.sha256 ?? null,
      blake3: f.digest?.blake3 ?? null,
      ...(f.controlledClass ? { controlledClass: f.controlledClass } : {}),
      ...(f.allowlistEntry ? { allowlisted: { vendor: f.allowlistEntry.vendor, product: f.allowlistEntry.product, version: f.allowlistEntry.version } } : {}),
    })),
    manifestFolderExtras: input.report.manifestFolderExtras,
    engines: input.engines,
    policy: input.policy,
    allowlist: input.allowlist,
    stats: input.report.stats,
    durations: input.report.durations,
    notes: input.notes,
  };
}

const BANNER: Record<DriveVerdict, string> = {
  approved: 'APPROVED: every file may pass',
  partial: 'PARTIAL: some files are blocked; the rest may pass',
  rejected: 'REJECTED: nothing on this drive may pass',
};

export function scanText(input: ScanSummaryInput): string {
  const d = input.report.decision;
  const lines: string[] = [];
  const mib = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MiB`;
  lines.push(BANNER[d.verdict]);
  for (const r of d.driveReasons) lines.push(`  drive: ${r.code}: ${r.detail}`);
  const counts = { clean: 0, allowlisted: 0, blocked: 0 };
  for (const f of d.files) counts[f.verdict]++;
  lines.push(`  ${d.files.length} files, ${mib(input.report.stats.bytes)}: ${counts.clean} clean, ${counts.allowlisted} allowlisted, ${counts.blocked} blocked`);
  for (const f of d.files.filter((x) => x.verdict === 'blocked')) {
    lines.push(`  BLOCKED ${f.display}`);
    for (const r of f.reasons) lines.push(`      ${r.code}: ${r.detail}`);
  }
  for (const f of d.files.filter((x) => x.verdict === 'allowlisted')) {
    const e = f.allowlistEntry!;
    lines.push(`  allowlisted ${f.display}  (${e.vendor} ${e.product} ${e.version})`);
  }
  for (const extra of input.report.manifestFolderExtras) lines.push(`  note: unexpected item in the drive's .portcullis folder: ${extra}`);
  const c = input.engines.clamav;
  const y = input.engines.yara;
  lines.push(`  engines: ${c ? `${c.version}, database ${c.databaseVersion ?? 'unversioned'}${c.databaseTime ? ` (${c.databaseTime})` : ''}` : 'ClamAV not run'}; ${y ? `YARA ${y.ruleCount} rules ${y.ruleSetDigest.slice(0, 19)}...` : 'YARA not run'}`);
  lines.push(`  policy ${input.policy.id}; allowlist ${input.allowlist?.version ?? 'none'}; ${input.report.durations.totalMs} ms`);
  for (const note of input.notes) lines.push(`  note: ${note}`);
  return lines.join('\n');
}
