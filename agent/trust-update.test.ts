/**
 * Signed trust updates at the HMI (issue 20.4): the publisher's repository
 * carries the HMI trust store; the agent pins the root once, then takes new
 * kiosk keys, revocations and policy only from signed repositories, with the
 * real tuf-js client. Each attack is refused with its code, the trust store
 * and the trusted metadata byte for byte as before, and the refusal logged.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { cp, link, mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MetadataKind, type Snapshot, type Targets, type Timestamp } from '@tufjs/models';
import { generateSigningKey, publicKeyToPem, type SigningKey } from '../manifest/index.ts';
import { AuditLog, verifyLogBytes } from './audit-log.ts';
import { main } from './main.ts';
import { addKey, emptyTrustStore, loadTrustStore, revokeKey, setPolicy, type TrustStore } from './trust-store.ts';
import { applyTrustUpdate, pinUpdateRoot, TrustUpdateError, updatesFolder } from './trust-update.ts';
import { lineNotifier } from './notify.ts';
import { runService } from './watch.ts';
import type { DriveReport } from './drive-report.ts';
import { makePublisher, makeSource, readMetadata, resign, tempFolder, writeMetadata, type Publisher } from '../test/support/update-fixtures.ts';

const NOW = new Date('2026-12-08T10:00:00Z');
const gate1 = generateSigningKey();
const gate2 = generateSigningKey();

let dir: string;
let publisher: Publisher;
const repos: string[] = []; // each published version, as published

let changes = 100; // the workstation's trust store: every change made to it raises its sequence
/** The site's HMI trust store, as security staff make it with trust add / revoke / policy on the workstation. */
function bundle(keys: readonly SigningKey[], revoked: readonly SigningKey[] = [], maxAgeHours = 24, sequence = ++changes): string {
  let store: TrustStore = emptyTrustStore(NOW);
  for (const [i, k] of keys.entries()) store = addKey(store, { pem: publicKeyToPem(k.publicKey), label: `gate ${i + 1}` }, NOW).store;
  for (const k of revoked) store = revokeKey(store, k.keyId, NOW, 'kiosk replaced');
  store = setPolicy(store, { maxManifestAgeHours: maxAgeHours }, NOW);
  return JSON.stringify({ ...store, sequence }, null, 2);
}

async function publish(trustJson: string | null, name: string): Promise<string> {
  await publisher.build(await makeSource(join(dir, `src-${name}`), { hmiTrust: trustJson }));
  const copy = join(dir, `repo-${name}`);
  await cp(publisher.repo, copy, { recursive: true });
  repos.push(copy);
  return copy;
}

let v1: string; // trusts gate 1
let v2: string; // trusts gate 2, revokes gate 1, manifests at most 12 hours old

beforeAll(async () => {
  dir = await tempFolder('trust-update');
  publisher = await makePublisher(join(dir, 'publisher'));
  v1 = await publish(bundle([gate1]), 'v1');
  v2 = await publish(bundle([gate1, gate2], [gate1], 12), 'v2');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let hmis = 0;
/** An HMI brought up from scratch: a trust store folder with the publisher's root pinned, nothing else. */
async function newHmi(): Promise<{ trust: string; log: AuditLog; logPath: string }> {
  const home = join(dir, `hmi-${++hmis}`);
  await mkdir(home, { recursive: true });
  const trust = join(home, 'trust.json');
  const logPath = join(home, 'agent.log.jsonl');
  const log = new AuditLog(logPath, { hmi: `HMI-${hmis}`, clock: () => NOW });
  await pinUpdateRoot(trust, await readFile(join(v1, 'metadata', '1.root.json')), log);
  return { trust, log, logPath };
}

async function tree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (folder: string): Promise<void> => {
    for (const e of await readdir(folder, { withFileTypes: true })) {
      const p = join(folder, e.name);
      if (e.isDirectory()) await walk(p);
      else if (!e.name.endsWith('.jsonl')) out[p.slice(root.length)] = createHash('sha256').update(await readFile(p)).digest('hex');
    }
  };
  await walk(root);
  return out;
}

async function expectRefused(hmi: { trust: string; log: AuditLog; logPath: string }, repository: string, code: string): Promise<void> {
  const home = join(hmi.trust, '..');
  const before = await tree(home);
  const error = await applyTrustUpdate({ trustPath: hmi.trust, repository, log: hmi.log, now: NOW }).then(() => null, (e: unknown) => e);
  expect(error).toBeInstanceOf(TrustUpdateError);
  expect((error as TrustUpdateError).code, (error as Error).message).toBe(code);
  expect(await tree(home)).toEqual(before);
  const log = verifyLogBytes(await readFile(hmi.logPath));
  expect(log.ok).toBe(true);
  expect(log.ok && log.entries.at(-1)).toMatchObject({ event: 'trust.change-failed', outcome: 'refused', code });
}

async function copyOf(repository: string, name: string): Promise<string> {
  const to = join(dir, `${name}-${++hmis}`);
  await cp(repository, to, { recursive: true });
  return to;
}

describe('trust update', () => {
  it('brings an HMI from scratch to the site\'s trust store, then the next one: new keys, revocations and policy, with the destination kept', async () => {
    const hmi = await newHmi();
    const first = await applyTrustUpdate({ trustPath: hmi.trust, repository: v1, log: hmi.log, now: NOW });
    expect(first).toMatchObject({ status: 'applied', added: [gate1.keyId], revoked: [] });
    expect(loadTrustStore(hmi.trust).keys.map((k) => k.keyId)).toEqual([gate1.keyId]);
    // The HMI's own destination folder survives updates; the rest of the policy is the site's.
    const local = setPolicy(loadTrustStore(hmi.trust), { destination: '/srv/inbox' }, NOW);
    await writeFile(hmi.trust, JSON.stringify(local, null, 2));
    const second = await applyTrustUpdate({ trustPath: hmi.trust, repository: v2, log: hmi.log, now: NOW });
    expect(second).toMatchObject({ status: 'applied', added: [gate2.keyId], revoked: [gate1.keyId], policyChanged: true });
    const store = loadTrustStore(hmi.trust);
    expect(store.policy).toMatchObject({ maxManifestAgeHours: 12, destination: '/srv/inbox' });
    expect(store.revoked.map((r) => r.keyId)).toEqual([gate1.keyId]);
    expect(await applyTrustUpdate({ trustPath: hmi.trust, repository: v2, log: hmi.log, now: NOW })).toMatchObject({ status: 'unchanged' });
    const log = verifyLogBytes(await readFile(hmi.logPath));
    expect(log.ok && log.entries.map((e) => e.event)).toEqual(['trust.update-root-pinned', 'trust.key-added', 'trust.updated', 'trust.key-added', 'trust.key-revoked', 'trust.policy-changed', 'trust.updated', 'trust.updated']);
  });

  it('never lifts a revocation: a later trust store without it leaves the key revoked', async () => {
    const hmi = await newHmi();
    await applyTrustUpdate({ trustPath: hmi.trust, repository: v2, log: hmi.log, now: NOW });
    const v3 = await publish(bundle([gate1, gate2]), 'v3-unrevoke');
    await applyTrustUpdate({ trustPath: hmi.trust, repository: v3, log: hmi.log, now: NOW });
    expect(loadTrustStore(hmi.trust).revoked.map((r) => r.keyId)).toEqual([gate1.keyId]);
  });

  it('refuses each attack with its code and changes nothing: rollback, freeze, a swapped trust store, a wrong key, a drive pulled', async () => {
    const hmi = await newHmi();
    await applyTrustUpdate({ trustPath: hmi.trust, repository: v2, log: hmi.log, now: NOW });
    await expectRefused(hmi, v1, 'UPDATE_ROLLBACK');

    const frozen = await copyOf(repos.at(-1)!, 'frozen');
    const ts = await readMetadata<Timestamp>(join(frozen, 'metadata', 'timestamp.json'), MetadataKind.Timestamp);
    (ts.signed as { expires: string; version: number }).expires = '2026-01-01T00:00:00Z';
    (ts.signed as { version: number }).version += 1;
    resign(ts, [await publisher.key('timestamp')]);
    await writeMetadata(join(frozen, 'metadata', 'timestamp.json'), ts);
    await expectRefused(hmi, frozen, 'UPDATE_EXPIRED');

    const wrongKey = await copyOf(repos.at(-1)!, 'wrong-key');
    const ts2 = await readMetadata<Timestamp>(join(wrongKey, 'metadata', 'timestamp.json'), MetadataKind.Timestamp);
    (ts2.signed as { version: number }).version += 1;
    resign(ts2, [await publisher.key('targets')]);
    await writeMetadata(join(wrongKey, 'metadata', 'timestamp.json'), ts2);
    await expectRefused(hmi, wrongKey, 'UPDATE_SIGNATURE_INVALID');

    const v4 = await publish(bundle([gate2]), 'v4');
    const swapped = await copyOf(v4, 'swapped');
    const hmiTarget = (await readdir(join(swapped, 'targets', 'hmi')))[0]!;
    const evil = bundle([gate2, generateSigningKey()]);
    const original = await readFile(join(swapped, 'targets', 'hmi', hmiTarget), 'utf8');
    await writeFile(join(swapped, 'targets', 'hmi', hmiTarget), evil.slice(0, original.length).padEnd(original.length, ' '));
    await expectRefused(hmi, swapped, 'UPDATE_TARGET_MISMATCH');

    const pulled = await copyOf(v4, 'pulled');
    await rm(join(pulled, 'targets'), { recursive: true });
    await expectRefused(hmi, pulled, 'UPDATE_INCOMPLETE');

    expect(await applyTrustUpdate({ trustPath: hmi.trust, repository: v4, log: hmi.log, now: NOW })).toMatchObject({ status: 'applied' });
  });

  it('refuses an update before a root is pinned, a repository without the HMI trust store, and a trust store this agent does not take', async () => {
    const home = join(dir, 'unpinned');
    await mkdir(home, { recursive: true });
    const log = new AuditLog(join(home, 'agent.log.jsonl'), { hmi: 'HMI-X', clock: () => NOW });
    await expect(applyTrustUpdate({ trustPath: join(home, 'trust.json'), repository: v1, log, now: NOW })).rejects.toMatchObject({ code: 'UPDATE_NOT_INITIALISED' });
    await expect(pinUpdateRoot(join(home, 'trust.json'), Buffer.from('{"signed": {}}'), log)).rejects.toMatchObject({ code: 'UPDATE_ROOT_INVALID' });

    const hmi = await newHmi();
    await expect(pinUpdateRoot(hmi.trust, await readFile(join(v1, 'metadata', 'root.json')), hmi.log)).rejects.toMatchObject({ code: 'UPDATE_ALREADY_INITIALISED' });
    await applyTrustUpdate({ trustPath: hmi.trust, repository: repos.at(-1)!, log: hmi.log, now: NOW });
    const none = await publish(null, 'no-hmi');
    await expectRefused(hmi, none, 'UPDATE_PART_INVALID');
    const bad = await publish(JSON.stringify({ formatVersion: 1, keys: 'everyone' }), 'bad-hmi');
    await expectRefused(hmi, bad, 'UPDATE_PART_INVALID');
  });

  it('portcullis-agent trust pin-root and trust update: the commands, their output and exit codes', async () => {
    const home = join(dir, 'cli');
    await mkdir(home, { recursive: true });
    const trust = join(home, 'trust.json');
    const out: string[] = [];
    const err: string[] = [];
    const io = { stdout: (t: string) => void out.push(t), stderr: (t: string) => void err.push(t), clock: () => NOW };
    expect(await main(['trust', 'update', v1, '--trust', trust], io)).toBe(1);
    expect(err.join('')).toMatch(/^portcullis-agent: UPDATE_NOT_INITIALISED: /);
    expect(await main(['trust', 'pin-root', join(v1, 'metadata', 'root.json'), '--trust', trust], io)).toBe(0);
    expect(out.join('')).toMatch(/pinned update root version 1 \(sha256 [0-9a-f]{64}\)/);
    expect(await main(['trust', 'update', v1, '--trust', trust, '--json'], io)).toBe(0);
    expect(JSON.parse(out.at(-1)!)).toMatchObject({ status: 'applied', versions: { targets: 1 }, added: [gate1.keyId] });
    expect(await main(['trust', 'update', v1, '--trust', trust], io)).toBe(0);
    expect(out.at(-1)).toMatch(/already up to date/);
    expect(updatesFolder(trust)).toBe(join(home, 'trust-updates'));
  });

  it('the watch service applies the trust update on an update drive and tells the HMI user; a refused one changes nothing', async () => {
    const hmi = await newHmi();
    const driveRoot = join(dir, 'update-drive');
    await cp(v1, join(driveRoot, 'portcullis-update'), { recursive: true });
    const messages: string[] = [];
    const reports: DriveReport[] = [];
    const drives: { key: string; mount: string; identity: null }[] = [];
    const controller = new AbortController();
    const service = runService({
      source: { name: 'test', list: () => Promise.resolve([...drives]) },
      trustPath: hmi.trust, destination: join(dir, 'inbox'), log: hmi.log, notifier: lineNotifier((l) => messages.push(l)),
      intervalMs: 50, settleMs: 0, clock: () => NOW, onReport: (r) => reports.push(r),
    }, controller.signal);
    drives.push({ key: 'E', mount: driveRoot, identity: null });
    for (let i = 0; i < 200 && !messages.some((m) => m.includes('trust updated')); i++) await new Promise((r) => setTimeout(r, 25));
    expect(messages.some((m) => /\[HMI ok\] Portcullis: trust updated/.test(m))).toBe(true);
    expect(loadTrustStore(hmi.trust).keys.map((k) => k.keyId)).toEqual([gate1.keyId]);
    expect(reports).toEqual([]); // an update drive with no manifest is not imported (nor refused as NO_MANIFEST)

    // An older repository on the next drive: refused, the user told, the store unchanged.
    drives.length = 0;
    await new Promise((r) => setTimeout(r, 150));
    await applyTrustUpdate({ trustPath: hmi.trust, repository: v2, log: hmi.log, now: NOW });
    const before = await readFile(hmi.trust);
    drives.push({ key: 'F', mount: driveRoot, identity: null });
    for (let i = 0; i < 200 && !messages.some((m) => m.includes('trust update refused')); i++) await new Promise((r) => setTimeout(r, 25));
    expect(messages.find((m) => m.includes('trust update refused'))).toMatch(/UPDATE_ROLLBACK/);
    expect(await readFile(hmi.trust)).toEqual(before);
    controller.abort();
    await service;
  });

  it('refuses an older trust store inside a newer repository, one that names no key, and one signed as larger than a trust store can be (UPDATE_ROLLBACK, UPDATE_PART_INVALID)', async () => {
    const hmi = await newHmi();
    const current = await publish(bundle([gate1, gate2], [gate1], 12), 'seq-current');
    await applyTrustUpdate({ trustPath: hmi.trust, repository: current, log: hmi.log, now: NOW });
    // The publisher builds again from an old copy of the workstation's trust store: gate 1 is still revoked (revocations stay), but the newer policy would be lost.
    const old = await publish(bundle([gate1, gate2], [], 48, 5), 'seq-old');
    await expectRefused(hmi, old, 'UPDATE_ROLLBACK');
    const none = await publish(bundle([], [], 24), 'seq-empty');
    await expectRefused(hmi, none, 'UPDATE_PART_INVALID');
    // The same store published again (same sequence, same bytes) is no rollback.
    const again = await publish(await readFile(join(current, 'targets', 'hmi', (await readdir(join(current, 'targets', 'hmi')))[0]!), 'utf8'), 'seq-again');
    expect(await applyTrustUpdate({ trustPath: hmi.trust, repository: again, log: hmi.log, now: NOW })).toMatchObject({ status: 'applied', added: [], revoked: [] });

    // The holder of the targets key signs a 3 GiB hmi/trust.json: refused before anything is read into memory.
    const huge = await copyOf(again, 'huge-trust');
    const { MetadataKind: Kind, TargetFile } = await import('@tufjs/models');
    const { metaFileFor } = await import('../test/support/update-fixtures.ts');
    const targetsName = (await readdir(join(huge, 'metadata'))).find((n) => n.endsWith('.targets.json'))!;
    const targets = await readMetadata<Targets>(join(huge, 'metadata', targetsName), Kind.Targets);
    (targets.signed as { version: number }).version += 1;
    targets.signed.targets['hmi/trust.json'] = new TargetFile({ path: 'hmi/trust.json', length: 3 * 1024 ** 3, hashes: { sha256: '0'.repeat(64) } });
    resign(targets, [await publisher.key('targets')]);
    const targetsBytes = await writeMetadata(join(huge, 'metadata', `${targets.signed.version}.targets.json`), targets);
    const ts = await readMetadata<Timestamp>(join(huge, 'metadata', 'timestamp.json'), Kind.Timestamp);
    const snapshot = await readMetadata<Snapshot>(join(huge, 'metadata', `${ts.signed.snapshotMeta.version}.snapshot.json`), Kind.Snapshot);
    (snapshot.signed as { version: number }).version += 1;
    snapshot.signed.meta['targets.json'] = metaFileFor(targets.signed.version, targetsBytes);
    resign(snapshot, [await publisher.key('snapshot')]);
    const snapshotBytes = await writeMetadata(join(huge, 'metadata', `${snapshot.signed.version}.snapshot.json`), snapshot);
    (ts.signed as { version: number }).version += 1;
    (ts.signed as { snapshotMeta: unknown }).snapshotMeta = metaFileFor(snapshot.signed.version, snapshotBytes);
    resign(ts, [await publisher.key('timestamp')]);
    await writeMetadata(join(huge, 'metadata', 'timestamp.json'), ts);
    await expectRefused(hmi, huge, 'UPDATE_PART_INVALID');
  });

  it('refuses an update folder that is a link, holds a link, a FIFO or a file with a second name (UPDATE_REPOSITORY_UNREADABLE), never waiting on a FIFO', async () => {
    const hmi = await newHmi();
    const repo = repos.at(-1)!;
    const linked = join(dir, `linked-${++hmis}`);
    await symlink(repo, linked);
    await expectRefused(hmi, linked, 'UPDATE_REPOSITORY_UNREADABLE');
    const metadataLink = await copyOf(repo, 'metadata-link');
    await rm(join(metadataLink, 'metadata'), { recursive: true });
    await symlink(join(repo, 'metadata'), join(metadataLink, 'metadata'));
    await expectRefused(hmi, metadataLink, 'UPDATE_REPOSITORY_UNREADABLE');
    const fifo = await copyOf(repo, 'fifo');
    await rm(join(fifo, 'metadata', 'timestamp.json'));
    execFileSync('mkfifo', [join(fifo, 'metadata', 'timestamp.json')]);
    await expectRefused(hmi, fifo, 'UPDATE_REPOSITORY_UNREADABLE');
    const hard = await copyOf(repo, 'hard');
    await link(join(hard, 'metadata', 'timestamp.json'), join(dir, `second-name-${++hmis}`));
    await expectRefused(hmi, hard, 'UPDATE_REPOSITORY_UNREADABLE');
    const fifoFolder = join(dir, `fifo-folder-${++hmis}`);
    execFileSync('mkfifo', [fifoFolder]);
    await expectRefused(hmi, fifoFolder, 'UPDATE_REPOSITORY_UNREADABLE');
  });
});
