import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { verifyLogBytes, type LogRecord } from './audit-log.ts';
import { main } from './main.ts';
import { checkTrustStore, emptyTrustStore, loadTrustStore, policyDigests, trustAnchorsOf } from './trust-store.ts';
import { publicKeyToPem } from '../manifest/index.ts';
import { kioskKey, makeTrust, otherKey, tempDir } from '../test/support/agent-fixtures.ts';

function cli() {
  const out: string[] = [];
  const err: string[] = [];
  const io = { stdout: (t: string) => void out.push(t), stderr: (t: string) => void err.push(t) };
  return { run: (...argv: string[]) => main(argv, io), out, err };
}

function setup() {
  const dir = tempDir('trust');
  const pem = join(dir, 'gate-1.pub.pem');
  writeFileSync(pem, publicKeyToPem(kioskKey.publicKey));
  const pem2 = join(dir, 'gate-2.pub.pem');
  writeFileSync(pem2, publicKeyToPem(otherKey.publicKey));
  return { dir, pem, pem2, trust: join(dir, 'trust.json'), log: join(dir, 'portcullis-agent.log.jsonl') };
}

describe('trust store commands', () => {
  it('adds a kiosk key with a period and label, lists it, and logs the change', async () => {
    const s = setup();
    const c = cli();
    expect(await c.run('trust', 'add', s.pem, '--trust', s.trust, '--label', 'gate 1', '--not-before', '2026-01-01T00:00:00Z', '--not-after', '2099-01-01T00:00:00Z')).toBe(0);
    const store = loadTrustStore(s.trust);
    expect(store).toMatchObject({ formatVersion: 1, sequence: 1, signature: null, policy: { clash: 'refuse', requireMediaBinding: true, maxManifestAgeHours: 24 } });
    expect(store.keys).toEqual([expect.objectContaining({ keyId: kioskKey.keyId, label: 'gate 1', notBefore: '2026-01-01T00:00:00Z', notAfter: '2099-01-01T00:00:00Z' })]);
    expect(await c.run('trust', 'list', '--trust', s.trust)).toBe(0);
    expect(c.out.join('')).toMatch(new RegExp(`${kioskKey.keyId}\\s+trusted`));
    const log = verifyLogBytes(readFileSync(s.log));
    expect(log.ok && log.entries.map((r: LogRecord) => [r.event, r.keyId])).toEqual([['trust.key-added', kioskKey.keyId]]);
  });

  it('revokes a key: it stays listed as revoked, can never be added again, and the verifier refuses it', async () => {
    const s = setup();
    const c = cli();
    await c.run('trust', 'add', s.pem, '--trust', s.trust);
    expect(await c.run('trust', 'revoke', kioskKey.keyId, '--trust', s.trust, '--reason', 'kiosk stolen')).toBe(0);
    const store = loadTrustStore(s.trust);
    expect(store.sequence).toBe(2);
    expect(store.revoked).toEqual([expect.objectContaining({ keyId: kioskKey.keyId, reason: 'kiosk stolen' })]);
    expect(trustAnchorsOf(store).revokedKeyIds).toEqual([kioskKey.keyId]);
    const list = cli();
    await list.run('trust', 'list', '--trust', s.trust, '--json');
    expect((JSON.parse(list.out.join('')) as { keys: Array<{ status: string }> }).keys[0]!.status).toBe('revoked');
    expect(await c.run('trust', 'add', s.pem, '--trust', s.trust)).toBe(1);
    expect(c.err.join('')).toContain('TRUST_CHANGE_REFUSED');
  });

  it('refuses a duplicate key and a malformed key id', async () => {
    const s = setup();
    const c = cli();
    await c.run('trust', 'add', s.pem, '--trust', s.trust);
    expect(await c.run('trust', 'add', s.pem, '--trust', s.trust)).toBe(1);
    expect(await c.run('trust', 'revoke', 'ABC', '--trust', s.trust)).toBe(64);
  });

  it('sets local policy and keeps the file schema-valid', async () => {
    const s = setup();
    const c = cli();
    expect(await c.run('trust', 'policy', '--trust', s.trust, '--max-age-hours', '8', '--clash', 'rename', '--media-binding', 'optional', '--destination', s.dir)).toBe(0);
    expect(loadTrustStore(s.trust).policy).toEqual({ maxManifestAgeHours: 8, clash: 'rename', requireMediaBinding: false, destination: s.dir });
    expect(await c.run('trust', 'policy', '--trust', s.trust, '--clash', 'overwrite')).toBe(64);
    expect(await c.run('trust', 'policy', '--trust', s.trust, '--max-age-hours', '9999')).toBe(64);
  });

  it('sets which digests are checked (policy.digests), refuses an unknown one, and leaves stores without it at BLAKE3', async () => {
    const s = setup();
    const c = cli();
    await c.run('trust', 'add', s.pem, '--trust', s.trust);
    expect(loadTrustStore(s.trust).policy.digests).toBeUndefined(); // not written until set: older agents still read the store
    expect(policyDigests(loadTrustStore(s.trust))).toBe('blake3');
    expect(await c.run('trust', 'policy', '--trust', s.trust, '--digests', 'both')).toBe(0);
    expect(loadTrustStore(s.trust).policy.digests).toBe('both');
    expect(await c.run('trust', 'policy', '--trust', s.trust, '--digests', 'md5')).toBe(64);
    expect(await c.run('trust', 'policy', '--trust', s.trust, '--digests', 'sha256')).toBe(0);
    expect(policyDigests(loadTrustStore(s.trust))).toBe('sha256');
  });

  it('reads a store whose policy names sha256 or both, and refuses one naming digests it does not know (TRUST_STORE_INVALID)', () => {
    const s = setup();
    const withDigests = (digests: string) => ({ ...emptyTrustStore(new Date()), policy: { ...emptyTrustStore(new Date()).policy, digests } });
    for (const digests of ['sha256', 'both', 'blake3']) {
      writeFileSync(s.trust, JSON.stringify(withDigests(digests)));
      expect(policyDigests(loadTrustStore(s.trust))).toBe(digests);
    }
    writeFileSync(s.trust, JSON.stringify(withDigests('md5')));
    expect(() => loadTrustStore(s.trust)).toThrow(expect.objectContaining({ code: 'TRUST_STORE_INVALID' }));
  });

  it('writes atomically: no temporary file is left beside the store', async () => {
    const s = setup();
    const c = cli();
    await c.run('trust', 'add', s.pem, '--trust', s.trust);
    await c.run('trust', 'add', s.pem2, '--trust', s.trust);
    expect(readdirSync(s.dir).sort()).toEqual(['gate-1.pub.pem', 'gate-2.pub.pem', 'portcullis-agent.log.jsonl', 'trust.json']);
  });

  it('does not change the store when the change cannot be logged', async () => {
    const s = setup();
    const c = cli();
    expect(await c.run('trust', 'add', s.pem, '--trust', s.trust, '--log', join(s.dir, 'no-such-folder', 'x.jsonl'))).toBe(1);
    expect(c.err.join('')).toContain('LOG_WRITE_FAILED');
    expect(readdirSync(s.dir)).not.toContain('trust.json');
  });
});

describe('trust store schema', () => {
  const good = (): Record<string, unknown> => JSON.parse(JSON.stringify(makeTrust())) as Record<string, unknown>;

  it('accepts a store written by the agent', () => {
    expect(checkTrustStore(good()).keys).toHaveLength(1);
  });

  it.each([
    ['an unknown field', (v: Record<string, unknown>) => (v.extra = 1), 'extra: unknown field'],
    ['a missing policy', (v: Record<string, unknown>) => delete v.policy, 'policy: missing'],
    ['a newer format version', (v: Record<string, unknown>) => (v.formatVersion = 2), 'formatVersion 2 is not supported'],
    ['a signature (reserved for a later version)', (v: Record<string, unknown>) => (v.signature = { keyid: 'a'.repeat(64), sig: 'x' }), 'signed trust stores need a newer agent'],
    ['a key id that does not match its key', (v: Record<string, unknown>) => ((v.keys as Array<Record<string, unknown>>)[0]!.keyId = 'a'.repeat(64)), 'does not match its public key'],
    ['a bad clash policy', (v: Record<string, unknown>) => ((v.policy as Record<string, unknown>).clash = 'overwrite'), 'policy.clash'],
    ['a time that is not a calendar time', (v: Record<string, unknown>) => (v.updatedAt = '2026-02-30T00:00:00Z'), 'updatedAt'],
  ])('refuses %s with TRUST_STORE_INVALID naming the field', (_what, mutate, message) => {
    const value = good();
    mutate(value);
    expect(() => checkTrustStore(value)).toThrow(message);
    expect(() => checkTrustStore(value)).toThrow(expect.objectContaining({ code: 'TRUST_STORE_INVALID' }));
  });

  it('reports a store that is not JSON as TRUST_STORE_INVALID through the CLI (exit 1)', async () => {
    const s = setup();
    writeFileSync(s.trust, '{ not json');
    const c = cli();
    expect(await c.run('trust', 'list', '--trust', s.trust)).toBe(1);
    expect(c.err.join('')).toContain('TRUST_STORE_INVALID');
  });
});
