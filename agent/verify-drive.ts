/**
 * `verify DRIVE`: the drive-level check, then every candidate file is read
 * once and hashed; nothing is written anywhere but the log.
 */
import { escapeForDisplay } from '../manifest/index.ts';
import { decideAll, DecisionLog } from './decision-log.ts';
import { checkDrive } from './drive-check.ts';
import { driveRef } from './drive-identity.ts';
import {
  bytesAndFilesInStep, checkDrivePath, expectedDigests, fileEvent, finish, logDrive, refusedResult, report, type Context, type DriveReport, type FileResult,
  type OperationInput,
} from './drive-report.ts';
import { matchedText } from './file-digest.ts';
import { EarlyStager, stagerFor } from './staging.ts';
import { policyDigests } from './trust-store.ts';

/** `verify DRIVE`: checks the drive and reads every listed file once to prove its bytes; writes nothing but the log. */
export async function verifyDrive(input: OperationInput): Promise<DriveReport> {
  await checkDrivePath(input.drive);
  const early = new EarlyStager(input);
  try {
    return await verifyWith(input, early);
  } finally {
    await early.discard(); // a pool started but never handed over: a refused drive, an error
  }
}

async function verifyWith(input: OperationInput, early: EarlyStager): Promise<DriveReport> {
  const check = await checkDrive({ ...input, onVerified: (m) => early.start(m) });
  const ctx: Context = { log: input.log, drive: driveRef(input.drive, input.identity), manifest: check.manifest };
  logDrive(ctx, check);
  const files: FileResult[] = [];
  if (check.approved) {
    const decisions = new DecisionLog(ctx.log);
    const refused = check.refused.map((r) => refusedResult(r.path, r.code, r.reason));
    files.push(...(await decideAll(decisions, refused, (result) => decisions.submit(fileEvent(ctx, 'file.checked', result), result))));
    const stager = early.take() ?? stagerFor(input, check.candidates);
    const digests = policyDigests(input.trust);
    const permitted = `listed in the manifest; ${matchedText(digests, 'match')}`;
    try {
      files.push(...(await decideAll(decisions, bytesAndFilesInStep(check.candidates, (c) => c.subject.annotations.size), async (c) => {
        const read = await stager.stage({
          name: c.subject.name,
          source: c.entry.rawPath,
          expected: expectedDigests(c),
          digests,
          expectIdentity: { dev: c.entry.dev, ino: c.entry.ino },
          stagingPath: null,
          fsync: false,
          chunkBytes: input.chunkBytes,
        }, input.signal);
        const result: FileResult = read.ok
          ? { path: c.entry.display, outcome: 'permitted', code: 'PERMITTED', reason: permitted, destination: null, digests: read.digest }
          : refusedResult(c.entry.display, read.code, read.reason, read.digest);
        return decisions.submit(fileEvent(ctx, 'file.checked', result), result);
      })));
    } finally {
      await stager.close();
    }
  }
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return finish(ctx, report('verify', escapeForDisplay(input.drive), check, files, null));
}
