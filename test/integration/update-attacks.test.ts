/**
 * The red-team round on signed updates at the kiosk (issue 20): each attack
 * made against a repository the publisher built, imported with the real
 * tuf-js client, sigtool and the engines. Every one must be refused with its
 * code, the kiosk's updates folder byte for byte as before, and the refusal
 * in the hash-chained audit log. Whoever holds an online key (timestamp,
 * snapshot) is an attacker here: TUF must still refuse what those keys
 * alone cannot justify.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, link, mkdir, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metadata, MetadataKind, TargetFile, type Root, type Snapshot, type Targets, type Timestamp } from '@tufjs/models';
import { openAuditStore } from '../../kiosk/audit/store.ts';
import { importUpdate, updateInit, type UpdateCommandOptions } from '../../kiosk/cli/update-command.ts';
import { UpdateError } from '../../kiosk/core/update-set.ts';
import { generateSigningKey } from '../../manifest/index.ts';
import { roleKeyOf, type RoleKey } from '../../update/role-keys.ts';
import { makePublisher, makeSource, metaFileFor, readMetadata, resign, tempFolder, writeMetadata, type Publisher } from '../support/update-fixtures.ts';

let dir: string;
let publisher: Publisher; // reassigned while another publisher's repository is re-signed
let repoV1: string;
let repoV2: string;
let repoV3: string;

beforeAll(async () => {
  dir = await tempFolder('update-attacks');
  publisher = await makePublisher(join(dir, 'publisher'));
  for (const [i, daily] of [27_101, 27_102, 27_103].entries()) {
    await publisher.build(await makeSource(join(dir, `src-v${i + 1}`), { dailyVersion: daily }));
    await cp(publisher.repo, join(dir, `repo-v${i + 1}`), { recursive: true });
  }
  [repoV1, repoV2, repoV3] = [join(dir, 'repo-v1'), join(dir, 'repo-v2'), join(dir, 'repo-v3')];
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let count = 0;
async function newKiosk(root = join(repoV1, 'metadata', '1.root.json')): Promise<UpdateCommandOptions> {
  const home = join(dir, `kiosk-${++count}`);
  const kiosk: UpdateCommandOptions = { updatesDir: join(home, 'updates'), dbPath: join(home, 'audit.db'), unsignedClamavDatabases: true, out: () => undefined };
  await updateInit(kiosk, root);
  return kiosk;
}

async function copyOf(repository: string, name: string): Promise<string> {
  const to = join(dir, `${name}-${++count}`);
  await cp(repository, to, { recursive: true });
  return to;
}

async function tree(root: string): Promise<Record<string, string>> {
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

function lastEvent(kiosk: UpdateCommandOptions): { type: string; data: Record<string, unknown> } {
  const store = openAuditStore(kiosk.dbPath!, { readonly: true });
  try {
    expect(store.verifyChain().ok).toBe(true);
  } finally {
    store.close();
  }
  const db = new Database(kiosk.dbPath!, { readonly: true });
  try {
    const row = db.prepare('SELECT type, data FROM events ORDER BY seq DESC LIMIT 1').get() as { type: string; data: string };
    return { type: row.type, data: JSON.parse(row.data) as Record<string, unknown> };
  } finally {
    db.close();
  }
}

async function expectRefused(kiosk: UpdateCommandOptions, repository: string, code: string): Promise<UpdateError> {
  const before = await tree(kiosk.updatesDir);
  const error = await importUpdate(kiosk, repository).then(() => null, (e: unknown) => e);
  expect(error, `import of ${repository} was not refused`).toBeInstanceOf(UpdateError);
  expect((error as UpdateError).code, (error as Error).message).toBe(code);
  expect(await tree(kiosk.updatesDir)).toEqual(before);
  expect(lastEvent(kiosk)).toMatchObject({ type: 'UPDATE_REFUSED', data: { code } });
  return error as UpdateError;
}

const md = (repo: string, name: string): string => join(repo, 'metadata', name);

/** The current version of a role in a repository folder. */
async function versionOf(repo: string, kind: MetadataKind.Timestamp | MetadataKind.Snapshot | MetadataKind.Targets): Promise<number> {
  const ts = await readMetadata<Timestamp>(md(repo, 'timestamp.json'), MetadataKind.Timestamp);
  if (kind === MetadataKind.Timestamp) return ts.signed.version;
  const snapshotVersion = ts.signed.snapshotMeta.version;
  if (kind === MetadataKind.Snapshot) return snapshotVersion;
  const snapshot = await readMetadata<Snapshot>(md(repo, `${snapshotVersion}.snapshot.json`), MetadataKind.Snapshot);
  return snapshot.signed.meta['targets.json']!.version;
}

/**
 * An attacker's re-signing: targets (when changed) -> snapshot -> timestamp,
 * each with the keys given (default: the publisher's own), so only the
 * change under test is wrong.
 */
async function resignChain(repo: string, change: { targets?: (t: Metadata<Targets>) => void; snapshot?: (s: Metadata<Snapshot>) => void; timestamp?: (t: Metadata<Timestamp>) => void }, keys: { targets?: RoleKey; snapshot?: RoleKey; timestamp?: RoleKey } = {}): Promise<void> {
  const targetsVersion = await versionOf(repo, MetadataKind.Targets);
  const snapshotVersion = await versionOf(repo, MetadataKind.Snapshot);
  const snapshot = await readMetadata<Snapshot>(md(repo, `${snapshotVersion}.snapshot.json`), MetadataKind.Snapshot);
  if (change.targets) {
    const targets = await readMetadata<Targets>(md(repo, `${targetsVersion}.targets.json`), MetadataKind.Targets);
    change.targets(targets);
    resign(targets, [keys.targets ?? await publisher.key('targets')]);
    const bytes = await writeMetadata(md(repo, `${targets.signed.version}.targets.json`), targets);
    snapshot.signed.meta['targets.json'] = metaFileFor(targets.signed.version, bytes);
  }
  change.snapshot?.(snapshot);
  resign(snapshot, [keys.snapshot ?? await publisher.key('snapshot')]);
  const snapshotBytes = await writeMetadata(md(repo, `${snapshot.signed.version}.snapshot.json`), snapshot);
  const timestamp = await readMetadata<Timestamp>(md(repo, 'timestamp.json'), MetadataKind.Timestamp);
  (timestamp.signed as { snapshotMeta: unknown }).snapshotMeta = metaFileFor(snapshot.signed.version, snapshotBytes);
  change.timestamp?.(timestamp);
  resign(timestamp, [keys.timestamp ?? await publisher.key('timestamp')]);
  await writeMetadata(md(repo, 'timestamp.json'), timestamp);
}

const bump = (m: Metadata<Timestamp | Snapshot | Targets>, by = 10): void => {
  (m.signed as { version: number }).version += by;
};

describe('update import under attack: rollback and freeze of each role', () => {
  it('refuses a timestamp that names an older snapshot, and a snapshot that names older targets, though signed by the online keys (UPDATE_ROLLBACK)', async () => {
    const kiosk = await newKiosk();
    await importUpdate(kiosk, repoV2);
    // Thief of the timestamp key: a new timestamp over version 1's snapshot.
    const oldSnapshot = await copyOf(repoV1, 'old-snapshot');
    await resignChain(oldSnapshot, { timestamp: (t) => bump(t) });
    await expectRefused(kiosk, oldSnapshot, 'UPDATE_ROLLBACK');
    // Thief of the snapshot and timestamp keys: a newer snapshot listing version 1's targets.
    const oldTargets = await copyOf(repoV2, 'old-targets');
    const targetsV1 = await readFile(md(repoV1, '1.targets.json'));
    await writeFile(md(oldTargets, '1.targets.json'), targetsV1);
    await resignChain(oldTargets, { snapshot: (s) => { bump(s); s.signed.meta['targets.json'] = metaFileFor(1, targetsV1); }, timestamp: (t) => bump(t) });
    await expectRefused(kiosk, oldTargets, 'UPDATE_ROLLBACK');
  });

  it('refuses an expired snapshot, expired targets and an expired root, each with the rest fresh (UPDATE_EXPIRED)', async () => {
    const kiosk = await newKiosk();
    await importUpdate(kiosk, repoV1);
    const past = '2025-01-01T00:00:00Z';
    const snapshot = await copyOf(repoV2, 'expired-snapshot');
    await resignChain(snapshot, { snapshot: (s) => ((s.signed as { expires: string }).expires = past) });
    await expectRefused(kiosk, snapshot, 'UPDATE_EXPIRED');
    const targets = await copyOf(repoV2, 'expired-targets');
    await resignChain(targets, { targets: (t) => ((t.signed as { expires: string }).expires = past) });
    await expectRefused(kiosk, targets, 'UPDATE_EXPIRED');
    // A root version 2 signed by the root key but already expired: the final root must be current.
    const root = await copyOf(repoV2, 'expired-root');
    const v1 = await readMetadata<Root>(md(root, '1.root.json'), MetadataKind.Root);
    (v1.signed as { version: number }).version = 2;
    (v1.signed as { expires: string }).expires = past;
    resign(v1, [await publisher.key('root')]);
    await writeMetadata(md(root, '2.root.json'), v1);
    await expectRefused(kiosk, root, 'UPDATE_EXPIRED');
  });
});

describe('update import under attack: mix-and-match', () => {
  it('refuses version 3\'s timestamp over version 2\'s snapshot file, and a target of another version or another repository under the signed name', async () => {
    const kiosk = await newKiosk();
    await importUpdate(kiosk, repoV1);
    const mixed = await copyOf(repoV3, 'mixed-snapshot');
    await cp(md(repoV2, '2.snapshot.json'), md(mixed, '3.snapshot.json'));
    await expectRefused(kiosk, mixed, 'UPDATE_METADATA_INVALID');

    const oldDaily = await copyOf(repoV3, 'mixed-target');
    const daily = (folder: string): Promise<string> => readdir(join(folder, 'targets', 'clamav')).then((n) => join(folder, 'targets', 'clamav', n.find((x) => x.endsWith('.daily.cud'))!));
    // A file shorter than signed reads as a copy cut short (TUF cannot tell the two apart); either way nothing is taken.
    const codeFor = async (from: string, to: string): Promise<string> => ((await readFile(from)).length < (await readFile(to)).length ? 'UPDATE_INCOMPLETE' : 'UPDATE_TARGET_MISMATCH');
    const expected = await codeFor(await daily(repoV2), await daily(oldDaily));
    await cp(await daily(repoV2), await daily(oldDaily));
    await expectRefused(kiosk, oldDaily, expected);

    const other = await makePublisher(join(dir, 'other-publisher'));
    await other.build(await makeSource(join(dir, 'src-other'), { dailyVersion: 27_103 }));
    const foreign = await copyOf(repoV3, 'foreign-target');
    const foreignCode = await codeFor(await daily(other.repo), await daily(foreign));
    await cp(await daily(other.repo), await daily(foreign));
    await expectRefused(kiosk, foreign, foreignCode);
  });
});

describe('update import under attack: the chain of roots', () => {
  it('refuses a chain with a version skipped, a root file holding another version, an older root renamed, and a rotation short of its threshold', async () => {
    const kiosk = await newKiosk();
    await importUpdate(kiosk, repoV1);
    const rootKey = await publisher.key('root');
    const v1 = await readFile(md(repoV1, '1.root.json'), 'utf8');
    const rootAt = (version: number, extra?: (r: Root) => void): Metadata<Root> => {
      const m = Metadata.fromJSON(MetadataKind.Root, JSON.parse(v1) as Record<string, never>);
      (m.signed as { version: number }).version = version;
      extra?.(m.signed);
      return m;
    };
    // 3.root.json signed properly, but no 2.root.json: the kiosk stops at 1 and the new timestamp key is not in it.
    const skipped = await copyOf(repoV2, 'skipped-root');
    const newTimestamp = roleKeyOf('timestamp', generateSigningKey());
    const three = rootAt(3, (r) => {
      const old = r.roles.timestamp!.keyIDs[0]!;
      r.roles.timestamp!.keyIDs.splice(0, 1, newTimestamp.keyId);
      delete r.keys[old];
      r.keys[newTimestamp.keyId] = newTimestamp.key;
    });
    resign(three, [rootKey]);
    await writeMetadata(md(skipped, '3.root.json'), three);
    await resignChain(skipped, { timestamp: (t) => bump(t) }, { timestamp: newTimestamp });
    await expectRefused(kiosk, skipped, 'UPDATE_SIGNATURE_INVALID');

    const wrongVersion = await copyOf(repoV2, 'root-wrong-version');
    const claimsThree = rootAt(3);
    resign(claimsThree, [rootKey]);
    await writeMetadata(md(wrongVersion, '2.root.json'), claimsThree);
    await expectRefused(kiosk, wrongVersion, 'UPDATE_METADATA_INVALID');

    const renamed = await copyOf(repoV2, 'root-renamed');
    await cp(md(repoV1, '1.root.json'), md(renamed, '2.root.json'));
    await expectRefused(kiosk, renamed, 'UPDATE_ROLLBACK');

    // Version 2 asks for two root signatures (the old key and a new one) and carries only the old one's.
    const short = await copyOf(repoV2, 'root-threshold');
    const second = roleKeyOf('root', generateSigningKey());
    const two = rootAt(2, (r) => {
      r.addKey(second.key, 'root');
      (r.roles.root as { threshold: number }).threshold = 2;
    });
    resign(two, [rootKey]);
    await writeMetadata(md(short, '2.root.json'), two);
    await expectRefused(kiosk, short, 'UPDATE_SIGNATURE_INVALID');
    // With both signatures it is a valid rotation, and version 2 of the rest imports under it.
    resign(two, [rootKey, second]);
    await writeMetadata(md(short, '2.root.json'), two);
    expect(await importUpdate(kiosk, short)).toMatchObject({ status: 'imported' });
  });
});

describe('update import under attack: what the folder is made of', () => {
  it('never reads through a link: the repository folder, a folder in it or a file as a symbolic link, a file with a second name (UPDATE_REPOSITORY_UNREADABLE)', async () => {
    const kiosk = await newKiosk();
    await importUpdate(kiosk, repoV1);
    // The folder on the drive is a link (to a genuine copy elsewhere: still refused, a link on a drive can lead anywhere).
    const linkToRepo = join(dir, `link-repo-${++count}`);
    await symlink(repoV2, linkToRepo);
    await expectRefused(kiosk, linkToRepo, 'UPDATE_REPOSITORY_UNREADABLE');

    const folderLink = await copyOf(repoV2, 'folder-link');
    const elsewhere = join(dir, `elsewhere-${++count}`);
    await rename(join(folderLink, 'targets', 'clamav'), elsewhere);
    await symlink(elsewhere, join(folderLink, 'targets', 'clamav'));
    await expectRefused(kiosk, folderLink, 'UPDATE_REPOSITORY_UNREADABLE');

    const fileLink = await copyOf(repoV2, 'file-link');
    await rename(md(fileLink, 'timestamp.json'), join(dir, `ts-${++count}.json`));
    await symlink(join(dir, `ts-${count}.json`), md(fileLink, 'timestamp.json'));
    await expectRefused(kiosk, fileLink, 'UPDATE_REPOSITORY_UNREADABLE');

    const hardLink = await copyOf(repoV2, 'hard-link');
    await link(md(hardLink, 'timestamp.json'), join(dir, `second-name-${++count}.json`));
    await expectRefused(kiosk, hardLink, 'UPDATE_REPOSITORY_UNREADABLE');
  });

  it('update init with a FIFO or a huge file as the root (both on the drive it is read from) refuses at once (UPDATE_ROOT_INVALID)', async () => {
    const home = join(dir, `init-${++count}`);
    const kiosk: UpdateCommandOptions = { updatesDir: join(home, 'updates'), dbPath: join(home, 'audit.db'), out: () => undefined };
    const fifo = join(dir, `root-fifo-${count}`);
    execFileSync('mkfifo', [fifo]);
    await expect(updateInit(kiosk, fifo)).rejects.toMatchObject({ code: 'UPDATE_ROOT_INVALID' });
    const huge = join(dir, `root-huge-${count}.json`);
    execFileSync('truncate', ['-s', '5G', huge]);
    await expect(updateInit(kiosk, huge)).rejects.toMatchObject({ code: 'UPDATE_ROOT_INVALID' });
    await rm(huge);
  });

  it('a FIFO where timestamp.json should be is refused at once, not waited on (UPDATE_REPOSITORY_UNREADABLE)', async () => {
    const kiosk = await newKiosk();
    const fifo = await copyOf(repoV1, 'fifo');
    await rm(md(fifo, 'timestamp.json'));
    execFileSync('mkfifo', [md(fifo, 'timestamp.json')]);
    await expectRefused(kiosk, fifo, 'UPDATE_REPOSITORY_UNREADABLE');
  });
});

describe('update import under attack: size and shape of the signed list', () => {
  it('refuses metadata larger than any repository needs (4 MiB) before parsing it (UPDATE_METADATA_INVALID)', async () => {
    const kiosk = await newKiosk();
    const big = await copyOf(repoV1, 'big-timestamp');
    const ts = await readFile(md(big, 'timestamp.json'), 'utf8');
    await writeFile(md(big, 'timestamp.json'), ts.replace(/\n$/, `${' '.repeat(4 * 1024 * 1024)}\n`));
    await expectRefused(kiosk, big, 'UPDATE_METADATA_INVALID');
  });

  it('refuses a signed target longer than a kiosk takes for its kind before copying a byte, and more parts than a set holds (UPDATE_PART_INVALID)', async () => {
    const kiosk = await newKiosk();
    await importUpdate(kiosk, repoV1);
    // The targets key's holder (or a careless build) lists a 64 GiB policy.
    const huge = await copyOf(repoV2, 'huge-target');
    await resignChain(huge, {
      targets: (t) => {
        bump(t);
        t.signed.targets['policy/policy.json'] = new TargetFile({ path: 'policy/policy.json', length: 64 * 1024 ** 3, hashes: { sha256: '0'.repeat(64) } });
      },
      snapshot: (s) => bump(s),
      timestamp: (t) => bump(t),
    });
    expect((await expectRefused(kiosk, huge, 'UPDATE_PART_INVALID')).message).toMatch(/policy\/policy\.json/);

    // Three hundred rule files: more than a set description holds (it would be switched to and then be unreadable).
    const many = await copyOf(repoV2, 'many-targets');
    const rule = Buffer.from('rule Many { condition: false }\n');
    const sha256 = createHash('sha256').update(rule).digest('hex');
    const sha512 = createHash('sha512').update(rule).digest('hex');
    await mkdir(join(many, 'targets', 'yara'), { recursive: true });
    await writeFile(join(many, 'targets', 'yara', `${sha256}.r0.yar`), rule);
    await resignChain(many, {
      targets: (t) => {
        bump(t);
        for (let i = 0; i < 300; i++) t.signed.targets[`yara/r${i}.yar`] = new TargetFile({ path: `yara/r${i}.yar`, length: rule.length, hashes: { sha256, sha512 } });
      },
      snapshot: (s) => bump(s),
      timestamp: (t) => bump(t),
    });
    await expectRefused(kiosk, many, 'UPDATE_PART_INVALID');
  });

  it('refuses target names outside the layout: traversal, absolute, upper case, a Windows device name, a backslash (UPDATE_TARGET_UNKNOWN)', async () => {
    const kiosk = await newKiosk();
    await importUpdate(kiosk, repoV1);
    for (const name of ['yara/../../etc/cron.d/x.yar', '/etc/passwd', 'yara/Site.yar', 'yara/con.yar', 'allowlist/nul.json', 'yara\\evil.yar']) {
      const odd = await copyOf(repoV2, 'odd-name');
      await resignChain(odd, {
        targets: (t) => {
          bump(t);
          t.signed.targets[name] = new TargetFile({ path: name, length: 1, hashes: { sha256: '0'.repeat(64) } });
        },
        snapshot: (s) => bump(s),
        timestamp: (t) => bump(t),
      });
      expect((await expectRefused(kiosk, odd, 'UPDATE_TARGET_UNKNOWN')).message).toContain(JSON.stringify(name).slice(1, 8));
    }
  });
});


/** Sets the build time (Unix seconds, the header's ninth field) of a ClamAV container in place. */
async function setBuildTime(path: string, seconds: number): Promise<void> {
  const bytes = await readFile(path);
  const header = bytes.subarray(0, 512).toString('latin1');
  const fields = header.trimEnd().split(':');
  fields[8] = String(seconds);
  const patched = fields.join(':').padEnd(512, ' ');
  expect(patched.length).toBe(512);
  bytes.write(patched, 0, 'latin1');
  await writeFile(path, bytes);
}

describe('update import under attack: ClamAV databases that are valid TUF targets but bad databases', () => {
  it('refuses a corrupt body behind a good header, a header alone, an empty file (UPDATE_CLAMAV_INVALID)', async () => {
    const own = await makePublisher(join(dir, 'bad-cvd'));
    await own.build(await makeSource(join(dir, 'src-bad-cvd-1'), { dailyVersion: 27_300 }));
    const kiosk = await newKiosk(join(own.repo, 'metadata', '1.root.json'));
    await importUpdate(kiosk, own.repo);

    const corrupt = await makeSource(join(dir, 'src-bad-cvd-2'), { dailyVersion: 27_301 });
    const daily = join(corrupt, 'clamav', 'daily.cud');
    const good = await readFile(daily);
    await writeFile(daily, Buffer.concat([good.subarray(0, 512), Buffer.alloc(good.length - 512, 0x5a)]));
    await own.build(corrupt);
    await expectRefused(kiosk, own.repo, 'UPDATE_CLAMAV_INVALID');

    await writeFile(daily, good.subarray(0, 512));
    await own.build(corrupt);
    await expectRefused(kiosk, own.repo, 'UPDATE_CLAMAV_INVALID');

    // An empty daily.cud: the publisher refuses to build it; the holder of the targets key lists it anyway.
    await writeFile(daily, good);
    await own.build(corrupt);
    const empty = await copyOf(own.repo, 'empty-daily');
    const emptySha256 = createHash('sha256').update('').digest('hex');
    await writeFile(join(empty, 'targets', 'clamav', `${emptySha256}.daily.cud`), '');
    const ownKeys = { targets: await own.key('targets'), snapshot: await own.key('snapshot'), timestamp: await own.key('timestamp') };
    const resignOwn = async (repo: string, targetsChange: (t: Metadata<Targets>) => void): Promise<void> => {
      const saved = publisher;
      publisher = own;
      try {
        await resignChain(repo, { targets: (t) => { bump(t); targetsChange(t); }, snapshot: (s) => bump(s), timestamp: (t) => bump(t) }, ownKeys);
      } finally {
        publisher = saved;
      }
    };
    await resignOwn(empty, (t) => {
      t.signed.targets['clamav/daily.cud'] = new TargetFile({ path: 'clamav/daily.cud', length: 0, hashes: { sha256: emptySha256, sha512: createHash('sha512').update('').digest('hex') } });
    });
    await expectRefused(kiosk, empty, 'UPDATE_CLAMAV_INVALID');
  });

  it('refuses a database built in the future (its age would read as fresh) and a newer version built before the active one (UPDATE_CLAMAV_INVALID, UPDATE_ROLLBACK)', async () => {
    const own = await makePublisher(join(dir, 'dated-cvd'));
    await own.build(await makeSource(join(dir, 'src-dated-1'), { dailyVersion: 27_400 }));
    const kiosk = await newKiosk(join(own.repo, 'metadata', '1.root.json'));
    await importUpdate(kiosk, own.repo);

    const future = await makeSource(join(dir, 'src-dated-2'), { dailyVersion: 27_401 });
    await setBuildTime(join(future, 'clamav', 'daily.cud'), Math.floor(Date.UTC(2100, 0, 1) / 1000));
    await own.build(future);
    expect((await expectRefused(kiosk, own.repo, 'UPDATE_CLAMAV_INVALID')).message).toMatch(/built 2100-01-01T00:00:00Z, later than now/);

    const earlier = await makeSource(join(dir, 'src-dated-3'), { dailyVersion: 27_402 });
    await setBuildTime(join(earlier, 'clamav', 'daily.cud'), Math.floor(Date.UTC(2020, 0, 1) / 1000));
    await own.build(earlier);
    expect((await expectRefused(kiosk, own.repo, 'UPDATE_ROLLBACK')).message).toMatch(/built 2020-01-01T00:00:00Z, before the active set's/);
  });
});

describe('update import: signed parts that weaken the gate', () => {
  it('takes a policy and an allowlist that let more through, and says so plainly: the output, UPDATE_IMPORTED.loosened, update status', async () => {
    const { defaultPolicy } = await import('../support/update-fixtures.ts');
    const { statusLines, updateStatus } = await import('../../kiosk/cli/update-command.ts');
    const own = await makePublisher(join(dir, 'loose'));
    const strict = await defaultPolicy();
    await own.build(await makeSource(join(dir, 'src-loose-1'), { dailyVersion: 27_500, policy: strict, allowlist: true }));
    const output: string[] = [];
    const kiosk = { ...(await newKiosk(join(own.repo, 'metadata', '1.root.json'))), out: (l: string) => void output.push(l) };
    await importUpdate(kiosk, own.repo);
    expect(output.filter((l) => l.includes('LOOSENED'))).toEqual([]);

    const loose = structuredClone(strict) as { clamav: { required: boolean }; signatures?: { maxAgeHours: number; whenOutdated: string }; types: { allowed: { name: string; extensions: string[] }[] } };
    loose.clamav.required = false;
    loose.signatures = { maxAgeHours: 8760, whenOutdated: 'warn' };
    loose.types.allowed[0]!.extensions.push('.exe');
    const source = await makeSource(join(dir, 'src-loose-2'), { dailyVersion: 27_501, policy: loose, allowlist: true });
    const list = JSON.parse(await readFile(join(source, 'allowlist', 'site.json'), 'utf8')) as { entries: Record<string, unknown>[] };
    list.entries.push({ vendor: 'Anyone', product: 'Tool', version: '1', file: 'tool.exe', sha256: 'ab'.repeat(32), source: 'the update' });
    await writeFile(join(source, 'allowlist', 'site.json'), JSON.stringify(list));
    await own.build(source);
    expect(await importUpdate(kiosk, own.repo)).toMatchObject({ status: 'imported' });
    const said = output.filter((l) => l.includes('LOOSENED')).join('\n');
    expect(said).toMatch(/clamav\.required: ClamAV is no longer required/);
    expect(said).toMatch(/signatures\.whenOutdated: outdated signatures now only warn/);
    expect(said).toMatch(new RegExp(`types\\.allowed\\.${loose.types.allowed[0]!.name}: now also \\.exe`));
    expect(said).toMatch(/allowlist: 1 hash allowed that the allowlist in force did not list/);
    const recorded = lastEvent(kiosk);
    expect(recorded.type).toBe('UPDATE_IMPORTED');
    expect(recorded.data.loosened).toEqual(expect.arrayContaining([expect.stringMatching(/^clamav\.required/), expect.stringMatching(/^allowlist: 1 hash/)]));
    const status = statusLines(await updateStatus(kiosk, { maxAgeHours: 168, whenOutdated: 'out-of-service' }), new Date()).join('\n');
    expect(status).toMatch(/LOOSENED at import: clamav\.required/);
  });

  it('a set that leaves out the site\'s stricter policy hands it back to the kiosk\'s configured one: said as loosening too', async () => {
    const { defaultPolicy } = await import('../support/update-fixtures.ts');
    const own = await makePublisher(join(dir, 'dropped'));
    const stricter = await defaultPolicy() as { limits: { maxDepth: number } };
    stricter.limits.maxDepth = 2;
    await own.build(await makeSource(join(dir, 'src-dropped-1'), { dailyVersion: 27_800, policy: stricter }));
    const output: string[] = [];
    const kiosk = { ...(await newKiosk(join(own.repo, 'metadata', '1.root.json'))), out: (l: string) => void output.push(l) };
    await importUpdate(kiosk, own.repo);
    await own.build(await makeSource(join(dir, 'src-dropped-2'), { dailyVersion: 27_801 }));
    expect(await importUpdate(kiosk, own.repo)).toMatchObject({ status: 'imported' });
    const said = output.filter((l) => l.includes('LOOSENED')).join('\n');
    expect(said).toMatch(/limits\.maxDepth: raised from 2 to [0-9]+ \(the set carries no policy: the kiosk's configured one applies\)/);
  });

  it('refuses an allowlist that is signed but malformed (UPDATE_PART_INVALID)', async () => {
    const own = await makePublisher(join(dir, 'bad-allowlist'));
    const source = await makeSource(join(dir, 'src-bad-allowlist'), { dailyVersion: 27_600, allowlist: true });
    await writeFile(join(source, 'allowlist', 'site.json'), JSON.stringify({ version: '1', entries: [{ name: 'x' }] }));
    await own.build(source);
    const kiosk = await newKiosk(join(own.repo, 'metadata', '1.root.json'));
    await expectRefused(kiosk, own.repo, 'UPDATE_PART_INVALID');
  });
});

/** The generations the audit log records as imported. */
function importedGenerations(kiosk: UpdateCommandOptions): string[] {
  const db = new Database(kiosk.dbPath!, { readonly: true });
  try {
    return (db.prepare("SELECT data FROM events WHERE type = 'UPDATE_IMPORTED' ORDER BY seq").all() as { data: string }[]).map((r) => (JSON.parse(r.data) as { generation: string }).generation);
  } finally {
    db.close();
  }
}

describe('update rollback and a kiosk killed mid-import', () => {
  it('a set switched to but not yet on the record (the kiosk stopped in between) is recorded late by the next update command, once', async () => {
    const { rollbackUpdate } = await import('../../kiosk/cli/update-command.ts');
    const kiosk = await newKiosk();
    const first = await importUpdate(kiosk, repoV1);
    expect(first.status).toBe('imported');
    // The state a kill leaves between the state file's rename and the audit record: the set's marker still there.
    const set = await readFile(join(kiosk.updatesDir, 'generations', 'g000001', 'set.json'), 'utf8');
    await writeFile(join(kiosk.updatesDir, 'generations', 'g000001', '.unrecorded'), set);
    const { statusLines, updateStatus } = await import('../../kiosk/cli/update-command.ts');
    const status = async (): Promise<string> => statusLines(await updateStatus(kiosk, { maxAgeHours: 168, whenOutdated: 'out-of-service' }), new Date()).join('\n');
    expect(await status()).toMatch(/NOT YET ON THE AUDIT RECORD/);
    expect(await importUpdate(kiosk, repoV1)).toEqual({ status: 'unchanged', generation: 'g000001' });
    expect(await status()).not.toMatch(/NOT YET ON THE AUDIT RECORD/);
    const db = new Database(kiosk.dbPath!, { readonly: true });
    const rows = (db.prepare('SELECT type, data FROM events ORDER BY seq').all() as { type: string; data: string }[]).map((r) => ({ type: r.type, data: JSON.parse(r.data) as Record<string, unknown> }));
    db.close();
    expect(rows.slice(-2)).toMatchObject([{ type: 'UPDATE_IMPORTED', data: { generation: 'g000001', late: true } }, { type: 'UPDATE_UNCHANGED' }]);
    await expect(rollbackUpdate(kiosk)).rejects.toMatchObject({ code: 'UPDATE_NO_PREVIOUS' });
    expect(importedGenerations(kiosk)).toEqual(['g000001', 'g000001']); // not again
  });

  it('update rollback never goes back past a revocation: a set signed by a targets key the root has since rotated out stays retired (UPDATE_ROLLBACK)', async () => {
    const { rollbackUpdate } = await import('../../kiosk/cli/update-command.ts');
    const { readState } = await import('../../kiosk/updates/update-store.ts');
    const { rotateRoleKey } = await import('../../update/role-keys.ts');
    const { writeNextRoot } = await import('../../update/repository.ts');
    const own = await makePublisher(join(dir, 'revoked-targets'));
    // The targets key signed a set, then was found stolen: the publisher rotates it and publishes again.
    await own.build(await makeSource(join(dir, 'src-revoked-1'), { dailyVersion: 27_700 }));
    const kiosk = await newKiosk(join(own.repo, 'metadata', '1.root.json'));
    await importUpdate(kiosk, own.repo);
    const rotated = await rotateRoleKey(own.keys, 'targets');
    await writeNextRoot({ repo: own.repo, keysDir: own.keys, replace: { targets: rotated.next }, oldRootKey: await own.key('root') });
    await own.build(await makeSource(join(dir, 'src-revoked-2'), { dailyVersion: 27_701 }));
    expect(await importUpdate(kiosk, own.repo)).toMatchObject({ status: 'imported', generation: 'g000002', previous: 'g000001' });
    const before = await tree(kiosk.updatesDir);
    const error = await rollbackUpdate(kiosk).then(() => null, (e: unknown) => e);
    expect((error as UpdateError).code).toBe('UPDATE_ROLLBACK');
    expect(await tree(kiosk.updatesDir)).toEqual(before);
    expect(await readState(kiosk.updatesDir)).toMatchObject({ current: 'g000002' });

    // A previous set signed by the key still in force rolls back as before.
    await own.build(await makeSource(join(dir, 'src-revoked-3'), { dailyVersion: 27_702 }));
    await importUpdate(kiosk, own.repo);
    expect(await rollbackUpdate(kiosk)).toEqual({ from: 'g000003', to: 'g000002' });
  });

  it('a kiosk killed (SIGKILL) while it copies the set, or as it switches, keeps a set that works, and the next import goes through', { timeout: 120_000 }, async () => {
    const { spawn } = await import('node:child_process');
    const { pathToFileURL } = await import('node:url');
    const { activeSet, readState } = await import('../../kiosk/updates/update-store.ts');
    const { stat } = await import('node:fs/promises');
    const command = pathToFileURL(join(import.meta.dirname, '../../kiosk/cli/update-command.ts')).href;
    const script = `
      import { importUpdate } from ${JSON.stringify(command)};
      const [updatesDir, dbPath, repo, stopAt] = process.argv.slice(1);
      const onRead = async (name) => { if (stopAt && name.endsWith(stopAt)) { console.log('AT ' + name); await new Promise(() => {}); } };
      await importUpdate({ updatesDir, dbPath, unsignedClamavDatabases: true, out: () => {}, onRead }, repo);
      console.log('DONE');`;
    for (const point of ['daily.cud', 'switch']) {
      const kiosk = await newKiosk();
      await importUpdate(kiosk, repoV1);
      const child = spawn(process.execPath, ['--input-type=module', '-e', script, kiosk.updatesDir, kiosk.dbPath!, repoV2, point === 'switch' ? '' : point], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (c: Buffer) => { output += c.toString(); });
      const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
      // Copy: the child stops at the daily database's file. Switch: the moment the new generation's folder appears.
      for (let i = 0; i < 6000; i++) {
        if (point !== 'switch' && output.includes('AT ')) break;
        if (point === 'switch' && await stat(join(kiosk.updatesDir, 'generations', 'g000002')).then(() => true, () => false)) break;
        if (output.includes('DONE')) break;
        await new Promise((r) => setTimeout(r, 5));
      }
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
      // The set in force is whole and readable: the old one, or (killed just after the switch) the new one.
      const state = await readState(kiosk.updatesDir);
      const active = await activeSet(kiosk.updatesDir);
      expect(active?.generation).toBe(state.current);
      if (point !== 'switch') expect(state).toEqual({ current: 'g000001', previous: null, trust: 'g000001' });
      for (const part of active!.set.parts) {
        expect(createHash('sha256').update(await readFile(join(active!.folder, part.kind, part.file))).digest('hex')).toBe(part.sha256);
      }
      // The lock the dead process held and its staging folder do not block the next import.
      const next = await importUpdate(kiosk, repoV2);
      // Whatever set was left active is on the record (written late if the kill fell between the switch and the record).
      expect(importedGenerations(kiosk)).toContain(state.current);
      expect(next.status === 'imported' || (next.status === 'unchanged' && state.current === 'g000002')).toBe(true);
      expect((await readState(kiosk.updatesDir)).current).not.toBe('g000001');
      expect(await stat(join(kiosk.updatesDir, 'staging')).then(() => true, () => false)).toBe(false);
    }
  });
});
