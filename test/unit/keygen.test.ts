import { chmodSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { keyIdOf, publicKeyFromPem } from '../../manifest/index.ts';
import { generateKeyFiles, KeyFileError, loadSigningKey } from '../../kiosk/keygen.ts';
import { main } from '../../kiosk/main.ts';

describe('kiosk keygen', () => {
  it('writes a 0600 private key and a public key whose id it returns', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'keygen-')), 'keys');
    const key = await generateKeyFiles(dir);
    expect(statSync(key.privateKeyPath).mode & 0o777).toBe(0o600);
    expect(keyIdOf(publicKeyFromPem(readFileSync(key.publicKeyPath, 'utf8')))).toBe(key.keyId);
    expect((await loadSigningKey(key.privateKeyPath)).keyId).toBe(key.keyId);
  });

  it('refuses to overwrite an existing key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keygen-'));
    const first = await generateKeyFiles(dir);
    await expect(generateKeyFiles(dir)).rejects.toMatchObject({ code: 'KEY_EXISTS' });
    expect((await loadSigningKey(first.privateKeyPath)).keyId).toBe(first.keyId);
  });

  it('refuses to load a private key that others can read', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keygen-'));
    const key = await generateKeyFiles(dir);
    chmodSync(key.privateKeyPath, 0o644);
    await expect(loadSigningKey(key.privateKeyPath)).rejects.toBeInstanceOf(KeyFileError);
    await expect(loadSigningKey(key.privateKeyPath)).rejects.toMatchObject({ code: 'KEY_PERMISSIONS' });
  });

  it('exits 64 on a usage error and 1 when the key exists', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keygen-'));
    expect(await main(['keygen'])).toBe(64);
    expect(await main(['keygen', '--bogus'])).toBe(64);
    expect(await main(['keygen', '--out', dir])).toBe(0);
    expect(await main(['keygen', '--out', dir])).toBe(1);
  });
});
