import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { publicKeyFromPem, signManifest, verifyManifest, ManifestError, checkStatement, type TrustAnchors } from './index.ts';
import { buildVectors, diffVectorFiles, testKey, VECTOR_DIR } from '../test/vectors/generate.ts';

interface VectorIndex {
  now: string;
  clockSkewSeconds: number;
  trust: { keys: Array<{ name: string; file: string; keyId: string; notBefore?: string; notAfter?: string }>; revokedKeyIds: string[] };
  valid: Array<{ file: string; keyId: string; payloadDigest: string }>;
  invalid: Array<{ file: string; code: string; now?: string }>;
}

async function loadIndex(): Promise<{ index: VectorIndex; trust: TrustAnchors }> {
  const index = JSON.parse(await readFile(join(VECTOR_DIR, 'vectors.json'), 'utf8')) as VectorIndex;
  const keys = await Promise.all(
    index.trust.keys.map(async (k) => ({
      keyId: k.keyId,
      publicKey: publicKeyFromPem(await readFile(join(VECTOR_DIR, k.file), 'utf8')),
      ...(k.notBefore ? { notBefore: new Date(k.notBefore) } : {}),
      ...(k.notAfter ? { notAfter: new Date(k.notAfter) } : {}),
    })),
  );
  return { index, trust: { keys, revokedKeyIds: index.trust.revokedKeyIds } };
}

describe('manifest test vectors', () => {
  it('are rebuilt byte for byte by the generator', async () => {
    expect(await diffVectorFiles()).toEqual([]);
  });

  it('hold at least 3 valid and 20 invalid cases', async () => {
    const { index } = await loadIndex();
    expect(index.valid.length).toBeGreaterThanOrEqual(3);
    expect(index.invalid.length).toBeGreaterThanOrEqual(20);
  });

  it('verifies every valid vector with its key id and payload digest', async () => {
    const { index, trust } = await loadIndex();
    for (const v of index.valid) {
      const result = verifyManifest(await readFile(join(VECTOR_DIR, v.file)), trust, new Date(index.now));
      expect({ file: v.file, keyId: result.keyId, digest: result.payloadDigest }).toEqual({ file: v.file, keyId: v.keyId, digest: v.payloadDigest });
    }
  });

  it('refuses every invalid vector with the code it must raise', async () => {
    const { index, trust } = await loadIndex();
    const outcomes = await Promise.all(
      index.invalid.map(async (v) => {
        try {
          verifyManifest(await readFile(join(VECTOR_DIR, v.file)), trust, new Date(v.now ?? index.now));
          return { file: v.file, code: 'ACCEPTED' };
        } catch (error) {
          return { file: v.file, code: error instanceof ManifestError ? error.code : `THREW ${String(error)}` };
        }
      }),
    );
    expect(outcomes).toEqual(index.invalid.map((v) => ({ file: v.file, code: v.code })));
  });

  it('rebuilds every single-signature valid vector with signManifest', () => {
    for (const v of buildVectors().valid.filter((x) => x.fromSigner)) {
      const envelope = JSON.parse(new TextDecoder().decode(v.bytes)) as { payload: string };
      const statement = checkStatement(JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')));
      const again = signManifest(statement, testKey(v.signers[0]!));
      expect(Buffer.from(again).equals(Buffer.from(v.bytes)), v.name).toBe(true);
    }
  });

  it('has the signer refuse every invalid statement the verifier refuses for schema reasons', () => {
    const schemaCodes = new Set(['MANIFEST_SCHEMA', 'MANIFEST_VERSION', 'SUBJECT_UNSAFE']);
    const cases = buildVectors().invalid.filter((v) => schemaCodes.has(v.code) && !v.name.startsWith('payload-'));
    expect(cases.length).toBeGreaterThan(20);
    for (const v of cases) {
      const envelope = JSON.parse(new TextDecoder().decode(v.bytes)) as { payload: string };
      const statement = JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')) as Parameters<typeof signManifest>[0];
      let code = 'SIGNED';
      try {
        signManifest(statement, testKey('alpha'));
      } catch (error) {
        code = error instanceof ManifestError ? error.code : String(error);
      }
      expect({ name: v.name, code }).toEqual({ name: v.name, code: v.code });
    }
  });
});
