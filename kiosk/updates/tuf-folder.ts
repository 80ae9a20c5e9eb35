/**
 * Verifies an offline TUF repository in a folder (a drive) with tuf-js's
 * client, against the kiosk's trusted metadata, and copies its targets into a
 * staging folder. tuf-js does the TUF client workflow (spec §5: root chain,
 * timestamp, snapshot, targets; signatures, thresholds, versions, expiry,
 * lengths and hashes); this file gives it a fetcher that reads the folder
 * instead of HTTP, and turns what it throws into the kiosk's update codes.
 *
 * Every file is copied off the drive into a private file before tuf-js looks
 * at it: what is verified is what is kept, never a second read of the drive.
 */
import { constants, createWriteStream } from 'node:fs';
import { lstat, mkdir, open, readdir, readFile, rm, stat, statfs } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Metadata, MetadataKind, type TargetFile, type Targets } from '@tufjs/models';
import { Updater, type Fetcher } from 'tuf-js';
// tuf-js's index does not export its error classes; its root walk stops at a DownloadHTTPError 404.
import { DownloadHTTPError } from 'tuf-js/dist/error.js';
import { displayText } from '../../manifest/index.ts';
import { classifyTufError, TUF_FAILURE_ADVICE, tufFailureText, watchTufSteps, type FetchReport, type TufFailureCode, type TufStepWatch } from '../../manifest/tuf-failure.ts';
import { classifyTarget, targetSetProblems, UPDATE_METADATA_FOLDER, UPDATE_TARGETS_FOLDER, type UpdateTarget } from '../../manifest/update-repository.ts';
import { UpdateError } from '../core/update-set.ts';

/** The trusted metadata files, as tuf-js keeps them in its metadata folder. */
export const TRUSTED_FILES = ['root.json', 'timestamp.json', 'snapshot.json', 'targets.json'] as const;

const MAX_METADATA_BYTES = 4 * 1024 * 1024; // bytes: far above four roles with a few hundred targets

/** A read failure of the drive, kept so a failure tuf-js wraps in its own words is still named right. */
class FolderReadError extends Error {
  readonly path: string;
  readonly failure: string;
  constructor(path: string, failure: string, message: string) {
    super(message);
    this.name = 'FolderReadError';
    this.path = path;
    this.failure = failure;
  }
}

export interface FolderFetcherOptions {
  /** The repository folder; nothing outside it is read. */
  readonly root: string;
  /** A private folder for the copies tuf-js verifies. */
  readonly scratch: string;
  /** Called before each file of the repository is read (progress; tests pull the drive here). */
  readonly onRead?: (relativePath: string) => void | Promise<void>;
}

/**
 * tuf-js's Fetcher over a folder: file: URLs below `root`, each file copied
 * off before use. Never through a link: every folder on the way must be a
 * real folder (lstat), the file is opened with O_NOFOLLOW and must be a
 * regular file with one name (a hard link is a link too).
 */
export class FolderFetcher implements Fetcher {
  /** What happened to the last file asked for (manifest/tuf-failure.ts reads it). */
  report: FetchReport | null = null;
  private count = 0;
  private readonly options: FolderFetcherOptions;
  constructor(options: FolderFetcherOptions) {
    this.options = options;
  }

  private pathOf(url: string): string {
    const path = resolve(fileURLToPath(url));
    const root = resolve(this.options.root);
    if (path !== root && !path.startsWith(root + sep)) throw this.fail(path, 'OUTSIDE', `${displayText(url)} is outside the repository`);
    return path;
  }

  async downloadFile<T>(url: string, maxLength: number, handler: (file: string) => Promise<T>): Promise<T> {
    this.report = { failure: null, copied: 0, maxLength };
    const source = this.pathOf(url);
    const name = relative(this.options.root, source);
    await this.options.onRead?.(name);
    const copy = join(this.options.scratch, `download-${++this.count}`);
    try {
      await this.copyOff(source, name, copy, maxLength);
      return await handler(copy);
    } finally {
      await rm(copy, { force: true });
    }
  }

  async downloadBytes(url: string, maxLength: number): Promise<Buffer> {
    return this.downloadFile(url, maxLength, (file) => readFile(file));
  }

  /** Every folder between the repository's root and `source` must be a folder, not a link to one. */
  private async checkFolders(source: string, name: string): Promise<void> {
    const parts = relative(this.options.root, dirname(source)).split(sep).filter((p) => p !== '');
    let at = resolve(this.options.root);
    for (const part of parts) {
      at = join(at, part);
      const info = await lstat(at).catch((cause: unknown) => {
        throw this.fail(source, (cause as NodeJS.ErrnoException).code ?? 'EIO', `${displayText(name)}: cannot be read (${(cause as NodeJS.ErrnoException).code ?? 'EIO'})`);
      });
      if (info.isSymbolicLink()) throw this.fail(source, 'LINK', `${displayText(relative(this.options.root, at))} is a link: the repository is read as plain folders and files only`);
      if (!info.isDirectory()) throw this.fail(source, 'NOT_A_FILE', `${displayText(relative(this.options.root, at))} is not a folder`);
    }
  }

  /** Copies one file off the drive, at most `maxLength` bytes, never through a link. */
  private async copyOff(source: string, name: string, copy: string, maxLength: number): Promise<void> {
    await this.checkFolders(source, name).catch((error: unknown) => {
      // A root version that is not there is how TUF's root walk ends (spec §5.3.3), even when its folder is missing.
      if (error instanceof FolderReadError && error.failure === 'ENOENT' && /(^|\/)[0-9]+\.root\.json$/.test(name)) throw new DownloadHTTPError(`${name}: not in the repository`, 404);
      throw error;
    });
    let handle;
    try {
      handle = await open(source, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (cause) {
      const errno = (cause as NodeJS.ErrnoException).code ?? 'EIO';
      // A root version that is not there is how TUF's root walk ends (spec §5.3.3).
      if (errno === 'ENOENT' && /(^|\/)[0-9]+\.root\.json$/.test(name)) {
        this.report = null;
        throw new DownloadHTTPError(`${name}: not in the repository`, 404);
      }
      if (errno === 'ELOOP') throw this.fail(source, 'LINK', `${displayText(name)} is a link: the repository is read as plain folders and files only`);
      throw this.fail(source, errno, `${displayText(name)}: cannot be read (${errno})`);
    }
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw this.fail(source, 'NOT_A_FILE', `${displayText(name)}: not a regular file`);
      if (info.nlink > 1) throw this.fail(source, 'LINK', `${displayText(name)} has ${info.nlink} names (a hard link): the repository is read as plain files only`);
      if (info.size > maxLength) throw this.fail(source, 'TOO_LONG', `${displayText(name)}: ${info.size} bytes, more than the ${maxLength} the signed metadata allows`);
      const out = createWriteStream(copy, { flags: 'wx', mode: 0o600 });
      let read = 0;
      const reader = handle.createReadStream({ autoClose: false, highWaterMark: 1024 * 1024 });
      reader.on('data', (chunk: string | Buffer) => {
        read += chunk.length;
        if (read > maxLength) reader.destroy(this.fail(source, 'TOO_LONG', `${displayText(name)}: longer than the ${maxLength} bytes the signed metadata allows`));
      });
      try {
        await pipeline(reader, out);
      } catch (cause) {
        if (cause instanceof FolderReadError) throw cause;
        const errno = (cause as NodeJS.ErrnoException).code ?? 'EIO';
        if (errno === 'ENOSPC' || errno === 'EDQUOT') throw new UpdateError('UPDATE_DISK_FULL', `no room in the kiosk's updates folder while copying ${displayText(name)}: free space there, then import again; nothing was changed`, { cause });
        throw this.fail(source, errno, `${displayText(name)}: reading it failed (${errno})`);
      }
      this.report = { failure: null, copied: read, maxLength };
    } finally {
      await handle.close().catch(() => undefined);
    }
  }

  private fail(path: string, failure: string, message: string): FolderReadError {
    const error = new FolderReadError(path, failure, message);
    this.report = { failure, copied: 0, maxLength: this.report?.maxLength ?? 0 };
    return error;
  }
}

/** One target, verified and copied into the staging folder. */
export interface VerifiedTarget {
  readonly target: UpdateTarget;
  readonly path: string; // the staged copy
  readonly length: number; // bytes
  readonly sha256: string;
}

export interface RoleVersions {
  readonly root: { version: number; expires: string };
  readonly targets: { version: number; expires: string };
  readonly snapshot: { version: number; expires: string };
  readonly timestamp: { version: number; expires: string };
}

export interface VerifiedRepository {
  readonly roles: RoleVersions;
  /** The timestamp is the one already trusted: the repository holds nothing newer. */
  readonly unchanged: boolean;
  /** Every target path the signed targets list, and the ones copied (the `kinds` asked for). */
  readonly listed: readonly UpdateTarget[];
  readonly targets: readonly VerifiedTarget[];
}

export interface VerifyRepositoryOptions {
  /** The repository folder (its metadata/ and targets/). */
  readonly repository: string;
  /** tuf-js's metadata folder: holds the trusted metadata on entry, the new trusted metadata on return. */
  readonly metadataDir: string;
  /** Where verified targets are written, one folder per kind. */
  readonly targetDir: string;
  /** A private folder for copies being verified. */
  readonly scratch: string;
  /** The kinds of target to copy (the kiosk does not need the HMIs' trust store). */
  readonly kinds: ReadonlySet<UpdateTarget['kind']>;
  readonly onRead?: (relativePath: string) => void | Promise<void>;
}

/** The most a kiosk takes of each kind of part: far above real ones (main.cvd is about 170 MB), far below a disk. */
export const PART_LIMITS: Readonly<Record<UpdateTarget['kind'], number>> = {
  clamav: 1024 ** 3, // bytes, one database
  yara: 16 * 1024 ** 2, // bytes, one rule file
  allowlist: 64 * 1024 ** 2, // bytes, one allowlist file
  policy: 1024 ** 2, // bytes
  'hmi-trust': 4 * 1024 ** 2, // bytes (not copied by the kiosk)
};
/** The most parts one set holds (its description keeps at most 256). */
export const MAX_PARTS = 128;

/**
 * Before a byte is copied: no more parts than a set holds, none longer than
 * its kind allows, and room for all of them (and the largest once more, the
 * copy being verified) in the updates folder. A signed list of a 64 GiB
 * policy fills no disk.
 */
async function checkSizes(wanted: readonly UpdateTarget[], targets: Targets, targetDir: string): Promise<void> {
  if (wanted.length > MAX_PARTS) throw new UpdateError('UPDATE_PART_INVALID', `the signed target list holds ${wanted.length} parts for this kiosk, more than the ${MAX_PARTS} a set holds: publish fewer, larger rule files; nothing was changed`);
  let total = 0;
  let largest = 0;
  for (const target of wanted) {
    const length = targets.targets[target.path]?.length ?? 0;
    if (length > PART_LIMITS[target.kind]) {
      throw new UpdateError('UPDATE_PART_INVALID', `${target.path} is signed as ${length} bytes, more than the ${PART_LIMITS[target.kind]} a kiosk takes for a ${target.kind} part: not copied; nothing was changed`);
    }
    total += length;
    largest = Math.max(largest, length);
  }
  const room = await statfs(targetDir).then((s) => s.bavail * s.bsize, () => null);
  if (room !== null && total + largest > room) {
    throw new UpdateError('UPDATE_DISK_FULL', `the set needs ${total + largest} bytes in the kiosk's updates folder and ${room} are free: free space there, then import again; nothing was changed`);
  }
}

/** Reads the trusted metadata a verification starts from, to tell "nothing newer" apart. */
async function readOptional(path: string): Promise<Buffer | null> {
  return readFile(path).catch(() => null);
}

/**
 * Verifies `repository` against the trusted metadata in `metadataDir` and
 * copies the targets of the kinds asked for into `targetDir/<kind folder>/`.
 * Throws an UpdateError naming what failed; the caller discards every folder
 * it passed on failure.
 */
export async function verifyRepository(options: VerifyRepositoryOptions): Promise<VerifiedRepository> {
  const root = resolve(options.repository);
  const info = await lstat(root).catch(() => null);
  if (info?.isSymbolicLink()) throw new UpdateError('UPDATE_REPOSITORY_UNREADABLE', `${displayText(options.repository)} is a link: name the repository's folder itself (a link on a drive can lead anywhere)`);
  if (!info?.isDirectory()) throw new UpdateError('UPDATE_REPOSITORY_UNREADABLE', `${displayText(options.repository)}: no such folder: name the update repository's folder (the one holding metadata/ and targets/)`);
  const hasMetadata = await stat(join(root, UPDATE_METADATA_FOLDER)).then((i) => i.isDirectory(), () => false);
  if (!hasMetadata) throw new UpdateError('UPDATE_REPOSITORY_UNREADABLE', `${displayText(options.repository)}: no ${UPDATE_METADATA_FOLDER}/ folder: not an update repository (portcullis-update build writes one)`);
  await mkdir(options.scratch, { recursive: true, mode: 0o700 });
  const before = await readOptional(join(options.metadataDir, 'timestamp.json'));
  const fetcher = new FolderFetcher({ root, scratch: options.scratch, ...(options.onRead ? { onRead: options.onRead } : {}) });
  const updater = new Updater({
    metadataDir: options.metadataDir,
    metadataBaseUrl: pathToFileURL(join(root, UPDATE_METADATA_FOLDER)).href,
    targetBaseUrl: pathToFileURL(join(root, UPDATE_TARGETS_FOLDER)).href,
    targetDir: options.targetDir,
    fetcher,
    config: { rootMaxLength: MAX_METADATA_BYTES, timestampMaxLength: MAX_METADATA_BYTES, snapshotMaxLength: MAX_METADATA_BYTES, targetsMaxLength: MAX_METADATA_BYTES, fetchRetries: 0, fetchRetry: false },
  });
  const watch = watchTufSteps(updater);
  try {
    await updater.refresh();
  } catch (error) {
    throw classify(error, fetcher, watch, 'metadata');
  }
  // The targets metadata tuf-js has just verified and kept: the list of parts.
  const targetsMd = Metadata.fromJSON(MetadataKind.Targets, JSON.parse(await readFile(join(options.metadataDir, 'targets.json'), 'utf8')) as Record<string, never>);
  const paths = Object.keys(targetsMd.signed.targets).sort();
  const problems = targetSetProblems(paths);
  if (problems.length > 0) throw new UpdateError('UPDATE_TARGET_UNKNOWN', `the signed target list holds ${problems.map(displayText).join('; ')}: this kiosk does not apply part of a set; update the kiosk software or the publisher's set`);
  if (targetsMd.signed.delegations) throw new UpdateError('UPDATE_TARGET_UNKNOWN', 'the signed target list delegates to other roles: this format has none; update the kiosk software or the publisher\'s set; nothing was changed');
  const listed = paths.map((p) => classifyTarget(p)!);
  const wanted = listed.filter((t) => options.kinds.has(t.kind));
  await checkSizes(wanted, targetsMd.signed, options.targetDir);
  const targets: VerifiedTarget[] = [];
  for (const target of wanted) {
    let info: TargetFile | undefined;
    try {
      info = await updater.getTargetInfo(target.path);
    } catch (error) {
      throw classify(error, fetcher, watch, 'metadata');
    }
    if (!info) throw new UpdateError('UPDATE_METADATA_INVALID', `${target.path} is listed but tuf-js finds no target info for it`);
    const folder = join(options.targetDir, target.path.split('/')[0]!);
    await mkdir(folder, { recursive: true, mode: 0o755 });
    const path = join(folder, target.file);
    try {
      await updater.downloadTarget(info, path);
    } catch (error) {
      throw classify(error, fetcher, watch, target.path);
    }
    targets.push({ target, path, length: info.length, sha256: info.hashes.sha256 ?? '' });
  }
  const read = async (name: string): Promise<Record<string, unknown>> => JSON.parse(await readFile(join(options.metadataDir, name), 'utf8')) as Record<string, unknown>;
  const role = async (name: string): Promise<{ version: number; expires: string }> => {
    const signed = (await read(name)).signed as { version: number; expires: string };
    return { version: signed.version, expires: signed.expires };
  };
  const after = await readOptional(join(options.metadataDir, 'timestamp.json'));
  return {
    roles: { root: await role('root.json'), targets: await role('targets.json'), snapshot: await role('snapshot.json'), timestamp: await role('timestamp.json') },
    unchanged: before !== null && after !== null && before.equals(after),
    listed,
    targets,
  };
}

/** The kiosk's trusted metadata files present in `dir` (the pinned root alone before the first import). */
export async function trustedFilesIn(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return TRUSTED_FILES.filter((f) => names.includes(f));
}

/** What went wrong, as an update code (manifest/tuf-failure.ts: by error class and the client's state). */
function classify(error: unknown, fetcher: FolderFetcher, watch: TufStepWatch, what: string): UpdateError {
  if (error instanceof UpdateError) return error;
  const target = what !== 'metadata';
  const code: TufFailureCode = classifyTufError(error, target ? null : watch.last, fetcher.report, target);
  const detail = error instanceof FolderReadError ? error.message : displayText(tufFailureText(error, target ? null : watch.last));
  const where = target ? `${what}: ` : '';
  if (code === 'UPDATE_DISK_FULL') return new UpdateError(code, `no room in the kiosk's updates folder${target ? ` for ${what}` : ''}: free space there, then import again; nothing was changed`, { cause: error });
  return new UpdateError(code, `${where}${detail}: ${TUF_FAILURE_ADVICE[code]}; nothing was changed`, { cause: error });
}
