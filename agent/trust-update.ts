/**
 * Trust updates from a drive (issue 20.4): the HMI's trust store (kiosk keys
 * with their validity periods, revocations, policy) arrives as the
 * `hmi/trust.json` target of the same signed TUF repository the kiosks take
 * their databases from (docs/updates.md), verified with tuf-js against a root
 * the HMI pinned once (`trust pin-root`). This replaces typing keys into
 * every HMI, and a repository older than the one applied is refused.
 *
 *   <trust store's folder>/trust-updates/root.json       the pinned root
 *   <trust store's folder>/trust-updates/metadata/       the trusted TUF metadata
 *   <trust store's folder>/trust-updates/staging/        the update under way
 *
 * Applying: keys are the bundle's (a key already trusted keeps when it was
 * added), every revocation here or in the bundle stays (revocation is
 * permanent), the policy is the bundle's except the destination folder,
 * which is each HMI's own. Each change is logged before the store is
 * written; the trusted metadata moves forward only after the store is saved.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile, lstat, mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Metadata, MetadataKind, type Root } from '@tufjs/models';
import { Updater, type Fetcher } from 'tuf-js';
// tuf-js's index does not export its error classes; its root walk stops at a DownloadHTTPError 404.
import { DownloadHTTPError } from 'tuf-js/dist/error.js';
import { displayText, PortcullisError } from '../manifest/index.ts';
import { classifyTufError, TUF_FAILURE_ADVICE, tufFailureText, watchTufSteps, type FetchReport, type TufFailureCode, type TufStepWatch } from '../manifest/tuf-failure.ts';
import { HMI_TRUST_TARGET, targetSetProblems, UPDATE_METADATA_FOLDER, UPDATE_TARGETS_FOLDER } from '../manifest/update-repository.ts';
import type { LogEvent } from '../manifest/agent-log.ts';
import type { AuditSink } from './audit-log.ts';
import { writeFileAtomic } from './atomic-file.ts';
import { AgentError } from './errors.ts';
import { checkTrustStore, loadTrustStore, saveTrustStore, storeTime, type TrustStore } from './trust-store.ts';

export type TrustUpdateCode =
  | TufFailureCode
  | 'UPDATE_NOT_INITIALISED' // no root pinned: trust pin-root first
  | 'UPDATE_ALREADY_INITIALISED' // pin-root where a root is pinned
  | 'UPDATE_ROOT_INVALID' // the file given to pin-root is not a self-signed TUF root
  | 'UPDATE_REPOSITORY_UNREADABLE' // PATH is not a repository folder
  | 'UPDATE_TARGET_UNKNOWN' // a target outside the layout
  | 'UPDATE_PART_INVALID' // no hmi/trust.json, or one that is not a valid trust store
  | 'UPDATE_WRITE_FAILED'; // the trust-updates folder could not be written

export class TrustUpdateError extends PortcullisError<TrustUpdateCode> {}

const MAX_METADATA_BYTES = 4 * 1024 * 1024; // bytes
const MAX_TRUST_BYTES = 4 * 1024 * 1024; // bytes: a trust store of a few thousand keys

/** The sequence and digest of the last trust store applied from an update (trust-updates/applied.json). */
async function readApplied(path: string): Promise<{ sequence: number; sha256: string } | null> {
  const text = await readFile(path, 'utf8').catch((cause: unknown) => {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new TrustUpdateError('UPDATE_WRITE_FAILED', `cannot read ${path}: ${(cause as Error).message}`, { cause });
  });
  if (text === null) return null;
  const value = (() => {
    try {
      return JSON.parse(text) as { formatVersion?: unknown; sequence?: unknown; sha256?: unknown };
    } catch {
      return null;
    }
  })();
  if (value?.formatVersion !== 1 || !Number.isSafeInteger(value.sequence) || typeof value.sha256 !== 'string') {
    throw new TrustUpdateError('UPDATE_WRITE_FAILED', `${path} is not the record of the applied trust store: restore it, or remove it to accept the next one`);
  }
  return { sequence: value.sequence as number, sha256: value.sha256 };
}
const TRUSTED = ['root.json', 'timestamp.json', 'snapshot.json', 'targets.json'] as const;

export const updatesFolder = (trustPath: string): string => join(dirname(resolve(trustPath)), 'trust-updates');

/** A file the fetcher refused or could not read, with its kind (manifest/tuf-failure.ts FetchReport). */
class DriveReadError extends Error {
  readonly failure: string;
  constructor(failure: string, message: string) {
    super(message);
    this.name = 'DriveReadError';
    this.failure = failure;
  }
}

/**
 * tuf-js's Fetcher over a folder on a drive: each file read once, bounded,
 * into a private copy; never through a link (every folder on the way is
 * lstat'ed, the file opened with O_NOFOLLOW, a file with two names refused).
 */
class DriveFetcher implements Fetcher {
  report: FetchReport | null = null;
  private count = 0;
  private readonly root: string;
  private readonly scratch: string;

  constructor(root: string, scratch: string) {
    this.root = root;
    this.scratch = scratch;
  }

  async downloadFile<T>(url: string, maxLength: number, handler: (file: string) => Promise<T>): Promise<T> {
    this.report = { failure: null, copied: 0, maxLength };
    const path = resolve(fileURLToPath(url));
    const name = relative(this.root, path);
    const isRoot = /(^|[\\/])[0-9]+\.root\.json$/.test(name);
    if (path !== this.root && !path.startsWith(this.root + sep)) throw this.fail('OUTSIDE', `${displayText(url)} is outside the repository`);
    let at = this.root;
    for (const part of relative(this.root, dirname(path)).split(sep).filter((p) => p !== '')) {
      at = join(at, part);
      const info = await lstat(at).catch((cause: unknown) => (cause as NodeJS.ErrnoException));
      if (info instanceof Error) {
        if (info.code === 'ENOENT' && isRoot) throw new DownloadHTTPError(`${name}: not in the repository`, 404);
        throw this.fail(info.code ?? 'EIO', `${displayText(name)}: cannot be read (${info.code ?? 'EIO'})`);
      }
      if (info.isSymbolicLink()) throw this.fail('LINK', `${displayText(relative(this.root, at))} is a link: the repository is read as plain folders and files only`);
      if (!info.isDirectory()) throw this.fail('NOT_A_FILE', `${displayText(relative(this.root, at))} is not a folder`);
    }
    let handle;
    try {
      handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | (constants.O_NONBLOCK ?? 0));
    } catch (cause) {
      const errno = (cause as NodeJS.ErrnoException).code ?? 'EIO';
      if (errno === 'ENOENT' && isRoot) {
        this.report = null;
        throw new DownloadHTTPError(`${name}: not in the repository`, 404); // the end of the root chain
      }
      if (errno === 'ELOOP') throw this.fail('LINK', `${displayText(name)} is a link: the repository is read as plain folders and files only`);
      throw this.fail(errno, `${displayText(name)}: cannot be read (${errno})`);
    }
    let bytes: Buffer;
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw this.fail('NOT_A_FILE', `${displayText(name)}: not a regular file`);
      if (info.nlink > 1) throw this.fail('LINK', `${displayText(name)} has ${info.nlink} names (a hard link): the repository is read as plain files only`);
      if (info.size > maxLength) throw this.fail('TOO_LONG', `${displayText(name)}: ${info.size} bytes, more than the ${maxLength} the signed metadata allows`);
      bytes = Buffer.alloc(info.size + 1); // one byte more: a file that grows is seen
      let total = 0;
      for (;;) {
        const { bytesRead } = await handle.read(bytes, total, bytes.length - total, total).catch((cause: unknown) => {
          throw this.fail((cause as NodeJS.ErrnoException).code ?? 'EIO', `${displayText(name)}: reading it failed`);
        });
        if (bytesRead === 0) break;
        total += bytesRead;
        if (total > maxLength) throw this.fail('TOO_LONG', `${displayText(name)}: longer than the ${maxLength} bytes the signed metadata allows`);
        if (total === bytes.length) bytes = Buffer.concat([bytes, Buffer.alloc(Math.min(64 * 1024, maxLength + 1 - total))]);
      }
      bytes = bytes.subarray(0, total);
      this.report = { failure: null, copied: total, maxLength };
    } finally {
      await handle.close().catch(() => undefined);
    }
    const copy = join(this.scratch, `download-${++this.count}`);
    await writeFile(copy, bytes, { flag: 'wx', mode: 0o600 });
    try {
      return await handler(copy);
    } finally {
      await rm(copy, { force: true });
    }
  }

  async downloadBytes(url: string, maxLength: number): Promise<Buffer> {
    return this.downloadFile(url, maxLength, (file) => readFile(file));
  }

  private fail(failure: string, message: string): DriveReadError {
    this.report = { failure, copied: 0, maxLength: this.report?.maxLength ?? 0 };
    return new DriveReadError(failure, message);
  }
}

function refused(error: unknown, fetcher: DriveFetcher, watch: TufStepWatch, target: boolean): TrustUpdateError {
  if (error instanceof TrustUpdateError) return error;
  const code = classifyTufError(error, target ? null : watch.last, fetcher.report, target);
  const detail = error instanceof DriveReadError ? error.message : displayText(tufFailureText(error, target ? null : watch.last));
  return new TrustUpdateError(code, `${detail}: ${TUF_FAILURE_ADVICE[code]}; the trust store was not changed`, { cause: error });
}

/** `trust pin-root ROOT.json`: the root every later trust update is verified against (rotations included). */
export async function pinUpdateRoot(trustPath: string, rootBytes: Uint8Array, log: AuditSink): Promise<{ version: number; expires: string }> {
  let root: Metadata<Root>;
  try {
    root = Metadata.fromJSON(MetadataKind.Root, JSON.parse(Buffer.from(rootBytes).toString('utf8')) as Record<string, never>);
    root.verifyDelegate(MetadataKind.Root, root);
  } catch (cause) {
    throw new TrustUpdateError('UPDATE_ROOT_INVALID', `not a TUF root signed by its own root keys (${displayText((cause as Error).message)}): give the update repository's metadata/root.json`, { cause });
  }
  const folder = updatesFolder(trustPath);
  if (await stat(join(folder, 'root.json')).then(() => true, () => false)) {
    throw new TrustUpdateError('UPDATE_ALREADY_INITIALISED', `${folder} already has a pinned root: a new root arrives by trust update (a root rotation), never by pin-root`);
  }
  try {
    await mkdir(join(folder, 'metadata'), { recursive: true });
  } catch (cause) {
    throw new TrustUpdateError('UPDATE_WRITE_FAILED', `cannot make ${folder} (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`, { cause });
  }
  log.append({ event: 'trust.update-root-pinned', outcome: 'changed', code: 'TRUST_CHANGED', reason: `pinned the update root version ${root.signed.version} (keys: ${Object.entries(root.signed.roles).map(([r, v]) => `${r} ${v.keyIDs.map((k) => k.slice(0, 16)).join(',')}`).join('; ')})` });
  writeFileAtomic(join(folder, 'metadata', 'root.json'), rootBytes, 0o644);
  writeFileAtomic(join(folder, 'root.json'), rootBytes, 0o644);
  return { version: root.signed.version, expires: root.signed.expires };
}

export interface TrustUpdateResult {
  readonly status: 'applied' | 'unchanged';
  readonly store: TrustStore;
  readonly added: readonly string[]; // key ids newly trusted
  readonly revoked: readonly string[]; // key ids newly revoked
  readonly policyChanged: boolean;
  readonly versions: { readonly root: number; readonly targets: number; readonly timestamp: number };
}

/** The bundle applied to the local store: keys from the bundle, every revocation kept, the bundle's policy but the local destination. */
export function mergeTrustStore(local: TrustStore, bundle: TrustStore, now: Date): { store: TrustStore; added: string[]; revoked: string[]; policyChanged: boolean } {
  const revoked = [...local.revoked];
  const newlyRevoked: string[] = [];
  for (const r of bundle.revoked) {
    if (revoked.some((x) => x.keyId === r.keyId)) continue;
    revoked.push(r);
    newlyRevoked.push(r.keyId);
  }
  const keys = bundle.keys.map((k) => {
    const known = local.keys.find((l) => l.keyId === k.keyId);
    return known ? { ...k, addedAt: known.addedAt } : { ...k, addedAt: storeTime(now) };
  });
  // A key revoked here stays listed (trust list shows it) even when the bundle no longer names it.
  for (const k of local.keys) if (revoked.some((r) => r.keyId === k.keyId) && !keys.some((x) => x.keyId === k.keyId)) keys.push(k);
  const added = keys.filter((k) => !local.keys.some((l) => l.keyId === k.keyId)).map((k) => k.keyId);
  const policy = { ...bundle.policy, destination: local.policy.destination };
  const policyChanged = JSON.stringify(policy) !== JSON.stringify(local.policy);
  const store: TrustStore = { ...local, keys, revoked, policy, sequence: local.sequence + 1, updatedAt: storeTime(now), signature: null };
  return { store: checkTrustStore(store, 'the updated trust store'), added, revoked: newlyRevoked, policyChanged };
}

/** `trust update PATH`: verify, apply, log; refused with a TrustUpdateError (logged) and nothing changed. */
export async function applyTrustUpdate(options: { trustPath: string; repository: string; log: AuditSink; now: Date }): Promise<TrustUpdateResult> {
  const { trustPath, log, now } = options;
  const folder = updatesFolder(trustPath);
  const source = displayText(options.repository);
  const staging = join(folder, 'staging');
  try {
    if (!(await stat(join(folder, 'root.json')).then((i) => i.isFile(), () => false))) {
      throw new TrustUpdateError('UPDATE_NOT_INITIALISED', `no update root is pinned for ${displayText(trustPath)}: run "portcullis-agent trust pin-root ROOT.json --trust FILE" with the publisher's root first (docs/updates.md)`);
    }
    const repo = resolve(options.repository);
    // The repository folder itself, then its metadata folder: real folders, not links (a link on a drive can lead anywhere on the HMI).
    const kind = async (path: string): Promise<string> => lstat(path).then((i) => (i.isSymbolicLink() ? 'link' : i.isDirectory() ? 'folder' : 'other'), () => 'missing');
    const [repoKind, metadataKind] = [await kind(repo), await kind(join(repo, UPDATE_METADATA_FOLDER))];
    if (repoKind === 'link' || metadataKind === 'link' || (repoKind === 'other')) {
      throw new TrustUpdateError('UPDATE_REPOSITORY_UNREADABLE', `${source}${repoKind === 'link' || metadataKind === 'link' ? ' is or holds a link' : ' is not a folder'}: ${TUF_FAILURE_ADVICE.UPDATE_REPOSITORY_UNREADABLE}; the trust store was not changed`);
    }
    if (metadataKind !== 'folder') {
      throw new TrustUpdateError('UPDATE_REPOSITORY_UNREADABLE', `${source}: no ${UPDATE_METADATA_FOLDER}/ folder: name the update repository's folder on the drive (the one holding metadata/ and targets/)`);
    }
    await rm(staging, { recursive: true, force: true });
    const metadataDir = join(staging, 'metadata');
    const scratch = join(staging, 'scratch');
    try {
      await mkdir(metadataDir, { recursive: true });
      await mkdir(scratch, { recursive: true, mode: 0o700 });
      const trusted = await readdir(join(folder, 'metadata'));
      for (const name of TRUSTED) if (trusted.includes(name)) await copyFile(join(folder, 'metadata', name), join(metadataDir, name));
    } catch (cause) {
      throw new TrustUpdateError('UPDATE_WRITE_FAILED', `cannot stage the update in ${staging} (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`, { cause });
    }
    const before = await readFile(join(metadataDir, 'timestamp.json')).catch(() => null);
    const fetcher = new DriveFetcher(repo, scratch);
    const updater = new Updater({
      metadataDir,
      metadataBaseUrl: pathToFileURL(join(repo, UPDATE_METADATA_FOLDER)).href,
      targetBaseUrl: pathToFileURL(join(repo, UPDATE_TARGETS_FOLDER)).href,
      targetDir: staging,
      fetcher,
      config: { rootMaxLength: MAX_METADATA_BYTES, timestampMaxLength: MAX_METADATA_BYTES, snapshotMaxLength: MAX_METADATA_BYTES, targetsMaxLength: MAX_METADATA_BYTES, fetchRetries: 0, fetchRetry: false },
    });
    const watch = watchTufSteps(updater);
    try {
      await updater.refresh();
    } catch (error) {
      throw refused(error, fetcher, watch, false);
    }
    const roleVersion = async (name: string): Promise<number> => ((JSON.parse(await readFile(join(metadataDir, name), 'utf8')) as { signed: { version: number } }).signed.version);
    const targetsMd = Metadata.fromJSON(MetadataKind.Targets, JSON.parse(await readFile(join(metadataDir, 'targets.json'), 'utf8')) as Record<string, never>);
    const problems = targetSetProblems(Object.keys(targetsMd.signed.targets));
    if (problems.length > 0) throw new TrustUpdateError('UPDATE_TARGET_UNKNOWN', `the signed target list holds ${problems.map(displayText).join('; ')}: update the agent, or the publisher's set`);
    const versions = { root: await roleVersion('root.json'), targets: await roleVersion('targets.json'), timestamp: await roleVersion('timestamp.json') };
    const after = await readFile(join(metadataDir, 'timestamp.json'));
    const local = loadTrustStore(trustPath, { allowMissing: true, now });
    if (before !== null && before.equals(after)) {
      log.append({ event: 'trust.updated', outcome: 'info', code: 'UPDATE_UNCHANGED', reason: `${source}: already applied (targets version ${versions.targets}, timestamp version ${versions.timestamp}); nothing was changed` });
      return { status: 'unchanged', store: local, added: [], revoked: [], policyChanged: false, versions };
    }
    if (targetsMd.signed.delegations) throw new TrustUpdateError('UPDATE_TARGET_UNKNOWN', 'the signed target list delegates to other roles: this format has none; update the agent, or the publisher\'s set');
    const info = await updater.getTargetInfo(HMI_TRUST_TARGET).catch((error: unknown) => {
      throw refused(error, fetcher, watch, false);
    });
    if (!info) throw new TrustUpdateError('UPDATE_PART_INVALID', `the repository carries no ${HMI_TRUST_TARGET}: the publisher builds it from parts/hmi/trust.json (docs/updates.md)`);
    // Read into memory whole: bounded before a byte is read, whatever length the targets key signed.
    if (info.length > MAX_TRUST_BYTES) throw new TrustUpdateError('UPDATE_PART_INVALID', `${HMI_TRUST_TARGET} is signed as ${info.length} bytes, more than the ${MAX_TRUST_BYTES} a trust store can need: not read`);
    const bundlePath = join(staging, 'trust.json');
    try {
      await updater.downloadTarget(info, bundlePath);
    } catch (error) {
      throw refused(error, fetcher, watch, true);
    }
    let bundle: TrustStore;
    try {
      bundle = checkTrustStore(JSON.parse(await readFile(bundlePath, 'utf8')), HMI_TRUST_TARGET);
    } catch (cause) {
      throw new TrustUpdateError('UPDATE_PART_INVALID', `${HMI_TRUST_TARGET} is not a trust store this agent takes: ${displayText((cause as Error).message)}`, { cause });
    }
    if (bundle.keys.length === 0) {
      throw new TrustUpdateError('UPDATE_PART_INVALID', `${HMI_TRUST_TARGET} names no kiosk key: applied, it would stop every transfer at this HMI (to stop them on purpose, revoke the keys: a revocation is kept and logged)`);
    }
    // The bundle itself may not go back: its sequence grows with every change made to it on the workstation.
    const appliedPath = join(folder, 'applied.json');
    const applied = await readApplied(appliedPath);
    const bundleDigest = createHash('sha256').update(await readFile(bundlePath)).digest('hex');
    if (applied && (bundle.sequence < applied.sequence || (bundle.sequence === applied.sequence && bundleDigest !== applied.sha256))) {
      throw new TrustUpdateError('UPDATE_ROLLBACK', `${HMI_TRUST_TARGET} is sequence ${bundle.sequence}${bundle.sequence === applied.sequence ? ' with other contents than' : ', older than'} the trust store applied here (sequence ${applied.sequence}): an older trust store cannot come back inside a newer repository; publish the newest one`);
    }
    const merged = mergeTrustStore(local, bundle, now);
    // Log first: a change that cannot be logged is not made.
    const tuf = `targets version ${versions.targets}, timestamp version ${versions.timestamp}, root version ${versions.root}`;
    const events: LogEvent[] = [
      ...merged.added.map((keyId) => ({ event: 'trust.key-added', outcome: 'changed' as const, code: 'TRUST_CHANGED', reason: `trusted kiosk key ${keyId} from the signed trust update ${source} (${tuf})`, keyId })),
      ...merged.revoked.map((keyId) => ({ event: 'trust.key-revoked', outcome: 'changed' as const, code: 'TRUST_CHANGED', reason: `revoked kiosk key ${keyId} by the signed trust update ${source} (${tuf})`, keyId })),
      ...(merged.policyChanged ? [{ event: 'trust.policy-changed', outcome: 'changed' as const, code: 'TRUST_CHANGED', reason: `policy is now ${JSON.stringify(merged.store.policy)} by the signed trust update ${source}` }] : []),
      { event: 'trust.updated', outcome: 'changed', code: 'TRUST_CHANGED', reason: `applied the signed trust update ${source} (${tuf}): ${merged.store.keys.length} keys, ${merged.store.revoked.length} revoked (trust store sequence ${merged.store.sequence})` },
    ];
    if (log.appendMany) log.appendMany(events);
    else for (const event of events) log.append(event);
    try {
      saveTrustStore(trustPath, merged.store);
    } catch (cause) {
      throw new TrustUpdateError('UPDATE_WRITE_FAILED', `writing the trust store failed: ${(cause as Error).message}`, { cause });
    }
    try {
      writeFileAtomic(appliedPath, `${JSON.stringify({ formatVersion: 1, sequence: bundle.sequence, sha256: bundleDigest })}\n`, 0o644);
    } catch (cause) {
      throw new TrustUpdateError('UPDATE_WRITE_FAILED', `writing ${appliedPath} failed: ${(cause as Error).message}`, { cause });
    }
    // The trusted metadata moves forward only now, timestamp last: one file at a time, each by rename.
    for (const name of ['root.json', 'targets.json', 'snapshot.json', 'timestamp.json']) {
      await rename(join(metadataDir, name), join(folder, 'metadata', name));
    }
    return { status: 'applied', store: merged.store, added: merged.added, revoked: merged.revoked, policyChanged: merged.policyChanged, versions };
  } catch (error) {
    const code = error instanceof PortcullisError ? String((error as PortcullisError).code) : 'INTERNAL_ERROR';
    if (!(error instanceof AgentError && error.code === 'LOG_WRITE_FAILED')) {
      try {
        log.append({ event: 'trust.change-failed', outcome: 'refused', code, reason: `the trust update ${source} was refused: ${error instanceof Error ? error.message : String(error)}` });
      } catch {
        // the refusal stands either way; the error says why
      }
    }
    throw error;
  } finally {
    await rm(staging, { recursive: true, force: true }).catch(() => undefined);
  }
}
