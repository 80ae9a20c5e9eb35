import { describe, expect, it } from 'vitest';
import { LengthOrHashMismatchError, UnsignedMetadataError } from '@tufjs/models/dist/error.js';
import { BadVersionError, ExpiredMetadataError } from 'tuf-js/dist/error.js';
import { classifyTufError, watchTufSteps, type TufStepFailure } from './tuf-failure.ts';

const bytesOf = (version: number): Uint8Array => Buffer.from(JSON.stringify({ signed: { version } }));
const step = (s: TufStepFailure['step'], error: unknown, version: number | null, trusted: TufStepFailure['trusted'] = { root: 1, snapshotInTimestamp: 3 }): TufStepFailure => ({ step: s, error, data: version === null ? null : bytesOf(version), trusted });

describe('classifyTufError', () => {
  it('names what the fetcher saw first: no room, a link or special file, more bytes than signed, a file missing', () => {
    expect(classifyTufError(new Error('x'), null, { failure: 'ENOSPC', copied: 0, maxLength: 10 }, true)).toBe('UPDATE_DISK_FULL');
    expect(classifyTufError(new Error('x'), null, { failure: 'LINK', copied: 0, maxLength: 10 }, false)).toBe('UPDATE_REPOSITORY_UNREADABLE');
    expect(classifyTufError(new Error('x'), null, { failure: 'TOO_LONG', copied: 0, maxLength: 10 }, true)).toBe('UPDATE_TARGET_MISMATCH');
    expect(classifyTufError(new Error('x'), null, { failure: 'TOO_LONG', copied: 0, maxLength: 10 }, false)).toBe('UPDATE_METADATA_INVALID');
    expect(classifyTufError(new Error('x'), null, { failure: 'ENOENT', copied: 0, maxLength: 10 }, false)).toBe('UPDATE_INCOMPLETE');
  });

  it('reads the store\'s error class and step, whatever the message says', () => {
    const words = new Error('is less than current version'); // the old wording, on an error of no TUF class
    expect(classifyTufError(words, null, null, false)).toBe('UPDATE_METADATA_INVALID');
    expect(classifyTufError(new Error('wrapped'), step('snapshot', new ExpiredMetadataError(''), null), null, false)).toBe('UPDATE_EXPIRED');
    expect(classifyTufError(new Error('wrapped'), step('targets', new UnsignedMetadataError(''), null), null, false)).toBe('UPDATE_SIGNATURE_INVALID');
    expect(classifyTufError(new Error('wrapped'), step('timestamp', new BadVersionError(''), 2), null, false)).toBe('UPDATE_ROLLBACK');
    // A snapshot of another version than the timestamp names is mix-and-match; the named one with older targets is rollback.
    expect(classifyTufError(new Error('wrapped'), step('snapshot', new BadVersionError(''), 2), null, false)).toBe('UPDATE_METADATA_INVALID');
    expect(classifyTufError(new Error('wrapped'), step('snapshot', new BadVersionError(''), 3), null, false)).toBe('UPDATE_ROLLBACK');
    // The next root's file: an older version renamed is rollback, a later one a chain that does not fit.
    expect(classifyTufError(new BadVersionError(''), step('root', new BadVersionError(''), 1), null, false)).toBe('UPDATE_ROLLBACK');
    expect(classifyTufError(new BadVersionError(''), step('root', new BadVersionError(''), 5), null, false)).toBe('UPDATE_METADATA_INVALID');
  });

  it('tells a target cut short from one that differs by the bytes copied', () => {
    const mismatch = new LengthOrHashMismatchError('');
    expect(classifyTufError(mismatch, null, { failure: null, copied: 5, maxLength: 10 }, true)).toBe('UPDATE_INCOMPLETE');
    expect(classifyTufError(mismatch, null, { failure: null, copied: 10, maxLength: 10 }, true)).toBe('UPDATE_TARGET_MISMATCH');
  });
});

describe('watchTufSteps', () => {
  it('refuses an updater whose store it does not know (a tuf-js that changed), and keeps the failing step\'s own error', () => {
    expect(() => watchTufSteps({})).toThrow(/trustedSet/);
    expect(() => watchTufSteps({ trustedSet: { updateRoot: () => undefined } })).toThrow(/updateTimestamp/);
    const error = new ExpiredMetadataError('snapshot.json is expired');
    const store = { timestamp: { signed: { snapshotMeta: { version: 4 } } }, updateRoot: () => undefined, updateTimestamp: () => undefined, updateSnapshot: () => { throw error; }, updateDelegatedTargets: () => undefined };
    const watch = watchTufSteps({ trustedSet: store });
    expect(() => (store.updateSnapshot as (d: Uint8Array) => void)(bytesOf(4))).toThrow(error);
    expect(watch.last).toMatchObject({ step: 'snapshot', error, trusted: { snapshotInTimestamp: 4 } });
    store.updateRoot();
    expect(watch.last).toBeNull();
  });
});
