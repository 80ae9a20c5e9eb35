/**
 * Signed offline updates at the kiosk (issue 20): a repository made by the
 * publisher (update/), with ClamAV databases built by ClamAV's sigtool,
 * imported by `update import` with the real tuf-js client, sigtool and the
 * real engines (clamd loads the set, every YARA rule proven live). Then each
 * attack: every one refused with its code, nothing changed in the kiosk's
 * updates folder, and the refusal in the hash-chained audit log.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdir, readdir, readFile, rename, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metadata, MetadataKind, Root, type Snapshot, type Targets, type Timestamp } from '@tufjs/models';
import { openAuditStore } from '../../kiosk/audit/store.ts';
import { importUpdate, rollbackUpdate, statusLines, updateInit, updateStatus, type UpdateCommandOptions } from '../../kiosk/cli/update-command.ts';
import { UpdateError } from '../../kiosk/core/update-set.ts';
import { readState } from '../../kiosk/updates/update-store.ts';
import { generateSigningKey } from '../../manifest/index.ts';
import { SPEC_VERSION, writeNextRoot } from '../../update/repository.ts';
import { roleKeyOf, rotateRoleKey, type RoleKey } from '../../update/role-keys.ts';
import { defaultPolicy, makePublisher, makeSource, metaFileFor, readMetadata, resign, tempFolder, writeMetadata, type Publisher } from '../support/update-fixtures.ts';

let dir: string;
let publisher: Publisher;
let repoV1: string; // the first version as it was published
let repoV2: string; // the second (a newer daily database)

beforeAll(async () => {
  dir = await tempFolder('update-import');
  publisher = await makePublisher(join(dir, 'publisher'));
  await publisher.build(await makeSource(join(dir, 'src-v1'), { dailyVersion: 27_001 }));
  repoV1 = join(dir, 'repo-v1');
  await cp(publisher.repo, repoV1, { recursive: true });
  await publisher.build(await makeSource(join(dir, 'src-v2'), { dailyVersion: 27_002, yara: true, allowlist: true, policy: await defaultPolicy() }));
  repoV2 = join(dir, 'repo-v2');
  await cp(publisher.repo, repoV2, { recursive: true });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let kiosks = 0;
/** A kiosk set up from scratch: its own updates folder and audit log, the publisher's root pinned. */
async function newKiosk(extra: Partial<UpdateCommandOptions> = {}): Promise<UpdateCommandOptions> {
  const home = join(dir, `kiosk-${++kiosks}`);
  const options: UpdateCommandOptions = { updatesDir: join(home, 'updates'), dbPath: join(home, 'audit.db'), unsignedClamavDatabases: true, out: () => undefined, ...extra };
  await updateInit(options, join(repoV1, 'metadata', '1.root.json'));
  return options;
}

/** Every file under the kiosk's updates folder with its SHA-256: what "nothing changed" compares. */
async function snapshotTree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (folder: string): Promise<void> => {
    for (const entry of await readdir(folder, { withFileTypes: true })) {
      const path = join(folder, entry.name);
      if (entry.isDirectory()) await walk(path);
      else out[path.slice(root.length)] = createHash('sha256').update(await readFile(path)).digest('hex');
    }
  };
  await walk(root);
  return out;
}

/** The import must be refused with `code`, leave the updates folder as it was, and be on the record. */
async function expectRefused(kiosk: UpdateCommandOptions, repository: string, code: string, extra: Partial<UpdateCommandOptions> = {}): Promise<UpdateError> {
  const before = await snapshotTree(kiosk.updatesDir);
  const error = await importUpdate({ ...kiosk, ...extra }, repository).then(() => null, (e: unknown) => e);
  expect(error, `import of ${repository} was not refused`).toBeInstanceOf(UpdateError);
  expect((error as UpdateError).code, (error as Error).message).toBe(code);
  expect(await snapshotTree(kiosk.updatesDir)).toEqual(before);
  const events = auditEvents(kiosk);
  expect(events.at(-1)).toMatchObject({ type: 'UPDATE_REFUSED', data: { code } });
  return error as UpdateError;
}

/** The audit log's events, after checking its hash chain. */
function auditEvents(kiosk: UpdateCommandOptions): { type: string; data: Record<string, unknown> }[] {
  const store = openAuditStore(kiosk.dbPath!, { readonly: true });
  try {
    expect(store.verifyChain().ok).toBe(true);
  } finally {
    store.close();
  }
  const db = new Database(kiosk.dbPath!, { readonly: true });
  try {
    const rows = db.prepare('SELECT type, data FROM events ORDER BY seq').all() as { type: string; data: string }[];
    return rows.map((r) => ({ type: r.type, data: JSON.parse(r.data) as Record<string, unknown> }));
  } finally {
    db.close();
  }
}

/** A copy of a published repository to tamper with. */
async function copyOf(repository: string, name: string): Promise<string> {
  const to = join(dir, `${name}-${++kiosks}`);
  await cp(repository, to, { recursive: true });
  return to;
}

const metadataPath = (repo: string, name: string): string => join(repo, 'metadata', name);

async function targetFile(repo: string, name: string): Promise<string> {
  const [folder, file] = name.split('/') as [string, string];
  const match = (await readdir(join(repo, 'targets', folder))).find((n) => n.endsWith(`.${file}`));
  return join(repo, 'targets', folder, match!);
}

/** Re-signs timestamp.json after `change`, with the keys given (default: the real timestamp key). */
async function retimestamp(repo: string, change: (t: Metadata<Timestamp>) => void, keys?: RoleKey[]): Promise<void> {
  const md = await readMetadata<Timestamp>(metadataPath(repo, 'timestamp.json'), MetadataKind.Timestamp);
  change(md);
  resign(md, keys ?? [await publisher.key('timestamp')]);
  await writeMetadata(metadataPath(repo, 'timestamp.json'), md);
}

describe('update import', () => {
  it('imports a repository built by the publisher: checked by TUF, ClamAV and the engines, switched, recorded; the same repository again changes nothing', async () => {
    const kiosk = await newKiosk();
    const first = await importUpdate(kiosk, repoV1);
    expect(first).toMatchObject({ status: 'imported', generation: 'g000001', previous: null });
    if (first.status !== 'imported') return;
    expect(first.set.parts.map((p) => [p.target, p.version])).toEqual([['clamav/daily.cud', 27_001], ['clamav/main.cud', 60]]);
    expect(await importUpdate(kiosk, repoV1)).toEqual({ status: 'unchanged', generation: 'g000001' });
    const second = await importUpdate(kiosk, repoV2);
    expect(second).toMatchObject({ status: 'imported', generation: 'g000002', previous: 'g000001' });
    if (second.status !== 'imported') return;
    // The whole set: databases, the site's rule set (proven live), the allowlist and the policy.
    expect(second.set.parts.map((p) => p.kind).sort()).toEqual(['allowlist', 'clamav', 'clamav', 'policy', 'yara', 'yara']);
    expect(second.set.yara).toMatchObject({ ruleCount: expect.any(Number) as number });
    expect(await readState(kiosk.updatesDir)).toEqual({ current: 'g000002', previous: 'g000001', trust: 'g000002' });
    const status = await updateStatus(kiosk, { maxAgeHours: 168, whenOutdated: 'out-of-service' });
    expect(status.current?.tuf.timestamp.version).toBe(2);
    expect(status.signaturesAgeHours).toBe(0);
    const lines = statusLines(status, new Date()).join('\n');
    expect(lines).toMatch(/clamav +daily\.cud +version 27002 +built \S+ \(0 hours old\), unsigned \(\.cud\)/);
    expect(lines).toMatch(/policy +policy\.json +policy default, sha256:/);
    expect(lines).toMatch(/allowlist +site\.json +allowlist site@\S+, [0-9]+ entries, sha256:/);
    expect(lines).toMatch(/previous set g000001/);
    expect(auditEvents(kiosk).map((e) => e.type)).toEqual(['SCHEMA_MIGRATED', 'UPDATE_ROOT_PINNED', 'UPDATE_IMPORTED', 'UPDATE_UNCHANGED', 'UPDATE_IMPORTED']);
  });

  it('rollback: refuses a repository older than the one imported (UPDATE_ROLLBACK)', async () => {
    const kiosk = await newKiosk();
    await importUpdate(kiosk, repoV2);
    await expectRefused(kiosk, repoV1, 'UPDATE_ROLLBACK');
  });

  it('freeze: refuses a repository whose timestamp has expired (UPDATE_EXPIRED)', async () => {
    const kiosk = await newKiosk();
    await importUpdate(kiosk, repoV1);
    const frozen = await copyOf(repoV2, 'frozen');
    await retimestamp(frozen, (t) => {
      (t.signed as { expires: string }).expires = '2026-01-01T00:00:00Z';
    });
    await expectRefused(kiosk, frozen, 'UPDATE_EXPIRED');
  });

  it('refuses a target swapped after signing (UPDATE_TARGET_MISMATCH), same length or longer', async () => {
    const kiosk = await newKiosk();
    const swapped = await copyOf(repoV1, 'swapped');
    const daily = await targetFile(swapped, 'clamav/daily.cud');
    const bytes = await readFile(daily);
    bytes[bytes.length - 20] = bytes[bytes.length - 20]! ^ 0xff; // one byte of the signatures
    await writeFile(daily, bytes);
    await expectRefused(kiosk, swapped, 'UPDATE_TARGET_MISMATCH');
    await writeFile(daily, Buffer.concat([await readFile(await targetFile(repoV1, 'clamav/daily.cud')), Buffer.from('\nEvil.Sig:0:*:41414141\n')]));
    await expectRefused(kiosk, swapped, 'UPDATE_TARGET_MISMATCH');
  });

  it('refuses a role signed by the wrong key (UPDATE_SIGNATURE_INVALID): a timestamp signed with the snapshot key, targets signed by a key the root does not name', async () => {
    const kiosk = await newKiosk();
    const wrongTimestamp = await copyOf(repoV1, 'wrong-timestamp');
    await retimestamp(wrongTimestamp, () => undefined, [await publisher.key('snapshot')]);
    await expectRefused(kiosk, wrongTimestamp, 'UPDATE_SIGNATURE_INVALID');

    // An attacker with the online keys (snapshot, timestamp) but not the targets key lists a part of their own.
    const forged = await copyOf(repoV1, 'forged-targets');
    const targetsPath = metadataPath(forged, '1.targets.json');
    const targets = await readMetadata<Targets>(targetsPath, MetadataKind.Targets);
    const attacker = roleKeyOf('targets', generateSigningKey());
    resign(targets, [attacker]);
    const targetsBytes = await writeMetadata(targetsPath, targets);
    const snapshotPath = metadataPath(forged, '1.snapshot.json');
    const snapshot = await readMetadata<Snapshot>(snapshotPath, MetadataKind.Snapshot);
    snapshot.signed.meta['targets.json'] = metaFileFor(1, targetsBytes);
    resign(snapshot, [await publisher.key('snapshot')]);
    const snapshotBytes = await writeMetadata(snapshotPath, snapshot);
    await retimestamp(forged, (t) => {
      (t.signed as { snapshotMeta: unknown }).snapshotMeta = metaFileFor(1, snapshotBytes);
    });
    const error = await expectRefused(kiosk, forged, 'UPDATE_SIGNATURE_INVALID');
    expect(error.message).toMatch(/targets was signed by 0\/1 keys/);
  });

  it('follows a root rotation cross-signed by the old root key, and refuses one that is not (UPDATE_SIGNATURE_INVALID)', async () => {
    // A publisher of its own, so the rotation does not change the others' repository.
    const own = await makePublisher(join(dir, 'rotating'));
    await own.build(await makeSource(join(dir, 'src-rot-1'), { dailyVersion: 27_010 }));
    const home = join(dir, 'kiosk-rotation');
    const kiosk: UpdateCommandOptions = { updatesDir: join(home, 'updates'), dbPath: join(home, 'audit.db'), unsignedClamavDatabases: true, out: () => undefined };
    await updateInit(kiosk, join(own.repo, 'metadata', '1.root.json'));
    await importUpdate(kiosk, own.repo);

    // Not cross-signed: a root version 2 signed only by a new root key (whoever made it does not hold the old one).
    const hijacked = await copyOf(own.repo, 'hijacked');
    const fake = { root: roleKeyOf('root', generateSigningKey()), targets: roleKeyOf('targets', generateSigningKey()), snapshot: roleKeyOf('snapshot', generateSigningKey()), timestamp: roleKeyOf('timestamp', generateSigningKey()) };
    const root = new Root({ version: 2, expires: '2030-01-01T00:00:00Z', specVersion: SPEC_VERSION, consistentSnapshot: true });
    for (const k of Object.values(fake)) root.addKey(k.key, k.role);
    const hijackedRoot = new Metadata(root);
    resign(hijackedRoot, [fake.root]);
    await writeMetadata(metadataPath(hijacked, '2.root.json'), hijackedRoot);
    await expectRefused(kiosk, hijacked, 'UPDATE_SIGNATURE_INVALID');

    // Cross-signed: the publisher rotates the root key and the timestamp key (keys rotate), then builds.
    const rotatedRoot = await rotateRoleKey(own.keys, 'root');
    await writeNextRoot({ repo: own.repo, keysDir: own.keys, replace: { root: rotatedRoot.next }, oldRootKey: rotatedRoot.old });
    const rotatedTimestamp = await rotateRoleKey(own.keys, 'timestamp');
    await writeNextRoot({ repo: own.repo, keysDir: own.keys, replace: { timestamp: rotatedTimestamp.next }, oldRootKey: rotatedRoot.next });
    await own.build(await makeSource(join(dir, 'src-rot-2'), { dailyVersion: 27_011 }));
    const rotated = await importUpdate(kiosk, own.repo);
    expect(rotated).toMatchObject({ status: 'imported', generation: 'g000002' });
    if (rotated.status === 'imported') expect(rotated.set.tuf.root.version).toBe(3);
  });

  it('an update drive pulled mid-import, or a copy cut short: UPDATE_INCOMPLETE, nothing changed', async () => {
    const kiosk = await newKiosk();
    await importUpdate(kiosk, repoV1);
    const pulled = await copyOf(repoV2, 'pulled');
    await expectRefused(kiosk, pulled, 'UPDATE_INCOMPLETE', {
      onRead: async (name) => {
        // The drive goes away once the first target has been read: every later file is gone.
        if (name.endsWith('.main.cud')) await rm(join(pulled, 'targets'), { recursive: true, force: true });
      },
    });
    const cut = await copyOf(repoV2, 'cut');
    await expectRefused(kiosk, cut, 'UPDATE_INCOMPLETE', {
      onRead: async (name) => {
        if (name.endsWith('.daily.cud')) await truncate(join(cut, name), 100);
      },
    });
    const noTimestamp = await copyOf(repoV2, 'no-timestamp');
    await rm(metadataPath(noTimestamp, 'timestamp.json'));
    await expectRefused(kiosk, noTimestamp, 'UPDATE_INCOMPLETE');
  });

  it('a full disk in the middle of an import: UPDATE_DISK_FULL, nothing changed; with room again the same drive imports', async () => {
    const tmpfs = join(dir, 'small-disk');
    await mkdir(tmpfs, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', tmpfs]);
    try {
      const home = join(tmpfs, 'kiosk');
      const kiosk: UpdateCommandOptions = { updatesDir: join(home, 'updates'), dbPath: join(dir, 'small-disk-audit.db'), unsignedClamavDatabases: true, out: () => undefined };
      await updateInit(kiosk, join(repoV1, 'metadata', '1.root.json'));
      await importUpdate(kiosk, repoV1);
      const filler = join(tmpfs, 'filler');
      await expectRefused(kiosk, repoV2, 'UPDATE_DISK_FULL', {
        // Something else fills the disk while the import copies its files.
        onRead: async (name) => {
          if (name.startsWith('targets/') && !(await stat(filler).catch(() => null))) {
            const free = execFileSync('df', ['--output=avail', '-B1', tmpfs], { encoding: 'utf8' }).split('\n')[1]!.trim();
            await writeFile(filler, Buffer.alloc(Math.max(0, Number(free) - 1024)));
          }
        },
      });
      await rm(filler);
      expect(await importUpdate(kiosk, repoV2)).toMatchObject({ status: 'imported', generation: 'g000002' });
    } finally {
      execFileSync('umount', [tmpfs]);
    }
  });

  it('checks ClamAV databases with ClamAV itself: a .cvd whose signature does not verify (UPDATE_CLAMAV_INVALID), an unsigned .cud unless allowed (UPDATE_CLAMAV_UNSIGNED)', async () => {
    const strict = await newKiosk({ unsignedClamavDatabases: false });
    await expectRefused(strict, repoV1, 'UPDATE_CLAMAV_UNSIGNED');

    const own = await makePublisher(join(dir, 'fake-cvd'));
    const source = await makeSource(join(dir, 'src-fake-cvd'), { dailyVersion: 27_020 });
    // A .cud renamed .cvd: a container that claims Cisco's signature and has none.
    await rename(join(source, 'clamav', 'main.cud'), join(source, 'clamav', 'main.cvd'));
    await own.build(source);
    const home = join(dir, 'kiosk-fake-cvd');
    const kiosk: UpdateCommandOptions = { updatesDir: join(home, 'updates'), dbPath: join(home, 'audit.db'), unsignedClamavDatabases: true, out: () => undefined };
    await updateInit(kiosk, join(own.repo, 'metadata', '1.root.json'));
    const error = await expectRefused(kiosk, own.repo, 'UPDATE_CLAMAV_INVALID');
    expect(error.message).toMatch(/sigtool/);
  });

  it('refuses a ClamAV database older than the active one, even in a newer repository (UPDATE_ROLLBACK)', async () => {
    const own = await makePublisher(join(dir, 'old-daily'));
    await own.build(await makeSource(join(dir, 'src-old-daily-1'), { dailyVersion: 27_030 }));
    const home = join(dir, 'kiosk-old-daily');
    const kiosk: UpdateCommandOptions = { updatesDir: join(home, 'updates'), dbPath: join(home, 'audit.db'), unsignedClamavDatabases: true, out: () => undefined };
    await updateInit(kiosk, join(own.repo, 'metadata', '1.root.json'));
    await importUpdate(kiosk, own.repo);
    await own.build(await makeSource(join(dir, 'src-old-daily-2'), { dailyVersion: 27_029 }));
    const error = await expectRefused(kiosk, own.repo, 'UPDATE_ROLLBACK');
    expect(error.message).toMatch(/daily database version 27029 is older than the active set's version 27030/);
  });

  it('refuses parts the kiosk\'s own checks reject (UPDATE_PART_INVALID): a YARA rule outside the subset, a policy with an unknown field', async () => {
    const own = await makePublisher(join(dir, 'bad-parts'));
    const source = await makeSource(join(dir, 'src-bad-yara'), { yara: true });
    await writeFile(join(source, 'yara', 'site.yar'), 'import "pe"\nrule Site_Dll { condition: pe.is_dll() }\n');
    await own.build(source);
    const home = join(dir, 'kiosk-bad-parts');
    const kiosk: UpdateCommandOptions = { updatesDir: join(home, 'updates'), dbPath: join(home, 'audit.db'), unsignedClamavDatabases: true, out: () => undefined };
    await updateInit(kiosk, join(own.repo, 'metadata', '1.root.json'));
    expect((await expectRefused(kiosk, own.repo, 'UPDATE_PART_INVALID')).message).toMatch(/site\.yar/);
    await own.build(await makeSource(join(dir, 'src-bad-policy'), { policy: { ...(await defaultPolicy()), approveEverything: true } }));
    expect((await expectRefused(kiosk, own.repo, 'UPDATE_PART_INVALID')).message).toMatch(/approveEverything: unknown field/);
  });

  it('refuses a signed target list holding a path outside the layout (UPDATE_TARGET_UNKNOWN)', async () => {
    const kiosk = await newKiosk();
    const odd = await copyOf(repoV1, 'odd-target');
    const targetsPath = metadataPath(odd, '1.targets.json');
    const targets = await readMetadata<Targets>(targetsPath, MetadataKind.Targets);
    const existing = Object.values(targets.signed.targets)[0]!;
    targets.signed.targets['tools/update.sh'] = existing;
    resign(targets, [await publisher.key('targets')]);
    const targetsBytes = await writeMetadata(targetsPath, targets);
    const snapshotPath = metadataPath(odd, '1.snapshot.json');
    const snapshot = await readMetadata<Snapshot>(snapshotPath, MetadataKind.Snapshot);
    snapshot.signed.meta['targets.json'] = metaFileFor(1, targetsBytes);
    resign(snapshot, [await publisher.key('snapshot')]);
    const snapshotBytes = await writeMetadata(snapshotPath, snapshot);
    await retimestamp(odd, (t) => {
      (t.signed as { snapshotMeta: unknown }).snapshotMeta = metaFileFor(1, snapshotBytes);
    });
    await expectRefused(kiosk, odd, 'UPDATE_TARGET_UNKNOWN');
  });

  it('update rollback: the previous set becomes active once, recorded; an older repository is still refused, the newer one may be imported again', async () => {
    const kiosk = await newKiosk();
    await importUpdate(kiosk, repoV1);
    await importUpdate(kiosk, repoV2);
    expect(await rollbackUpdate(kiosk)).toEqual({ from: 'g000002', to: 'g000001' });
    expect(await readState(kiosk.updatesDir)).toEqual({ current: 'g000001', previous: null, trust: 'g000002' });
    await expect(rollbackUpdate(kiosk)).rejects.toMatchObject({ code: 'UPDATE_NO_PREVIOUS' });
    await expectRefused(kiosk, repoV1, 'UPDATE_ROLLBACK');
    expect(await importUpdate(kiosk, repoV2)).toMatchObject({ status: 'imported', generation: 'g000003', previous: 'g000001' });
    expect(auditEvents(kiosk).map((e) => e.type)).toContain('UPDATE_ROLLED_BACK');
  });
});
