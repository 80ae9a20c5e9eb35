/**
 * What the sandboxed volume reader (volume-child.ts) and the kiosk say to
 * each other: the request on the child's command line, and one JSON document
 * on its standard output, either the volume's identity and listing or the
 * MediaError that stopped it. No I/O here.
 *
 * The report comes from a process that has just parsed hostile bytes, so the
 * kiosk treats it as hostile too: parseChildReport() takes text, accepts only
 * exactly the shape below (no other key, every number a bounded integer,
 * every name a bounded string, each entry's parent an earlier folder, depth
 * within the walk's bound) and names the first thing wrong by its dot-path.
 *
 *   { "v": 1, "identity": { "filesystem", "volumeId", "label", "capacity" },
 *     "entries": [[parent, name, kind, size, attributes, shortName], ...] }
 *   { "v": 1, "error": { "code", "message" } }
 *
 * One entry is [index of its folder's entry or -1 for the root, the name
 * exactly as stored (lone surrogates survive JSON), "f" or "d", size in
 * bytes, attribute letters in the order "rhsa" (read-only, hidden, system,
 * archive), the FAT 8.3 alias or null], in the walk's order (parents first).
 */
import { MediaError, type MediaErrorCode } from './errors.ts';
import type { VolumeIdentity } from './identity.ts';
import type { FileAttributes, FilesystemKind, VolumeEntry, WalkLimits } from './volume.ts';

export const REPORT_VERSION = 1;

/** identity: only the boot sector and label; list: also every entry; extract: also the files into /out. */
export type ChildMode = 'identity' | 'list' | 'extract';

export interface ChildRequest {
  readonly mode: ChildMode;
  readonly limits: WalkLimits & { readonly maxTotalBytes: number };
}

/** The codes the reader's own checks raise; anything else from the child is a failure of the child. */
export const CHILD_ERROR_CODES = ['MEDIA_CORRUPT', 'MEDIA_UNRECOGNIZED', 'MEDIA_LIMIT_EXCEEDED', 'MEDIA_IO'] as const satisfies readonly MediaErrorCode[];
export type ChildErrorCode = (typeof CHILD_ERROR_CODES)[number];

export interface VolumeListing {
  readonly identity: VolumeIdentity;
  /** Empty in identity mode. */
  readonly entries: readonly VolumeEntry[];
}

export type ChildReport = { readonly ok: true; readonly listing: VolumeListing } | { readonly ok: false; readonly code: ChildErrorCode; readonly message: string };

const FILESYSTEMS: readonly FilesystemKind[] = ['fat12', 'fat16', 'fat32', 'exfat'];
const MAX_NAME_UNITS = 260; // UTF-16 units: FAT's 20 long-name slots of 13 (exFAT: 255)
const MAX_SHORT_NAME_UNITS = 12; // "NAME1234.EXT"
const MAX_LABEL_UNITS = 11; // both filesystems
const MAX_MESSAGE_UNITS = 2000;
const ATTRIBUTE_LETTERS = /^r?h?s?a?$/;
const VOLUME_ID = /^[0-9A-F]{4}-[0-9A-F]{4}$/;

type WireEntry = [number, string, 'f' | 'd', number, string, string | null];

// ---- the child's side ----

export function encodeRequest(request: ChildRequest): string {
  return JSON.stringify(request);
}

/** The child checks its command line too: a request it does not understand is a bug in the kiosk. */
export function parseRequest(text: string | undefined): ChildRequest {
  const value: unknown = JSON.parse(text ?? 'null');
  const limits = isRecord(value) ? value.limits : undefined;
  const positive = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;
  if (!isRecord(value) || !['identity', 'list', 'extract'].includes(value.mode as string) || !isRecord(limits) || !positive(limits.maxEntries) || !positive(limits.maxDepth) || !positive(limits.maxTotalBytes)) {
    throw new Error(`volume reader: not a request: ${String(text).slice(0, 200)}`);
  }
  return { mode: value.mode as ChildMode, limits: { maxEntries: limits.maxEntries, maxDepth: limits.maxDepth, maxTotalBytes: limits.maxTotalBytes } };
}

function attributeLetters(a: FileAttributes): string {
  return `${a.readonly ? 'r' : ''}${a.hidden ? 'h' : ''}${a.system ? 's' : ''}${a.archive ? 'a' : ''}`;
}

/** The listing as the child prints it. `entries` must be in walk order (a folder before what it holds). */
export function encodeListing(identity: VolumeIdentity, entries: readonly VolumeEntry[] | null): string {
  const wire: WireEntry[] = [];
  const list = entries ?? [];
  const folders: number[] = []; // index of the open folder at each depth (the walk is depth-first)
  for (const [index, entry] of list.entries()) {
    const depth = entry.names.length;
    const parent = depth === 1 ? -1 : (folders[depth - 2] ?? -2);
    const parentNames = parent >= 0 ? (list[parent]?.names ?? []) : [];
    if (parent === -2 || parentNames.some((name, i) => name !== entry.names[i])) {
      throw new Error(`volume reader: ${entry.names.join('/')} does not follow its folder in the walk`);
    }
    if (entry.kind === 'directory') folders[depth - 1] = index;
    wire.push([parent, entry.names[depth - 1] ?? '', entry.kind === 'file' ? 'f' : 'd', entry.size, attributeLetters(entry.attributes), entry.shortName ?? null]);
  }
  return JSON.stringify(entries === null ? { v: REPORT_VERSION, identity } : { v: REPORT_VERSION, identity, entries: wire });
}

export function encodeFailure(code: ChildErrorCode, message: string): string {
  return JSON.stringify({ v: REPORT_VERSION, error: { code, message: message.slice(0, MAX_MESSAGE_UNITS) } });
}

// ---- the kiosk's side ----

/** The report broke the protocol: the kiosk refuses the volume (MEDIA_TOOL_FAILED). */
function invalid(path: string, expected: string): never {
  throw new MediaError('MEDIA_TOOL_FAILED', `the sandboxed volume reader's report is invalid (${path}: expected ${expected}); the drive is refused`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function exactKeys(value: Record<string, unknown>, path: string, keys: readonly string[]): void {
  const extra = Object.keys(value).find((key) => !keys.includes(key));
  if (extra !== undefined) invalid(`${path}.${extra}`, 'no such key');
  const missing = keys.find((key) => !Object.hasOwn(value, key));
  if (missing !== undefined) invalid(`${path}.${missing}`, 'a value');
}

function boundedString(value: unknown, path: string, min: number, max: number): string {
  if (typeof value !== 'string' || value.length < min || value.length > max) invalid(path, `a string of ${min} to ${max} UTF-16 units`);
  return value;
}

function integer(value: unknown, path: string, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || (value as number) < min || (value as number) > max) invalid(path, `an integer from ${min} to ${max}`);
  return value as number;
}

function parseIdentity(value: unknown, deviceSize: number): VolumeIdentity {
  if (!isRecord(value)) return invalid('identity', 'an object');
  exactKeys(value, 'identity', ['filesystem', 'volumeId', 'label', 'capacity']);
  const filesystem = value.filesystem as FilesystemKind;
  if (!FILESYSTEMS.includes(filesystem)) invalid('identity.filesystem', FILESYSTEMS.join(', '));
  const volumeId = value.volumeId;
  // exFAT always has a serial; a FAT volume may have none.
  if (!(typeof volumeId === 'string' && VOLUME_ID.test(volumeId)) && !(volumeId === null && filesystem !== 'exfat')) invalid('identity.volumeId', 'XXXX-XXXX in upper-case hex');
  return {
    filesystem,
    volumeId,
    label: boundedString(value.label, 'identity.label', 0, MAX_LABEL_UNITS),
    capacity: integer(value.capacity, 'identity.capacity', 0, deviceSize),
  };
}

function parseEntries(value: unknown, filesystem: FilesystemKind, request: ChildRequest, deviceSize: number): VolumeEntry[] {
  if (!Array.isArray(value)) return invalid('entries', 'an array');
  if (value.length > request.limits.maxEntries) invalid('entries', `at most ${request.limits.maxEntries} entries (the walk's bound)`);
  const entries: VolumeEntry[] = [];
  for (const [index, item] of value.entries()) {
    const at = `entries[${index}]`;
    if (!Array.isArray(item) || item.length !== 6) return invalid(at, '[parent, name, kind, size, attributes, shortName]');
    const [parentIndex, rawName, kind, rawSize, letters, shortName] = item as unknown[];
    if (!Number.isSafeInteger(parentIndex) || (parentIndex as number) < -1 || (parentIndex as number) >= index) invalid(`${at}[0]`, '-1 or the index of an earlier entry');
    const parent = parentIndex as number;
    const folder = parent === -1 ? undefined : entries[parent];
    if (folder !== undefined && folder.kind !== 'directory') invalid(`${at}[0]`, `a folder's index (entry ${parent} is a file)`);
    const name = boundedString(rawName, `${at}[1]`, 0, MAX_NAME_UNITS);
    const names = [...(folder?.names ?? []), name];
    if (names.length > request.limits.maxDepth) invalid(`${at}[0]`, `a folder at most ${request.limits.maxDepth} deep (the walk's bound)`);
    if (kind !== 'f' && kind !== 'd') return invalid(`${at}[2]`, '"f" or "d"');
    const size = integer(rawSize, `${at}[3]`, 0, kind === 'd' ? 0 : deviceSize); // a file's bytes lie in the volume
    if (typeof letters !== 'string' || !ATTRIBUTE_LETTERS.test(letters)) invalid(`${at}[4]`, 'attribute letters in the order "rhsa"');
    if (shortName !== null) {
      if (filesystem === 'exfat') invalid(`${at}[5]`, 'null (exFAT has no 8.3 aliases)');
      boundedString(shortName, `${at}[5]`, 1, MAX_SHORT_NAME_UNITS);
    }
    const attributes: FileAttributes = { readonly: letters.includes('r'), hidden: letters.includes('h'), system: letters.includes('s'), archive: letters.includes('a') };
    entries.push({ names, kind: kind === 'f' ? 'file' : 'directory', size, attributes, ...(shortName === null ? {} : { shortName: shortName as string }) });
  }
  return entries;
}

/**
 * Parses and checks the child's report against what was asked of it.
 * A report that breaks the protocol throws MEDIA_TOOL_FAILED naming the
 * first fault; a MediaError the child reports comes back as `ok: false`.
 */
export function parseChildReport(text: string, request: ChildRequest, deviceSize: number): ChildReport {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return invalid('(document)', `one JSON document, not ${JSON.stringify(text.slice(0, 40))}… (${(error as Error).message})`);
  }
  if (!isRecord(value)) return invalid('(document)', 'an object');
  if (value.v !== REPORT_VERSION) invalid('v', String(REPORT_VERSION));
  if (Object.hasOwn(value, 'error')) {
    exactKeys(value, '(document)', ['v', 'error']);
    const error = value.error;
    if (!isRecord(error)) return invalid('error', 'an object');
    exactKeys(error, 'error', ['code', 'message']);
    const code = error.code as ChildErrorCode;
    if (!CHILD_ERROR_CODES.includes(code)) invalid('error.code', CHILD_ERROR_CODES.join(', '));
    return { ok: false, code, message: boundedString(error.message, 'error.message', 0, MAX_MESSAGE_UNITS) };
  }
  exactKeys(value, '(document)', request.mode === 'identity' ? ['v', 'identity'] : ['v', 'identity', 'entries']);
  const identity = parseIdentity(value.identity, deviceSize);
  const entries = request.mode === 'identity' ? [] : parseEntries(value.entries, identity.filesystem, request, deviceSize);
  return { ok: true, listing: { identity, entries } };
}
