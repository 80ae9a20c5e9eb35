import { describe, expect, it } from 'vitest';
import { DEFAULT_CLAMD_LIMITS, renderClamdConfig, resolveClamdConfig, type ClamdConfigOptions } from './config.ts';
import { ScannerError } from './errors.ts';

const paths: ClamdConfigOptions = {
  socketPath: '/var/lib/portcullis/clamd/run/clamd.sock',
  temporaryDirectory: '/var/lib/portcullis/clamd/tmp',
  databaseDirectory: '/var/lib/portcullis/clamav-db',
  logFile: '/var/lib/portcullis/clamd/clamd.log',
};

/** Directive name -> values, as clamd reads the file (comments and blank lines skipped). */
function directives(text: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.indexOf(' ');
    const key = space === -1 ? line : line.slice(0, space);
    map.set(key, [...(map.get(key) ?? []), space === -1 ? '' : line.slice(space + 1)]);
  }
  return map;
}

function only(map: Map<string, string[]>, key: string): string | undefined {
  const values = map.get(key);
  expect(values?.length ?? 0, `${key} appears once`).toBeLessThanOrEqual(1);
  return values?.[0];
}

function configError(options: ClamdConfigOptions): ScannerError {
  try {
    resolveClamdConfig(options);
  } catch (error) {
    if (error instanceof ScannerError) return error;
    throw error;
  }
  throw new Error('expected a ScannerError');
}

describe('renderClamdConfig', () => {
  it('writes the paths, a foreground process and a private socket', () => {
    const d = directives(renderClamdConfig(paths));
    expect(only(d, 'LocalSocket')).toBe(paths.socketPath);
    expect(only(d, 'LocalSocketMode')).toBe('600');
    expect(only(d, 'TemporaryDirectory')).toBe(paths.temporaryDirectory);
    expect(only(d, 'DatabaseDirectory')).toBe(paths.databaseDirectory);
    expect(only(d, 'LogFile')).toBe(paths.logFile);
    expect(only(d, 'Foreground')).toBe('yes');
    expect(only(d, 'LogSyslog')).toBe('no');
  });

  it('opens no network listener', () => {
    const d = directives(renderClamdConfig(paths));
    expect([...d.keys()].filter((key) => key.startsWith('TCP'))).toEqual([]);
  });

  it('writes every default limit explicitly, none of them 0 (unlimited)', () => {
    const d = directives(renderClamdConfig(paths));
    const l = DEFAULT_CLAMD_LIMITS;
    expect(only(d, 'MaxRecursion')).toBe(String(l.maxRecursion));
    expect(only(d, 'MaxFiles')).toBe(String(l.maxFiles));
    expect(only(d, 'MaxScanSize')).toBe(String(l.maxScanSize));
    expect(only(d, 'MaxFileSize')).toBe(String(l.maxFileSize));
    expect(only(d, 'MaxScanTime')).toBe(String(l.maxScanTime));
    expect(only(d, 'MaxEmbeddedPE')).toBe(String(l.maxEmbeddedPE));
    expect(only(d, 'PCREMaxFileSize')).toBe(String(l.pcreMaxFileSize));
    for (const key of ['MaxRecursion', 'MaxFiles', 'MaxScanSize', 'MaxFileSize', 'MaxScanTime', 'StreamMaxLength', 'MaxEmbeddedPE']) {
      expect(Number(only(d, key)), key).toBeGreaterThan(0);
    }
  });

  it('keeps StreamMaxLength equal to MaxFileSize, so a longer stream is refused and never cut', () => {
    const d = directives(renderClamdConfig({ ...paths, limits: { maxFileSize: 3 * 1024 * 1024 } }));
    expect(only(d, 'MaxFileSize')).toBe(String(3 * 1024 * 1024));
    expect(only(d, 'StreamMaxLength')).toBe(String(3 * 1024 * 1024));
  });

  it('merges partial limits over the defaults', () => {
    const d = directives(renderClamdConfig({ ...paths, limits: { maxRecursion: 4 } }));
    expect(only(d, 'MaxRecursion')).toBe('4');
    expect(only(d, 'MaxFiles')).toBe(String(DEFAULT_CLAMD_LIMITS.maxFiles));
  });

  it('turns limit and encryption alerts on', () => {
    const d = directives(renderClamdConfig(paths));
    for (const key of ['AlertExceedsMax', 'AlertEncrypted', 'AlertEncryptedArchive', 'AlertEncryptedDoc', 'HeuristicAlerts']) {
      expect(only(d, key), key).toBe('yes');
    }
    expect(only(d, 'ExtendedDetectionInfo')).toBe('no');
  });

  it('switches the result cache off only when asked', () => {
    expect(only(directives(renderClamdConfig(paths)), 'DisableCache')).toBe('no');
    expect(only(directives(renderClamdConfig({ ...paths, disableCache: true })), 'DisableCache')).toBe('yes');
  });

  it('writes a User line only when a user is given', () => {
    expect(directives(renderClamdConfig(paths)).has('User')).toBe(false);
    expect(only(directives(renderClamdConfig({ ...paths, user: 'clamav' })), 'User')).toBe('clamav');
  });

  it('has no trailing comments, which clamd would read as part of the value', () => {
    for (const line of renderClamdConfig(paths).split('\n')) {
      if (!line.startsWith('#')) expect(line).not.toContain('#');
    }
  });
});

describe('resolveClamdConfig', () => {
  it('refuses 0 for a limit, which clamd reads as unlimited', () => {
    const error = configError({ ...paths, limits: { maxFiles: 0 } });
    expect(error.code).toBe('SCANNER_CONFIG');
    expect(error.message).toContain('limits.maxFiles');
  });

  it('refuses a MaxFileSize above what clamd can scan (2 GiB)', () => {
    expect(configError({ ...paths, limits: { maxFileSize: 3 * 1024 ** 3, maxScanSize: 4000 * 1024 ** 2 } }).message).toContain(
      'limits.maxFileSize',
    );
  });

  it('refuses a MaxFileSize larger than MaxScanSize', () => {
    expect(configError({ ...paths, limits: { maxFileSize: 200, maxScanSize: 100 } }).message).toContain('limits.maxFileSize');
  });

  it('refuses fractional and non-numeric limits', () => {
    expect(configError({ ...paths, limits: { maxRecursion: 2.5 } }).message).toContain('limits.maxRecursion');
    expect(configError({ ...paths, limits: { maxScanTime: '60' as unknown as number } }).message).toContain('limits.maxScanTime');
  });

  it('refuses a path with a newline, which would inject a directive', () => {
    const error = configError({ ...paths, logFile: '/tmp/log\nTCPSocket 3310' });
    expect(error.code).toBe('SCANNER_CONFIG');
    expect(error.message).toContain('logFile');
  });

  it('refuses relative paths', () => {
    expect(configError({ ...paths, databaseDirectory: 'db' }).message).toContain('databaseDirectory');
  });

  it('refuses a socket path longer than a Unix socket address holds', () => {
    expect(configError({ ...paths, socketPath: `/${'d'.repeat(120)}/clamd.sock` }).message).toContain('socketPath');
  });

  it('refuses a user name that is not a POSIX account name', () => {
    expect(configError({ ...paths, user: 'root\nTCPSocket 1' }).message).toContain('user');
  });

  it('lists every problem at once', () => {
    const error = configError({ ...paths, socketPath: 'relative.sock', limits: { maxFiles: -1, maxRecursion: 0 } });
    expect(error.message).toContain('socketPath');
    expect(error.message).toContain('limits.maxFiles');
    expect(error.message).toContain('limits.maxRecursion');
  });
});
