/**
 * The scan report is written a piece at a time so a drive of 100 000 files is
 * never held as one string. The pieces must still make exactly the documented
 * document, and the plain-text report must never print drive-supplied text raw.
 */
import { describe, expect, it } from 'vitest';
import type { FileDecision } from '../core/decide.ts';
import { scanJsonLines, scanText, scanTextLines, type ScanSummaryInput } from './report.ts';

function file(display: string, extra: Partial<FileDecision> = {}): FileDecision {
  return { path: display, display, size: 5, digest: { sha256: '1'.repeat(64), blake3: '2'.repeat(64) }, verdict: 'clean', reasons: [], allowlistEntry: null, controlledClass: null, ...extra };
}

function summary(files: FileDecision[], notes: string[] = []): ScanSummaryInput {
  return {
    root: '/media/stick',
    report: {
      decision: { verdict: files.some((f) => f.verdict === 'blocked') ? 'partial' : 'approved', files, driveReasons: [] },
      stats: { files: files.length, bytes: files.length * 5, entries: files.length },
      manifestFolderExtras: ['.portcullis/odd'],
      durations: { walkMs: 1, scanMs: 2, totalMs: 3 },
      close: () => {},
    },
    engines: { clamav: { version: 'ClamAV 1.4.3', databaseVersion: '1', databaseTime: null }, yara: null },
    policy: { id: 'default', digest: `sha256:${'3'.repeat(64)}` },
    allowlist: { version: 'v1', digest: `sha256:${'4'.repeat(64)}` },
    notes,
  };
}

/** The documented --json shape, built here independently of report.ts. */
function expectedDocument(input: ScanSummaryInput, files: FileDecision[]): unknown {
  return {
    verdict: input.report.decision.verdict,
    driveReasons: [],
    files: files.map((f) => ({
      path: f.display, verdict: f.verdict, reasons: f.reasons, size: f.size, sha256: f.digest?.sha256 ?? null, blake3: f.digest?.blake3 ?? null,
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

describe('the --json report, written in pieces', () => {
  const cases: Array<[string, FileDecision[]]> = [
    ['no files', []],
    ['one file', [file('a.txt')]],
    ['many files, blocked and allowlisted among them', [
      file('a.txt'),
      file('b.exe', { verdict: 'blocked', digest: null, reasons: [{ code: 'MALWARE', detail: 'Win.Test.EICAR_HDB-1' }, { code: 'RISKY_TYPE', detail: '.exe' }] }),
      file('fw/plc.bin', { verdict: 'allowlisted', controlledClass: 'firmware', allowlistEntry: { vendor: 'V', product: 'P', version: '1', file: 'plc.bin', sha256: '1'.repeat(64), blake3: undefined, source: 's', note: null } }),
      ...Array.from({ length: 50 }, (_, i) => file(`bulk/${i}.dat`)),
    ]],
  ];
  for (const [name, files] of cases) {
    it(`is exactly JSON.stringify(document, null, 2): ${name}`, () => {
      const input = summary(files);
      expect([...scanJsonLines(input)].join('\n')).toBe(JSON.stringify(expectedDocument(input, files), null, 2));
    });
  }

  it('keeps names with line and paragraph separators (U+2028, U+2029) exactly', () => {
    const files = [file('a\u2028b.txt'), file('c\u2029d.txt', { verdict: 'blocked', digest: null, reasons: [{ code: 'UNSAFE_NAME', detail: 'x\u2028y' }] })];
    const input = summary(files);
    expect([...scanJsonLines(input)].join('\n')).toBe(JSON.stringify(expectedDocument(input, files), null, 2));
  });

  it('is not fooled by drive text that looks like the files line', () => {
    const trap = '\n  "files": "\u0000files\u0000",';
    const files = [file(`x${trap}.txt`, { verdict: 'blocked', digest: null, reasons: [{ code: 'UNSAFE_NAME', detail: trap }] })];
    const input = summary(files, [trap]);
    expect(JSON.parse([...scanJsonLines(input)].join('\n'))).toEqual(expectedDocument(input, files));
  });

  it('reads the files lazily, one pass, never collecting them first', () => {
    let read = 0;
    const files = { *[Symbol.iterator]() { for (let i = 0; i < 3; i++) { read++; yield file(`f${i}`); } } };
    const input = summary([]);
    const lazy: ScanSummaryInput = { ...input, report: { ...input.report, decision: { ...input.report.decision, files } } };
    const pieces = scanJsonLines(lazy);
    pieces.next();
    expect(read).toBe(1);
    expect([...pieces].length).toBeGreaterThan(0);
    expect(read).toBe(3);
  });
});

describe('the plain-text report', () => {
  it('counts, lists blocked and allowlisted files, and escapes drive-supplied details', () => {
    const files = [
      file('a.txt'),
      file('b.exe', { verdict: 'blocked', digest: null, reasons: [{ code: 'SCAN_ERROR', detail: "cannot open: EIO, open '/mnt/\u001b[2Jevil\u202e'" }] }),
    ];
    const text = scanText(summary(files, ['note with \u001b[31m colour']));
    expect(text).toContain('2 files');
    expect(text).toContain('1 clean, 0 allowlisted, 1 blocked');
    expect(text).toContain('BLOCKED b.exe');
    expect(text).not.toMatch(/[\u001b\u202e]/);
    expect(text).toContain('\\x1b[2Jevil');
    expect([...scanTextLines(summary(files))].join('\n')).toBe(scanText(summary(files)));
  });
});
