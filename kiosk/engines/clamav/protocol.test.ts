import { describe, expect, it } from 'vitest';
import { ScannerError, type ScannerErrorCode } from './errors.ts';
import {
  classifyClamdSignature,
  encodeChunkHeader,
  encodeScanCommand,
  END_OF_STREAM,
  parseFileScanAnswer,
  parsePingAnswer,
  parseScanAnswer,
  parseVersionAnswer,
  type ClamdReason,
} from './protocol.ts';

function codeOf(action: () => unknown): ScannerErrorCode | 'no error' {
  try {
    action();
    return 'no error';
  } catch (error) {
    if (error instanceof ScannerError) return error.code;
    throw error;
  }
}

describe('INSTREAM answers', () => {
  it('reads exactly "stream: OK" as clean', () => {
    expect(parseScanAnswer('stream: OK')).toEqual({ status: 'clean' });
  });

  it('reads "stream: <NAME> FOUND" as a detection named NAME', () => {
    expect(parseScanAnswer('stream: Win.Test.EICAR_HDB-1 FOUND')).toEqual({ status: 'found', signature: 'Win.Test.EICAR_HDB-1' });
    expect(parseScanAnswer('stream: YARA.PortcullisTestRule.UNOFFICIAL FOUND')).toEqual({
      status: 'found',
      signature: 'YARA.PortcullisTestRule.UNOFFICIAL',
    });
  });

  // Every line here must fail: none of them is clamd's exact clean or FOUND answer.
  const bad: [answer: string, code: ScannerErrorCode][] = [
    ['', 'SCANNER_PROTOCOL'],
    ['OK', 'SCANNER_PROTOCOL'],
    ['stream: ok', 'SCANNER_PROTOCOL'],
    ['stream: OK ', 'SCANNER_PROTOCOL'],
    [' stream: OK', 'SCANNER_PROTOCOL'],
    ['stream: OK\n', 'SCANNER_PROTOCOL'],
    ['stream:OK', 'SCANNER_PROTOCOL'],
    ['stream: OK\u0000', 'SCANNER_PROTOCOL'],
    ['1: stream: OK', 'SCANNER_PROTOCOL'],
    ['/tmp/file: OK', 'SCANNER_PROTOCOL'],
    ['stream:  FOUND', 'SCANNER_PROTOCOL'],
    ['stream: FOUND', 'SCANNER_PROTOCOL'],
    ['stream: Two Words FOUND', 'SCANNER_PROTOCOL'],
    ['stream: Name\tFOUND', 'SCANNER_PROTOCOL'],
    ['stream: N\u00e4me FOUND', 'SCANNER_PROTOCOL'],
    [`stream: ${'A'.repeat(257)} FOUND`, 'SCANNER_PROTOCOL'],
    ['stream: Eicar FOUND trailing', 'SCANNER_PROTOCOL'],
    ['PONG', 'SCANNER_PROTOCOL'],
    ['UNKNOWN COMMAND', 'SCANNER_PROTOCOL'],
    ['INSTREAM size limit exceeded. ERROR', 'SCANNER_STREAM_TOO_LONG'],
    ['stream: Can\'t allocate memory ERROR', 'SCANNER_ERROR'],
    ['Error processing command. ERROR', 'SCANNER_ERROR'],
  ];
  it.each(bad)('refuses %j with %s', (answer, code) => {
    expect(codeOf(() => parseScanAnswer(answer))).toBe(code);
  });
});

describe('SCAN of one spool file', () => {
  const path = '/run/portcullis/spool/0a1b2c.spool';

  it('encodes zSCAN, one space, the path and a NUL', () => {
    expect(new TextDecoder().decode(encodeScanCommand(path))).toBe(`zSCAN ${path}\0`);
  });

  // The kiosk names only its own spool files; anything that could change how clamd splits the command is refused.
  it.each(['relative/file', '', '/with space', '/with\nnewline', '/with\0nul', '/caf\u00e9', `/${'a'.repeat(4001)}`])(
    'refuses to ask clamd to scan %j',
    (bad) => {
      expect(codeOf(() => encodeScanCommand(bad))).toBe('SCANNER_CONFIG');
    },
  );

  it('reads exactly "<path>: OK" as clean and "<path>: <NAME> FOUND" as a detection', () => {
    expect(parseFileScanAnswer(path, `${path}: OK`)).toEqual({ status: 'clean' });
    expect(parseFileScanAnswer(path, `${path}: Win.Test.EICAR_HDB-1 FOUND`)).toEqual({ status: 'found', signature: 'Win.Test.EICAR_HDB-1' });
  });

  const bad: [answer: string, code: ScannerErrorCode][] = [
    ['stream: OK', 'SCANNER_PROTOCOL'],
    [`${path}.other: OK`, 'SCANNER_PROTOCOL'], // another file's answer
    ['/run/portcullis/spool/ffff.spool: OK', 'SCANNER_PROTOCOL'],
    [`${path}: OK `, 'SCANNER_PROTOCOL'],
    [`${path}: ok`, 'SCANNER_PROTOCOL'],
    [`${path}:OK`, 'SCANNER_PROTOCOL'],
    [`${path}: Two Words FOUND`, 'SCANNER_PROTOCOL'],
    [`${path}: FOUND`, 'SCANNER_PROTOCOL'],
    [`${path}: OK\n${path}: OK`, 'SCANNER_PROTOCOL'],
    [`${path}: lstat() failed: No such file or directory. ERROR`, 'SCANNER_ERROR'],
    [`${path}: Access denied. ERROR`, 'SCANNER_ERROR'],
  ];
  it.each(bad)('refuses %j with %s', (answer, code) => {
    expect(codeOf(() => parseFileScanAnswer(path, answer))).toBe(code);
  });
});

describe('PING and VERSION answers', () => {
  it('accepts only exactly PONG', () => {
    expect(codeOf(() => parsePingAnswer('PONG'))).toBe('no error');
    for (const answer of ['pong', 'PONG ', 'PONG\n', '', 'stream: OK']) {
      expect(codeOf(() => parsePingAnswer(answer))).toBe('SCANNER_PROTOCOL');
    }
  });

  it('parses the engine alone when clamd loaded no daily database', () => {
    expect(parseVersionAnswer('ClamAV 1.4.6')).toEqual({ engine: '1.4.6', databaseVersion: null, databaseTime: null, raw: 'ClamAV 1.4.6' });
  });

  it('parses engine, daily database version and build time', () => {
    const raw = 'ClamAV 1.4.6/27466/Fri Jan  2 03:04:05 2026';
    expect(parseVersionAnswer(raw)).toEqual({ engine: '1.4.6', databaseVersion: 27466, databaseTime: 'Fri Jan  2 03:04:05 2026', raw });
  });

  it.each(['', 'clamav 1.4.6', 'ClamAV', 'ClamAV 1.4.6/', 'ClamAV 1.4.6/x/Mon', 'ClamAV 1.4.6/1/', 'ClamAV 1.4.6\n', 'PONG'])(
    'refuses the VERSION answer %j',
    (answer) => {
      expect(codeOf(() => parseVersionAnswer(answer))).toBe('SCANNER_PROTOCOL');
    },
  );
});

describe('INSTREAM framing', () => {
  it('prefixes each chunk with its length as 4 big-endian bytes', () => {
    expect([...encodeChunkHeader(0x01020304)]).toEqual([1, 2, 3, 4]);
    expect([...encodeChunkHeader(68)]).toEqual([0, 0, 0, 68]);
  });

  it('ends the stream with a zero-length chunk', () => {
    expect([...END_OF_STREAM]).toEqual([0, 0, 0, 0]);
  });

  it('refuses lengths that do not fit in 32 bits', () => {
    expect(() => encodeChunkHeader(2 ** 32)).toThrow(RangeError);
    expect(() => encodeChunkHeader(-1)).toThrow(RangeError);
  });
});

describe('classifyClamdSignature', () => {
  const cases: [name: string, reason: ClamdReason][] = [
    ['Heuristics.Limits.Exceeded.MaxRecursion', 'LIMIT_EXCEEDED'],
    ['Heuristics.Limits.Exceeded.MaxFileSize', 'LIMIT_EXCEEDED'],
    ['Heuristics.Limits.Exceeded.MaxScanSize', 'LIMIT_EXCEEDED'],
    ['Heuristics.Limits.Exceeded.MaxFiles', 'LIMIT_EXCEEDED'],
    ['Heuristics.Encrypted.Zip', 'ENCRYPTED'],
    ['Heuristics.Encrypted.PDF', 'ENCRYPTED'],
    ['YARA.PortcullisTestRule.UNOFFICIAL', 'YARA_MATCH'],
    ['YARA.SomeRule', 'YARA_MATCH'],
    ['Portcullis.Test.Eicar.UNOFFICIAL', 'MALWARE'],
    ['Win.Test.EICAR_HDB-1', 'MALWARE'],
    ['Heuristics.Zip.OverlappingFiles', 'MALWARE'],
    ['Heuristics.Limits', 'MALWARE'],
    ['heuristics.limits.exceeded.MaxFiles', 'MALWARE'],
    ['Yara.lowercase', 'MALWARE'],
    ['YARA', 'MALWARE'],
  ];
  it.each(cases)('classifies %s as %s', (name, reason) => {
    expect(classifyClamdSignature(name)).toBe(reason);
  });
});
