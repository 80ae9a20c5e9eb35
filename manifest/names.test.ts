import { describe, expect, it } from 'vitest';
import { decodeNameBytes, displayNameBytes, escapeForDisplay, findCollisions, pathProblems } from './index.ts';
import { hasCollision, pathProblemsByRule } from './names.ts';

describe('pathProblems', () => {
  it.each([
    ['firmware/plc.bin', []],
    ['Projekte/Überdruck Prüfung.zap17', []],
    ['.hidden/config.ini', []],
    ['/abs.txt', ['ABSOLUTE']],
    ['C:evil.txt', ['ABSOLUTE', 'STREAM_SYNTAX']],
    ['a//b', ['EMPTY_COMPONENT']],
    ['a/', ['EMPTY_COMPONENT']],
    ['a/../b', ['DOT_COMPONENT']],
    ['./a', ['DOT_COMPONENT']],
    ['a\\b', ['BACKSLASH']],
    ['tab\there', ['CONTROL_CHARACTER']],
    ['c1\u0085x', ['CONTROL_CHARACTER']],
    ['invoice\u202efdp.exe', ['BIDI_CONTROL']],
    ['zero\u200bwidth.txt', ['BIDI_CONTROL']],
    ['what?.txt', ['WINDOWS_FORBIDDEN_CHARACTER']],
    ['file.txt:stream', ['STREAM_SYNTAX']],
    ['CON', ['WINDOWS_RESERVED_NAME']],
    ['dir/nul.tar.gz', ['WINDOWS_RESERVED_NAME']],
    ['lpt9 .log', ['WINDOWS_RESERVED_NAME']],
    ['CONOUT$', ['WINDOWS_RESERVED_NAME']],
    ['console.txt', []],
    ['COM10.txt', []],
    ['end.', ['TRAILING_DOT_OR_SPACE']],
    ['dir /x', ['TRAILING_DOT_OR_SPACE']],
    ['e\u0301.txt', ['NOT_NFC']],
    [`${'x'.repeat(256)}`, ['TOO_LONG']],
    [Array.from({ length: 65 }, () => 'd').join('/'), ['TOO_DEEP']],
    ['.Portcullis/x', ['RESERVED_FOLDER']],
    ['bad\ud800.txt', ['MALFORMED_UNICODE']],
  ])('judges %j as %j', (name, expected) => {
    expect(pathProblems(name).sort()).toEqual([...expected].sort());
  });
});

describe('findCollisions', () => {
  it('finds duplicates, case-only clashes and a file shadowing a folder', () => {
    expect(findCollisions(['a.txt', 'b.txt'])).toEqual([]);
    expect(findCollisions(['A.txt', 'a.TXT'])).toEqual([['A.txt', 'a.TXT']]);
    expect(findCollisions(['dir/x', 'DIR'])).toEqual([['dir/x', 'DIR']]);
    expect(findCollisions(['doc', 'Doc/readme'])).toEqual([['doc', 'Doc/readme']]);
    expect(findCollisions(['straße/a', 'STRASSE/b'])).toEqual([]);
  });
});

describe('escapeForDisplay', () => {
  it('turns every terminal control into a visible escape', () => {
    expect(escapeForDisplay('a\u001b[2Jb\u0007\r\n')).toBe('a\\x1b[2Jb\\x07\\x0d\\x0a');
    expect(escapeForDisplay('inv\u202efdp.exe')).toBe('inv\\u{202e}fdp.exe');
    expect(escapeForDisplay('c:\\dir')).toBe('c:\\\\dir');
    expect(escapeForDisplay('lone\udc00')).toBe('lone\\u{dc00}');
    expect(escapeForDisplay('Grüße 🏭')).toBe('Grüße 🏭');
  });

  it('leaves no character below U+0020 in any escaped string', () => {
    let all = '';
    for (let c = 0; c < 0x250; c++) all += String.fromCharCode(c);
    expect(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e]/.test(escapeForDisplay(all))).toBe(false);
  });
});

describe('displayNameBytes', () => {
  const b = (...bytes: number[]): Uint8Array => Uint8Array.from(bytes);

  it('shows valid UTF-8 escaped and every invalid byte as \\xNN, losing none', () => {
    expect(displayNameBytes(new TextEncoder().encode('Prüfung.txt'))).toBe('Prüfung.txt');
    expect(displayNameBytes(b(0x62, 0x61, 0x64, 0xff, 0xfe, 0x2e, 0x74))).toBe('bad\\xff\\xfe.t');
    expect(displayNameBytes(b(0xc3, 0xbc, 0x80, 0x1b))).toBe('ü\\x80\\x1b');
  });

  it('refuses overlong forms, encoded surrogates and truncated sequences', () => {
    expect(displayNameBytes(b(0xc0, 0xaf))).toBe('\\xc0\\xaf'); // overlong "/"
    expect(displayNameBytes(b(0xe0, 0x80, 0xaf))).toBe('\\xe0\\x80\\xaf');
    expect(displayNameBytes(b(0xed, 0xa0, 0x80))).toBe('\\xed\\xa0\\x80'); // U+D800
    expect(displayNameBytes(b(0x61, 0xe2, 0x82))).toBe('a\\xe2\\x82');
    expect(displayNameBytes(b(0xe2, 0x80, 0xae, 0xff))).toBe('\\u{202e}\\xff'); // RTL override stays escaped
  });

  it('agrees with the strict decoder on valid input and stays linear on hostile input', () => {
    const text = 'a/β/🏭/\u0007';
    expect(displayNameBytes(new TextEncoder().encode(text))).toBe(escapeForDisplay(text));
    expect(decodeNameBytes(b(0xff))).toBeNull();
    const hostile = new Uint8Array(200_000).fill(0xe2); // every byte starts a sequence that never completes
    // The old nested search was cubic here and hung past the test timeout.
    expect(displayNameBytes(hostile)).toHaveLength(4 * 200_000);
  });
});

/** A small deterministic generator (xorshift), so a failure names its seed and repeats. */
function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x / 4294967296;
  };
}

/** findCollisions as first written (folder prefixes by split and join): the reference for the faster one. */
function findCollisionsReference(paths: readonly string[]): Array<[string, string]> {
  const files = new Map<string, string>();
  const folders = new Map<string, string>();
  const collisions: Array<[string, string]> = [];
  for (const path of paths) {
    const key = path.normalize('NFC').toUpperCase();
    const earlier = files.get(key) ?? folders.get(key);
    if (earlier !== undefined) collisions.push([earlier, path]);
    else files.set(key, path);
    const parts = key.split('/');
    for (let i = 1; i < parts.length; i++) {
      const prefix = parts.slice(0, i).join('/');
      const asFile = files.get(prefix);
      if (asFile !== undefined) collisions.push([asFile, path]);
      if (!folders.has(prefix)) folders.set(prefix, path);
    }
  }
  return collisions;
}

// Pieces that sit on the edges of the rules: separators, dots, spaces, reserved stems, forbidden and non-ASCII characters.
const PIECES = [
  'a', 'B', 'z9', '-', '_', '.', '..', ' ', '/', '//', 'con', 'CON', 'Aux', 'nul', 'com1', 'LPT9', 'conin$', 'CONOUT$', 'clock$', 'com¹', 'lpt²',
  'coM0', 'prn', 'comx', 'con.', '.portcullis', '.PortCullis', ':', '\\', '<', '>', '"', '|', '?', '*', '\t', '\u007f', '\u0085', '\u202e', '\u200b',
  'é', 'e\u0301', 'ß', 'ı', 'ſ', '\ud800', '😀', 'x'.repeat(250), 'y'.repeat(300), 'C:', '~', '$', '%', '(', '#', 'conıN$',
];

describe('pathProblems shortcut for plain ASCII names', () => {
  it('gives exactly what the rules give, on 100 000 generated names', () => {
    const next = random(23);
    const differ: string[] = [];
    let safe = 0;
    for (let n = 0; n < 100_000; n++) {
      let name = '';
      const parts = 1 + Math.floor(next() * 6);
      for (let i = 0; i < parts; i++) name += PIECES[Math.floor(next() * PIECES.length)];
      if (next() < 0.05) name = Array.from({ length: 60 + Math.floor(next() * 10) }, () => 'd').join('/');
      const byRule = pathProblemsByRule(name);
      if (byRule.length === 0) safe++;
      if (JSON.stringify(pathProblems(name)) !== JSON.stringify(byRule)) differ.push(name);
    }
    expect(differ).toEqual([]);
    expect(safe).toBeGreaterThan(2_000); // the shortcut's side was exercised too
  });

  it('still refuses what only the rules name', () => {
    for (const name of ['con', 'a/LPT3.txt', 'x/prn .log', 'end.', 'sp ', '.portcullis/m', '/abs', 'a//b', 'C:x']) {
      expect(pathProblems(name)).not.toEqual([]);
    }
  });
});

describe('findCollisions', () => {
  it('finds the same pairs as the first version, on generated name sets', () => {
    const next = random(7);
    const words = ['a', 'A', 'b', 'doc', 'DOC', 'Doc', 'straße', 'STRASSE', 'é', 'e\u0301', 'x.txt', 'X.TXT'];
    for (let n = 0; n < 5_000; n++) {
      const names: string[] = [];
      for (let k = 0; k < 1 + Math.floor(next() * 6); k++) {
        names.push(Array.from({ length: 1 + Math.floor(next() * 3) }, () => words[Math.floor(next() * words.length)]).join('/'));
      }
      expect(findCollisions(names)).toEqual(findCollisionsReference(names));
      expect(hasCollision(names)).toBe(findCollisions(names).length > 0);
      const sorted = [...names].sort();
      expect(hasCollision(sorted)).toBe(findCollisions(sorted).length > 0);
    }
  });
});
