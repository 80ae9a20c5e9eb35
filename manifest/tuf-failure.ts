/**
 * Why a TUF client refused an update repository, the same code at the kiosk
 * and at the HMI, decided from error classes and the client's state, never
 * from the words of a message.
 *
 * tuf-js throws typed errors from its trusted-metadata store (spec §5.3-5.6),
 * but wraps a snapshot or targets failure in a RuntimeError that keeps only
 * the text. So the store's four update steps are watched on the updater
 * itself: the error each step throws is kept with the step and the bytes it
 * was given, before tuf-js wraps it. If a new tuf-js renames those methods,
 * `watchTufSteps` throws at once (the attack tests fail, not the mapping).
 * No I/O here: the fetchers report what they saw on the drive.
 */
import { LengthOrHashMismatchError, UnsignedMetadataError } from '@tufjs/models/dist/error.js';
import { BadVersionError, DownloadLengthMismatchError, ExpiredMetadataError, PersistError } from 'tuf-js/dist/error.js';

export type TufFailureCode =
  | 'UPDATE_REPOSITORY_UNREADABLE' // the repository holds a link, a special file or a path outside it
  | 'UPDATE_INCOMPLETE'
  | 'UPDATE_EXPIRED'
  | 'UPDATE_SIGNATURE_INVALID'
  | 'UPDATE_ROLLBACK'
  | 'UPDATE_METADATA_INVALID'
  | 'UPDATE_TARGET_MISMATCH'
  | 'UPDATE_DISK_FULL'
  | 'UPDATE_WRITE_FAILED';

/** What a person does about each refusal. */
export const TUF_FAILURE_ADVICE: Readonly<Record<TufFailureCode, string>> = {
  UPDATE_REPOSITORY_UNREADABLE: 'the repository folder holds a link, a special file or a path outside it: copy the publisher\'s folder onto the drive again as plain files and folders',
  UPDATE_INCOMPLETE: 'the repository on the drive is incomplete (pulled out, or copied only in part): copy the whole folder again',
  UPDATE_EXPIRED: 'the repository is too old to be trusted (or this computer\'s clock is wrong): have the publisher run portcullis-update build again',
  UPDATE_SIGNATURE_INVALID: 'it is not signed by the keys trusted here: do not use this drive; tell security staff',
  UPDATE_ROLLBACK: 'it is older than what is installed here: use the newest repository',
  UPDATE_METADATA_INVALID: 'the repository\'s metadata does not fit together: copy the whole folder again from the publisher',
  UPDATE_TARGET_MISMATCH: 'a file differs from what was signed (changed after signing): do not use this drive; tell security staff',
  UPDATE_DISK_FULL: 'there is no room to take it in: free space, then try again',
  UPDATE_WRITE_FAILED: 'the trusted metadata could not be written here: check the folder\'s permissions and space',
};

/** The store's steps (spec §5.3 root, §5.4 timestamp, §5.5 snapshot, §5.6 targets). */
export type TufStep = 'root' | 'timestamp' | 'snapshot' | 'targets';

const STEPS: Readonly<Record<string, TufStep>> = { updateRoot: 'root', updateTimestamp: 'timestamp', updateSnapshot: 'snapshot', updateDelegatedTargets: 'targets' };

/** The last store step that failed: its error as thrown, and the metadata bytes it was given. */
export interface TufStepFailure {
  readonly step: TufStep;
  readonly error: unknown;
  readonly data: Uint8Array | null;
  /** The trusted versions the step compared against, read from the store when it failed. */
  readonly trusted: { readonly root: number | null; readonly snapshotInTimestamp: number | null };
}

export interface TufStepWatch {
  /** The failure of the most recent step, or null when it succeeded. */
  readonly last: TufStepFailure | null;
}

interface StoreShape {
  root?: { signed?: { version?: number } };
  timestamp?: { signed?: { snapshotMeta?: { version?: number } } };
  [method: string]: unknown;
}

/**
 * Watches the trusted-metadata store of a tuf-js Updater (its `trustedSet`).
 * Each step clears the record when it starts, so what is left after a
 * failure is that step's own error.
 */
export function watchTufSteps(updater: object): TufStepWatch {
  const store = (updater as { trustedSet?: StoreShape }).trustedSet;
  if (!store || typeof store !== 'object') throw new Error('tuf-js has no trustedSet on its Updater: this version is not the one the update code was written for');
  const watch: { last: TufStepFailure | null } = { last: null };
  for (const [method, step] of Object.entries(STEPS)) {
    const original = store[method];
    if (typeof original !== 'function') throw new Error(`tuf-js's trusted-metadata store has no ${method}: this version is not the one the update code was written for`);
    store[method] = function watched(this: unknown, ...args: unknown[]): unknown {
      watch.last = null;
      try {
        return (original as (...a: unknown[]) => unknown).apply(store, args);
      } catch (error) {
        const data = args[0] instanceof Uint8Array ? args[0] : null;
        const trusted = { root: store.root?.signed?.version ?? null, snapshotInTimestamp: store.timestamp?.signed?.snapshotMeta?.version ?? null };
        watch.last = { step, error, data, trusted };
        throw error;
      }
    };
  }
  return watch;
}

/** What a fetcher saw of the file it was asked for last. */
export interface FetchReport {
  /**
   * Null when the file was read; else the errno that stopped the read
   * (ENOENT, EIO, ENOSPC, ...) or what the fetcher refused: TOO_LONG (more
   * bytes than signed), LINK (a symbolic or hard link), NOT_A_FILE, OUTSIDE.
   */
  readonly failure: string | null;
  /** Bytes copied off, and the most the signed metadata allowed. */
  readonly copied: number;
  readonly maxLength: number;
}

const LAYOUT_FAILURES = new Set(['LINK', 'NOT_A_FILE', 'OUTSIDE', 'ELOOP', 'ENOTDIR']);

/** The `signed.version` of metadata bytes, or null. */
function versionIn(data: Uint8Array | null): number | null {
  if (data === null) return null;
  try {
    const version = (JSON.parse(Buffer.from(data).toString('utf8')) as { signed?: { version?: unknown } }).signed?.version;
    return typeof version === 'number' ? version : null;
  } catch {
    return null;
  }
}

const errnoOf = (error: unknown): string | undefined => (error !== null && typeof error === 'object' ? (error as { code?: unknown }).code : undefined) as string | undefined;

/**
 * The code for a failed refresh or target download. `thrown` is what tuf-js
 * threw; `step` the store's own failure, if one; `fetch` the fetcher's report
 * of the last file; `target` whether a target (not metadata) was being fetched.
 */
export function classifyTufError(thrown: unknown, step: TufStepFailure | null, fetch: FetchReport | null, target: boolean): TufFailureCode {
  const errno = errnoOf(thrown);
  if (errno === 'ENOSPC' || errno === 'EDQUOT' || fetch?.failure === 'ENOSPC' || fetch?.failure === 'EDQUOT') return 'UPDATE_DISK_FULL';
  if (thrown instanceof PersistError) return 'UPDATE_WRITE_FAILED';
  if (fetch?.failure) {
    if (fetch.failure === 'TOO_LONG') return target ? 'UPDATE_TARGET_MISMATCH' : 'UPDATE_METADATA_INVALID'; // longer than signed: another file
    if (LAYOUT_FAILURES.has(fetch.failure)) return 'UPDATE_REPOSITORY_UNREADABLE';
    return 'UPDATE_INCOMPLETE'; // missing, unreadable: a drive pulled, a copy cut
  }
  const cause = step?.error ?? thrown;
  if (cause instanceof ExpiredMetadataError) return 'UPDATE_EXPIRED';
  if (cause instanceof UnsignedMetadataError) return 'UPDATE_SIGNATURE_INVALID';
  if (cause instanceof BadVersionError && step) {
    const version = versionIn(step.data);
    switch (step.step) {
      case 'root': // the next root's file holds another version: an older one renamed is a rollback
        return version !== null && step.trusted.root !== null && version <= step.trusted.root ? 'UPDATE_ROLLBACK' : 'UPDATE_METADATA_INVALID';
      case 'timestamp': // a lower timestamp version, or a lower snapshot version in it
        return 'UPDATE_ROLLBACK';
      case 'snapshot': // not the version the timestamp names (mix-and-match), or a lower targets version in it
        return version !== null && step.trusted.snapshotInTimestamp !== null && version !== step.trusted.snapshotInTimestamp ? 'UPDATE_METADATA_INVALID' : 'UPDATE_ROLLBACK';
      case 'targets': // not the version the snapshot names
        return 'UPDATE_METADATA_INVALID';
    }
  }
  if (cause instanceof LengthOrHashMismatchError || cause instanceof DownloadLengthMismatchError) {
    if (fetch && fetch.copied < fetch.maxLength && (target || step?.step === 'snapshot' || step?.step === 'targets')) return 'UPDATE_INCOMPLETE'; // cut short
    return target ? 'UPDATE_TARGET_MISMATCH' : 'UPDATE_METADATA_INVALID';
  }
  return 'UPDATE_METADATA_INVALID';
}

/** The message to show for a refusal: the store's own error when there is one, else what was thrown. */
export function tufFailureText(thrown: unknown, step: TufStepFailure | null): string {
  const error = step?.error ?? thrown;
  return error instanceof Error ? error.message : String(error);
}
