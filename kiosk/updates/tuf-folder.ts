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
import { mkdir, open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Metadata, MetadataKind, type TargetFile } from '@tufjs/models';
import { Updater, type Fetcher } from 'tuf-js';
// tuf-js's index does not export its error classes; its root walk stops at a DownloadHTTPError 404.
import { DownloadHTTPError } from 'tuf-js/dist/error.js';
import { displayText } from '../../manifest/index.ts';
import { classifyTarget, classifyTufFailure, targetSetProblems, TUF_FAILURE_ADVICE, tufMessage, UPDATE_METADATA_FOLDER, UPDATE_TARGETS_FOLDER, type TufFailureCode, type UpdateTarget } from '../../manifest/update-repository.ts';
import { UpdateError, type UpdateErrorCode } from '../core/update-set.ts';

/** The trusted metadata files, as tuf-js keeps them in its metadata folder. */
export const TRUSTED_FILES = ['root.json', 'timestamp.json', 'snapshot.json', 'targets.json'] as const;

const MAX_METADATA_BYTES = 4 * 1024 * 1024; // bytes: far above four roles with a few hundred targets

/** A read failure of the drive, kept so a failure tuf-js wraps in its own words is still named right. */
class FolderReadError extends Error {
  readonly path: string;
  readonly errno: string;
  constructor(path: string, errno: string, message: string) {
    super(message);
    this.name = 'FolderReadError';
    this.path = path;
    this.errno = errno;
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

/** tuf-js's Fetcher over a folder: file: URLs below `root`, each file copied off before use. */
export class FolderFetcher implements Fetcher {
  readonly failures: FolderReadError[] = [];
  private count = 0;
  private readonly options: FolderFetcherOptions;
  constructor(options: FolderFetcherOptions) {
    this.options = options;
  }

  private pathOf(url: string): string {
    const path = resolve(fileURLToPath(url));
    const root = resolve(this.options.root);
    if (path !== root && !path.startsWith(root + sep)) throw new FolderReadError(path, 'EOUTSIDE', `${displayText(url)} is outside the repository`);
    return path;
  }

  async downloadFile<T>(url: string, maxLength: number, handler: (file: string) => Promise<T>): Promise<T> {
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

  /** Copies one file off the drive, at most `maxLength` bytes, never through a link. */
  private async copyOff(source: string, name: string, copy: string, maxLength: number): Promise<void> {
    let handle;
    try {
      handle = await open(source, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (cause) {
      const errno = (cause as NodeJS.ErrnoException).code ?? 'EIO';
      // A root version that is not there is how TUF's root walk ends (spec §5.3.3).
      if (errno === 'ENOENT' && /(^|\/)[0-9]+\.root\.json$/.test(name)) throw new DownloadHTTPError(`${name}: not in the repository`, 404);
      throw this.fail(source, errno, `${displayText(name)}: cannot be read (${errno})`);
    }
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw this.fail(source, 'ENOTFILE', `${displayText(name)}: not a regular file`);
      if (info.size > maxLength) throw this.fail(source, 'ETOOBIG', `${displayText(name)}: ${info.size} bytes, more than the ${maxLength} the signed metadata allows`);
      const out = createWriteStream(copy, { flags: 'wx', mode: 0o600 });
      let read = 0;
      const reader = handle.createReadStream({ autoClose: false, highWaterMark: 1024 * 1024 });
      reader.on('data', (chunk: string | Buffer) => {
        read += chunk.length;
        if (read > maxLength) reader.destroy(this.fail(source, 'ETOOBIG', `${displayText(name)}: longer than the ${maxLength} bytes the signed metadata allows`));
      });
      try {
        await pipeline(reader, out);
      } catch (cause) {
        if (cause instanceof FolderReadError) throw cause;
        const errno = (cause as NodeJS.ErrnoException).code ?? 'EIO';
        if (errno === 'ENOSPC' || errno === 'EDQUOT') throw new UpdateError('UPDATE_DISK_FULL', `no room in the kiosk's updates folder while copying ${displayText(name)}: free space there, then import again; nothing was changed`, { cause });
        throw this.fail(source, errno, `${displayText(name)}: reading it failed (${errno})`);
      }
    } finally {
      await handle.close().catch(() => undefined);
    }
  }

  private fail(path: string, errno: string, message: string): FolderReadError {
    const error = new FolderReadError(path, errno, message);
    this.failures.push(error);
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
  const info = await stat(root).catch(() => null);
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
  try {
    await updater.refresh();
  } catch (error) {
    throw classify(error, fetcher, 'metadata');
  }
  // The targets metadata tuf-js has just verified and kept: the list of parts.
  const targetsMd = Metadata.fromJSON(MetadataKind.Targets, JSON.parse(await readFile(join(options.metadataDir, 'targets.json'), 'utf8')) as Record<string, never>);
  const paths = Object.keys(targetsMd.signed.targets).sort();
  const problems = targetSetProblems(paths);
  if (problems.length > 0) throw new UpdateError('UPDATE_TARGET_UNKNOWN', `the signed target list holds ${problems.map(displayText).join('; ')}: this kiosk does not apply part of a set; update the kiosk software or the publisher's set`);
  const listed = paths.map((p) => classifyTarget(p)!);
  const targets: VerifiedTarget[] = [];
  for (const target of listed.filter((t) => options.kinds.has(t.kind))) {
    let info: TargetFile | undefined;
    try {
      info = await updater.getTargetInfo(target.path);
    } catch (error) {
      throw classify(error, fetcher, 'metadata');
    }
    if (!info) throw new UpdateError('UPDATE_METADATA_INVALID', `${target.path} is listed but tuf-js finds no target info for it`);
    const folder = join(options.targetDir, target.path.split('/')[0]!);
    await mkdir(folder, { recursive: true, mode: 0o755 });
    const path = join(folder, target.file);
    try {
      await updater.downloadTarget(info, path);
    } catch (error) {
      throw classify(error, fetcher, target.path);
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

/** A TUF error's text. */
function textOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** What went wrong, as an update code (manifest/update-repository.ts reads tuf-js's words). */
function classify(error: unknown, fetcher: FolderFetcher, what: string): UpdateError {
  if (error instanceof UpdateError) return error;
  const text = textOf(error);
  const failure = fetcher.failures[0] ?? (error instanceof FolderReadError ? error : null);
  const errno = (error as NodeJS.ErrnoException).code;
  const code: UpdateErrorCode = classifyTufFailure(text, failure?.errno ?? (errno === 'ENOSPC' || errno === 'EDQUOT' ? errno : null), what !== 'metadata');
  const detail = failure ? failure.message : displayText(tufMessage(text));
  const where = what === 'metadata' ? '' : `${what}: `;
  if (code === 'UPDATE_DISK_FULL') return new UpdateError(code, `no room in the kiosk's updates folder${what === 'metadata' ? '' : ` for ${what}`}: free space there, then import again; nothing was changed`, { cause: error });
  return new UpdateError(code, `${where}${detail}: ${TUF_FAILURE_ADVICE[code as TufFailureCode]}; nothing was changed`, { cause: error });
}
