import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadKioskConfig } from './config.ts';

describe('kiosk config file', () => {
  it('resolves relative paths against the file and keeps "test" as the test database', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    writeFileSync(join(dir, 'kiosk.json'), JSON.stringify({ kioskId: 'gate-7', keyPath: 'keys/kiosk.key', auditDb: '/var/lib/portcullis/audit.db', clamavDb: 'test' }));
    expect(await loadKioskConfig(join(dir, 'kiosk.json'))).toEqual({
      kioskId: 'gate-7', keyPath: join(dir, 'keys/kiosk.key'), auditDb: '/var/lib/portcullis/audit.db', clamavDb: 'test',
    });
  });

  it('refuses unknown fields and wrong types, naming each', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ keyPath: 3, bogus: 1, kioskId: '../x' }));
    await expect(loadKioskConfig(join(dir, 'bad.json'))).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    await expect(loadKioskConfig(join(dir, 'bad.json'))).rejects.toThrow(/bogus: unknown field.*keyPath: expected a string.*|keyPath: expected a string/);
    await expect(loadKioskConfig(join(dir, 'missing.json'))).rejects.toMatchObject({ code: 'CONFIG_UNREADABLE' });
  });
});
