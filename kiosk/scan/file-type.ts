/**
 * Type checks: what a file's first bytes say it is, against what its name
 * claims. Pure; the scan session hands in the head of the file it is reading
 * anyway (no second read).
 */

export const SNIFF_BYTES = 4096; // bytes of the head the checks look at

/** Content kinds recognised by magic bytes. */
export type ContentKind =
  | 'pe' // Windows executable or DLL (MZ)
  | 'elf'
  | 'macho'
  | 'shell-script' // starts with #!
  | 'lnk' // Windows shell link
  | 'pdf'
  | 'zip' // also docx/xlsx/jar/apk and many project formats
  | 'ole2' // legacy Office, MSI
  | 'rar'
  | '7z'
  | 'gzip'
  | 'cab'
  | 'png'
  | 'jpeg'
  | 'gif'
  | 'rtf'
  | 'text' // no NUL bytes in the head, valid UTF-8 or plain bytes
  | 'binary'; // anything else

interface Magic {
  readonly kind: ContentKind;
  readonly offset: number;
  readonly bytes: readonly number[];
}

const ascii = (text: string): number[] => [...text].map((c) => c.charCodeAt(0));

const MAGICS: readonly Magic[] = [
  { kind: 'pe', offset: 0, bytes: ascii('MZ') },
  { kind: 'elf', offset: 0, bytes: [0x7f, ...ascii('ELF')] },
  { kind: 'macho', offset: 0, bytes: [0xcf, 0xfa, 0xed, 0xfe] },
  { kind: 'macho', offset: 0, bytes: [0xce, 0xfa, 0xed, 0xfe] },
  { kind: 'macho', offset: 0, bytes: [0xca, 0xfe, 0xba, 0xbe] },
  { kind: 'lnk', offset: 0, bytes: [0x4c, 0x00, 0x00, 0x00, 0x01, 0x14, 0x02, 0x00] },
  { kind: 'pdf', offset: 0, bytes: ascii('%PDF-') },
  { kind: 'zip', offset: 0, bytes: [0x50, 0x4b, 0x03, 0x04] },
  { kind: 'zip', offset: 0, bytes: [0x50, 0x4b, 0x05, 0x06] },
  { kind: 'ole2', offset: 0, bytes: [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1] },
  { kind: 'rar', offset: 0, bytes: ascii('Rar!\x1a\x07') },
  { kind: '7z', offset: 0, bytes: [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c] },
  { kind: 'gzip', offset: 0, bytes: [0x1f, 0x8b] },
  { kind: 'cab', offset: 0, bytes: ascii('MSCF') },
  { kind: 'png', offset: 0, bytes: [0x89, ...ascii('PNG\r\n\x1a\n')] },
  { kind: 'jpeg', offset: 0, bytes: [0xff, 0xd8, 0xff] },
  { kind: 'gif', offset: 0, bytes: ascii('GIF8') },
  { kind: 'rtf', offset: 0, bytes: ascii('{\\rtf') },
  { kind: 'shell-script', offset: 0, bytes: ascii('#!') },
  // UTF-16 text with a byte-order mark (Notepad's "Unicode") holds NUL bytes but is text.
  { kind: 'text', offset: 0, bytes: [0xff, 0xfe] },
  { kind: 'text', offset: 0, bytes: [0xfe, 0xff] },
];

export function sniffContent(head: Uint8Array): ContentKind {
  for (const m of MAGICS) {
    if (head.length < m.offset + m.bytes.length) continue;
    if (m.bytes.every((b, i) => head[m.offset + i] === b)) return m.kind;
  }
  return head.includes(0) ? 'binary' : 'text';
}

/** Kinds that run code when opened or double-clicked. */
export const EXECUTABLE_KINDS: ReadonlySet<ContentKind> = new Set(['pe', 'elf', 'macho', 'shell-script', 'lnk']);

/** Extensions that may hold an executable kind without being a mismatch. */
const EXECUTABLE_EXTENSIONS: ReadonlyMap<string, readonly ContentKind[]> = new Map([
  ['.exe', ['pe']], ['.dll', ['pe']], ['.sys', ['pe']], ['.ocx', ['pe']], ['.cpl', ['pe']], ['.scr', ['pe']],
  ['.drv', ['pe']], ['.efi', ['pe']], ['.mui', ['pe']], ['.com', ['pe', 'binary']],
  ['.so', ['elf']], ['.elf', ['elf']], ['.axf', ['elf']], ['.out', ['elf']], ['.ko', ['elf']],
  ['.sh', ['shell-script', 'text']], ['.py', ['shell-script', 'text']], ['.pl', ['shell-script', 'text']],
  ['.lnk', ['lnk']], ['.dylib', ['macho']],
]);

/** What content an extension promises; absent means "anything but an executable". */
const EXPECTED: ReadonlyMap<string, readonly ContentKind[]> = new Map([
  ['.pdf', ['pdf']],
  ['.zip', ['zip']], ['.docx', ['zip']], ['.xlsx', ['zip']], ['.pptx', ['zip']], ['.jar', ['zip']],
  ['.doc', ['ole2']], ['.xls', ['ole2']], ['.ppt', ['ole2']], ['.msi', ['ole2']],
  ['.rar', ['rar']], ['.7z', ['7z']], ['.gz', ['gzip']], ['.tgz', ['gzip']], ['.cab', ['cab']],
  ['.png', ['png']], ['.jpg', ['jpeg']], ['.jpeg', ['jpeg']], ['.gif', ['gif']], ['.rtf', ['rtf']],
  ['.txt', ['text']], ['.csv', ['text']], ['.log', ['text']], ['.ini', ['text']], ['.cfg', ['text']],
  ['.json', ['text']], ['.xml', ['text']], ['.md', ['text']], ['.html', ['text']], ['.htm', ['text']],
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

/** Document-like extensions that people trust; seen before an executable one they disguise it. */
const DECOY_EXTENSIONS = new Set([
  '.pdf', '.doc', '.docx', '.xls', '.xlsx', '.ppt', '.pptx', '.txt', '.csv', '.jpg', '.jpeg', '.png', '.gif',
  '.zip', '.rtf', '.htm', '.html', '.mp4', '.avi', '.mp3', '.bin', '.hex', '.fw', '.img',
]);

export interface TypeFinding {
  readonly code: 'TYPE_MISMATCH';
  readonly detail: string;
}

export function checkType(name: string, head: Uint8Array): { kind: ContentKind; findings: TypeFinding[] } {
  const kind = sniffContent(head);
  const exts = extensionsOf(name);
  const ext = exts[exts.length - 1];
  const findings: TypeFinding[] = [];
  const executableExt = ext !== undefined && EXECUTABLE_EXTENSIONS.has(ext);
  if (EXECUTABLE_KINDS.has(kind) && !(executableExt && EXECUTABLE_EXTENSIONS.get(ext)!.includes(kind))) {
    findings.push({ code: 'TYPE_MISMATCH', detail: `content is a ${kind} program but the name ends in ${ext ?? '(no extension)'}` });
  } else if (ext !== undefined && EXPECTED.has(ext) && !EXPECTED.get(ext)!.includes(kind) && !(head.length === 0)) {
    findings.push({ code: 'TYPE_MISMATCH', detail: `name ends in ${ext} but the content is ${kind}` });
  }
  const inner = exts[exts.length - 2];
  if (inner !== undefined && DECOY_EXTENSIONS.has(inner) && (executableExt || EXECUTABLE_KINDS.has(kind))) {
    findings.push({ code: 'TYPE_MISMATCH', detail: `double extension ${inner}${ext}: a program named to look like a ${inner} file` });
  }
  return { kind, findings };
}
