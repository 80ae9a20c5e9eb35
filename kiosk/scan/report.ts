/**
 * Renders a scan for people (plain text, every drive-supplied value escaped)
 * and for programs (the documented --json shape).
 */
import { displayText, type Predicate } from '../../manifest/index.ts';
import { EXIT } from '../core/exit-codes.ts';
import type { Decision, DriveVerdict, FileDecision } from '../core/decide.ts';
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

function fileJson(f: FileDecision): unknown {
  return {
    path: f.display,
    verdict: f.verdict,
    reasons: f.reasons.map((r) => ({ code: r.code, detail: r.detail })),
    size: f.size,
    sha256: f.digest?.sha256 ?? null,
    blake3: f.digest?.blake3 ?? null,
    ...(f.controlledClass ? { controlledClass: f.controlledClass } : {}),
    ...(f.allowlistEntry ? { allowlisted: { vendor: f.allowlistEntry.vendor, product: f.allowlistEntry.product, version: f.allowlistEntry.version } } : {}),
  };
}

const FILES_MARK = '\u0000files\u0000';

/**
 * The --json document (stable field names, documented in docs/scanning.md),
 * as pieces of whole lines: joined with newlines they are exactly
 * `JSON.stringify(document, null, 2)`. The files are read one at a time, so a
 * drive of 100 000 files is never held as one string or one object.
 */
export function* scanJsonLines(input: ScanSummaryInput): Generator<string> {
  const d: Decision = input.report.decision;
  const doc = {
    verdict: d.verdict,
    driveReasons: d.driveReasons.map((r) => ({ code: r.code, detail: r.detail })),
    files: FILES_MARK,
    manifestFolderExtras: input.report.manifestFolderExtras,
    engines: input.engines,
    policy: input.policy,
    allowlist: input.allowlist,
    stats: input.report.stats,
    durations: input.report.durations,
    notes: input.notes,
  };
  const text = JSON.stringify(doc, null, 2);
  // A string value never holds a raw newline, so only the top-level key starts a line like this.
  const mark = `\n  "files": ${JSON.stringify(FILES_MARK)},`;
  const at = text.indexOf(mark);
  const head = text.slice(0, at + 1);
  const tail = text.slice(at + mark.length);
  let previous: string | null = null;
  for (const f of d.files) {
    yield previous === null ? `${head}  "files": [` : `${previous},`;
    // Indent by splitting on \n only: a regex's ^ would also match after U+2028 and U+2029,
    // which JSON.stringify leaves raw inside strings, and change a file's name.
    previous = `    ${JSON.stringify(fileJson(f), null, 2).split('\n').join('\n    ')}`;
  }
  yield previous === null ? `${head}  "files": [],${tail}` : `${previous}\n  ],${tail}`;
}

/** The whole --json document as one value (tests and small drives only). */
export function scanJson(input: ScanSummaryInput): unknown {
  return JSON.parse([...scanJsonLines(input)].join('\n'));
}

const BANNER: Record<DriveVerdict, string> = {
  approved: 'APPROVED: every file may pass',
  partial: 'PARTIAL: some files are blocked; the rest may pass',
  rejected: 'REJECTED: nothing on this drive may pass',
};

/** The plain-text report, a line at a time (the files are read from the ledger as they are shown). */
export function* scanTextLines(input: ScanSummaryInput): Generator<string> {
  const d = input.report.decision;
  const mib = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MiB`;
  yield BANNER[d.verdict];
  for (const r of d.driveReasons) yield `  drive: ${r.code}: ${displayText(r.detail)}`;
  const counts = { clean: 0, allowlisted: 0, blocked: 0 };
  for (const f of d.files) counts[f.verdict]++;
  yield `  ${counts.clean + counts.allowlisted + counts.blocked} files, ${mib(input.report.stats.bytes)}: ${counts.clean} clean, ${counts.allowlisted} allowlisted, ${counts.blocked} blocked`;
  if (counts.blocked > 0) {
    for (const f of d.files) {
      if (f.verdict !== 'blocked') continue;
      yield `  BLOCKED ${f.display}`;
      for (const r of f.reasons) yield `      ${r.code}: ${displayText(r.detail)}`;
    }
  }
  if (counts.allowlisted > 0) {
    for (const f of d.files) {
      if (f.verdict !== 'allowlisted') continue;
      const e = f.allowlistEntry!;
      yield `  allowlisted ${f.display}  (${displayText(e.vendor)} ${displayText(e.product)} ${displayText(e.version)})`;
    }
  }
  for (const extra of input.report.manifestFolderExtras) yield `  note: unexpected item in the drive's .portcullis folder: ${extra}`;
  const c = input.engines.clamav;
  const y = input.engines.yara;
  yield `  engines: ${c ? `${c.version}, database ${c.databaseVersion ?? 'unversioned'}${c.databaseTime ? ` (${c.databaseTime})` : ''}` : 'ClamAV not run'}; ${y ? `YARA ${y.ruleCount} rules ${y.ruleSetDigest.slice(0, 19)}...` : 'YARA not run'}`;
  yield `  policy ${input.policy.id}; allowlist ${input.allowlist?.version ?? 'none'}; ${input.report.durations.totalMs} ms`;
  for (const note of input.notes) yield `  note: ${displayText(note)}`;
}

/** The whole plain-text report as one string (the demo and small drives). */
export function scanText(input: ScanSummaryInput): string {
  return [...scanTextLines(input)].join('\n');
}
