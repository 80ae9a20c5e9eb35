/**
 * The agent's file check against the file-check vectors (docs/manifest.md
 * §6.4, test/vectors/manifest/vectors.json `fileChecks`): the signed
 * manifest lists each file with its true size and digests or with one of them
 * wrong; for each digest choice the agent's policy allows, the agent's read
 * must decide exactly as the vectors expect.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DIGEST_CHOICES, type DigestChoice } from './file-digest.ts';
import { readVerified } from './verified-copy.ts';
import { publicKeyFromPem, verifyManifest } from '../manifest/index.ts';
import { VECTOR_DIR } from '../test/vectors/generate.ts';

interface FileChecks {
  readonly manifest: string;
  readonly files: ReadonlyArray<{ readonly subject: string; readonly file: string; readonly expected: Record<DigestChoice, string> }>;
}

const index = JSON.parse(readFileSync(join(VECTOR_DIR, 'vectors.json'), 'utf8')) as {
  now: string;
  trust: { keys: Array<{ name: string; file: string; keyId: string }> };
  fileChecks: FileChecks;
};
const alpha = index.trust.keys.find((k) => k.name === 'alpha')!;
const trust = { keys: [{ keyId: alpha.keyId, publicKey: publicKeyFromPem(readFileSync(join(VECTOR_DIR, alpha.file), 'utf8')) }], revokedKeyIds: [] };

describe('the agent against the file-check vectors', () => {
  const manifest = verifyManifest(readFileSync(join(VECTOR_DIR, index.fileChecks.manifest)), trust, new Date(index.now));
  const subjects = new Map(manifest.statement.subject.map((s) => [s.name, s]));

  for (const choice of DIGEST_CHOICES) {
    it(`decides every file as the vectors expect when it checks ${choice}`, async () => {
      const got: Record<string, string> = {};
      const want: Record<string, string> = {};
      for (const f of index.fileChecks.files) {
        const subject = subjects.get(f.subject)!;
        const read = await readVerified(join(VECTOR_DIR, f.file), { size: subject.annotations.size, ...subject.digest }, { digests: choice });
        got[f.subject] = read.ok ? 'OK' : read.code;
        want[f.subject] = f.expected[choice];
      }
      expect(got).toEqual(want);
    });
  }
});
