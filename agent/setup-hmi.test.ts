/**
 * `portcullis-agent setup`, what the MSI runs as a custom action on a fresh
 * HMI: the trust store from a trust bundle, the configuration, the folders;
 * never overwriting, failing closed on a missing or bad bundle.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { verifyLogBytes } from './audit-log.ts';
import { main } from './main.ts';
import { loadTrustStore } from './trust-store.ts';
import { loadWatchConfig } from './watch-config.ts';
import { publicKeyToPem } from '../manifest/index.ts';
import { kioskKey, otherKey, tempDir, writeTrust } from '../test/support/agent-fixtures.ts';

function cli() {
  const out: string[] = [];
  const err: string[] = [];
  const io = { stdout: (t: string) => void out.push(t), stderr: (t: string) => void err.push(t) };
  return { run: (...argv: string[]) => main(argv, io), out, err };
}

function hmi() {
  const root = tempDir('hmi');
  const data = join(root, 'ProgramData', 'Portcullis');
  return { root, data, config: join(data, 'config.json'), inbox: join(root, 'Portcullis', 'Inbox'), status: join(root, 'Portcullis', 'Status') };
}

describe('setup (the installer\'s custom action)', () => {
  it('makes the trust store from kiosk public keys, logs each key, and writes a configuration the service loads', async () => {
    const h = hmi();
    const bundle = join(tempDir('bundle'), 'kiosks.pem');
    writeFileSync(bundle, `${publicKeyToPem(kioskKey.publicKey)}${publicKeyToPem(otherKey.publicKey)}`);
    const c = cli();
    expect(await c.run('setup', '--config', h.config, '--destination', h.inbox, '--status-folder', h.status, '--trust-bundle', bundle)).toBe(0);
    expect(loadTrustStore(join(h.data, 'trust.json')).keys.map((k) => k.keyId).sort()).toEqual([kioskKey.keyId, otherKey.keyId].sort());
    const config = loadWatchConfig(h.config);
    expect(config).toMatchObject({ destination: h.inbox, statusFolder: h.status, trust: join(h.data, 'trust.json'), requireStoragePolicy: true });
    expect([existsSync(h.inbox), existsSync(h.status)]).toEqual([true, true]);
    const log = verifyLogBytes(readFileSync(join(h.data, 'portcullis-agent.log.jsonl')));
    expect(log.ok && log.entries.map((r) => [r.event, r.keyId])).toEqual([['trust.key-added', kioskKey.keyId], ['trust.key-added', otherKey.keyId]]);
  });

  it('takes a trust store file as the bundle, checked', async () => {
    const h = hmi();
    const c = cli();
    expect(await c.run('setup', '--config', h.config, '--destination', h.inbox, '--trust-bundle', writeTrust({ policy: { digests: 'both' } }))).toBe(0);
    expect(loadTrustStore(join(h.data, 'trust.json')).policy.digests).toBe('both');
  });

  it('never overwrites a trust store or configuration already there (an upgrade or repair keeps them)', async () => {
    const h = hmi();
    const first = join(tempDir('bundle'), 'gate-1.pem');
    writeFileSync(first, publicKeyToPem(kioskKey.publicKey));
    const c = cli();
    expect(await c.run('setup', '--config', h.config, '--destination', h.inbox, '--trust-bundle', first)).toBe(0);
    const before = [readFileSync(join(h.data, 'trust.json')), readFileSync(h.config)];
    const second = join(tempDir('bundle'), 'gate-2.pem');
    writeFileSync(second, publicKeyToPem(otherKey.publicKey));
    expect(await c.run('setup', '--config', h.config, '--destination', join(h.root, 'elsewhere'), '--trust-bundle', second)).toBe(0);
    expect([readFileSync(join(h.data, 'trust.json')), readFileSync(h.config)]).toEqual(before);
  });

  it.each([
    ['no trust bundle and no trust store', () => '', 'TRUST_STORE_INVALID'],
    ['a private key as the bundle', () => {
      const path = join(tempDir('bundle'), 'kiosk.key');
      writeFileSync(path, kioskKey.privateKey.export({ type: 'pkcs8', format: 'pem' }));
      return path;
    }, 'KEY_IS_PRIVATE'],
    ['a bundle that is neither a store nor a key', () => {
      const path = join(tempDir('bundle'), 'notes.txt');
      writeFileSync(path, 'not a key');
      return path;
    }, 'KEY_FILE_INVALID'],
    ['a trust store that fails its schema', () => {
      const path = join(tempDir('bundle'), 'trust.json');
      writeFileSync(path, '{"formatVersion":1}');
      return path;
    }, 'TRUST_STORE_INVALID'],
  ])('stops with its code and writes no trust store or configuration for %s', async (_name, bundle, code) => {
    const h = hmi();
    const c = cli();
    expect(await c.run('setup', '--config', h.config, '--destination', h.inbox, '--trust-bundle', bundle())).toBe(1);
    expect(c.err.join('')).toMatch(new RegExp(`^portcullis-agent: ${code}: `, 'u'));
    expect([existsSync(join(h.data, 'trust.json')), existsSync(h.config)]).toEqual([false, false]);
  });
});
