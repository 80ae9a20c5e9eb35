/**
 * Inside containers: the kiosk opens every archive and compression layer it
 * finds (by content, not by name) with its sandboxed extractor, and gives
 * each member the same treatment as a file on the drive: hashed (SHA-256 and
 * BLAKE3, for the allowlist), type-checked, judged by the policy's type
 * rules with its path (`setup.zip!/setup.exe`), scanned by clamd (signatures
 * and YARA), and opened in turn when it is a container, within the policy's
 * bounds on nesting, member count, unpacked bytes, ratio and time.
 *
 * What cannot be opened or covered in full is never clean: a format the
 * policy does not open, an archive that contradicts itself, an encrypted
 * member, a limit crossed, an extractor that fails or says anything on its
 * error output: the file is blocked, and the reason names what was not
 * inspected.
 *
 * 7-Zip is asked too (in the same sandbox) whether it would open a file
 * otherwise than the kiosk did: a binary file that may pass must be no
 * archive to 7-Zip at all, a container no other archive once renamed (a tar
 * that is also an ext2 image), and the items of an archive 7-Zip extracts
 * must each have a path of their own.
 */
import { closeSync, constants, createReadStream, fstatSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import { DualDigest, NAME_PROBLEM_TEXT, nameFromBytes, pathProblems, type Blake3Factory } from '../../manifest/index.ts';
import type { Allowlist } from '../core/allowlist.ts';
import { allowedType, type Policy } from '../core/policy.ts';
import {
  CONTAINER_SNIFF_BYTES, detectContainers, gzipHeaderProblem, isCompression, layerContentName, sevenZipSearches, zstdFramesProblem,
  type ContainerFormat, type ReadAt,
} from '../core/container-format.ts';
import { compoundRootClass, encryptedStream, isInstallerClass, missingStreamProblem } from '../core/compound-file.ts';
import { decideFile, HASH_GATED, type EngineName, type Reason, type TypeScope } from '../core/decide.ts';
import type { Extraction, ExtractionLimits, Inspection, ProbeAnswer, ProbeQuestion, StreamScanner } from '../core/ports.ts';
import { checkType, EXECUTABLE_KINDS, extensionsOf, looksText, sniffContent, SNIFF_BYTES, TextScan } from '../core/file-type.ts';
import { EmbeddedArchiveFinder, hiddenArchiveReason } from '../core/embedded-archive.ts';
import {
  IMAGE_SIGNATURE_HEAD_BYTES, IMAGE_SIGNATURE_TAIL_BYTES, imageFormatsToAsk, listedBytes, listingProblem, openedAsReason, parseListing, SEVEN_ZIP_TYPES,
} from '../core/seven-zip-view.ts';
import { readTarStream, TarStreamError, type TarMember } from '../core/tar-stream.ts';
import { zipMembers, ZipExtractError } from './zip-extract.ts';
import { checkZipStructure, endsWithZip, ZIP_TAIL_BYTES, type ZipListing } from '../core/zip-structure.ts';

const RATIO_FLOOR = 1024 * 1024; // bytes unpacked before the ratio applies: small archives may compress well
const MAX_REASONS = 24; // member reasons kept per file on the drive; the rest are counted
const TMPFS_SLACK = 1024 * 1024; // bytes of an extraction's tmpfs beyond what its items list: folders, metadata
const TMPFS_PER_ITEM = 4096; // bytes: tmpfs rounds each file up to a page

export interface InspectContext {
  readonly inspection: Inspection;
  readonly scanner: StreamScanner | null;
  readonly blake3: Blake3Factory;
  readonly policy: Policy;
  readonly allowlist: Allowlist;
  readonly signal?: AbortSignal;
}

/** A container held in the work folder, ready to be opened. */
export interface HeldContainer {
  readonly path: string; // its private work file
  readonly size: number; // bytes
  readonly format: ContainerFormat;
  /** Where it is, for reasons: `docs/a.zip`, or `docs/a.zip!/b.tar.gz` for a member. */
  readonly chain: string;
  /** Its own name (last component), to name a compression layer's content. */
  readonly name: string;
  /** How its members are judged. */
  readonly scope: Exclude<TypeScope, 'drive'>;
  /** The container's hash is on the allowlist: its members' types need no hash of their own. */
  readonly exempt: boolean;
  /** 7-Zip's view of it, when it was asked already (while clamd scanned the file). */
  readonly view?: Promise<SevenZipView>;
}

/** Bounds shared by everything inside one file on the drive. */
interface Budget {
  members: number;
  bytes: number;
  /** Bytes the live extractions' tmpfs (RAM) hold for their items that have not come out yet (then they count in `bytes`). */
  reserved: number;
  readonly outerBytes: number; // the size of the file on the drive, for the ratio
  readonly deadline: number; // ms clock
}

/** One live extraction's share of the budget: `size` bytes listed, `streamed` of them read back so far. */
interface Reservation {
  readonly size: number;
  streamed: number;
}

/** What may still be unpacked from the file on the drive, and the policy setting that binds. */
function unpackRoom(budget: Budget, policy: Policy): { bytes: number; setting: string } {
  const byRatio = Math.max(RATIO_FLOOR, policy.archives.maxCompressionRatio * Math.max(1, budget.outerBytes));
  const [limit, setting] = byRatio < policy.clamav.maxScanBytes
    ? [byRatio, `archives.maxCompressionRatio (${policy.archives.maxCompressionRatio} times the ${budget.outerBytes} bytes of the file on the drive)`]
    : [policy.clamav.maxScanBytes, `clamav.maxScanBytes (${policy.clamav.maxScanBytes} bytes)`];
  return { bytes: Math.max(0, limit - budget.bytes - budget.reserved), setting };
}

/** A limit crossed while reading a member: ends the whole inspection of the file. */
class Stop extends Error {
  readonly reason: Reason;
  constructor(reason: Reason) {
    super(reason.detail);
    this.reason = reason;
  }
}

class Findings {
  readonly list: Reason[] = [];
  #more = 0;
  add(reason: Reason): void {
    if (this.list.some((r) => r.code === reason.code && r.detail === reason.detail)) return;
    if (this.list.length < MAX_REASONS) this.list.push(reason);
    else this.#more++;
  }
  done(): Reason[] {
    if (this.#more === 0) return this.list;
    const last = this.list[this.list.length - 1]!;
    return [...this.list.slice(0, -1), { code: last.code, detail: `${last.detail} (and ${this.#more} more findings inside)` }];
  }
}

/** How a container's members are judged, from the type the container itself is. */
export function memberScope(policy: Policy, name: string, contentKind: string | null, parent: TypeScope): Exclude<TypeScope, 'drive'> {
  if (parent === 'content') return 'content';
  return allowedType(policy, extensionsOf(name), contentKind, parent === 'parts')?.members ?? 'files';
}

/**
 * Opens `container` and judges everything in it. Returns the reasons that
 * block the file on the drive (empty when every member may pass), each
 * naming the member (`a.zip!/setup.exe: ...`). Scanner failures (clamd down)
 * and a stop are thrown, as for a file on the drive.
 */
export async function inspectContainer(container: HeldContainer, ctx: InspectContext): Promise<Reason[]> {
  const budget: Budget = { members: 0, bytes: 0, reserved: 0, outerBytes: container.size, deadline: performance.now() + ctx.policy.clamav.maxScanSeconds * 1000 };
  const findings = new Findings();
  try {
    await openContainer(container, 1, budget, ctx, findings);
  } catch (error) {
    if (!(error instanceof Stop)) throw error;
    findings.add(error.reason);
  }
  return findings.done();
}

function limitReason(chain: string, detail: string): Reason {
  return { code: 'LIMIT_EXCEEDED', detail: `${chain}: ${detail}` };
}

async function openContainer(c: HeldContainer, depth: number, budget: Budget, ctx: InspectContext, findings: Findings): Promise<void> {
  const { policy } = ctx;
  if (!(policy.archives.formats as readonly string[]).includes(c.format)) {
    findings.add({ code: 'NOT_INSPECTED', detail: `${c.chain}: ${c.format} content is not opened under this policy (archives.formats), so it cannot be inspected` });
    return;
  }
  if (depth > policy.clamav.maxRecursion) {
    throw new Stop(limitReason(c.chain, `containers nested deeper than the policy's clamav.maxRecursion (${policy.clamav.maxRecursion} levels)`));
  }
  const timeLeft = (): number => budget.deadline - performance.now();
  if (timeLeft() <= 0) throw new Stop(limitReason(c.chain, `inspecting took longer than the policy's clamav.maxScanSeconds (${policy.clamav.maxScanSeconds} s)`));
  // An installer database is a program, judged by its hash as a whole (an allowlisted MSI is not taken apart).
  if (c.format === 'ole2' && isInstallerClass(compoundRootClass(fileReader(c.path)))) return;
  // What 7-Zip makes of it: the kiosk's reading must be the only one (and, for a PDF, how many attachments it has).
  const seen = await (c.view ?? sevenZipView(c.path, c.format, c.chain, ctx.inspection, budget.deadline, ctx.signal));
  if (seen.reason !== null) {
    findings.add(seen.reason);
    return;
  }
  if (c.format === 'pdf' && seen.attachments === 0) return; // nothing to extract
  if (c.format === 'zip') return openZip(c, depth, budget, ctx, findings);
  if (c.format === 'tar') return readMembers(c, createReadStream(c.path, { highWaterMark: 1024 * 1024 }), null, depth, budget, ctx, findings);
  const layer = layerProblem(c);
  if (layer !== null) {
    findings.add({ code: 'NOT_INSPECTED', detail: `${c.chain}: ${layer}` });
    return;
  }
  if (c.format === '7z') {
    const problem = sevenZipEndProblem(c.path);
    if (problem !== null) {
      findings.add({ code: 'NOT_INSPECTED', detail: `${c.chain}: ${problem}` });
      return;
    }
  }
  if (!isCompression(c.format) && c.format !== '7z' && c.format !== 'pdf' && zipAtEnd(c.path)) {
    // 7-Zip reads these formats to their own end and ignores what follows; a zip there opens once renamed.
    findings.add({ code: 'NOT_INSPECTED', detail: `${c.chain}: a zip archive ends this ${c.format} archive (a polyglot): what it holds was not inspected` });
    return;
  }
  if (!ctx.inspection.extractor.opens(c.format)) {
    findings.add({ code: 'NOT_INSPECTED', detail: `${c.chain}: this kiosk has no tool to open ${c.format} content, so it cannot be inspected` });
    return;
  }
  if (isCompression(c.format)) {
    // Streamed through its decompressor: nothing is held, the bounds apply as the content comes out.
    const extraction = ctx.inspection.extractor.open(c.path, c.format, { cpuSeconds: timeLeft() / 1000, maxOutputBytes: Math.max(1, policy.clamav.maxScanBytes - budget.bytes) });
    // One member, the content, named as gzip or 7-Zip would name it (and judged under the name stored in a gzip header too).
    const names = [layerContentName(c.name), ...gzipStoredName(c)].filter((n, i, all) => all.indexOf(n) === i);
    const member: TarMember = { name: Buffer.from(names[0]!), kind: 'file', size: -1, sparse: false, typeflag: '0', body: extraction.output };
    return readMembers(c, null, { extraction, single: member, otherNames: names.slice(1) }, depth, budget, ctx, findings);
  }
  // Extracted whole into a tmpfs (RAM) first: sized to what its listing says it unpacks to, which must fit the budget.
  const plan = await planExtraction(c, budget, ctx);
  if ('code' in plan) {
    findings.add(plan);
    return;
  }
  if (plan.size === 0) return; // a PDF without attachments
  const reservation: Reservation = { size: plan.reserve, streamed: 0 };
  budget.reserved += reservation.size;
  try {
    const extraction = ctx.inspection.extractor.open(c.path, c.format, { cpuSeconds: timeLeft() / 1000, maxOutputBytes: plan.size });
    const rootStreams: string[] = [];
    await readMembers({ ...c, reservation, rootStreams }, extraction.output, { extraction, single: null, otherNames: [] }, depth, budget, ctx, findings);
    if (c.format === 'ole2') compoundChecks(c, rootStreams, policy, findings);
  } finally {
    budget.reserved -= reservation.size - Math.min(reservation.size, reservation.streamed);
  }
}

/** A compression layer's framing: a gzip header's optional fields and a zstd stream's frames, bounded. */
function layerProblem(c: HeldContainer): string | null {
  if (c.format === 'gzip') return gzipHeaderProblem(fileReader(c.path)(0, 64 * 1024));
  if (c.format === 'zstd') return zstdFramesProblem(fileReader(c.path), c.size);
  return null;
}

/** After an OLE2 file's streams: a legacy Office name needs its document stream; an encrypted package cannot be inspected. */
function compoundChecks(c: HeldContainer, rootStreams: readonly string[], policy: Policy, findings: Findings): void {
  const missing = missingStreamProblem(extensionsOf(c.name).at(-1), rootStreams);
  if (missing !== null && policy.types.blockMismatch) findings.add({ code: 'TYPE_MISMATCH', detail: `${c.chain}: ${missing}` });
  const encrypted = encryptedStream(rootStreams);
  if (encrypted !== null) findings.add({ code: 'ENCRYPTED', detail: `${c.chain}: an encrypted document (its ${encrypted} stream): encrypted content cannot be inspected` });
}

/** Reads from a file the kiosk holds (a ReadAt for the pure readers). */
function fileReader(path: string): ReadAt {
  return (position, length) => {
    const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const out = Buffer.alloc(length);
      let got = 0;
      while (got < length) {
        const n = readSync(fd, out, got, length - got, position + got);
        if (n === 0) break;
        got += n;
      }
      return out.subarray(0, got);
    } finally {
      closeSync(fd);
    }
  };
}

/** How an archive 7-Zip (or pdfdetach) extracts into a tmpfs is bounded: the tmpfs's size and the budget it reserves. */
async function planExtraction(c: HeldContainer, budget: Budget, ctx: InspectContext): Promise<{ size: number; reserve: number } | Reason> {
  const room = unpackRoom(budget, ctx.policy);
  const limits: ExtractionLimits = { cpuSeconds: Math.max(0.001, (budget.deadline - performance.now()) / 1000), maxOutputBytes: Math.max(1, room.bytes) };
  let declared: number;
  let items: number;
  if (c.format === 'pdf') {
    const answer = await ctx.inspection.extractor.probe(c.path, { as: 'attachments' }, limits);
    const lines = answer.stdout.split('\n').filter((l) => l !== '');
    const sizes = lines.map((l) => (/^[0-9]{1,15}$/.test(l.trim()) ? Number(l.trim()) : NaN));
    if (answer.end.code !== 0 || answer.end.signal !== null || answer.truncated || sizes.some((n) => Number.isNaN(n)) || sizes.length !== 1 + (sizes[0] ?? -1)) {
      return { code: 'NOT_INSPECTED', detail: `${c.chain}: its attachments could not be listed and sized (${shortEnd(answer)}): a PDF whose attachments cannot be read is not inspected` };
    }
    if (sizes[0] === 0) return { size: 0, reserve: 0 };
    items = sizes[0]!;
    declared = sizes.slice(1).reduce((a, b) => a + b, 0);
  } else {
    const type = SEVEN_ZIP_TYPES[c.format];
    if (type === null) return { code: 'NOT_INSPECTED', detail: `${c.chain}: this kiosk has no tool to open ${c.format} content, so it cannot be inspected` };
    const answer = await ctx.inspection.extractor.probe(c.path, { as: 'type', type }, limits);
    const listing = answer.end.code === 0 && answer.end.signal === null && !answer.truncated ? parseListing(answer.stdout) : null;
    if (listing === null || 'problem' in listing || listing.archives[0]?.type.toLowerCase() !== type.toLowerCase() || listing.archives[0].offset !== 0) {
      const why = listing !== null && 'problem' in listing ? listing.problem : shortEnd(answer);
      return { code: 'NOT_INSPECTED', detail: `${c.chain}: 7-Zip could not list it as ${c.format} (${why})` };
    }
    const problem = listingProblem(listing.items);
    if (problem !== null) return { code: 'NOT_INSPECTED', detail: `${c.chain}: ${problem}: it cannot be extracted as it is listed, so it is not inspected` };
    items = listing.items.length;
    declared = listedBytes(listing.items);
  }
  if (declared > room.bytes) {
    return limitReason(c.chain, `its ${items} items unpack to ${declared} bytes, more than the ${room.bytes} the policy's ${room.setting} still allows for the file on the drive`);
  }
  return { size: declared + TMPFS_PER_ITEM * (items + 1) + TMPFS_SLACK, reserve: declared };
}

function shortEnd(answer: ProbeAnswer): string {
  const said = answer.end.stderr.trim().split('\n').filter((l) => l !== '').slice(0, 2).join('; ');
  if (answer.truncated) return 'its listing is too long';
  if (answer.end.signal !== null) return `ended by ${answer.end.signal}`;
  return said === '' ? `exit ${String(answer.end.code)}` : said;
}

/**
 * Whether 7-Zip opens the file at `path` otherwise than the kiosk does (the
 * reason, or null): a file that is no container the kiosk opens at its
 * first byte (`format` null, a PDF) must be no archive to 7-Zip at all; a
 * container must not also open as a disk image whose signature sits where
 * 7-Zip looks (7-Zip tries those first for a file named `.img`).
 */
export async function askSevenZip(path: string, format: ContainerFormat | null, chain: string | null, inspection: Inspection, deadline: number, signal?: AbortSignal): Promise<Reason | null> {
  return (await sevenZipView(path, format, chain, inspection, deadline, signal)).reason;
}

/** What 7-Zip made of a file: why it is blocked (or null), and for a PDF how many attachments pdfdetach lists. */
export interface SevenZipView {
  readonly reason: Reason | null;
  readonly attachments?: number | null;
}

/** askSevenZip, and for a PDF the number of attachments pdfdetach lists (asked in the same sandbox). */
export async function sevenZipView(path: string, format: ContainerFormat | null, chain: string | null, inspection: Inspection, deadline: number, signal?: AbortSignal): Promise<SevenZipView> {
  const limits: ExtractionLimits = { cpuSeconds: Math.max(0.001, (deadline - performance.now()) / 1000), maxOutputBytes: 1 };
  const own = format === null ? null : SEVEN_ZIP_TYPES[format];
  let question: ProbeQuestion;
  if (sevenZipSearches(format)) {
    question = format === 'pdf' ? { as: 'any', attachments: true } : { as: 'any' };
  } else {
    const read = fileReader(path);
    const size = fstatOf(path);
    const types = imageFormatsToAsk(read(0, IMAGE_SIGNATURE_HEAD_BYTES), read(Math.max(0, size - IMAGE_SIGNATURE_TAIL_BYTES), IMAGE_SIGNATURE_TAIL_BYTES))
      .filter((t) => t.toLowerCase() !== own?.toLowerCase());
    if (types.length === 0) return { reason: null };
    question = { as: 'each', types };
  }
  signal?.throwIfAborted();
  const answer = await inspection.extractor.probe(path, question, limits);
  signal?.throwIfAborted();
  const prefix = chain === null ? '' : `${chain}: `;
  if (answer.end.signal !== null || answer.truncated || (answer.end.code !== 0 && !(question.as === 'any' && answer.end.code === 2))) {
    return { reason: { code: 'NOT_INSPECTED', detail: `${prefix}7-Zip could not be asked what it makes of it (${shortEnd(answer)})` } };
  }
  if (question.as === 'each') {
    const opened = answer.stdout.split('\n').map((l) => l.trim()).filter((l) => l !== '');
    return { reason: opened.length === 0 ? null : openedAsReason(chain, opened[0]!, format) };
  }
  const listing = parseListing(answer.stdout);
  if ('problem' in listing) return { reason: { code: 'NOT_INSPECTED', detail: `${prefix}7-Zip's listing of it is malformed (${listing.problem})` } };
  const other = listing.archives[0];
  if (other !== undefined) return { reason: openedAsReason(chain, other, format === null ? null : format) };
  if (format === 'pdf' && (answer.attachments === null || answer.attachments === undefined)) {
    return { reason: { code: 'NOT_INSPECTED', detail: `${prefix}its attachments could not be listed (pdfdetach cannot read it): a PDF whose attachments cannot be read is not inspected` } };
  }
  return { reason: null, attachments: answer.attachments };
}

function fstatOf(path: string): number {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    return fstatSync(fd).size;
  } finally {
    closeSync(fd);
  }
}

/** A zip, checked and extracted by the kiosk itself from its central directory. */
async function openZip(c: HeldContainer, depth: number, budget: Budget, ctx: InspectContext, findings: Findings): Promise<void> {
  const checked = zipStructure(c, budget, ctx.policy);
  if ('finding' in checked) {
    findings.add({ code: checked.finding.code, detail: `${c.chain}: ${checked.finding.detail}` });
    return;
  }
  // Document part rules only for a real OOXML or OpenDocument package (a zip merely named .docx gets the archive rules).
  const document = c.scope === 'parts' ? documentKind(checked.entries) : null;
  const held: HeldContainer = c.scope === 'parts' && document === null ? { ...c, scope: 'files' } : c;
  return readMembers({ ...held, document }, null, { zip: checked.entries }, depth, budget, ctx, findings);
}

interface Source {
  readonly extraction?: Extraction;
  /** A compression layer's one member. */
  readonly single?: TarMember | null;
  readonly otherNames?: readonly string[];
  /** A zip's checked directory, extracted by the kiosk. */
  readonly zip?: readonly ZipListing[];
}

/** Reads a container's members (from a tar stream, a zip's directory, or a layer's one member) and judges each. */
async function readMembers(
  c: Opened,
  tarBytes: AsyncIterable<Uint8Array> | null,
  source: Source | null,
  depth: number,
  budget: Budget,
  ctx: InspectContext,
  findings: Findings,
): Promise<void> {
  const { policy } = ctx;
  const extraction = source?.extraction ?? null;
  // A parser or reader that hangs is ended at the deadline; its output then ends and the reader stops.
  const stopStream = (): void => {
    extraction?.kill();
    if (tarBytes !== null && 'destroy' in tarBytes) (tarBytes as { destroy(): void }).destroy();
  };
  const timer = setTimeout(stopStream, Math.max(1, budget.deadline - performance.now()));
  const onAbort = (): void => stopStream();
  ctx.signal?.addEventListener('abort', onAbort, { once: true });
  let stopped: unknown = null;
  const probes = new MemberProbes();
  const opened: Opened = { ...c, probes };
  try {
    if (source?.single) {
      await judgeMember(source.single, opened, depth, budget, ctx, findings, source.otherNames ?? []);
    } else if (source?.zip) {
      for (const member of zipMembers(c.path, source.zip)) await judgeMember(member, opened, depth, budget, ctx, findings, []);
    } else if (tarBytes !== null) {
      for await (const member of readTarStream(tarBytes)) await judgeMember(member, opened, depth, budget, ctx, findings, []);
    }
  } catch (error) {
    stopped = error;
  } finally {
    clearTimeout(timer);
    ctx.signal?.removeEventListener('abort', onAbort);
  }
  try {
    await probes.settle();
  } catch (error) {
    stopped ??= error;
  }
  if (stopped !== null) stopStream();
  const end = extraction ? await extraction.ended : null;
  ctx.signal?.throwIfAborted();
  if (stopped instanceof Stop) throw stopped;
  if (performance.now() >= budget.deadline) throw new Stop(limitReason(c.chain, `inspecting took longer than the policy's clamav.maxScanSeconds (${policy.clamav.maxScanSeconds} s)`));
  if (stopped instanceof TarStreamError || stopped instanceof ZipExtractError) {
    const what = end === null ? stopped.message : `its extractor's output was malformed (${stopped.message})`;
    findings.add(end === null || (end.code === 0 && end.stderr.trim() === '') ? { code: 'NOT_INSPECTED', detail: `${c.chain}: ${what}` } : extractorReason(c, end, null));
    return;
  }
  if (stopped !== null) throw stopped instanceof Error ? stopped : new Error('the archive inspection failed', { cause: stopped });
  if (end !== null && (end.code !== 0 || end.signal !== null || end.stderr.trim() !== '')) findings.add(extractorReason(c, end, null));
}

/**
 * A container being read: its document kind (a zip), its extraction's
 * reservation, (OLE2) the streams at its root, and the 7-Zip probes of its
 * members still under way (each holds its member's work file until it ends).
 */
type Opened = HeldContainer & { readonly document?: DocumentKind | null; readonly reservation?: Reservation; readonly rootStreams?: string[]; readonly probes?: MemberProbes };

const PROBES_PENDING = 32; // members' probes under way at once per container; more wait for one to end

/** Members' probes of one container: run while the next members are read, so 7-Zip lists many in one sandbox. */
class MemberProbes {
  readonly #pending = new Set<Promise<void>>();
  #failure: unknown = null;

  async add(probe: Promise<void>): Promise<void> {
    const tracked: Promise<void> = probe.catch((error: unknown) => {
      this.#failure ??= error;
    }).finally(() => this.#pending.delete(tracked));
    this.#pending.add(tracked);
    if (this.#pending.size >= PROBES_PENDING) await Promise.race(this.#pending);
  }

  /** Waits for every probe; a probe that failed (the scan was stopped) is thrown here. */
  async settle(): Promise<void> {
    await Promise.all(this.#pending);
    const failure = this.#failure;
    if (failure !== null) throw failure instanceof Error ? failure : new Error('a member\'s probe failed', { cause: failure });
  }
}

/** What kind of document package a zip is, from the parts its directory lists. */
type DocumentKind = 'ooxml' | 'odf';

function documentKind(entries: readonly ZipListing[]): DocumentKind | null {
  const names = entries.map((e) => Buffer.from(e.name).toString('latin1'));
  if (names.includes('[Content_Types].xml')) return 'ooxml';
  if (names[0] === 'mimetype' && entries[0]!.method === 0) return 'odf';
  return null;
}

/** The folders and files a document's own parts live in: anything else in it is judged as a file in an archive. */
const DOCUMENT_PARTS: Readonly<Record<DocumentKind, RegExp>> = {
  ooxml: /^(\[Content_Types\]\.xml$|_rels\/|docProps\/|customXml\/|word\/|xl\/|ppt\/|visio\/)/,
  odf: /^(mimetype$|content\.xml$|styles\.xml$|meta\.xml$|settings\.xml$|manifest\.rdf$|layout-cache$|META-INF\/|Pictures\/|Thumbnails\/|Configurations2\/|Object [0-9]+\/|ObjectReplacements\/|Basic\/|Scripts\/|Dialogs\/)/,
};

/** Whether a zip ends the file at `path` (its last ZIP_TAIL_BYTES read). */
function zipAtEnd(path: string): boolean {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const size = fstatSync(fd).size;
    const tail = Buffer.alloc(Math.min(size, ZIP_TAIL_BYTES));
    const got = readSync(fd, tail, 0, tail.length, size - tail.length);
    return endsWithZip(tail.subarray(0, got), size);
  } finally {
    closeSync(fd);
  }
}

/** 7z: the start header's next-header offset and size must end the file exactly (nothing appended). */
function sevenZipEndProblem(path: string): string | null {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const size = fstatSync(fd).size;
    const head = Buffer.alloc(32);
    if (readSync(fd, head, 0, 32, 0) !== 32) return 'a 7z archive cut short (truncated)';
    const end = 32n + head.readBigUInt64LE(12) + head.readBigUInt64LE(20);
    if (end !== BigInt(size)) return end < BigInt(size) ? `${BigInt(size) - end} bytes follow the 7z archive's end (something appended)` : 'a 7z archive cut short (truncated)';
    return null;
  } finally {
    closeSync(fd);
  }
}

/** The file name a gzip header stores (FNAME), which gzip -N and 7-Zip give the content. */
function gzipStoredName(c: HeldContainer): string[] {
  if (c.format !== 'gzip') return [];
  const fd = openSync(c.path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const head = Buffer.alloc(64 * 1024);
    const got = readSync(fd, head, 0, head.length, 0);
    const flags = head[3]!;
    if ((flags & 0x08) === 0) return [];
    let at = 10;
    if ((flags & 0x04) !== 0) at += 2 + head.readUInt16LE(10); // FEXTRA
    const end = head.indexOf(0, at);
    if (end < 0 || end >= got) return [];
    const stored = head.subarray(at, end).toString('latin1'); // RFC 1952: ISO 8859-1
    const base = stored.slice(Math.max(stored.lastIndexOf('/'), stored.lastIndexOf('\\')) + 1);
    return base === '' ? [] : [base];
  } finally {
    closeSync(fd);
  }
}

/** Why the extractor's end means the container was not fully opened. */
function extractorReason(c: HeldContainer, end: Awaited<Extraction['ended']>, why: string | null): Reason {
  const said = end.stderr.trim().split('\n').map((l) => l.replace(/^(bsdtar|bsdcat): /, '')).filter((l) => l !== '').slice(0, 2).join('; ');
  const encrypted = /encrypt|passphrase|password/i.test(said);
  const how = end.signal !== null ? `ended by ${end.signal}${end.signal === 'SIGXCPU' || end.signal === 'SIGKILL' ? ' (a resource limit)' : ''}` : `exit ${String(end.code)}`;
  const detail = why ?? `${c.format} could not be read in full (${said === '' ? how : said})`;
  return { code: encrypted ? 'ENCRYPTED' : 'NOT_INSPECTED', detail: `${c.chain}: ${detail}${encrypted ? ': encrypted content cannot be inspected' : ''}` };
}

function zipStructure(c: HeldContainer, budget: Budget, policy: Policy): ReturnType<typeof checkZipStructure> {
  const fd = openSync(c.path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const size = fstatSync(fd).size;
    const read = (position: number, length: number): Uint8Array => {
      const out = Buffer.alloc(Math.max(0, Math.min(length, size - position)));
      let got = 0;
      while (got < out.length) {
        const n = readSync(fd, out, got, out.length - got, position + got);
        if (n === 0) break;
        got += n;
      }
      return out.subarray(0, got);
    };
    return checkZipStructure(read, size, {
      maxEntries: Math.max(0, policy.clamav.maxFilesPerArchive - budget.members),
      maxEntryBytes: policy.clamav.maxEmbeddedFileBytes,
      maxTotalBytes: Math.max(0, policy.clamav.maxScanBytes - budget.bytes),
      maxRatio: policy.archives.maxCompressionRatio,
    }, {
      maxEntries: 'clamav.maxFilesPerArchive',
      maxEntryBytes: 'clamav.maxEmbeddedFileBytes',
      maxTotalBytes: 'clamav.maxScanBytes',
      maxRatio: 'archives.maxCompressionRatio',
    });
  } finally {
    closeSync(fd);
  }
}

/** One member: named, bounded, hashed, scanned, judged, and opened when it is a container. */
async function judgeMember(
  member: TarMember,
  parent: Opened,
  depth: number,
  budget: Budget,
  ctx: InspectContext,
  findings: Findings,
  otherNames: readonly string[],
): Promise<void> {
  const { policy } = ctx;
  const named = nameFromBytes(member.name);
  const text = named.text?.replace(/\/+$/, '') ?? null;
  const chain = `${parent.chain}!/${text === null ? named.display : named.display.replace(/\/+$/, '')}`;
  if (parent.rootStreams !== undefined && text !== null && !text.includes('/')) parent.rootStreams.push(text);
  budget.members++; // folders count too: an archive of a million empty folders is no cheaper to open
  if (budget.members > policy.clamav.maxFilesPerArchive) {
    throw new Stop(limitReason(parent.chain, `more than the policy's clamav.maxFilesPerArchive (${policy.clamav.maxFilesPerArchive}) members`));
  }
  if (member.kind === 'directory') return;
  // A document's own parts are judged as parts; anything else inside it as a file in an archive. An OLE2 file's
  // streams have names of their own (WordDocument, 1Table): judged by content, unless named like a file (setup.exe).
  const scope: Exclude<TypeScope, 'drive'> = parent.format === 'ole2' && parent.scope !== 'content'
    ? (extensionsOf(text ?? named.display).length > 0 ? 'files' : 'content')
    : parent.format === 'pdf' && parent.scope !== 'content'
      ? 'files'
      : parent.scope === 'parts' && parent.document && text !== null && !DOCUMENT_PARTS[parent.document].test(text) ? 'files' : parent.scope;
  const own = new Findings();
  if (text === null) own.add({ code: 'UNSAFE_NAME', detail: 'the name is not valid UTF-8' });
  else for (const p of pathProblems(text).filter((x) => x !== 'RESERVED_FOLDER')) own.add({ code: 'UNSAFE_NAME', detail: NAME_PROBLEM_TEXT[p] });
  if (member.kind !== 'file') {
    own.add({ code: 'NOT_REGULAR_FILE', detail: `a ${member.kind === 'other' ? `special member (type ${JSON.stringify(member.typeflag)})` : member.kind}, not a regular file` });
    for (const r of own.list) findings.add({ code: r.code, detail: `${chain}: ${r.detail}` });
    return;
  }
  if (member.sparse) {
    findings.add({ code: 'NOT_INSPECTED', detail: `${chain}: a sparse member, whose bytes the kiosk cannot inspect as written` });
    return;
  }
  const maxMember = policy.clamav.maxEmbeddedFileBytes;
  if (member.size > maxMember) {
    throw new Stop(limitReason(chain, `${member.size} bytes, over the policy's clamav.maxEmbeddedFileBytes (${maxMember} bytes)`));
  }

  // The member's bytes, once: hashed, sniffed, counted against the bounds, scanned, and kept when a container.
  const digest = await DualDigest.create(ctx.blake3);
  const head = new Uint8Array(CONTAINER_SNIFF_BYTES);
  let headFilled = 0;
  // The member's last bytes, where a zip appended to it would end (a polyglot inside an archive).
  const tail = new TailWindow(ZIP_TAIL_BYTES);
  const hidden = new EmbeddedArchiveFinder(); // used only when 7-Zip does not open the member as a container itself
  const textScan = new TextScan();
  // The member's bytes are kept in a private work file when its head shows a container (to open it), or binary
  // content that may pass (to ask 7-Zip whether it is an archive too); text is followed as it comes out.
  const keep: { decided: boolean; format: ContainerFormat | null; path: string | null; fd: number | null } = { decided: false, format: null, path: null, fd: null };
  const early: Uint8Array[] = []; // copies of the first chunks, until the head tells whether to keep the bytes
  const decide = (): void => {
    keep.decided = true;
    const formats = detectContainers(head.subarray(0, headFilled));
    keep.format = formats[0] ?? null;
    // A head two formats claim is read differently by different tools: it is not opened at all.
    if (formats.length > 1) {
      own.add({ code: 'NOT_INSPECTED', detail: `its first bytes are both ${formats.join(' and ')} content: tools would read it differently, so it is not opened` });
      keep.format = null;
    }
    const sniffHead = head.subarray(0, Math.min(headFilled, SNIFF_BYTES));
    const binary = keep.format === null && formats.length <= 1 && headFilled > 0 && !parent.exempt && !looksText(sniffHead) && !EXECUTABLE_KINDS.has(sniffContent(sniffHead));
    if (keep.format !== null || binary) {
      const file = ctx.inspection.folder.create();
      keep.path = file.path;
      keep.fd = file.fd;
      for (const piece of early) writeAll(file.fd, piece);
    }
    early.length = 0;
  };
  const outerLimit = Math.max(RATIO_FLOOR, policy.archives.maxCompressionRatio * Math.max(1, budget.outerBytes));
  async function* bytes(): AsyncGenerator<Uint8Array> {
    for await (const chunk of member.body) {
      ctx.signal?.throwIfAborted();
      if (performance.now() > budget.deadline) {
        throw new Stop(limitReason(chain, `inspecting took longer than the policy's clamav.maxScanSeconds (${policy.clamav.maxScanSeconds} s)`));
      }
      if (digest.bytesSeen + chunk.length > maxMember) {
        throw new Stop(limitReason(chain, `more than the policy's clamav.maxEmbeddedFileBytes (${maxMember} bytes)`));
      }
      budget.bytes += chunk.length;
      if (budget.bytes > policy.clamav.maxScanBytes) {
        throw new Stop(limitReason(parent.chain, `unpacks to more than the policy's clamav.maxScanBytes (${policy.clamav.maxScanBytes} bytes)`));
      }
      if (budget.bytes > outerLimit) {
        throw new Stop(limitReason(parent.chain, `unpacks to more than ${policy.archives.maxCompressionRatio} times the size of the file on the drive, the policy's archives.maxCompressionRatio: a decompression bomb`));
      }
      if (parent.reservation !== undefined) {
        // What comes out of an extraction's tmpfs is counted in `bytes` now, no longer in its reservation.
        const counted = Math.min(chunk.length, parent.reservation.size - parent.reservation.streamed);
        parent.reservation.streamed += counted;
        budget.reserved -= counted;
      }
      digest.update(chunk);
      tail.push(chunk);
      hidden.push(chunk);
      textScan.push(chunk);
      if (headFilled < head.length) {
        const take = Math.min(head.length - headFilled, chunk.length);
        head.set(chunk.subarray(0, take), headFilled);
        headFilled += take;
      }
      if (keep.fd !== null) writeAll(keep.fd, chunk);
      else if (!keep.decided) {
        early.push(chunk.slice());
        if (headFilled === head.length) decide();
      }
      yield chunk;
    }
  }
  try {
    let answer: Awaited<ReturnType<StreamScanner['scanStream']>> | null = null;
    const stream = bytes();
    // An empty member holds nothing for an engine to find (thousands of them made a zip take seconds).
    const empty = member.size === 0;
    if (ctx.scanner && !empty) answer = await ctx.scanner.scanStream(stream, ctx.signal);
    // Whatever the scanner left unread is still hashed and counted (INSTREAM may answer early).
    for await (const chunk of stream) void chunk;
    if (!keep.decided) decide();
    if (keep.fd !== null) {
      closeSync(keep.fd);
      keep.fd = null;
    }
    const cleanBy = new Set<EngineName>();
    if (member.size >= 0 && digest.bytesSeen !== member.size) {
      own.add({ code: 'NOT_INSPECTED', detail: `${digest.bytesSeen} bytes came out where the archive lists ${member.size}` });
    }
    if (answer !== null) {
      if (answer.status === 'found') for (const f of [answer, ...(answer.more ?? [])]) own.add({ code: f.reason, detail: f.signature });
      if (answer.status === 'clean' || answer.reason === 'MACRO') for (const e of ctx.scanner!.engines) cleanBy.add(e);
    } else if (empty && ctx.scanner && digest.bytesSeen === 0) {
      for (const e of ctx.scanner.engines) cleanBy.add(e);
    }
    const installer = keep.format === 'ole2' && keep.path !== null && isInstallerClass(compoundRootClass(fileReader(keep.path)));
    const sniffed = checkType(text ?? named.display, head.subarray(0, Math.min(headFilled, SNIFF_BYTES)), digest.bytesSeen, { text: textScan.text, installer });
    if (policy.types.blockMismatch) for (const f of sniffed.findings) own.add(f);
    if (parent.document === 'odf' && text !== null && /^(basic|scripts)\//i.test(text)) {
      own.add({ code: 'MACRO', detail: 'an OpenDocument macro library' });
    }
    const finished = digest.finish();
    const listed = ctx.allowlist.lookup(finished) !== null;
    // Content must not end in a zip (a polyglot); a container the kiosk opens must not end in one whose comment
    // runs to its end (a zip in tar padding, a gzip FEXTRA field, a zstd skippable frame).
    const searched = sevenZipSearches(keep.format);
    if (!listed && keep.format !== 'zip' && endsWithZip(tail.bytes(), digest.bytesSeen, { exact: !searched })) {
      own.add({ code: 'NOT_INSPECTED', detail: `a zip archive ends this ${sniffed.kind} content (a polyglot): what it holds was not inspected` });
    } else if (searched && !listed) {
      hidden.finish();
      if (hidden.found !== null) own.add(hiddenArchiveReason(hidden.found));
    }
    const observed = {
      path: text,
      display: named.display,
      size: digest.bytesSeen,
      digest: finished,
      extensions: extensionsOf(text ?? named.display),
      contentKind: sniffed.kind,
      reasons: own.list,
      cleanBy,
    };
    const decision = decideFile(observed, ctx.allowlist, policy, scope);
    const reasons = parent.exempt ? decision.reasons.filter((r) => !HASH_GATED.has(r.code)) : decision.reasons;
    for (const r of reasons) findings.add({ code: r.code, detail: `${chain}: ${r.detail}` });
    // Binary content that would pass must be no archive to 7-Zip (an NSIS block, a disk image), unless its hash is vouched for.
    // (A container on the allowlist vouches for its members' bytes as they are.) The probe goes on while the next members
    // are read, and takes the member's work file with it.
    if (keep.format === null && keep.path !== null && reasons.length === 0 && !listed && !parent.exempt) {
      const path = keep.path;
      keep.path = null;
      const probe = askSevenZip(path, null, chain, ctx.inspection, budget.deadline, ctx.signal)
        .then((seen) => {
          if (seen !== null) findings.add(seen);
        })
        .finally(() => removeQuietly(path));
      if (parent.probes) await parent.probes.add(probe);
      else await probe;
    }
    // The same content under the other name a tool gives it (a gzip header's stored name) is judged too.
    for (const other of otherNames) {
      const alias = decideFile({ ...observed, path: other, display: other, extensions: extensionsOf(other), reasons: [] }, ctx.allowlist, policy, scope);
      const aliasReasons = parent.exempt ? alias.reasons.filter((r) => !HASH_GATED.has(r.code)) : alias.reasons;
      for (const r of aliasReasons) findings.add({ code: r.code, detail: `${parent.chain}!/${other} (the name stored in its header): ${r.detail}` });
    }
    // A member that is itself a container is opened in turn, unless an engine already blocked it.
    const engineFinding = own.list.some((r) => r.code !== 'UNSAFE_NAME' && r.code !== 'TYPE_MISMATCH' && !HASH_GATED.has(r.code));
    if (keep.path !== null && keep.format !== null && !engineFinding) {
      await openContainer({
        path: keep.path,
        size: digest.bytesSeen,
        format: keep.format,
        chain,
        name: basename(text ?? 'member'),
        scope: memberScope(policy, text ?? '', sniffed.kind, scope),
        exempt: parent.exempt || decision.allowlistEntry !== null,
      }, depth + 1, budget, ctx, findings);
    }
  } finally {
    if (keep.fd !== null) closeSync(keep.fd);
    if (keep.path !== null) {
      try {
        unlinkSync(keep.path);
      } catch {
        // already gone
      }
    }
  }
}

/** The last `size` bytes of a stream of chunks. */
class TailWindow {
  readonly #size: number;
  #pieces: Uint8Array[] = [];
  #held = 0;

  constructor(size: number) {
    this.#size = size;
  }

  push(chunk: Uint8Array): void {
    const piece = chunk.length > this.#size ? chunk.subarray(chunk.length - this.#size) : chunk;
    this.#pieces.push(piece.slice());
    this.#held += piece.length;
    while (this.#held - this.#pieces[0]!.length >= this.#size) this.#held -= this.#pieces.shift()!.length;
  }

  bytes(): Uint8Array {
    const all = Buffer.concat(this.#pieces);
    return all.subarray(Math.max(0, all.length - this.#size));
  }
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at);
}
