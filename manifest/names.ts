/**
 * File-name rules shared by the kiosk (what it may approve), the manifest
 * (what a subject may be called) and the agent (what it may create on
 * Windows). docs/manifest.md §"Subject names" is the normative text; each
 * rule here carries the code a person sees.
 */

export const MAX_PATH_LENGTH = 1024; // UTF-16 code units, whole relative path
export const MAX_COMPONENT_LENGTH = 255; // UTF-16 code units, one path component (FAT/NTFS limit)
export const MAX_DEPTH = 64; // path components

/** Why a name is refused; stable, goes into logs. */
export type NameProblem =
  | 'EMPTY'
  | 'ABSOLUTE'
  | 'EMPTY_COMPONENT'
  | 'DOT_COMPONENT'
  | 'BACKSLASH'
  | 'CONTROL_CHARACTER'
  | 'BIDI_CONTROL'
  | 'WINDOWS_FORBIDDEN_CHARACTER'
  | 'STREAM_SYNTAX'
  | 'WINDOWS_RESERVED_NAME'
  | 'TRAILING_DOT_OR_SPACE'
  | 'NOT_NFC'
  | 'MALFORMED_UNICODE'
  | 'TOO_LONG'
  | 'TOO_DEEP'
  | 'RESERVED_FOLDER';

export const NAME_PROBLEM_TEXT: Record<NameProblem, string> = {
  EMPTY: 'the name is empty',
  ABSOLUTE: 'the path is absolute',
  EMPTY_COMPONENT: 'the path has an empty component (// or a trailing /)',
  DOT_COMPONENT: 'the path has a "." or ".." component',
  BACKSLASH: 'the name contains a backslash',
  CONTROL_CHARACTER: 'the name contains a control character',
  BIDI_CONTROL: 'the name contains a text-direction control character (can disguise the extension)',
  WINDOWS_FORBIDDEN_CHARACTER: 'the name contains a character Windows forbids (< > " | ? *)',
  STREAM_SYNTAX: 'the name contains ":" (Windows alternate-data-stream or drive syntax)',
  WINDOWS_RESERVED_NAME: 'the name is a Windows reserved device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9, ...)',
  TRAILING_DOT_OR_SPACE: 'a name component ends with a dot or a space (Windows drops them silently)',
  NOT_NFC: 'the name is not in Unicode normalization form C',
  MALFORMED_UNICODE: 'the name is not well-formed Unicode',
  TOO_LONG: `the path is longer than ${MAX_PATH_LENGTH} characters or a component longer than ${MAX_COMPONENT_LENGTH}`,
  TOO_DEEP: `the path is deeper than ${MAX_DEPTH} folders`,
  RESERVED_FOLDER: 'the path is inside the .portcullis folder, which only the kiosk writes',
};

// C0 controls, DEL and C1 controls.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/u;
// Bidirectional and invisible format controls that can reorder or hide characters.
const BIDI = /[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/u;
const WINDOWS_FORBIDDEN = /[<>"|?*]/u;
// Windows device names, matched on the upper-cased part before the first dot
// with trailing spaces removed (Windows compares names by upper-casing them).
const RESERVED = /^(CON|PRN|AUX|NUL|CONIN\$|CONOUT\$|CLOCK\$|COM[0-9\u00b9\u00b2\u00b3]|LPT[0-9\u00b9\u00b2\u00b3])$/u;

export const MANIFEST_FOLDER = '.portcullis';

/** Problems with one path component; empty list when it is acceptable. */
export function componentProblems(component: string): NameProblem[] {
  const problems: NameProblem[] = [];
  if (component.length === 0) return ['EMPTY_COMPONENT'];
  if (component === '.' || component === '..') problems.push('DOT_COMPONENT');
  if (component.length > MAX_COMPONENT_LENGTH) problems.push('TOO_LONG');
  if (CONTROL.test(component)) problems.push('CONTROL_CHARACTER');
  if (BIDI.test(component)) problems.push('BIDI_CONTROL');
  if (component.includes('\\')) problems.push('BACKSLASH');
  if (component.includes(':')) problems.push('STREAM_SYNTAX');
  if (WINDOWS_FORBIDDEN.test(component)) problems.push('WINDOWS_FORBIDDEN_CHARACTER');
  if (isReservedStem(component)) problems.push('WINDOWS_RESERVED_NAME');
  if (!problems.includes('DOT_COMPONENT') && /[. ]$/u.test(component)) problems.push('TRAILING_DOT_OR_SPACE');
  return problems;
}

/**
 * The common case of pathProblems in one scan: a printable-ASCII path that
 * breaks no rule. True only when pathProblems would find nothing (for ASCII,
 * NFC and well-formedness hold and upper-casing maps a-z alone); anything
 * else goes through the full rules, which name the problems.
 */
function isPlainSafePath(path: string): boolean {
  const n = path.length;
  if (n === 0 || n > MAX_PATH_LENGTH) return false;
  let start = 0;
  let depth = 1;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? path.charCodeAt(i) : 0x2f;
    if (c === 0x2f) {
      // One component, [start, i): not empty (so no leading '/'), not too long, no trailing '.' or ' ' (so not '.' or '..').
      const length = i - start;
      if (length === 0 || length > MAX_COMPONENT_LENGTH) return false;
      const last = path.charCodeAt(i - 1);
      if (last === 0x2e || last === 0x20) return false;
      if (isReservedAscii(path, start, i)) return false;
      if (i < n && ++depth > MAX_DEPTH) return false;
      start = i + 1;
      continue;
    }
    // Printable ASCII only, without \ : < > " | ? *
    if (c < 0x20 || c > 0x7e || c === 0x5c || c === 0x3a || c === 0x3c || c === 0x3e || c === 0x22 || c === 0x7c || c === 0x3f || c === 0x2a) return false;
  }
  const first = path.indexOf('/');
  return (first === -1 ? path : path.slice(0, first)).toUpperCase() !== MANIFEST_FOLDER.toUpperCase();
}

const RESERVED_ASCII = new Set(['CON', 'PRN', 'AUX', 'NUL', 'CONIN$', 'CONOUT$', 'CLOCK$', ...[...'0123456789'].flatMap((d) => [`COM${d}`, `LPT${d}`])]);

/** The reserved-name rule for the ASCII component [start, end): its stem (up to the first '.', trailing spaces dropped), upper-cased, is one of RESERVED's ASCII names. */
function isReservedAscii(path: string, start: number, end: number): boolean {
  let stemEnd = path.indexOf('.', start);
  if (stemEnd === -1 || stemEnd > end) stemEnd = end;
  while (stemEnd > start && path.charCodeAt(stemEnd - 1) === 0x20) stemEnd--;
  const length = stemEnd - start;
  return length >= 3 && length <= 7 && length !== 5 && RESERVED_ASCII.has(path.slice(start, stemEnd).toUpperCase());
}

/** componentProblems' reserved-name rule for one component. */
function isReservedStem(component: string): boolean {
  const stem = (component.split('.')[0] ?? '').replace(/ +$/u, '');
  return RESERVED.test(stem.toUpperCase());
}

/**
 * Problems with a relative POSIX path as it would appear in a manifest
 * subject; an empty list means the kiosk may approve it under this name.
 */
export function pathProblems(path: string): NameProblem[] {
  return isPlainSafePath(path) ? [] : pathProblemsByRule(path);
}

/** pathProblems rule by rule, without the plain-ASCII shortcut (exported for the test that holds the two together). */
export function pathProblemsByRule(path: string): NameProblem[] {
  if (path.length === 0) return ['EMPTY'];
  if (!path.isWellFormed()) return ['MALFORMED_UNICODE'];
  const problems = new Set<NameProblem>();
  if (path.startsWith('/')) problems.add('ABSOLUTE');
  if (/^[A-Za-z]:/u.test(path)) problems.add('ABSOLUTE');
  if (path.normalize('NFC') !== path) problems.add('NOT_NFC');
  if (path.length > MAX_PATH_LENGTH) problems.add('TOO_LONG');
  const components = (path.startsWith('/') ? path.slice(1) : path).split('/');
  if (components.length > MAX_DEPTH) problems.add('TOO_DEEP');
  for (const c of components) for (const p of componentProblems(c)) problems.add(p);
  if (components[0]?.toUpperCase() === MANIFEST_FOLDER.toUpperCase()) problems.add('RESERVED_FOLDER');
  return [...problems];
}

/**
 * The key under which two names are the same file on a case-insensitive
 * filesystem: NFC, then Unicode default full upper-case mapping.
 */
export function collisionKey(path: string): string {
  return path.normalize('NFC').toUpperCase();
}

/**
 * Finds names that would collide on Windows or FAT: exact duplicates, names
 * equal after case folding, and a file whose name is also used as a folder
 * by another entry. Returns pairs of [first, second] in input order.
 */
export function findCollisions(paths: readonly string[]): Array<[string, string]> {
  const files = new Map<string, string>();
  const folders = new Map<string, string>();
  const collisions: Array<[string, string]> = [];
  for (const path of paths) {
    const key = collisionKey(path);
    const earlier = files.get(key) ?? folders.get(key);
    if (earlier !== undefined) collisions.push([earlier, path]);
    else files.set(key, path);
    // Each folder prefix of the key, shortest first.
    for (let slash = key.indexOf('/'); slash !== -1; slash = key.indexOf('/', slash + 1)) {
      const prefix = key.slice(0, slash);
      const asFile = files.get(prefix);
      if (asFile !== undefined) collisions.push([asFile, path]);
      if (!folders.has(prefix)) folders.set(prefix, path);
    }
  }
  return collisions;
}

/**
 * Whether findCollisions would find any pair, by the same rules, one name at
 * a time, stopping at the first. A name in the same folder as the name before
 * it (as in a kiosk's manifest, whose subjects are sorted) skips its folder
 * prefixes: the name before checked and recorded them all, and the only file
 * recorded since, that name, is longer than any of them.
 */
export class CollisionCheck {
  readonly #files = new Set<string>();
  readonly #folders = new Set<string>();
  #previousFolder: string | null = null;

  /** Records the name; true when it collides with one recorded before. */
  collides(path: string): boolean {
    const key = collisionKey(path);
    if (this.#files.has(key) || this.#folders.has(key)) return true;
    this.#files.add(key);
    const last = key.lastIndexOf('/');
    const folder = last === -1 ? null : key.slice(0, last);
    if (folder !== null && folder !== this.#previousFolder) {
      for (let slash = key.indexOf('/'); slash !== -1; slash = key.indexOf('/', slash + 1)) {
        const prefix = key.slice(0, slash);
        if (this.#files.has(prefix)) return true;
        this.#folders.add(prefix);
      }
    }
    this.#previousFolder = folder;
    return false;
  }
}

/** Whether findCollisions would find any pair (CollisionCheck over the list). */
export function hasCollision(paths: readonly string[]): boolean {
  const check = new CollisionCheck();
  return paths.some((path) => check.collides(path));
}

/**
 * Renders any string safely for terminals, logs and receipts: control, bidi
 * and invisible format characters become visible escapes (`\x1b`, `\u{202e}`),
 * backslashes are doubled, lone surrogates become `\u{d800}`. The result holds
 * no character that can move a cursor, change colours or reorder text.
 */
export function escapeForDisplay(text: string): string {
  if (isDisplaySafe(text) && !text.includes('\\')) return text; // nothing to escape: the same string, not a copy
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const code = text.codePointAt(i) ?? 0;
    const char = String.fromCodePoint(code);
    if (code > 0xffff) i++;
    if (char === '\\') out += '\\\\';
    else if (code >= 0xd800 && code <= 0xdfff) out += `\\u{${code.toString(16)}}`;
    else if (CONTROL.test(char)) out += code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
    else if (BIDI.test(char)) out += `\\u{${code.toString(16)}}`;
    else out += char;
  }
  return out;
}

/** True when the text holds no control, bidi or invisible format character. */
export function isDisplaySafe(text: string): boolean {
  return text.isWellFormed() && !CONTROL.test(text) && !BIDI.test(text);
}

/** Text as it is stored and shown: unchanged when display-safe, else escaped (control, bidi, lone surrogates). */
export function displayText(text: string): string {
  return isDisplaySafe(text) ? text : escapeForDisplay(text);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** A name read as raw bytes: its text when it is valid UTF-8, else null. */
export function decodeNameBytes(raw: Uint8Array): string | null {
  try {
    return strictUtf8.decode(raw);
  } catch {
    return null;
  }
}

/**
 * Escapes a name read as raw bytes for display, in one linear pass: valid
 * UTF-8 sequences as `escapeForDisplay` shows them, every byte that is not
 * part of one as `\xNN` (overlong forms and encoded surrogates included), so
 * no byte of a hostile name is lost or hidden.
 */
export function displayNameBytes(raw: Uint8Array): string {
  return nameFromBytes(raw).display;
}

/** A name read as raw bytes, decoded once: its text (null when it is not UTF-8) and its display form (displayNameBytes). */
export function nameFromBytes(raw: Uint8Array): { readonly text: string | null; readonly display: string } {
  const text = decodeNameBytes(raw);
  return { text, display: text === null ? displayInvalidNameBytes(raw) : escapeForDisplay(text) };
}

/** displayNameBytes for bytes that are not valid UTF-8 as a whole. */
function displayInvalidNameBytes(raw: Uint8Array): string {
  let out = '';
  let i = 0;
  while (i < raw.length) {
    const b = raw[i]!;
    let len = 0;
    let cp = 0;
    let min = 0;
    if (b < 0x80) [len, cp] = [1, b];
    else if (b >= 0xc2 && b <= 0xdf) [len, cp, min] = [2, b & 0x1f, 0x80];
    else if (b >= 0xe0 && b <= 0xef) [len, cp, min] = [3, b & 0x0f, 0x800];
    else if (b >= 0xf0 && b <= 0xf4) [len, cp, min] = [4, b & 0x07, 0x10000];
    let ok = len > 0 && i + len <= raw.length;
    for (let k = 1; ok && k < len; k++) {
      const c = raw[i + k]!;
      if ((c & 0xc0) !== 0x80) ok = false;
      else cp = (cp << 6) | (c & 0x3f);
    }
    if (ok && (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))) ok = false;
    if (ok) {
      out += escapeForDisplay(String.fromCodePoint(cp));
      i += len;
    } else {
      out += `\\x${b.toString(16).padStart(2, '0')}`;
      i++;
    }
  }
  return out;
}
