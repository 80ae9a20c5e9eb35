/**
 * The rule-set digest recorded in every manifest (predicate: YARA rule-set
 * digest). Layout, so another implementation can recompute it:
 *
 *   sha256( "portcullis-yara-rules-v1\n"
 *           || for each file, sorted by name (byte order, names are ASCII):
 *                u32be(byteLength(name)) || name (ASCII)
 *                || u64be(byteLength(content)) || content (the exact file bytes) )
 *
 * written as "sha256:" + 64 lowercase hex digits. Length prefixes make the
 * encoding unambiguous; the tag separates it from any other sha256 in the
 * project. docs/yara-engine.md repeats this with a worked example.
 */
import { createHash } from 'node:crypto';

export const RULE_SET_DIGEST_TAG = 'portcullis-yara-rules-v1\n';

export interface DigestInput {
  readonly name: string;
  readonly bytes: Uint8Array;
}

export function digestRuleFiles(files: readonly DigestInput[]): string {
  const sorted = [...files].sort((a, b) => compareAscii(a.name, b.name));
  const h = createHash('sha256');
  h.update(Buffer.from(RULE_SET_DIGEST_TAG, 'ascii'));
  for (const f of sorted) {
    if (!/^[\x20-\x7e]+$/.test(f.name)) throw new TypeError(`rule file name is not printable ASCII: ${JSON.stringify(f.name)}`);
    const name = Buffer.from(f.name, 'ascii');
    const nameLen = Buffer.alloc(4);
    nameLen.writeUInt32BE(name.length);
    const contentLen = Buffer.alloc(8);
    contentLen.writeBigUInt64BE(BigInt(f.bytes.byteLength));
    h.update(nameLen).update(name).update(contentLen).update(f.bytes);
  }
  return `sha256:${h.digest('hex')}`;
}

/** Byte order for ASCII names (no locale). */
export function compareAscii(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
