/**
 * Type checks: what a file's first bytes say it is, against what its name
 * claims. Pure; the scan session hands in the head of the file it is reading
 * anyway (no second read).
 *
 * Every extension the default policy lets through promises content the head
 * can confirm: a `.tar` must be a tar the kiosk opens (an undetected container
 * under an archive's name would pass unopened), a `.yaml` must be text (not
 * firmware renamed), a `.bmp` a bitmap, a `.step` an ISO 10303-21 file.
 */
import { detectContainer, type ContainerFormat } from './container-format.ts';

export const SNIFF_BYTES = 4096; // bytes of the head the checks look at

/** Content kinds recognised by magic bytes. */
export type ContentKind =
  | 'pe' // Windows executable or DLL (MZ)
  | 'elf'
  | 'macho'
  | 'shell-script' // starts with #!
  | 'lnk' // Windows shell link
  | 'pdf'
  | 'ole2' // OLE2 compound file: legacy Office
  | 'msi' // OLE2 compound file whose root class is a Windows Installer package, patch or transform
  | 'rtf'
  // Containers, named by their format (container-format.ts): zip is also docx/xlsx/jar/apk and many project formats.
  | ContainerFormat
  | 'png'
  | 'jpeg'
  | 'gif'
  | 'bmp'
  | 'tiff'
  | 'ico'
  | 'webp'
  | 'dwg' // AutoCAD drawing
  | 'text' // UTF-8, UTF-16 with a byte-order mark, or an 8-bit code page: no NUL, hardly any control characters
  | 'binary'; // anything else

/** Every content kind, in the order the policy schema lists them (kiosk/policy.ts must accept each). */
export const CONTENT_KINDS: readonly ContentKind[] = [
  'pe', 'elf', 'macho', 'shell-script', 'lnk', 'pdf', 'ole2', 'msi', 'rtf',
  'zip', 'tar', '7z', 'rar', 'cab', 'cpio', 'ar', 'iso9660', 'xar', 'lha',
  'gzip', 'bzip2', 'xz', 'zstd', 'lz4', 'lzma', 'compress', 'lzip',
  'png', 'jpeg', 'gif', 'bmp', 'tiff', 'ico', 'webp', 'dwg', 'text', 'binary',
];

const ascii = (text: string): number[] => [...text].map((c) => c.charCodeAt(0));

function startsWith(head: Uint8Array, bytes: readonly number[], at = 0): boolean {
  if (head.length < at + bytes.length) return false;
  for (let i = 0; i < bytes.length; i++) if (head[at + i] !== bytes[i]) return false;
  return true;
}

const u16le = (head: Uint8Array, at: number): number => head[at]! | (head[at + 1]! << 8);
const u32le = (head: Uint8Array, at: number): number => (head[at]! | (head[at + 1]! << 8) | (head[at + 2]! << 16) | (head[at + 3]! << 24)) >>> 0;

/** Programs, before anything else: a file that runs when double-clicked is a program whatever else it is. */
const PROGRAM_MAGICS: ReadonlyArray<readonly [ContentKind, readonly number[]]> = [
  ['pe', ascii('MZ')],
  ['elf', [0x7f, ...ascii('ELF')]],
  ['macho', [0xcf, 0xfa, 0xed, 0xfe]],
  ['macho', [0xce, 0xfa, 0xed, 0xfe]],
  ['macho', [0xca, 0xfe, 0xba, 0xbe]],
  ['lnk', [0x4c, 0x00, 0x00, 0x00, 0x01, 0x14, 0x02, 0x00]],
];

/** Documents and images, after containers: a head that is also a container is judged as the container. */
const DOCUMENT_MAGICS: ReadonlyArray<readonly [ContentKind, (head: Uint8Array) => boolean]> = [
  ['pdf', (h) => startsWith(h, ascii('%PDF-'))],
  ['ole2', (h) => startsWith(h, [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1])],
  ['png', (h) => startsWith(h, [0x89, ...ascii('PNG\r\n\x1a\n')])],
  ['jpeg', (h) => startsWith(h, [0xff, 0xd8, 0xff])],
  ['gif', (h) => startsWith(h, ascii('GIF8'))],
  ['rtf', (h) => startsWith(h, ascii('{\\rtf'))],
  // BITMAPFILEHEADER then a DIB header of one of the sizes Windows defines (core, OS/2 2, info, v2-v5).
  ['bmp', (h) => startsWith(h, ascii('BM')) && h.length >= 18 && [12, 16, 40, 52, 56, 64, 108, 124].includes(u32le(h, 14))],
  // TIFF 6.0 and BigTIFF, little- and big-endian.
  ['tiff', (h) => startsWith(h, [0x49, 0x49, 0x2a, 0x00]) || startsWith(h, [0x4d, 0x4d, 0x00, 0x2a]) || startsWith(h, [0x49, 0x49, 0x2b, 0x00]) || startsWith(h, [0x4d, 0x4d, 0x00, 0x2b])],
  // ICONDIR: reserved 0, type 1 (icon), at least one image, whose entry's reserved byte is 0.
  ['ico', (h) => startsWith(h, [0x00, 0x00, 0x01, 0x00]) && h.length >= 22 && u16le(h, 4) > 0 && h[9] === 0],
  ['webp', (h) => startsWith(h, ascii('RIFF')) && startsWith(h, ascii('WEBP'), 8)],
  // "AC1015" and the like; a text file that happens to start so has no NUL in its head, a drawing does.
  ['dwg', (h) => h.length >= 6 && /^AC[0-9.]{4}$/.test(String.fromCharCode(...h.subarray(0, 6))) && h.includes(0)],
  ['shell-script', (h) => startsWith(h, ascii('#!'))],
];

/**
 * C0 controls text may hold: backspace (overstrike), tab, line feed, vertical
 * tab, form feed, carriage return, shift out and in (ISO 2022), DOS
 * end-of-file, escape (ANSI art, ISO 2022).
 */
const TEXT_CONTROLS = new Set([0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x1a, 0x1b]);
/** At most this share of a text's characters may be other control characters (CP437 art draws with a few). */
const MAX_CONTROL_SHARE = 0.02;

const isStrayControl = (c: number): boolean => (c < 0x20 && !TEXT_CONTROLS.has(c)) || c === 0x7f;

/**
 * Whether `head` is text: UTF-16 with a byte-order mark (Notepad's
 * "Unicode") whose code units pair up and hold no NUL, or else bytes with no
 * NUL, as UTF-8 and every 8-bit code page (Windows-1252, CP437, CP1251)
 * write them; either way with hardly any control characters other than
 * those text uses. Firmware and other binary data fail: about one byte in
 * eight of random data is a stray control.
 */
export function looksText(head: Uint8Array): boolean {
  const little = startsWith(head, [0xff, 0xfe]);
  if (little || startsWith(head, [0xfe, 0xff])) {
    let strays = 0;
    const units = Math.floor((head.length - 2) / 2);
    for (let i = 0; i < units; i++) {
      const at = 2 + 2 * i;
      const unit = little ? u16le(head, at) : (head[at]! << 8) | head[at + 1]!;
      if (unit === 0 || unit === 0xfffe || unit === 0xffff) return false;
      if (unit >= 0xd800 && unit <= 0xdbff) {
        if (i + 1 === units) break; // a pair cut by the end of the head
        const next = little ? u16le(head, at + 2) : (head[at + 2]! << 8) | head[at + 3]!;
        if (next < 0xdc00 || next > 0xdfff) return false;
        i++;
      } else if (unit >= 0xdc00 && unit <= 0xdfff) {
        return false;
      } else if (isStrayControl(unit)) {
        strays++;
      }
    }
    return strays <= Math.floor(units * MAX_CONTROL_SHARE);
  }
  let strays = 0;
  for (const b of head) {
    if (b === 0) return false;
    if (isStrayControl(b)) strays++;
  }
  return strays <= Math.floor(head.length * MAX_CONTROL_SHARE);
}

/**
 * Whether a whole file is text, as looksText judges a head, fed the file's
 * chunks in order: a text head followed by a program or firmware is not
 * text (the head alone passed a .log with a PE after 4 KiB of lines).
 * UTF-16 with a byte-order mark is followed unit by unit across chunks.
 */
export class TextScan {
  #utf16: 'le' | 'be' | null = null;
  #started = false;
  #text = true;
  #units = 0; // characters (bytes, or UTF-16 units) seen
  #strays = 0;
  #odd: number | null = null; // a UTF-16 unit's first byte, cut by a chunk's end
  #high = false; // a high surrogate waits for its low half

  /** `chunk` follows the previous one (each is valid only during the call). */
  push(chunk: Uint8Array): void {
    if (!this.#text || chunk.length === 0) return;
    let from = 0;
    if (!this.#started) {
      this.#started = true;
      if (startsWith(chunk, [0xff, 0xfe])) this.#utf16 = 'le';
      else if (startsWith(chunk, [0xfe, 0xff])) this.#utf16 = 'be';
      if (this.#utf16 !== null) from = 2;
    }
    if (this.#utf16 === null) {
      for (let i = from; i < chunk.length; i++) {
        const b = chunk[i]!;
        if (b === 0) {
          this.#text = false;
          return;
        }
        if (STRAY_BYTE[b] === 1) this.#strays++;
      }
      this.#units += chunk.length - from;
      return;
    }
    for (let i = from; i < chunk.length; i++) {
      if (this.#odd === null) {
        this.#odd = chunk[i]!;
        continue;
      }
      const unit = this.#utf16 === 'le' ? this.#odd | (chunk[i]! << 8) : (this.#odd << 8) | chunk[i]!;
      this.#odd = null;
      this.#units++;
      if (this.#high) {
        this.#high = false;
        if (unit < 0xdc00 || unit > 0xdfff) {
          this.#text = false;
          return;
        }
        continue;
      }
      if (unit === 0 || unit === 0xfffe || unit === 0xffff || (unit >= 0xdc00 && unit <= 0xdfff)) {
        this.#text = false;
        return;
      }
      if (unit >= 0xd800 && unit <= 0xdbff) this.#high = true;
      else if (isStrayControl(unit)) this.#strays++;
    }
  }

  /** Whether everything pushed is text (an empty file is). */
  get text(): boolean {
    if (!this.#text) return false;
    if (this.#utf16 !== null && (this.#odd !== null || this.#high)) return false; // a unit or pair cut by the end
    return this.#strays <= Math.floor(this.#units * MAX_CONTROL_SHARE);
  }
}

const STRAY_BYTE = Uint8Array.from({ length: 256 }, (_, b) => (isStrayControl(b) ? 1 : 0));

export function sniffContent(head: Uint8Array): ContentKind {
  for (const [kind, bytes] of PROGRAM_MAGICS) if (startsWith(head, bytes)) return kind;
  const container = detectContainer(head);
  if (container !== null) return container;
  for (const [kind, test] of DOCUMENT_MAGICS) if (test(head)) return kind;
  return looksText(head) ? 'text' : 'binary';
}

/** The first characters of a text head, its byte-order mark dropped (UTF-8 or UTF-16), for format lines like `ISO-10303-21;`. */
function leadingText(head: Uint8Array, chars = 64): string {
  if (startsWith(head, [0xff, 0xfe])) return new TextDecoder('utf-16le').decode(head.subarray(2, 2 + 2 * chars));
  if (startsWith(head, [0xfe, 0xff])) return new TextDecoder('utf-16be').decode(head.subarray(2, 2 + 2 * chars));
  const from = startsWith(head, [0xef, 0xbb, 0xbf]) ? 3 : 0;
  return new TextDecoder('latin1').decode(head.subarray(from, from + chars));
}

/** A content promise an extension makes beyond one content kind: a text format's first line, or a binary layout. */
interface Shape {
  readonly what: string; // for the finding's detail: "XML", "an STL model"
  readonly accepts: (head: Uint8Array, kind: ContentKind, size: number | undefined) => boolean;
}

/** XML (gsdml, xdd, AutomationML, .xml): text whose first character after the byte-order mark and white space is "<". */
const XML: Shape = { what: 'XML', accepts: (h, kind) => kind === 'text' && leadingText(h).trimStart().startsWith('<') };

/** ISO 10303-21 (STEP): the exchange structure opens with its keyword. */
const STEP: Shape = { what: 'an ISO 10303-21 (STEP) file', accepts: (h, kind) => kind === 'text' && leadingText(h).trimStart().startsWith('ISO-10303-21;') };

/**
 * STL, either form: ASCII ("solid name" and facets), or binary: an 80-byte
 * header, a triangle count, and 50 bytes per triangle, so the size says the
 * count (checked whenever the size is known).
 */
const STL: Shape = {
  what: 'an STL model (ASCII "solid" or binary triangles)',
  accepts: (h, kind, size) => {
    if (kind === 'text' && /^\s*solid/i.test(leadingText(h))) return true;
    if ((kind !== 'binary' && kind !== 'text') || h.length < 84) return false;
    const expected = 84 + 50 * u32le(h, 80);
    return size === undefined ? expected >= h.length : expected === size;
  },
};

/** DXF: text, or AutoCAD's binary DXF with its sentinel. */
const DXF: Shape = {
  what: 'a DXF drawing (text or AutoCAD binary DXF)',
  accepts: (h, kind) => kind === 'text' || startsWith(h, [...ascii('AutoCAD Binary DXF\r\n'), 0x1a, 0x00]),
};

/**
 * OpenDocument (ODF 1.2 part 3, 3.3): a zip whose first entry is `mimetype`,
 * stored, holding the document's media type, so the head tells a drawing
 * from any zip that was only named `.odg`.
 */
function openDocument(mediaType: string): Shape {
  return {
    what: `an OpenDocument package of ${mediaType}`,
    accepts: (h, kind) => {
      if (kind !== 'zip' || !startsWith(h, [0x50, 0x4b, 0x03, 0x04]) || h.length < 30) return false;
      const method = u16le(h, 8);
      const stored = u32le(h, 22);
      const nameLength = u16le(h, 26);
      const data = 30 + nameLength + u16le(h, 28);
      if (method !== 0 || nameLength !== 8 || !startsWith(h, ascii('mimetype'), 30)) return false;
      return startsWith(h, ascii(mediaType), data) && (stored === mediaType.length || (stored === 0 && (u16le(h, 6) & 0x08) !== 0));
    },
  };
}

type ContentPromise = ContentKind | Shape;

/** Kinds that run code when opened or double-clicked. */
export const EXECUTABLE_KINDS: ReadonlySet<ContentKind> = new Set(['pe', 'elf', 'macho', 'shell-script', 'lnk']);

/** Extensions that may hold an executable kind without being a mismatch. */
const EXECUTABLE_EXTENSIONS: ReadonlyMap<string, readonly ContentKind[]> = new Map([
  ['.exe', ['pe']], ['.dll', ['pe']], ['.sys', ['pe']], ['.ocx', ['pe']], ['.cpl', ['pe']], ['.scr', ['pe']],
  // A DOS .com is raw machine code, printable or not (the EICAR test file is one).
  ['.drv', ['pe']], ['.efi', ['pe']], ['.mui', ['pe']], ['.com', ['pe', 'binary', 'text']],
  ['.so', ['elf']], ['.elf', ['elf']], ['.axf', ['elf']], ['.out', ['elf']], ['.ko', ['elf']],
  ['.sh', ['shell-script', 'text']], ['.py', ['shell-script', 'text']], ['.pl', ['shell-script', 'text']],
  ['.lnk', ['lnk']], ['.dylib', ['macho']],
]);

const each = (extensions: readonly string[], promise: readonly ContentPromise[]): Array<[string, readonly ContentPromise[]]> => extensions.map((e) => [e, promise]);

/**
 * What content an extension promises; absent means "anything but an
 * executable". Every type of the default policy's `types.allowed` is here
 * (kiosk/core/file-type.test.ts holds the two together).
 */
const EXPECTED: ReadonlyMap<string, readonly ContentPromise[]> = new Map<string, readonly ContentPromise[]>([
  // Documents. OOXML and Visio are zips (opened, parts judged); OpenDocument shows its media type at the head.
  ['.pdf', ['pdf']],
  ...each(['.zip', '.docx', '.xlsx', '.pptx', '.vsdx', '.jar'], ['zip']),
  ['.odt', [openDocument('application/vnd.oasis.opendocument.text')]],
  ['.ods', [openDocument('application/vnd.oasis.opendocument.spreadsheet')]],
  ['.odp', [openDocument('application/vnd.oasis.opendocument.presentation')]],
  ['.odg', [openDocument('application/vnd.oasis.opendocument.graphics')]],
  ...each(['.doc', '.xls', '.ppt'], ['ole2']),
  ...each(['.msi', '.msp', '.mst', '.msm'], ['msi', 'ole2']),
  ['.rtf', ['rtf']],
  // Archives: the container the name promises must be what the kiosk opens, or the file passes unopened.
  ['.7z', ['7z']], ['.tar', ['tar']], ['.rar', ['rar']], ['.cab', ['cab']],
  ...each(['.gz', '.tgz'], ['gzip']),
  ...each(['.bz2', '.tbz2'], ['bzip2']),
  ...each(['.xz', '.txz'], ['xz']),
  ...each(['.zst', '.tzst'], ['zstd']),
  // Images: any raster image under any image name (a PNG saved as .jpg, a favicon.ico that is a PNG), never anything else.
  ...each(['.png', '.jpg', '.jpeg', '.gif', '.bmp', '.tif', '.tiff', '.ico', '.webp'], ['png', 'jpeg', 'gif', 'bmp', 'tiff', 'ico', 'webp']),
  // Text and data.
  ...each(['.txt', '.csv', '.tsv', '.log', '.md', '.json', '.yaml', '.yml', '.ini', '.cfg', '.conf', '.toml', '.nfo', '.html', '.htm'], ['text']),
  ['.xml', [XML]],
  // Engineering data: CAD drawings and models, fieldbus device descriptions (EDS and GSD are INI-like text; GSDML, XDD and AutomationML are XML).
  ['.dwg', ['dwg']],
  ['.dxf', [DXF]],
  ...each(['.step', '.stp'], [STEP]),
  ...each(['.iges', '.igs', '.eds', '.gsd'], ['text']),
  ...each(['.gsdml', '.xdd', '.aml'], [XML]),
  ['.stl', [STL]],
  ...[...EXECUTABLE_EXTENSIONS],
]);

/** Lower-case extensions of a file name, outermost last: "a.PDF.exe" -> [".pdf", ".exe"]. */
export function extensionsOf(name: string): string[] {
  const base = name.slice(name.lastIndexOf('/') + 1);
  const parts = base.split('.');
  if (parts.length < 2) return [];
  // A leading dot names a hidden file, not an extension.
  const start = parts[0] === '' ? 2 : 1;
  return parts.slice(start).filter((p) => p.length > 0 && p.length <= 24 && !p.includes(' ')).map((p) => `.${p.toLowerCase()}`);
}

/** The extensions that promise content (for tests holding the policy's types to them). */
export function promisesContent(extension: string): boolean {
  return EXPECTED.has(extension);
}

/** Document-like extensions that people trust; seen before an executable one they disguise it. */
const DECOY_EXTENSIONS = new Set([
  '.pdf', '.doc', '.docx', '.xls', '.xlsx', '.ppt', '.pptx', '.txt', '.csv', '.jpg', '.jpeg', '.png', '.gif',
  '.zip', '.rtf', '.htm', '.html', '.mp4', '.avi', '.mp3', '.bin', '.hex', '.fw', '.img',
]);

export interface TypeFinding {
  readonly code: 'TYPE_MISMATCH';
  readonly detail: string;
}

const describePromise = (p: ContentPromise): string => (typeof p === 'string' ? p : p.what);

/** What the scan learnt of a file beyond its head. */
export interface ContentFacts {
  /** Whether the whole file is text (TextScan); a text head followed by anything else is no text file. */
  readonly text?: boolean;
  /** An OLE2 compound file's root class is a Windows Installer package, patch or transform. */
  readonly installer?: boolean;
}

/**
 * The content kind of `head` (a file's first bytes, up to SNIFF_BYTES) and
 * what contradicts its name. `size` is the whole file's size where known (a
 * binary STL's size follows from its triangle count); a head shorter than
 * SNIFF_BYTES is taken as the whole file. `facts` refine the head's word:
 * text that does not stay text is binary, an installer database is `msi`.
 */
export function checkType(name: string, head: Uint8Array, size?: number, facts: ContentFacts = {}): { kind: ContentKind; findings: TypeFinding[] } {
  const sniffed = sniffContent(head);
  const turnsBinary = sniffed === 'text' && facts.text === false;
  const kind: ContentKind = turnsBinary ? 'binary' : sniffed === 'ole2' && facts.installer === true ? 'msi' : sniffed;
  const exts = extensionsOf(name);
  const ext = exts[exts.length - 1];
  const findings: TypeFinding[] = [];
  const executableExt = ext !== undefined && EXECUTABLE_EXTENSIONS.has(ext);
  const known = size ?? (head.length < SNIFF_BYTES ? head.length : undefined);
  const promised = ext === undefined ? undefined : EXPECTED.get(ext);
  if (turnsBinary) {
    findings.push({ code: 'TYPE_MISMATCH', detail: `text for its first ${Math.min(head.length, SNIFF_BYTES)} bytes, then binary data: only a file that is text throughout passes as text` });
  } else if (EXECUTABLE_KINDS.has(kind) && !(executableExt && EXECUTABLE_EXTENSIONS.get(ext)!.includes(kind))) {
    findings.push({ code: 'TYPE_MISMATCH', detail: `content is a ${kind} program but the name ends in ${ext ?? '(no extension)'}` });
  } else if (promised !== undefined && head.length > 0 && !promised.some((p) => (typeof p === 'string' ? p === kind : p.accepts(head, kind, known)))) {
    findings.push({ code: 'TYPE_MISMATCH', detail: `name ends in ${ext} but the content is ${kind}, not ${promised.map(describePromise).join(' or ')}` });
  }
  const inner = exts[exts.length - 2];
  if (inner !== undefined && DECOY_EXTENSIONS.has(inner) && (executableExt || EXECUTABLE_KINDS.has(kind))) {
    findings.push({ code: 'TYPE_MISMATCH', detail: `double extension ${inner}${ext}: a program named to look like a ${inner} file` });
  }
  return { kind, findings };
}
