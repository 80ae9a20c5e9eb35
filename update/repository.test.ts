import { createHash } from 'node:crypto';
import { cp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metadata, MetadataKind } from '@tufjs/models';
import { rm } from 'node:fs/promises';
import { makeSource, tempFolder } from '../test/support/update-fixtures.ts';
import { PublishError } from './errors.ts';
import { buildRepository, readRepository, writeNextRoot } from './repository.ts';
import { generateSigningKey } from '../manifest/index.ts';
import { initRoleKeys, readRoleKey, roleKeyOf, rotateRoleKey } from './role-keys.ts';

let dir: string;
let source: string;
beforeAll(async () => {
  dir = await tempFolder('publisher');
  source = await makeSource(join(dir, 'parts'), { policy: { id: 'plant' } });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const NOW = new Date('2026-12-08T10:00:00Z');

describe('portcullis-update build', () => {
  it('makes a repository with an expiry on every role, then extends it with every version one higher, the old targets pruned', async () => {
    const keys = join(dir, 'keys-1');
    const repo = join(dir, 'repo-1');
    await initRoleKeys(keys);
    const first = await buildRepository({ from: source, repo, keysDir: keys, now: NOW, expiry: { timestamp: 3 } });
    expect(first.created).toBe(true);
    expect(first.versions).toEqual({ root: 1, targets: 1, snapshot: 1, timestamp: 1 });
    expect(first.expires).toEqual({ root: '2027-12-08T10:00:00Z', targets: '2027-03-08T10:00:00Z', snapshot: '2027-01-07T10:00:00Z', timestamp: '2026-12-11T10:00:00Z' });
    expect(first.targets.map((t) => t.path)).toEqual(['clamav/daily.cud', 'clamav/main.cud', 'policy/policy.json']);
    expect(first.targets[0]!.custom).toMatchObject({ version: 27_000 });
    // Consistent snapshots: each target under its SHA-256.
    expect(await readdir(join(repo, 'targets', 'policy'))).toEqual([`${first.targets[2]!.sha256}.policy.json`]);

    await writeFile(join(source, 'policy', 'policy.json'), JSON.stringify({ id: 'plant', changed: true }));
    const second = await buildRepository({ from: source, repo, keysDir: keys, now: NOW });
    expect(second.created).toBe(false);
    expect(second.versions).toEqual({ root: 1, targets: 2, snapshot: 2, timestamp: 2 });
    expect(await readdir(join(repo, 'targets', 'policy'))).toEqual([`${second.targets[2]!.sha256}.policy.json`]);
    expect((await readdir(join(repo, 'metadata'))).sort()).toEqual(['1.root.json', '2.snapshot.json', '2.targets.json', 'root.json', 'timestamp.json']);
    const state = await readRepository(repo);
    expect(state?.timestamp?.signed.snapshotMeta).toMatchObject({ version: 2, length: expect.any(Number) as number });
  });

  it('refuses parts outside the layout, keys the repository does not name, and a missing key', async () => {
    const keys = join(dir, 'keys-2');
    const repo = join(dir, 'repo-2');
    await initRoleKeys(keys);
    const odd = await makeSource(join(dir, 'parts-odd'));
    await writeFile(join(odd, 'clamav', 'safebrowsing.cvd'), 'x');
    await expect(buildRepository({ from: odd, repo, keysDir: keys })).rejects.toMatchObject({ code: 'UPDATE_SOURCE_INVALID' });
    await expect(buildRepository({ from: source, repo, keysDir: join(dir, 'no-keys') })).rejects.toMatchObject({ code: 'UPDATE_KEY_MISSING' });
    await buildRepository({ from: source, repo, keysDir: keys });
    const other = join(dir, 'keys-other');
    await initRoleKeys(other);
    const error = await buildRepository({ from: source, repo, keysDir: other }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PublishError);
    expect((error as PublishError).code).toBe('UPDATE_KEY_MISMATCH');
    await expect(stat(join(repo, 'metadata', '2.targets.json'))).rejects.toThrow(); // nothing written
    const bad = await makeSource(join(dir, 'parts-bad-clamav'));
    await writeFile(join(bad, 'clamav', 'daily.cud'), 'not a database');
    await expect(buildRepository({ from: bad, repo, keysDir: keys })).rejects.toMatchObject({ code: 'UPDATE_SOURCE_INVALID' });
  });

  it('keys rotate: a new key in place, the old one retired, the next root signed by the old root key (and the new one for root)', async () => {
    const keys = join(dir, 'keys-3');
    const repo = join(dir, 'repo-3');
    await initRoleKeys(keys);
    await buildRepository({ from: source, repo, keysDir: keys });
    const oldRoot = (await readRoleKey(keys, 'root'))!;
    const rotated = await rotateRoleKey(keys, 'root');
    expect(rotated.old.keyId).toBe(oldRoot.keyId);
    expect((await readdir(join(keys, 'retired')))).toEqual([`root-${oldRoot.keyId.slice(0, 16)}.key`]);
    const next = await writeNextRoot({ repo, keysDir: keys, replace: { root: rotated.next }, oldRootKey: rotated.old });
    expect(next.signed.version).toBe(2);
    const v1 = Metadata.fromJSON(MetadataKind.Root, JSON.parse(await readFile(join(repo, 'metadata', '1.root.json'), 'utf8')) as Record<string, never>);
    const v2 = Metadata.fromJSON(MetadataKind.Root, JSON.parse(await readFile(join(repo, 'metadata', '2.root.json'), 'utf8')) as Record<string, never>);
    expect(() => v1.verifyDelegate(MetadataKind.Root, v2)).not.toThrow(); // cross-signed: the old root accepts it
    expect(() => v2.verifyDelegate(MetadataKind.Root, v2)).not.toThrow(); // and it is signed by its own new key
    expect(v2.signed.roles.root!.keyIDs).toEqual([rotated.next.keyId]);
    expect((await buildRepository({ from: source, repo, keysDir: keys })).versions.root).toBe(2);
  });
});

describe('the publisher trusts its own record, never the repository folder', () => {
  it('keys renew-root refuses a repository whose root someone changed (a key of their own named for targets), and writes no root', async () => {
    const keys = join(dir, 'keys-tamper');
    const repo = join(dir, 'repo-tamper');
    await initRoleKeys(keys);
    await buildRepository({ from: source, repo, keysDir: keys });
    // The repository went out on a drive and came back: its 1.root.json now names the attacker's targets key.
    const path = join(repo, 'metadata', '1.root.json');
    const root = Metadata.fromJSON(MetadataKind.Root, JSON.parse(await readFile(path, 'utf8')) as Record<string, never>);
    const attacker = roleKeyOf('targets', generateSigningKey());
    const realTargets = root.signed.roles.targets!.keyIDs[0]!;
    root.signed.roles.targets!.keyIDs.splice(0, 1, attacker.keyId);
    root.signed.keys[attacker.keyId] = attacker.key;
    delete root.signed.keys[realTargets];
    await writeFile(path, JSON.stringify(root.toJSON()));
    await writeFile(join(repo, 'metadata', 'root.json'), JSON.stringify(root.toJSON()));
    const rootKey = (await readRoleKey(keys, 'root'))!;
    const error = await writeNextRoot({ repo, keysDir: keys, replace: {}, oldRootKey: rootKey }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PublishError);
    expect((error as PublishError).code).toBe('UPDATE_REPO_INVALID');
    await expect(stat(join(repo, 'metadata', '2.root.json'))).rejects.toThrow();
  });

  it('a repository put back to an older copy (roots, targets, snapshot, timestamp) is built on from the record: every version goes on up, the missing root is written back', async () => {
    const keys = join(dir, 'keys-older');
    const repo = join(dir, 'repo-older');
    await initRoleKeys(keys);
    await buildRepository({ from: source, repo, keysDir: keys });
    const older = join(dir, 'repo-older-copy');
    await cp(repo, older, { recursive: true });
    const rotated = await rotateRoleKey(keys, 'targets');
    await writeNextRoot({ repo, keysDir: keys, replace: { targets: rotated.next }, oldRootKey: (await readRoleKey(keys, 'root'))! });
    expect((await buildRepository({ from: source, repo, keysDir: keys })).versions).toEqual({ root: 2, targets: 2, snapshot: 2, timestamp: 2 });
    // The folder comes back from a drive as it was before the rotation: no 2.root.json, version 1 of everything.
    await rm(repo, { recursive: true });
    await cp(older, repo, { recursive: true });
    const next = await buildRepository({ from: source, repo, keysDir: keys });
    expect(next.versions).toEqual({ root: 2, targets: 3, snapshot: 3, timestamp: 3 }); // not 2 again: a kiosk at 2 would take it as "nothing new"
    const root2 = Metadata.fromJSON(MetadataKind.Root, JSON.parse(await readFile(join(repo, 'metadata', '2.root.json'), 'utf8')) as Record<string, never>);
    expect(root2.signed.roles.targets!.keyIDs).toEqual([rotated.next.keyId]); // the rotated-out key is not named again
    // A fresh folder (a new drive) gets the whole chain and the next versions.
    const fresh = await buildRepository({ from: source, repo: join(dir, 'repo-older-fresh'), keysDir: keys });
    expect(fresh).toMatchObject({ created: false, versions: { root: 2, targets: 4, snapshot: 4, timestamp: 4 } });
    expect((await readdir(join(dir, 'repo-older-fresh', 'metadata'))).filter((n) => n.endsWith('.root.json')).sort()).toEqual(['1.root.json', '2.root.json']);
  });

  it('refuses a timestamp, snapshot or targets file that its key did not sign (a version pushed to the top of the range), and a root chain with a gap', async () => {
    const keys = join(dir, 'keys-forged');
    const repo = join(dir, 'repo-forged');
    await initRoleKeys(keys);
    await buildRepository({ from: source, repo, keysDir: keys });
    const path = join(repo, 'metadata', 'timestamp.json');
    const original = await readFile(path, 'utf8');
    const ts = JSON.parse(original) as { signed: { version: number } };
    ts.signed.version = Number.MAX_SAFE_INTEGER - 2;
    await writeFile(path, JSON.stringify(ts));
    await expect(buildRepository({ from: source, repo, keysDir: keys })).rejects.toMatchObject({ code: 'UPDATE_REPO_INVALID' });
    await writeFile(path, original);
    const root = await readFile(join(repo, 'metadata', '1.root.json'));
    await writeFile(join(repo, 'metadata', '3.root.json'), root);
    await expect(buildRepository({ from: source, repo, keysDir: keys })).rejects.toMatchObject({ code: 'UPDATE_REPO_INVALID' });
    await rm(join(repo, 'metadata', '3.root.json'));
    expect((await buildRepository({ from: source, repo, keysDir: keys })).versions.targets).toBe(2);
  });

  it('a keys folder from before the record adopts its own repository once, and refuses one whose root names other keys', async () => {
    const keys = join(dir, 'keys-legacy');
    const repo = join(dir, 'repo-legacy');
    await initRoleKeys(keys);
    await buildRepository({ from: source, repo, keysDir: keys });
    await rm(join(keys, 'published'), { recursive: true });
    expect((await buildRepository({ from: source, repo, keysDir: keys })).versions.targets).toBe(2);
    expect((await readdir(join(keys, 'published'))).sort()).toEqual(['1.root.json', 'versions.json']);
    const other = join(dir, 'keys-legacy-other');
    await initRoleKeys(other);
    await expect(buildRepository({ from: source, repo, keysDir: other })).rejects.toMatchObject({ code: 'UPDATE_KEY_MISMATCH' });
  });

  it('stores the bytes it checked and signed, not a second read of the source, and replaces a stored target someone changed', async () => {
    const keys = join(dir, 'keys-bytes');
    const repo = join(dir, 'repo-bytes');
    await initRoleKeys(keys);
    const parts = await makeSource(join(dir, 'parts-bytes'));
    // The source changes after it was read and checked (a drive answering differently the second time).
    const result = await buildRepository({
      from: parts, repo, keysDir: keys,
      checkClamav: async (path) => {
        if (path.endsWith('daily.cud')) await writeFile(path, Buffer.concat([await readFile(path), Buffer.from('changed')]));
        return null;
      },
    });
    const daily = result.targets.find((t) => t.path === 'clamav/daily.cud')!;
    const stored = join(repo, 'targets', 'clamav', `${daily.sha256}.daily.cud`);
    expect(createHash('sha256').update(await readFile(stored)).digest('hex')).toBe(daily.sha256);
    // Someone changes the stored copy (same length); the next build writes it again.
    const bytes = await readFile(stored);
    const flip = (b: Buffer): Buffer => Buffer.concat([b.subarray(0, b.length - 1), Buffer.from([b.at(-1)! ^ 0xff])]);
    await writeFile(stored, flip(bytes));
    await writeFile(join(parts, 'clamav', 'daily.cud'), bytes); // the source is the signed bytes again
    await buildRepository({ from: parts, repo, keysDir: keys });
    expect(createHash('sha256').update(await readFile(stored)).digest('hex')).toBe(daily.sha256);
  });
});
