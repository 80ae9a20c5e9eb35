/**
 * Writes folders and files into a FAT image with mtools (mmd, mcopy, mattrib,
 * mdel, mdeltree), without mounting. mtools cannot store every name FAT can
 * hold: it strips trailing spaces, keeps names like "café.txt" as a code-page
 * 8.3 name, drops a combining accent (NFD) through iconv //TRANSLIT, turns
 * characters outside the BMP into "_" and refuses device names like "CON". For
 * those, the entry is made under a placeholder long name of the same length
 * and its long-name slots are then rewritten in place (the 8.3 alias, and so
 * the slot checksums, stay as mtools made them). Entries are addressed through
 * their 8.3 aliases, which mtools always matches.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openFileBlockDevice } from './block-device.ts';
import { MediaError } from './errors.ts';
import { openFatVolume, type FatEntry, type FatVolume } from './fat-volume.ts';
import { runTool, toolEnvironment, type ToolResult } from './run-tool.ts';
import type { FileAttributes } from './volume.ts';

export interface FatItem {
  readonly names: readonly string[];
  readonly kind: 'file' | 'directory';
  /** For files: a host file holding the content. */
  readonly source?: string;
  readonly attributes?: Partial<FileAttributes>;
}

export interface FatWriteOptions {
  /** Seconds since 1970 written as every timestamp (mtools honours SOURCE_DATE_EPOCH). */
  readonly epochSeconds?: number;
  /** Allow names FAT's rules forbid but its slots can hold, and case-only clashes (hostile corpus). */
  readonly hostileNames?: boolean;
  /** Replace an existing file of the same name (the name compared as FAT does: case-insensitively). */
  readonly replace?: boolean;
  /** A scratch folder for mtools' HOME. */
  readonly scratchDir: string;
}

/** Characters FAT long names may not hold (FAT spec 7.1), besides controls below 0x20. */
const LONG_NAME_FORBIDDEN = '"*/:<>?\\|';
const MAX_LONG_NAME = 255;
const PLACEHOLDER_CHARS = ['+', ',', ';', '=', '[', ']']; // legal in long names, never in 8.3 ones

/** Why FAT's rules forbid `name` as a long name, or null when it is allowed. */
export function fatNameProblem(name: string): string | null {
  if (name.length === 0) return 'empty name';
  if (name.length > MAX_LONG_NAME) return `${name.length} UTF-16 units, at most ${MAX_LONG_NAME}`;
  if (name === '.' || name === '..') return `"${name}" is reserved`;
  for (let i = 0; i < name.length; i += 1) {
    const unit = name.charCodeAt(i);
    if (unit < 0x20) return `control character U+${unit.toString(16).padStart(4, '0').toUpperCase()}`;
    if (LONG_NAME_FORBIDDEN.includes(name.charAt(i))) return `forbidden character ${name.charAt(i)}`;
  }
  return null;
}

/** Whether mtools stores `name` exactly as given (checked again after every build). */
export function mtoolsKeepsName(name: string): boolean {
  if (!/^[\x20-\x7e]+$/.test(name) || fatNameProblem(name) !== null) return false;
  if (/^ |[ .]$/.test(name)) return false; // mtools strips trailing spaces; leading spaces and trailing dots are kept on trust
  // mtools refuses DOS device names, with or without an extension.
  return !/^(con|prn|aux|nul|com[0-9]|lpt[0-9]|clock\$)(\..*)?$/i.test(name);
}

/** FAT's case-insensitive comparison key (ASCII and simple Unicode upper-casing, unit by unit). */
export function fatCaseKey(name: string): string {
  let out = '';
  for (const unit of name) {
    const upper = unit.toUpperCase();
    out += upper.length === unit.length ? upper : unit;
  }
  return out;
}

function mtoolsEnvironment(home: string, epochSeconds: number | undefined): Record<string, string> {
  return toolEnvironment({
    HOME: home,
    MTOOLS_SKIP_CHECK: '1',
    MTOOLSRC: '/dev/null',
    ...(epochSeconds === undefined ? {} : { SOURCE_DATE_EPOCH: String(Math.floor(epochSeconds)) }),
  });
}

function isOutOfSpace(result: ToolResult): boolean {
  return /Disk full|No directory slots/i.test(result.stderr);
}

/** The mtools path of an entry: "::" then its 8.3 aliases, which are plain code-page text. */
function aliasPath(chain: readonly FatEntry[], last?: string): string {
  const parts = chain.map((entry) => entry.shortName ?? '');
  if (last !== undefined) parts.push(last);
  return `::/${parts.join('/')}`;
}

/** A session of edits to one FAT image. */
export class FatImageWriter {
  readonly #imagePath: string;
  readonly #options: FatWriteOptions;
  #env: Record<string, string> = {};
  #home = '';

  constructor(imagePath: string, options: FatWriteOptions) {
    this.#imagePath = imagePath;
    this.#options = options;
  }

  async open(): Promise<void> {
    this.#home = await mkdtemp(join(this.#options.scratchDir, 'mtools-home-'));
    this.#env = mtoolsEnvironment(this.#home, this.#options.epochSeconds);
  }

  async close(): Promise<void> {
    if (this.#home !== '') await rm(this.#home, { recursive: true, force: true });
  }

  #withVolume<T>(mode: 'read-only' | 'read-write', use: (volume: FatVolume) => T): T {
    const device = openFileBlockDevice(this.#imagePath, mode);
    try {
      return use(openFatVolume(device));
    } finally {
      device.close();
    }
  }

  /** The chain of folder entries for `names` (all must exist and be folders); [] for the root. */
  #resolveFolders(volume: FatVolume, names: readonly string[]): FatEntry[] {
    const chain: FatEntry[] = [];
    for (const name of names) {
      const found = this.#findChild(volume.children(chain[chain.length - 1]), name);
      if (found === undefined || found.kind !== 'directory') {
        throw new MediaError('MEDIA_NOT_FOUND', `folder ${JSON.stringify(names.join('/'))} is not on the volume`);
      }
      chain.push(found);
    }
    return chain;
  }

  /** Exact name first; otherwise FAT's case-insensitive match (unless hostile names are on). */
  #findChild(children: readonly FatEntry[], name: string): FatEntry | undefined {
    const leaf = (entry: FatEntry): string => entry.names[entry.names.length - 1] ?? '';
    const exact = children.find((entry) => leaf(entry) === name);
    if (exact !== undefined || this.#options.hostileNames === true) return exact;
    const key = fatCaseKey(name);
    return children.find((entry) => fatCaseKey(leaf(entry)) === key || (entry.shortName !== undefined && fatCaseKey(entry.shortName) === key));
  }

  async #mtools(tool: string, args: readonly string[], what: string): Promise<void> {
    const result = await runTool(tool, ['-i', this.#imagePath, ...args], { env: this.#env });
    if (result.exitCode === 0) return;
    if (isOutOfSpace(result)) throw new MediaError('MEDIA_FULL', `${what}: the volume is full (${result.stderr.trim()})`);
    throw new MediaError('MEDIA_TOOL_FAILED', `${what}: ${tool} exit ${result.exitCode}: ${result.stderr.trim().slice(0, 300)}`);
  }

  /**
   * Adds one folder or file. Returns false when a folder of that name already
   * exists (nothing done). Throws MEDIA_FULL when the volume has no room.
   */
  async add(item: FatItem): Promise<boolean> {
    const name = item.names[item.names.length - 1];
    if (name === undefined) throw new MediaError('MEDIA_SPEC_INVALID', 'an empty path');
    const display = JSON.stringify(item.names.join('/'));
    const problem = fatNameProblem(name);
    if (problem !== null && (this.#options.hostileNames !== true || name.length === 0 || name.length > MAX_LONG_NAME || name === '.' || name === '..' || name.includes('\u0000'))) {
      throw new MediaError('MEDIA_NAME_UNSUPPORTED', `${display}: FAT cannot hold this name (${problem})`);
    }
    const parentNames = item.names.slice(0, -1);
    const { parents, existing, siblings } = this.#withVolume('read-only', (volume) => {
      const chain = this.#resolveFolders(volume, parentNames);
      const children = volume.children(chain[chain.length - 1]);
      return { parents: chain, existing: this.#findChild(children, name), siblings: children };
    });
    if (existing !== undefined) {
      if (item.kind === 'directory' && existing.kind === 'directory') return false;
      if (item.kind === 'directory' || existing.kind === 'directory' || this.#options.replace !== true) {
        throw new MediaError('MEDIA_NAME_UNSUPPORTED', `${display}: ${JSON.stringify(existing.names.join('/'))} already exists (FAT compares names case-insensitively)`);
      }
      await this.#removeEntry(parents, existing);
    }
    // mtools matches names and 8.3 aliases case-insensitively: a hostile case-only
    // clash must not reach it by name, or it would overwrite the sibling.
    const key = fatCaseKey(name);
    const others = siblings.filter((e) => e !== existing);
    const clash = others.some((e) => fatCaseKey(e.names[e.names.length - 1] ?? '') === key || fatCaseKey(e.shortName ?? '') === key);
    const direct = mtoolsKeepsName(name) && !clash;
    const placeholder = direct ? name : this.#placeholder(name.length, others);
    const target = aliasPath(parents, placeholder);
    if (item.kind === 'directory') {
      await this.#mtools('mmd', ['--', target], `creating folder ${display}`);
    } else {
      if (item.source === undefined) throw new MediaError('MEDIA_SPEC_INVALID', `${display}: a file without content`);
      try {
        await this.#mtools('mcopy', ['-D', 'o', '--', item.source, target], `writing ${display}`);
      } catch (error) {
        // mcopy can leave a partial file behind when it runs out of room mid-way.
        await this.#removeIfPresent(parents, placeholder);
        throw error;
      }
    }
    const created = this.#withVolume(direct ? 'read-only' : 'read-write', (volume) => {
      const entry = volume.children(parents[parents.length - 1]).find((e) => e.names[e.names.length - 1] === placeholder);
      if (entry === undefined) throw new MediaError('MEDIA_TOOL_FAILED', `${display}: mtools did not create ${JSON.stringify(placeholder)}`);
      if (!direct) volume.rewriteLongName(entry, name);
      return entry;
    });
    await this.#applyAttributes(parents, created, item.attributes, display);
    return true;
  }

  /** A long name of `length` units that no sibling has, forcing mtools to write long-name slots. */
  #placeholder(length: number, siblings: readonly FatEntry[]): string {
    const taken = new Set(siblings.flatMap((e) => [fatCaseKey(e.names[e.names.length - 1] ?? ''), fatCaseKey(e.shortName ?? '')]));
    for (const c of PLACEHOLDER_CHARS) {
      const candidate = c.repeat(length);
      if (!taken.has(candidate)) return candidate;
    }
    throw new MediaError('MEDIA_TOOL_FAILED', `no free placeholder name of length ${length}`);
  }

  async #applyAttributes(parents: readonly FatEntry[], entry: FatEntry, attributes: Partial<FileAttributes> | undefined, display: string): Promise<void> {
    if (attributes === undefined) return;
    const flags: string[] = [];
    const pairs: Array<[keyof FileAttributes, string]> = [
      ['readonly', 'r'],
      ['hidden', 'h'],
      ['system', 's'],
      ['archive', 'a'],
    ];
    for (const [key, letter] of pairs) {
      const wanted = attributes[key];
      if (wanted !== undefined && wanted !== entry.attributes[key]) flags.push(`${wanted ? '+' : '-'}${letter}`);
    }
    if (flags.length === 0) return;
    await this.#mtools('mattrib', [...flags, '--', aliasPath([...parents, entry])], `setting attributes of ${display}`);
  }

  async #removeIfPresent(parents: readonly FatEntry[], name: string): Promise<void> {
    const entry = this.#withVolume('read-only', (volume) =>
      volume.children(parents[parents.length - 1]).find((e) => e.names[e.names.length - 1] === name),
    );
    if (entry !== undefined) await this.#removeEntry(parents, entry);
  }

  async #removeEntry(parents: readonly FatEntry[], entry: FatEntry): Promise<void> {
    const path = aliasPath([...parents, entry]);
    const display = JSON.stringify(entry.names.join('/'));
    // mtools asks before deleting a read-only file; clear the flag so no question is asked.
    if (entry.attributes.readonly) await this.#mtools('mattrib', ['-r', '--', path], `clearing read-only on ${display}`);
    if (entry.kind === 'directory') await this.#mtools('mdeltree', ['--', path], `removing folder ${display}`);
    else await this.#mtools('mdel', ['--', path], `removing ${display}`);
  }

  /** Removes a file or a folder tree; false when nothing of that name exists. */
  async remove(names: readonly string[]): Promise<boolean> {
    const found = this.#withVolume('read-only', (volume) => {
      const chain = this.#resolveFoldersOrNull(volume, names.slice(0, -1));
      if (chain === null) return null;
      const entry = this.#findChild(volume.children(chain[chain.length - 1]), names[names.length - 1] ?? '');
      return entry === undefined ? null : { chain, entry };
    });
    if (found === null) return false;
    await this.#removeEntry(found.chain, found.entry);
    return true;
  }

  #resolveFoldersOrNull(volume: FatVolume, names: readonly string[]): FatEntry[] | null {
    try {
      return this.#resolveFolders(volume, names);
    } catch (error) {
      if (error instanceof MediaError && error.code === 'MEDIA_NOT_FOUND') return null;
      throw error;
    }
  }

  /** Free bytes now, counted from the FAT. */
  freeBytes(): { free: number; clusterSize: number } {
    return this.#withVolume('read-only', (volume) => ({ free: volume.freeBytes(), clusterSize: volume.clusterSize }));
  }
}

/** Writes `content` to a fresh file under `dir` for mcopy to read. */
export async function stageContent(dir: string, index: number, content: Uint8Array): Promise<string> {
  const path = join(dir, `content-${index}`);
  await writeFile(path, content, { flag: 'wx', mode: 0o600 });
  return path;
}
