/**
 * OLE2 compound files ([MS-CFB]): what legacy Office documents and Windows
 * Installer packages are. The kiosk opens one with 7-Zip's Compound reader
 * and judges each stream as a member; this module reads what that reader
 * does not say: the root storage's class (a Windows Installer package,
 * patch or transform is a program, whatever it is named), and which
 * streams make a Word, Excel or PowerPoint file one. Pure.
 */
import type { ReadAt } from './container-format.ts';

/** Root storage classes of Windows Installer files ([MS-MSI]; msi.h): package (and merge module), patch, transform. */
const INSTALLER_CLASSES: ReadonlySet<string> = new Set([
  '000c1084-0000-0000-c000-000000000046', // installer package .msi, merge module .msm
  '000c1086-0000-0000-c000-000000000046', // patch .msp
  '000c1082-0000-0000-c000-000000000046', // transform .mst
]);

const u16 = (b: Uint8Array, at: number): number => b[at]! | (b[at + 1]! << 8);
const u32 = (b: Uint8Array, at: number): number => (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/**
 * The root storage's CLSID ([MS-CFB] 2.2: the header's sector shift at 0x1E
 * and first directory sector at 0x30; 2.6.1: the root entry is the
 * directory's first entry, type 5, its CLSID at 0x50), as
 * "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", or null when the header or root
 * entry is not where the format puts them.
 */
export function compoundRootClass(read: ReadAt): string | null {
  const header = read(0, 512);
  if (header.length < 512 || u32(header, 0) !== 0xe011cfd0 || u32(header, 4) !== 0xe11ab1a1) return null;
  const shift = u16(header, 0x1e);
  if (shift !== 9 && shift !== 12) return null;
  const first = u32(header, 0x30);
  if (first >= 0xfffffffa) return null; // a special sector number, not a sector
  const entry = read((first + 1) * 2 ** shift, 128);
  if (entry.length < 128 || entry[0x42] !== 5) return null;
  const c = entry.subarray(0x50, 0x60);
  const d1 = u32(c, 0).toString(16).padStart(8, '0');
  const d2 = u16(c, 4).toString(16).padStart(4, '0');
  const d3 = u16(c, 6).toString(16).padStart(4, '0');
  return `${d1}-${d2}-${d3}-${hex(c.subarray(8, 10))}-${hex(c.subarray(10, 16))}`;
}

/** Whether a root class names a Windows Installer package, patch or transform. */
export function isInstallerClass(clsid: string | null): boolean {
  return clsid !== null && INSTALLER_CLASSES.has(clsid);
}

/** The stream each legacy Office name needs at the root: what Word, Excel and PowerPoint open ([MS-DOC] 2.1, [MS-XLS] 2.1.2, [MS-PPT] 2.1.1). */
const REQUIRED_STREAMS: ReadonlyMap<string, readonly string[]> = new Map<string, readonly string[]>([
  ...['.doc', '.dot'].map((e): [string, readonly string[]] => [e, ['WordDocument']]),
  ...['.xls', '.xlt', '.xla'].map((e): [string, readonly string[]] => [e, ['Workbook', 'Book']]),
  ...['.ppt', '.pps', '.pot'].map((e): [string, readonly string[]] => [e, ['PowerPoint Document']]),
]);

/**
 * Why a compound file named `extension` is not the document its name says:
 * its root holds none of the streams that kind of document is made of (a
 * Word document needs WordDocument). `rootStreams` are the names of the
 * streams at its root, in any letter case (OLE2 compares names so). Null
 * when it has one, or the name makes no such promise.
 */
export function missingStreamProblem(extension: string | undefined, rootStreams: readonly string[]): string | null {
  const required = extension === undefined ? undefined : REQUIRED_STREAMS.get(extension);
  if (required === undefined) return null;
  const have = new Set(rootStreams.map((n) => n.toUpperCase()));
  if (required.some((n) => have.has(n.toUpperCase()))) return null;
  return `named ${extension} but its compound file has no ${required.join(' or ')} stream: it is not that kind of document`;
}

/** Root streams that say a compound file holds encrypted content: an encrypted OOXML package ([MS-OFFCRYPTO] 2.3.4.4). */
export function encryptedStream(rootStreams: readonly string[]): string | null {
  return rootStreams.find((n) => n.toUpperCase() === 'ENCRYPTEDPACKAGE') ?? null;
}
