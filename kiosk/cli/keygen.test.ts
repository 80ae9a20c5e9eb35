import { chmodSync, existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { keyIdOf, publicKeyFromPem } from '../../manifest/index.ts';
import { generateKeyFiles, KeyFileError, loadSigningKey } from './keygen.ts';
import { main } from '../main.ts';

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

  it('refuses a place under /proc at once, where a recursive mkdir spins forever', async () => {
    const started = Date.now();
    await expect(generateKeyFiles('/proc/portcullis-keygen-test')).rejects.toMatchObject({ code: 'PATH_UNWRITABLE' });
    await expect(generateKeyFiles('/proc/portcullis/a/b')).rejects.toMatchObject({ code: 'PATH_UNWRITABLE' });
    expect(Date.now() - started).toBeLessThan(5_000);
  }, 10_000);

  it('refuses an --out that is a file, or lies under one, and leaves the file alone', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'keygen-')), 'notes.txt');
    writeFileSync(file, 'notes');
    await expect(generateKeyFiles(file)).rejects.toMatchObject({ code: 'PATH_NOT_A_FOLDER' });
    await expect(generateKeyFiles(join(file, 'keys'))).rejects.toMatchObject({ code: 'PATH_UNWRITABLE' });
    expect(readFileSync(file, 'utf8')).toBe('notes');
  });

  it('refuses a folder where no file can be made', async () => {
    await expect(generateKeyFiles('/proc')).rejects.toMatchObject({ code: 'KEY_WRITE_FAILED' });
  });

  it('writes both key files or neither: a public key in the way leaves no private key behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keygen-'));
    writeFileSync(join(dir, 'kiosk.pub.pem'), 'someone else\'s key');
    await expect(generateKeyFiles(dir)).rejects.toMatchObject({ code: 'KEY_EXISTS' });
    expect(existsSync(join(dir, 'kiosk.key'))).toBe(false);
  });

  it('refuses to load a key that is a folder', async () => {
    await expect(loadSigningKey(mkdtempSync(join(tmpdir(), 'keygen-')))).rejects.toMatchObject({ code: 'KEY_UNREADABLE' });
  });

  it('exits 64 on a usage error and 1 when the key exists', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keygen-'));
    expect(await main(['keygen'])).toBe(64);
    expect(await main(['keygen', '--bogus'])).toBe(64);
    expect(await main(['keygen', '--out', dir])).toBe(0);
    expect(await main(['keygen', '--out', dir])).toBe(1);
  });
});
