/**
 * Issue 15, point 5: the hostile-content corpus (test/fixtures/hostile), run
 * through the kiosk's whole scan command with the real clamd, the project's
 * test database and YARA rules. Each folder of the corpus is one drive,
 * scanned once under its policy (one engine start per policy); every file must
 * get the verdict expected.tsv names, and a failure prints every mismatch.
 */
import { DEFAULT_POLICY_PATH } from '../../kiosk/rules-files.ts';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ENGINE_FAILURES, type DriveReason, type FileDecision } from '../../kiosk/core/decide.ts';
import { runScan } from '../../kiosk/cli/scan-command.ts';
import { buildHostileCorpus, describeExpectation, DRIVES, driveRoot, type Case, type Drive } from '../fixtures/hostile/corpus.ts';
import { macroWorkbook, plainWorkbook } from '../fixtures/office/vba.ts';

const MiB = 1024 * 1024;
const work = mkdtempSync(join(tmpdir(), 'hostile-it-'));
const corpus = join(work, 'corpus');
let cases: Case[] = [];

/** The policy file each drive is scanned under. */
function policyFor(drive: Drive): string {
  if (drive === 'default') return DEFAULT_POLICY_PATH;
  // The default policy with a 1 MiB limit on one file inside an archive (clamd's MaxFileSize for members).
  const policy = JSON.parse(readFileSync(DEFAULT_POLICY_PATH, 'utf8')) as { id: string; clamav: { maxEmbeddedFileBytes: number } };
  policy.id = 'hostile-small-embedded';
  policy.clamav.maxEmbeddedFileBytes = 1 * MiB;
  const path = join(work, `policy-${drive}.json`);
  writeFileSync(path, JSON.stringify(policy, null, 2));
  return path;
}

/** An allowlist folder listing the SHA-256 of every case expected to be `allowlisted`. */
function allowlistFor(drive: Drive): string {
  const dir = join(work, `allowlist-${drive}`);
  mkdirSync(dir, { recursive: true });
  const entries = cases
    .filter((c) => c.drive === drive && c.expect === 'allowlisted')
    .map((c) => ({
      vendor: 'Portcullis tests',
      product: c.path,
      version: '1',
      file: c.path,
      sha256: createHash('sha256').update(readFileSync(join(driveRoot(corpus, drive), c.path))).digest('hex'),
      source: 'hostile-content corpus: a file the site approved by hash',
    }));
  writeFileSync(join(dir, 'site.json'), JSON.stringify({ version: 'hostile-1', owner: 'tests', entries }));
  return dir;
}

interface DriveResult {
  readonly verdict: string;
  readonly driveReasons: readonly DriveReason[];
  readonly files: ReadonlyMap<string, FileDecision>;
}

async function scanDriveFolder(drive: Drive): Promise<DriveResult> {
  const outcome = await runScan({
    path: driveRoot(corpus, drive),
    json: true,
    noWrite: true,
    clamavDb: 'test',
    dbPath: null,
    workDir: join(work, `work-${drive}`),
    policyPath: policyFor(drive),
    allowlistDir: allowlistFor(drive),
    out: () => undefined,
    err: () => undefined,
  });
  const { decision } = outcome.summary.report;
  try {
    return { verdict: decision.verdict, driveReasons: decision.driveReasons, files: new Map([...decision.files].map((f) => [f.display, f])) };
  } finally {
    outcome.summary.report.close();
  }
}

/** Why a file's decision does not meet its case, or null when it does. */
function mismatch(c: Case, got: FileDecision | undefined): string | null {
  if (got === undefined) return 'not in the scan report';
  const e = c.expect;
  if (e === 'clean' || e === 'allowlisted') return got.verdict === e ? null : `expected ${e}`;
  if (got.verdict !== 'blocked') return `expected blocked (${e.blocked.join(' or ')})`;
  if (!got.reasons.some((r) => e.blocked.includes(r.code))) return `expected a reason ${e.blocked.join(' or ')}`;
  if (e.detailIncludes !== undefined && !got.reasons.some((r) => r.detail.includes(e.detailIncludes!))) return `expected a reason detail containing "${e.detailIncludes}"`;
  return null;
}

const shown = (f: FileDecision | undefined): string =>
  f === undefined ? '(missing)' : `${f.verdict}${f.reasons.length > 0 ? `: ${f.reasons.map((r) => `${r.code} (${r.detail})`).join('; ')}` : ''}`;

beforeAll(async () => {
  cases = await buildHostileCorpus(corpus);
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe.each(DRIVES)('the hostile-content corpus, %s drive', (drive) => {
  it('gives every file the verdict expected.tsv names, and the drive is scanned, not rejected by a failing engine', async () => {
    const mine = cases.filter((c) => c.drive === drive);
    expect(mine.length).toBeGreaterThan(0);
    const result = await scanDriveFolder(drive);
    const engineFailure = result.driveReasons.filter((r) => ENGINE_FAILURES.has(r.code));
    expect(engineFailure, 'the scan itself failed').toEqual([]);

    const rows: string[] = [];
    for (const c of mine) {
      const got = result.files.get(c.path);
      const why = mismatch(c, got);
      if (why !== null) rows.push(`${c.path}\n    want ${describeExpectation(c.expect)}  (${c.why})\n    got  ${shown(got)}\n    ${why}`);
    }
    const wrong = rows.length;
    const listed = new Set(mine.map((c) => c.path));
    for (const [path, f] of result.files) if (!listed.has(path)) rows.push(`${path}\n    not in expected.tsv; got ${shown(f)}`);
    expect(rows.length, `${wrong} of ${mine.length} cases not as expected on the ${drive} drive${rows.length > wrong ? `, ${rows.length - wrong} files not in the table` : ''}:\n${rows.join('\n')}\n`).toBe(0);
    // A drive with blocked files and passing look-alikes is partial: never approved whole.
    expect(result.verdict).toBe('partial');
  }, 600_000);
});

describe('the VBA macro workbook generator', () => {
  it('makes an .xls that ClamAV flags as Heuristics.OLE2.ContainsMacros.VBA only when asked to alert on macros, and the same workbook without a project it does not', () => {
    const dir = join(work, 'ole2');
    mkdirSync(join(dir, 'db'), { recursive: true });
    // clamscan needs one signature to start; this one matches nothing in the files.
    writeFileSync(join(dir, 'db', 'trivial.ndb'), `Portcullis.Trivial:0:*:${Buffer.from('PORTCULLIS-NEVER-PRESENT').toString('hex')}\n`);
    const macro = join(dir, 'macro.xls');
    const plain = join(dir, 'plain.xls');
    writeFileSync(macro, macroWorkbook());
    writeFileSync(plain, plainWorkbook());
    const clamscan = (...options: string[]): string =>
      spawnSync('clamscan', ['--no-summary', `--database=${join(dir, 'db')}`, ...options, macro, plain], { encoding: 'utf8' }).stdout;
    const alerting = clamscan('--alert-macros=yes');
    expect(alerting).toContain(`${macro}: Heuristics.OLE2.ContainsMacros.VBA FOUND`);
    expect(alerting).toContain(`${plain}: OK`);
    expect(clamscan()).toContain(`${macro}: OK`);
  });
});
