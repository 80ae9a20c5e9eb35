import { loadPolicy } from '../rules-files.ts';
import { describe, expect, it } from 'vitest';
import { buildAllowlist, EMPTY_ALLOWLIST } from './allowlist.ts';

import { decide, decideFile, type EngineName, type Observation, type Reason } from './decide.ts';
import { extensionsOf } from './file-type.ts';

const { policy } = await loadPolicy();
const both = new Set<EngineName>(['clamav', 'yara']);

function obs(path: string, extra: Partial<Observation> = {}): Observation {
  return {
    path,
    display: path,
    size: 10,
    digest: { sha256: 'a'.repeat(64), blake3: 'b'.repeat(64) },
    extensions: extensionsOf(path),
    contentKind: 'text',
    reasons: [],
    cleanBy: both,
    ...extra,
  };
}

const allowlist = buildAllowlist([{
  name: 'vendor.json',
  bytes: new TextEncoder().encode(JSON.stringify({
    version: '1', owner: 'test', entries: [{ vendor: 'V', product: 'P', version: '1', file: 'cpu.bin', sha256: 'c'.repeat(64), source: 'test' }],
  })),
}]);

describe('decide', () => {
  it('approves a drive whose every file both engines called clean', () => {
    const d = decide([obs('a.txt'), obs('b.csv')], EMPTY_ALLOWLIST, policy, []);
    expect(d.verdict).toBe('approved');
    expect(d.files.map((f) => f.verdict)).toEqual(['clean', 'clean']);
  });

  it('blocks a file that a required engine never called clean, even with no finding', () => {
    const d = decide([obs('a.txt', { cleanBy: new Set(['clamav']) }), obs('b.txt')], EMPTY_ALLOWLIST, policy, []);
    expect(d.verdict).toBe('partial');
    expect(d.files[0]!.reasons.map((r) => r.code)).toEqual(['SCAN_ERROR']);
  });

  it('lets a controlled file pass only when its hash is on the allowlist', () => {
    const listed = obs('firmware/cpu.bin', { digest: { sha256: 'c'.repeat(64), blake3: 'd'.repeat(64) } });
    const unknown = obs('firmware/other.bin');
    const d = decide([listed, unknown], allowlist, policy, []);
    expect(d.files.map((f) => [f.verdict, f.controlledClass, f.reasons.map((r) => r.code)])).toEqual([
      ['allowlisted', 'firmware', []],
      ['blocked', 'firmware', ['NOT_ALLOWLISTED']],
    ]);
  });

  it('never lets the allowlist override malware', () => {
    const reasons: Reason[] = [{ code: 'MALWARE', detail: 'Eicar-Test-Signature' }];
    const d = decide([obs('cpu.bin', { digest: { sha256: 'c'.repeat(64), blake3: 'd'.repeat(64) }, reasons, cleanBy: new Set() }), obs('x.txt')], allowlist, policy, []);
    expect(d.files[0]!.verdict).toBe('blocked');
  });

  it('rejects the whole drive on a drive-level reason', () => {
    const d = decide([obs('a.txt')], EMPTY_ALLOWLIST, policy, [{ code: 'SCANNER_UNAVAILABLE', detail: 'clamd is down' }]);
    expect(d.verdict).toBe('rejected');
  });

  it('rejects an empty drive and a drive where nothing may pass', () => {
    expect(decide([], EMPTY_ALLOWLIST, policy, []).driveReasons.map((r) => r.code)).toEqual(['NO_FILES']);
    const blocked = obs('run.lnk', { reasons: [{ code: 'RISKY_TYPE', detail: '.lnk' }] });
    expect(decide([blocked], EMPTY_ALLOWLIST, policy, []).verdict).toBe('rejected');
  });

  it('blocks a file that was not read in full', () => {
    const d = decide([obs('a.txt', { digest: null, cleanBy: new Set() }), obs('b.txt')], EMPTY_ALLOWLIST, policy, []);
    expect(d.files[0]!.reasons.map((r) => r.code)).toEqual(['SCAN_ERROR']);
  });
});

describe('decide after an engine failure', () => {
  it('reports nothing as clean or allowlisted once the engines failed mid-scan', () => {
    const listed = obs('firmware/cpu.bin', { digest: { sha256: 'c'.repeat(64), blake3: 'd'.repeat(64) } });
    const d = decide([obs('a.txt'), listed], allowlist, policy, [{ code: 'SCANNER_UNAVAILABLE', detail: 'clamd died' }]);
    expect(d.verdict).toBe('rejected');
    expect(d.files.map((f) => [f.verdict, f.reasons.map((r) => r.code)])).toEqual([
      ['blocked', ['SCAN_ERROR']],
      ['blocked', ['SCAN_ERROR']],
    ]);
  });

  it('keeps clean verdicts when the drive is rejected for a reason that is not the engines', () => {
    const d = decide([obs('a.txt')], EMPTY_ALLOWLIST, policy, [{ code: 'LIMIT_EXCEEDED', detail: 'too many files' }]);
    expect(d.files[0]!.verdict).toBe('clean');
    expect(d.verdict).toBe('rejected');
  });
});

describe('the default policy\'s list of plant media types', () => {
  const listedScript = buildAllowlist([{
    name: 'site.json',
    bytes: new TextEncoder().encode(JSON.stringify({
      version: '1', owner: 'test', entries: [{ vendor: 'Site', product: 'tools', version: '1', file: 'backup.ps1', sha256: 'e'.repeat(64), source: 'test' }],
    })),
  }]);
  const one = (o: Observation, list = EMPTY_ALLOWLIST, scope?: 'drive' | 'files' | 'parts' | 'content') => decideFile(o, list, policy, scope);

  it('passes documents, text, images, engineering data and archives when clean', () => {
    for (const path of ['manual.pdf', 'plan.docx', 'report.xlsx', 'notes.txt', 'export.csv', 'photo.jpg', 'drawing.dwg', 'device.gsdml', 'bundle.zip', 'logs.tar.gz', 'README']) {
      expect(one(obs(path)).verdict, path).toBe('clean');
    }
  });

  it('blocks scripts, shortcuts, macro-enabled Office files and unknown types unless their hash is allowlisted', () => {
    for (const path of ['backup.ps1', 'run.bat', 'go.lnk', 'tool.py', 'book.xlsm', 'letter.docm', 'page.html', 'x.svg', 'notes.one', 'a.search-ms', 'data.xyz']) {
      expect(one(obs(path)).reasons.map((r) => r.code), path).toEqual(['TYPE_NOT_ALLOWED']);
    }
    const listed = obs('backup.ps1', { digest: { sha256: 'e'.repeat(64), blake3: 'f'.repeat(64) } });
    expect(one(listed, listedScript)).toMatchObject({ verdict: 'allowlisted', reasons: [] });
  });

  it('lets an allowlisted hash clear the type and macro gates but never a finding', () => {
    const listed = (extra: Partial<Observation>): Observation => obs('backup.ps1', { digest: { sha256: 'e'.repeat(64), blake3: 'f'.repeat(64) }, ...extra });
    expect(one(listed({ reasons: [{ code: 'MACRO', detail: 'Heuristics.OLE2.ContainsMacros.VBA' }] }), listedScript).verdict).toBe('allowlisted');
    for (const code of ['MALWARE', 'YARA_MATCH', 'NOT_INSPECTED', 'ENCRYPTED', 'LIMIT_EXCEEDED'] as const) {
      expect(one(listed({ reasons: [{ code, detail: 'x' }] }), listedScript).reasons.map((r) => r.code), code).toEqual([code]);
    }
    expect(one(obs('sheet.xls', { reasons: [{ code: 'MACRO', detail: 'Heuristics.OLE2.ContainsMacros.VBA' }] })).reasons.map((r) => r.code)).toEqual(['MACRO']);
  });

  it('allows document parts only inside a document, and judges a content-only member by its content', () => {
    expect(one(obs('word/drawing.vml')).reasons.map((r) => r.code)).toEqual(['TYPE_NOT_ALLOWED']);
    expect(one(obs('word/drawing.vml'), EMPTY_ALLOWLIST, 'files').reasons.map((r) => r.code)).toEqual(['TYPE_NOT_ALLOWED']);
    expect(one(obs('word/drawing.vml'), EMPTY_ALLOWLIST, 'parts').verdict).toBe('clean');
    // A document's .bin parts (printer settings, OLE objects) are no firmware; a program is a program wherever it is.
    expect(one(obs('xl/printerSettings/printerSettings1.bin', { contentKind: 'binary' }), EMPTY_ALLOWLIST, 'parts').verdict).toBe('clean');
    expect(one(obs('word/embeddings/oleObject1.bin', { contentKind: 'pe' }), EMPTY_ALLOWLIST, 'parts').reasons.map((r) => r.code)).toEqual(['NOT_ALLOWLISTED']);
    expect(one(obs('firmware/cpu.bin', { contentKind: 'binary' }), EMPTY_ALLOWLIST, 'files').reasons.map((r) => r.code)).toEqual(['NOT_ALLOWLISTED']);
    expect(one(obs('Project/opaque.plf'), EMPTY_ALLOWLIST, 'content').verdict).toBe('clean');
    expect(one(obs('Project/tool.dll', { contentKind: 'pe' }), EMPTY_ALLOWLIST, 'content').reasons.map((r) => r.code)).toEqual(['NOT_ALLOWLISTED']);
  });

  it('blocks autorun.inf and desktop.ini outright, allowlisted or not', () => {
    expect(one(obs('autorun.inf')).reasons.map((r) => r.code)).toContain('RISKY_TYPE');
    expect(one(obs('sub/Desktop.ini')).reasons.map((r) => r.code)).toContain('RISKY_TYPE');
  });
});
