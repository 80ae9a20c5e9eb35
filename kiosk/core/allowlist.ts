/**
 * The allowlist of known-good firmware, programs and PLC/HMI project files:
 * rules/allowlist/*.json, each a vendor's or site's list with the source of
 * every hash. A controlled file passes only when its hash is listed here.
 */
import { createHash } from 'node:crypto';
import { PortcullisError } from '../../manifest/index.ts';
import { array, formatIssues, nullable, object, optional, parse, string, type Infer } from '../../manifest/schema.ts';


const text = (max: number) => string({ min: 1, max });
const hex64 = string({ pattern: /^[0-9a-f]{64}$/, patternMessage: 'expected 64 lowercase hex characters' });

const entrySchema = object({
  vendor: text(100),
  product: text(200),
  version: text(64),
  file: text(255), // the file name as the vendor ships it (informative: matching is by hash)
  sha256: optional(hex64),
  blake3: optional(hex64),
  source: text(500), // where the hash came from and who checked it
  note: optional(nullable(text(1000))),
});

export const allowlistFileSchema = object({
  version: string({ min: 1, max: 32, pattern: /^[A-Za-z0-9._-]+$/, patternMessage: 'expected letters, digits, ".", "_" or "-"' }),
  owner: text(200),
  entries: array(entrySchema, { max: 100_000 }),
});

export type AllowlistEntry = Infer<typeof entrySchema>;

export type AllowlistErrorCode = 'ALLOWLIST_INVALID' | 'ALLOWLIST_UNREADABLE';
export class AllowlistError extends PortcullisError<AllowlistErrorCode> {}

export interface Allowlist {
  /** "name@version" of each file, joined with "+", at most 64 characters. */
  readonly version: string;
  /** "sha256:" over the files: for each, sorted by name, `name NUL sha256hex(bytes) LF`. */
  readonly digest: string;
  readonly entryCount: number;
  lookup(digest: { sha256: string; blake3: string }): AllowlistEntry | null;
}

export const EMPTY_ALLOWLIST: Allowlist = {
  version: 'none',
  digest: `sha256:${createHash('sha256').update('').digest('hex')}`,
  entryCount: 0,
  lookup: () => null,
};

export function buildAllowlist(files: ReadonlyArray<{ name: string; bytes: Uint8Array }>): Allowlist {
  const sorted = [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const bySha = new Map<string, AllowlistEntry>();
  const byBlake = new Map<string, AllowlistEntry>();
  const outer = createHash('sha256');
  const versions: string[] = [];
  let count = 0;
  for (const file of sorted) {
    let value: unknown;
    try {
      value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(file.bytes));
    } catch (cause) {
      throw new AllowlistError('ALLOWLIST_INVALID', `${file.name}: not UTF-8 JSON`, { cause });
    }
    const result = parse(allowlistFileSchema, value);
    if (!result.ok) throw new AllowlistError('ALLOWLIST_INVALID', `${file.name}: ${formatIssues(result.issues)}`);
    result.value.entries.forEach((entry, i) => {
      if (!entry.sha256 && !entry.blake3) {
        throw new AllowlistError('ALLOWLIST_INVALID', `${file.name}: entries[${i}]: needs sha256 or blake3`);
      }
      if (entry.sha256) bySha.set(entry.sha256, entry);
      if (entry.blake3) byBlake.set(entry.blake3, entry);
      count++;
    });
    versions.push(`${file.name.replace(/\.json$/, '')}@${result.value.version}`);
    outer.update(file.name).update('\0').update(createHash('sha256').update(file.bytes).digest('hex')).update('\n');
  }
  const joined = versions.join('+');
  return {
    version: joined.length === 0 ? 'none' : joined.length <= 64 ? joined : `${versions.length} lists`,
    digest: `sha256:${outer.digest('hex')}`,
    entryCount: count,
    // A listed hash must not contradict the other one: both must match when both are listed.
    lookup(d) {
      const entry = bySha.get(d.sha256) ?? byBlake.get(d.blake3) ?? null;
      if (!entry) return null;
      if (entry.sha256 && entry.sha256 !== d.sha256) return null;
      if (entry.blake3 && entry.blake3 !== d.blake3) return null;
      return entry;
    },
  };
}

