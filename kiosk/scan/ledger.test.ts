/**
 * The scan ledger keeps a scan's entries and decisions in scratch SQLite so
 * the kiosk's memory does not grow with the drive. What it gives back must be
 * exactly what went in, in the order the report promises, and its collision
 * check must find every name that would clash on Windows.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { AllowlistEntry } from '../core/allowlist.ts';
import type { FileDecision } from '../core/decide.ts';
import { ScanLedger } from './ledger.ts';
import type { WalkEntry } from './walk.ts';

const dir = mkdtempSync(join(tmpdir(), 'scan-ledger-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function entry(path: string | null, extra: Partial<WalkEntry> = {}): WalkEntry {
  const shown = path ?? 'bad\\xff';
  return { path, display: shown, rawPath: Buffer.from(`/mnt/${shown}`), kind: 'file', size: 1, depth: shown.split('/').length, ino: 1, dev: 1, ...extra };
}

function decision(display: string, extra: Partial<FileDecision> = {}): FileDecision {
  return { path: display, display, size: 3, digest: { sha256: 'a'.repeat(64), blake3: 'b'.repeat(64) }, verdict: 'clean', reasons: [], allowlistEntry: null, controlledClass: null, ...extra };
}

/** Every entry with its collision details, read a page at a time as the scan does. */
function allEntries(ledger: ScanLedger): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (let page = ledger.entriesAfter(0); page.length > 0; page = ledger.entriesAfter(page[page.length - 1]!.id)) {
    for (const item of page) out.set(item.entry.display, item.collisions.map((c) => c.detail));
  }
  return out;
}

function collisionsOf(paths: string[]): Map<string, string[]> {
  const ledger = ScanLedger.open(dir);
  try {
    for (const p of paths) ledger.addEntry(entry(p));
    ledger.findCollisions();
    const all = allEntries(ledger);
    return new Map([...all].filter(([, details]) => details.length > 0));
  } finally {
    ledger.close();
  }
}

describe('the scan ledger', () => {
  it('leaves no file behind: it is unlinked as soon as it is opened', () => {
    const before = readdirSync(dir).length;
    const ledger = ScanLedger.open(dir);
    ledger.addEntry(entry('a.txt'));
    expect(readdirSync(dir)).toHaveLength(before);
    expect(ledger.entriesAfter(0)).toHaveLength(1);
    ledger.close();
  });

  it('gives back every entry exactly, in walk order, across many pages', () => {
    const ledger = ScanLedger.open(dir);
    const raw = Buffer.from([0x2f, 0x6d, 0x6e, 0x74, 0x2f, 0x66, 0xff, 0xfe, 0x00, 0x01]); // not UTF-8
    const written: WalkEntry[] = [];
    for (let i = 0; i < 1000; i++) {
      const e = i === 500
        ? entry(null, { display: 'f\\xff\\xfe\\x00\\x01', rawPath: raw, kind: 'fifo', size: 0, ino: 2 ** 53 - 1, dev: 66311 })
        : entry(`d${i % 7}/f${String(1000 - i).padStart(4, '0')}.bin`, { size: i * 1_000_003, ino: i * 7919, dev: 2049 });
      written.push(e);
      ledger.addEntry(e);
    }
    expect(ledger.entryCount).toBe(1000);
    const read: WalkEntry[] = [];
    for (let page = ledger.entriesAfter(0); page.length > 0; page = ledger.entriesAfter(page[page.length - 1]!.id)) {
      expect(page.length).toBeLessThanOrEqual(256);
      for (const item of page) read.push(item.entry);
    }
    expect(read).toEqual(written);
    expect(Buffer.compare(read[500]!.rawPath, raw)).toBe(0);
    ledger.close();
  });

  it('lists files in the order JavaScript sorts their displayed names (UTF-16 code units, not UTF-8 bytes)', () => {
    const ledger = ScanLedger.open(dir);
    // U+FF5E sorts after U+1F600 in UTF-16 (0xFF5E > 0xD83D) but before it in UTF-8 (EF < F0).
    const names = ['b.txt', '\u{1F600}.txt', '\uFF5E.txt', 'a/z.txt', 'a.txt', 'A.txt', '\u00e9.txt', 'e\u0301.txt', ''];
    for (let i = 0; i < 300; i++) names.push(`bulk/${(i * 7919) % 300}.dat`);
    for (const n of names) ledger.addFile(null, decision(n));
    const listed = [...ledger.files()].map((f) => f.display);
    expect(listed).toEqual([...names].sort());
    ledger.close();
  });

  it('gives back decisions exactly: digests, reasons, allowlist entries, controlled classes', () => {
    const ledger = ScanLedger.open(dir);
    const allowlisted: AllowlistEntry = { vendor: 'Siemens', product: 'S7-1500', version: '2.9.4', file: 'plc.bin', sha256: 'c'.repeat(64), blake3: undefined, source: 'vendor page', note: null };
    const files: FileDecision[] = [
      decision('fw/plc.bin', { verdict: 'allowlisted', allowlistEntry: allowlisted, controlledClass: 'firmware' }),
      decision('x.exe', { verdict: 'blocked', digest: null, reasons: [{ code: 'MALWARE', detail: 'Eicar-Signature \ud800 "quoted"' }, { code: 'RISKY_TYPE', detail: '.exe' }] }),
      decision('y.txt'),
    ];
    files.forEach((f, i) => ledger.addFile(i + 1, f));
    expect([...ledger.files()]).toEqual(JSON.parse(JSON.stringify(files)) as FileDecision[]);
    expect(ledger.counts).toEqual({ files: 3, passing: 2 });
    ledger.close();
  });

  it('pages through files with the same displayed name without losing or repeating one', () => {
    const ledger = ScanLedger.open(dir);
    for (let i = 0; i < 700; i++) ledger.addFile(null, decision(i % 2 === 0 ? 'same' : 'samf', { size: i }));
    const sizes = [...ledger.files()].map((f) => f.size);
    expect(sizes).toHaveLength(700);
    expect(new Set(sizes).size).toBe(700);
    ledger.close();
  });

  it('can be read again and again, and reads after close fail instead of returning nothing', () => {
    const ledger = ScanLedger.open(dir);
    for (let i = 0; i < 600; i++) ledger.addFile(null, decision(`f${i}`));
    const files = ledger.files();
    expect([...files]).toHaveLength(600);
    expect([...files]).toHaveLength(600);
    ledger.close();
    expect(() => [...files]).toThrow();
  });

  it('reports entries that have no decision yet, for the files a stopped scan never reached', () => {
    const ledger = ScanLedger.open(dir);
    for (let i = 0; i < 600; i++) ledger.addEntry(entry(`f${i}`));
    for (let id = 1; id <= 600; id += 2) ledger.addFile(id, decision(`f${id - 1}`));
    const undecided: string[] = [];
    for (let page = ledger.undecidedAfter(0); page.length > 0; page = ledger.undecidedAfter(page[page.length - 1]!.id)) {
      for (const item of page) undecided.push(item.entry.display);
    }
    expect(undecided).toEqual(Array.from({ length: 300 }, (_, i) => `f${i * 2 + 1}`));
    ledger.close();
  });
});

describe('collisions found by the ledger', () => {
  it('blocks names equal after case folding and NFC, naming each other', () => {
    const found = collisionsOf(['docs/Readme.txt', 'docs/README.TXT', 'docs/other.txt', 'caf\u00e9.txt', 'CAFE\u0301.TXT']);
    expect([...found.keys()].sort()).toEqual(['CAFE\u0301.TXT', 'caf\u00e9.txt', 'docs/README.TXT', 'docs/Readme.txt'].sort());
    expect(found.get('docs/Readme.txt')![0]).toContain('"docs/README.TXT"');
    expect(found.get('docs/README.TXT')![0]).toContain('"docs/Readme.txt"');
  });

  it('names at most three others and counts the rest', () => {
    const variants = ['ab.txt', 'aB.txt', 'Ab.txt', 'AB.txt', 'ab.TXT', 'AB.TXT'];
    const found = collisionsOf(variants);
    expect(found.size).toBe(6);
    const detail = found.get('ab.txt')![0]!;
    expect(detail.match(/"/g)).toHaveLength(6);
    expect(detail).toContain('and 2 more');
  });

  it('blocks a file whose name is a folder in another letter case, and every file under that folder', () => {
    const found = collisionsOf(['Setup', 'setup/a.exe', 'SETUP/b/c.dll', 'setupx/d.txt', 'setup.txt', 'Setup0/e.txt', 'other/f.txt']);
    expect([...found.keys()].sort()).toEqual(['SETUP/b/c.dll', 'Setup', 'setup/a.exe']);
    expect(found.get('Setup')![0]).toContain('and 1 more');
    expect(found.get('setup/a.exe')![0]).toContain('"Setup"');
  });

  it('gives a file under several clashing folders one reason, counting the rest', () => {
    const found = collisionsOf(['a', 'A/b', 'A/B/c', 'A/B/C/d.txt']);
    expect(found.get('A/B/C/d.txt')).toHaveLength(1);
    expect(found.get('A/B/C/d.txt')![0]).toContain('"a" and 2 more');
    expect(found.get('a')![0]).toContain('and 2 more');
  });

  it('finds nothing on a drive without clashes, and ignores names that are not UTF-8', () => {
    const ledger = ScanLedger.open(dir);
    ledger.addEntry(entry(null));
    ledger.addEntry(entry(null));
    for (const p of ['a.txt', 'b.txt', 'a/b.txt', 'a.txt.bak']) ledger.addEntry(entry(p));
    ledger.findCollisions();
    expect([...allEntries(ledger).values()].flat()).toEqual([]);
    ledger.close();
  });
});
