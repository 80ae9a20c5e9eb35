import { describe, expect, it } from 'vitest';
import { escapeForDisplay, findCollisions, pathProblems } from '../../manifest/index.ts';

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
