/**
 * The kiosk's policy: limits, engines, type rules, controlled classes and the
 * manifest's validity. A JSON file checked by a strict schema; errors name the
 * field by dot-path. Default: rules/policy/default.json.
 */
import { createHash } from 'node:crypto';
import { PortcullisError } from '../../manifest/index.ts';
import { CONTAINER_FORMATS } from './container-format.ts';
import { array, boolean, formatIssues, integer, object, oneOf, optional, parse, string, type Infer } from '../../manifest/schema.ts';


/** clamd refuses MaxFileSize, MaxScanSize and StreamMaxLength above this. */
export const CLAMD_MAX_FILE_BYTES = 2 * 1024 ** 3 - 1024 ** 2; // bytes
const identifier = string({ min: 1, max: 64, pattern: /^[A-Za-z0-9][A-Za-z0-9._-]*$/, patternMessage: 'expected letters, digits, ".", "_" or "-"' });
const extension = string({ pattern: /^\.[a-z0-9_+-]{1,24}$/, patternMessage: 'expected a lower-case extension with its dot, like ".bin"' });
const contentKind = oneOf(['pe', 'elf', 'macho', 'shell-script', 'lnk', 'pdf', 'ole2', 'msi', 'rtf', 'zip', 'tar', '7z', 'rar', 'cab', 'cpio', 'ar', 'iso9660', 'xar', 'lha', 'gzip', 'bzip2', 'xz', 'zstd', 'lz4', 'lzma', 'compress', 'lzip', 'png', 'jpeg', 'gif', 'bmp', 'tiff', 'ico', 'webp', 'dwg', 'text', 'binary']);
const containerFormat = oneOf(CONTAINER_FORMATS);

export const policySchema = object({
  id: identifier,
  description: string({ max: 1000 }),
  limits: object({
    maxEntries: integer({ min: 1, max: 10_000_000 }), // files and folders on one drive
    maxDepth: integer({ min: 1, max: 64 }), // folder levels
    maxTotalBytes: integer({ min: 0 }), // bytes of files on one drive
    maxFileBytes: integer({ min: 0, max: CLAMD_MAX_FILE_BYTES }), // bytes of one file; clamd streams at most 2 GiB - 1 MiB
    maxScanMinutes: integer({ min: 1, max: 1440 }), // minutes for one drive, walk and scan: past it the drive is rejected
  }),
  clamav: object({
    required: boolean(),
    maxRecursion: integer({ min: 1, max: 64 }), // archive nesting levels
    maxFilesPerArchive: integer({ min: 1, max: 1_000_000 }),
    maxScanBytes: integer({ min: 1, max: CLAMD_MAX_FILE_BYTES }), // bytes clamd may scan from one file, unpacked content included
    maxEmbeddedFileBytes: integer({ min: 1, max: CLAMD_MAX_FILE_BYTES }), // bytes of one file inside an archive
    maxScanSeconds: integer({ min: 1, max: 3600 }), // per file
    idleTimeoutSeconds: integer({ min: 1, max: 3600 }), // clamd silent this long: treated as down
  }),
  yara: object({ required: boolean() }),
  archives: object({
    // Container formats the kiosk opens to inspect every member; any other container is NOT_INSPECTED.
    formats: array(containerFormat, { max: CONTAINER_FORMATS.length }),
    maxCompressionRatio: integer({ min: 2, max: 1_000_000 }), // unpacked : packed, per archive and per zip entry, from 1 MiB unpacked
  }),
  types: object({
    blockMismatch: boolean(), // magic bytes contradict the extension, or a double extension disguises a program
    // The plant media types that pass when clean; anything else passes only with its hash on the allowlist.
    allowed: array(
      object({
        name: identifier,
        description: string({ max: 500 }),
        extensions: array(extension, { max: 300 }),
        extensionless: array(contentKind, { max: 20 }), // content kinds of files without an extension, e.g. "text"
        members: oneOf(['files', 'parts', 'content']), // how members of such a container are judged (docs/scanning.md)
        scope: oneOf(['anywhere', 'document-parts']), // "document-parts": only as a part inside a document
      }),
      { max: 50 },
    ),
    blockedExtensions: array(extension, { max: 500 }), // blocked even with an allowlisted hash (RISKY_TYPE)
    blockedNames: array(string({ min: 1, max: 255 }), { max: 500 }), // case-insensitive file names, e.g. autorun.inf
  }),
  controlled: array(
    object({
      name: identifier,
      description: string({ max: 500 }),
      extensions: array(extension, { max: 200 }),
      contentKinds: array(contentKind, { max: 20 }),
      pathPrefixes: array(string({ min: 1, max: 255 }), { max: 100 }), // case-insensitive, e.g. "firmware/"
    }),
    { max: 50 },
  ),
  manifest: object({ validityHours: integer({ min: 1, max: 744 }) }),
  operator: object({ required: boolean() }),
  concurrency: integer({ min: 1, max: 32 }), // files scanned at once
  // How old the ClamAV signatures may be, and the station's self-check (core/self-check.ts; defaults there).
  signatures: optional(object({
    maxAgeHours: integer({ min: 1, max: 8760 }), // hours since the newest ClamAV database was built
    whenOutdated: oneOf(['out-of-service', 'warn']), // past it: the station takes no drive, or only warns
  })),
  station: optional(object({
    minFreeWorkMiB: integer({ min: 1, max: 1_048_576 }), // MiB free in the work folder before the station takes drives
    minFreeAuditMiB: integer({ min: 1, max: 1_048_576 }), // MiB free beside the audit log
  })),
});

export type Policy = Infer<typeof policySchema>;

export type PolicyErrorCode = 'POLICY_INVALID' | 'POLICY_UNREADABLE';
export class PolicyError extends PortcullisError<PolicyErrorCode> {}

export interface LoadedPolicy {
  readonly policy: Policy;
  readonly digest: string; // "sha256:" + hex of the file's bytes
  readonly path: string;
}

export function parsePolicy(bytes: Uint8Array, source: string): LoadedPolicy {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (cause) {
    throw new PolicyError('POLICY_INVALID', `${source}: not UTF-8 JSON: ${(cause as Error).message}`, { cause });
  }
  const result = parse(policySchema, value);
  if (!result.ok) throw new PolicyError('POLICY_INVALID', `${source}: ${formatIssues(result.issues)}`);
  const p = result.value;
  // clamd must be allowed to scan every byte of the largest file the kiosk reads.
  for (const [field, v] of [['limits.maxFileBytes', p.limits.maxFileBytes], ['clamav.maxEmbeddedFileBytes', p.clamav.maxEmbeddedFileBytes]] as const) {
    if (v > p.clamav.maxScanBytes) {
      throw new PolicyError('POLICY_INVALID', `${source}: ${field}: must not exceed clamav.maxScanBytes (${p.clamav.maxScanBytes}), got ${v}`);
    }
  }
  return { policy: result.value, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, path: source };
}


/**
 * The size clamd skips embedded files above (its MaxFileSize): it must also
 * cover the largest file the kiosk streams, since one setting governs both.
 */
export function clamdFileLimit(policy: Policy): number {
  return Math.max(policy.limits.maxFileBytes, policy.clamav.maxEmbeddedFileBytes);
}

/**
 * The controlled class a file belongs to, if any. `byContentOnly`: for the
 * parts of a document, whose names are the format's own (an Office file's
 * `printerSettings1.bin` is no firmware image), only the content counts.
 */
export function controlledClass(policy: Policy, path: string, extensions: readonly string[], kind: string | null, byContentOnly = false): Policy['controlled'][number] | null {
  const lower = path.toLowerCase();
  const ext = extensions[extensions.length - 1];
  for (const c of policy.controlled) {
    if (!byContentOnly && ext !== undefined && c.extensions.includes(ext)) return c;
    if (kind !== null && (c.contentKinds as readonly string[]).includes(kind)) return c;
    if (!byContentOnly && c.pathPrefixes.some((p) => lower.startsWith(p.toLowerCase()))) return c;
  }
  return null;
}

export type AllowedType = Policy['types']['allowed'][number];

/**
 * The allowed type a file belongs to, if any: by its last extension, or by its
 * content kind when it has no extension. Classes scoped to document parts
 * count only for members of a document (`insideDocument`).
 */
export function allowedType(policy: Policy, extensions: readonly string[], kind: string | null, insideDocument: boolean): AllowedType | null {
  const ext = extensions[extensions.length - 1];
  for (const t of policy.types.allowed) {
    if (t.scope === 'document-parts' && !insideDocument) continue;
    if (ext !== undefined ? t.extensions.includes(ext) : kind !== null && (t.extensionless as readonly string[]).includes(kind)) return t;
  }
  return null;
}
