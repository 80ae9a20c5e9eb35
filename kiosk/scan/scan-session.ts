/**
 * One scan of one drive. Walks it (metadata only, bounded), then reads every
 * regular file exactly once, feeding the same chunks to the hasher, the type
 * check and the stream scanner (clamd with the YARA rules loaded), so what is
 * hashed into the manifest is exactly what the engines saw. Files run
 * concurrently up to the policy's limit; memory per file is one chunk.
 * Any scanner failure rejects the drive: nothing is ever "clean" by default.
 */
import { close, closeSync, constants, fstat, open, openSync, read, readSync, unlinkSync, writeSync, type Stats } from 'node:fs';
import { tmpdir } from 'node:os';
import {
  DualDigest, NAME_PROBLEM_TEXT, pathProblems, type Blake3Factory,
} from '../../manifest/index.ts';
import type { Allowlist } from '../core/allowlist.ts';
import { allowedType, controlledClass, type LoadedPolicy } from '../core/policy.ts';
import { detectContainers, sevenZipSearches, type ContainerFormat } from '../core/container-format.ts';
import { compoundRootClass, isInstallerClass } from '../core/compound-file.ts';
import { EmbeddedArchiveFinder, hiddenArchiveReason } from '../core/embedded-archive.ts';
import { decideFile, settleDrive, type Decision, type DriveReason, type EngineName, type Observation, type Reason } from '../core/decide.ts';
import { checkType, EXECUTABLE_KINDS, extensionsOf, looksText, sniffContent, SNIFF_BYTES, TextScan, type ContentFacts, type ContentKind } from '../core/file-type.ts';
import { inspectContainer, memberScope, sevenZipView, type SevenZipView } from './inspect-container.ts';
import type { Inspection, ScannerFailure, ScanProgress, StreamScanner } from '../core/ports.ts';
import { ScanLedger, ScanLedgerError, type LedgerEntry } from './ledger.ts';
import { walkDrive, type WalkEntry } from './walk.ts';
import { endsWithZip, ZIP_TAIL_BYTES } from '../core/zip-structure.ts';

export const CHUNK_BYTES = 1024 * 1024; // bytes per read

export type { ScannerFailure, ScanProgress, StreamScanner, StreamScanResult } from '../core/ports.ts';

export interface ScanDeps {
  readonly policy: LoadedPolicy;
  readonly allowlist: Allowlist;
  readonly scanner: StreamScanner | null;
  readonly blake3: Blake3Factory;
  /** Maps an error thrown by the scanner to a drive-level failure; null means "not a scanner failure". */
  readonly classifyScannerError: (error: unknown) => ScannerFailure | null;
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: ScanProgress) => void;
  readonly now?: () => number; // ms clock, for durations
  /** Entries on the volume that `root` cannot show as themselves (image access): blocked as unsafe names. */
  readonly unseen?: ReadonlyArray<{ display: string; detail: string }>;
  /** Where the scan's scratch ledger is made (and at once unlinked): the kiosk's private work folder; default the OS temp folder. */
  readonly ledgerDir?: string;
  /**
   * How containers (archives, compressed files) are opened to inspect their members: the
   * engines' sandboxed extractor and a private work folder. Without it every container is
   * blocked as NOT_INSPECTED.
   */
  readonly inspection?: Inspection | null;
  /** ms the drive may take, walk and scan (tests); default the policy's limits.maxScanMinutes. */
  readonly scanDeadlineMs?: number;
}

export interface ScanReport {
  readonly decision: Decision;
  readonly stats: { readonly files: number; readonly bytes: number; readonly entries: number };
  /** Content found in the drive's .portcullis folder other than an old manifest and receipt. */
  readonly manifestFolderExtras: readonly string[];
  readonly durations: { readonly walkMs: number; readonly scanMs: number; readonly totalMs: number };
  /** Releases the scan's ledger: the decision's files can no longer be read. */
  readonly close: () => void;
}

const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const KNOWN_MANIFEST_FILES = new Set(['.portcullis', '.portcullis/manifest.dsse.json', '.portcullis/receipt.txt']);

function nameReasons(entry: WalkEntry): Reason[] {
  if (entry.path === null) return [{ code: 'UNSAFE_NAME', detail: 'the name is not valid UTF-8' }];
  return pathProblems(entry.path)
    .filter((p) => p !== 'RESERVED_FOLDER')
    .map((p) => ({ code: 'UNSAFE_NAME' as const, detail: NAME_PROBLEM_TEXT[p] }));
}

interface ReadOutcome {
  digest: { sha256: string; blake3: string } | null;
  head: Uint8Array;
  reasons: Reason[];
  cleanBy: Set<EngineName>;
  /** What the whole read showed beyond the head (text throughout, an installer database). */
  facts?: ContentFacts;
}

/**
 * Read buffers kept between files: allocating 1 MiB per read made garbage
 * collection a large share of the kiosk's CPU. A buffer goes back only once
 * the read loop using it has ended, so no read still in flight can write
 * into the next file's bytes.
 */
class ReadBuffers {
  readonly #free: Buffer[] = [];

  take(): Buffer {
    return this.#free.pop() ?? Buffer.allocUnsafeSlow(CHUNK_BYTES);
  }

  give(buffer: Buffer): void {
    this.#free.push(buffer);
  }
}

// Callback fs calls wrapped once: lighter per call than FileHandle, which matters at
// four calls per file on drives of tens of thousands of small files.
function openFile(path: string | Buffer): Promise<number> {
  return new Promise((resolve, reject) => open(path, OPEN_FLAGS, (error, fd) => (error ? reject(error) : resolve(fd))));
}

function fstatFile(fd: number): Promise<Stats> {
  return new Promise((resolve, reject) => fstat(fd, (error, stats) => (error ? reject(error) : resolve(stats))));
}

/** pread: each read names its position, so nothing depends on the descriptor's offset. */
function readAt(fd: number, buffer: Buffer, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => read(fd, buffer, 0, length, position, (error, bytesRead) => (error ? reject(error) : resolve(bytesRead))));
}

/** `work`'s result, or the signal's abort as an error as soon as it fires (`work` goes on unobserved). */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return work;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason instanceof Error ? signal.reason : new Error('the scan was stopped'));
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

function closeFile(fd: number): Promise<void> {
  return new Promise((resolve) => close(fd, () => resolve())); // a failed close of a read-only descriptor loses nothing
}

const CONTAINER_HEAD_BYTES = 0x8006; // bytes of a head that tell a container (ISO 9660's descriptor sits at 32 KiB)

/** ClamAV's limit alerts, with the policy setting behind each. */
const CLAMD_LIMIT_SETTINGS: Readonly<Record<string, string>> = {
  MaxRecursion: 'clamav.maxRecursion',
  MaxFiles: 'clamav.maxFilesPerArchive',
  MaxScanSize: 'clamav.maxScanBytes',
  MaxFileSize: 'clamav.maxEmbeddedFileBytes',
  MaxScanTime: 'clamav.maxScanSeconds',
};

/** An engine's answer as a reason's detail; a limit names the policy setting to change. */
function engineDetail(signature: string, policy: LoadedPolicy['policy']): string {
  const limit = /^Heuristics\.Limits\.Exceeded\.([A-Za-z]+)/.exec(signature)?.[1];
  const setting = limit === undefined ? undefined : CLAMD_LIMIT_SETTINGS[limit];
  if (setting === undefined) return signature;
  const value = setting.split('.').reduce<unknown>((v, k) => (v as Record<string, unknown>)[k], policy);
  return `${signature}: over the policy's ${setting} (${String(value)})`;
}

/** Whether a file could pass for what its name says (not controlled, an allowed type): only those are searched for hidden archives. */
function mayPassByName(entry: WalkEntry, policy: LoadedPolicy['policy']): boolean {
  if (entry.path === null) return false;
  const extensions = extensionsOf(entry.path);
  if (controlledClass(policy, entry.path, extensions, null) !== null) return false;
  return allowedType(policy, extensions, extensions.length === 0 ? 'text' : null, false) !== null;
}

function writeChunk(fd: number, chunk: Uint8Array): void {
  for (let at = 0; at < chunk.length; ) at += writeSync(fd, chunk, at);
}

/** Reads from a file the scan holds in its work folder (a ReadAt for the pure readers). */
function readHeld(path: string): (position: number, length: number) => Uint8Array {
  return (position, length) => {
    const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const out = Buffer.alloc(length);
      const got = readSync(fd, out, 0, length, position);
      return out.subarray(0, got);
    } finally {
      closeSync(fd);
    }
  };
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

/** Opens a container the read kept in the work folder and judges its members. */
async function inspectHeld(entry: WalkEntry, format: ContainerFormat, path: string | null, size: number, head: Uint8Array, digest: { sha256: string; blake3: string }, facts: ContentFacts, deps: ScanDeps, view: Promise<SevenZipView> | null): Promise<Reason[]> {
  const { policy } = deps.policy;
  const name = entry.path ?? entry.display;
  const kind = checkType(name, head, size, facts).kind;
  // A container blocked for what it is (an .xlsm, an unlisted archive type) stays blocked whatever it holds:
  // its members are not opened, unless its hash is allowlisted.
  const itself = decideFile({ path: entry.path, display: entry.display, size, digest, extensions: extensionsOf(name), contentKind: kind, reasons: [], cleanBy: new Set(deps.scanner?.engines ?? []) }, deps.allowlist, policy);
  if (itself.verdict === 'blocked') {
    // Said all the same when the format is one the policy does not open: allowing the type would not be enough.
    return (policy.archives.formats as readonly string[]).includes(format)
      ? []
      : [{ code: 'NOT_INSPECTED', detail: `${entry.display}: ${format} content is not opened under this policy (archives.formats), so it cannot be inspected` }];
  }
  if (!deps.inspection || path === null) {
    return [{ code: 'NOT_INSPECTED', detail: `${entry.display}: a ${format} container, and this kiosk has no archive inspection configured to open it` }];
  }
  return inspectContainer({
    path,
    size,
    format,
    chain: entry.display,
    name: name.slice(name.lastIndexOf('/') + 1),
    scope: memberScope(policy, name, kind, 'drive'),
    exempt: deps.allowlist.lookup(digest) !== null,
    ...(view === null ? {} : { view }),
  }, { inspection: deps.inspection, scanner: deps.scanner, blake3: deps.blake3, policy, allowlist: deps.allowlist, ...(deps.signal ? { signal: deps.signal } : {}) });
}

async function readAndScan(entry: WalkEntry, deps: ScanDeps, buffers: ReadBuffers, onBytes: (n: number) => void): Promise<ReadOutcome> {
  const { policy } = deps.policy;
  const reasons: Reason[] = [];
  const cleanBy = new Set<EngineName>();
  let fd: number;
  // The read under way, if any: the descriptor is closed only after it settles, so a read
  // left behind by a scanner that answered early can never land on a reused descriptor.
  const inFlight: { current: Promise<number> | null } = { current: null };
  try {
    fd = await openFile(entry.rawPath);
  } catch (error) {
    return { digest: null, head: new Uint8Array(), reasons: [{ code: 'SCAN_ERROR', detail: `cannot open: ${(error as Error).message}` }], cleanBy };
  }
  try {
    const stat = await fstatFile(fd);
    // The thing opened must be the regular file the walk saw (no swap in between), still of
    // the size the walk listed: that size goes into the report beside the digest of these bytes.
    if (!stat.isFile() || stat.ino !== entry.ino || stat.dev !== entry.dev || stat.size !== entry.size) {
      return { digest: null, head: new Uint8Array(), reasons: [{ code: 'SCAN_ERROR', detail: 'the file changed between listing and opening' }], cleanBy };
    }
    const digest = await DualDigest.create(deps.blake3);
    const head = new Uint8Array(Math.min(SNIFF_BYTES, stat.size));
    let headFilled = 0;
    let overLimit = false;
    const container: { format: ContainerFormat | null; ambiguous: ContainerFormat[] | null; path: string | null; fd: number | null } = { format: null, ambiguous: null, path: null, fd: null };
    // A file that may pass by its name is searched for archives hidden inside it (7-Zip opens those).
    const mayPass = mayPassByName(entry, policy);
    let hidden: EmbeddedArchiveFinder | null = mayPass ? new EmbeddedArchiveFinder() : null;
    const textScan = new TextScan(); // text must stay text to its end, not only in its head
    let holdForProbe = false;
    // The file's last bytes, where a zip appended to something else would end.
    const tail = new Uint8Array(Math.min(stat.size, ZIP_TAIL_BYTES));
    const tailFrom = stat.size - tail.length;
    const buffer = buffers.take();
    // 7-Zip's view of a held file, asked as soon as the read ends, so that it runs while clamd scans.
    let early: Promise<SevenZipView> | null = null;
    const readEnded = (): void => {
      if (container.fd !== null) {
        closeSync(container.fd);
        container.fd = null;
      }
      if (container.path === null || !deps.inspection || overLimit || digest.bytesSeen !== stat.size) return;
      if (!holdForProbe && !sevenZipSearches(container.format)) return; // a container 7-Zip opens as itself: asked when opened
      early = sevenZipView(container.path, container.format, holdForProbe ? null : entry.display, deps.inspection, performance.now() + policy.clamav.maxScanSeconds * 1000, deps.signal);
      early.catch(() => undefined); // awaited (or dropped with the file) below
    };
    async function* chunks(): AsyncGenerator<Uint8Array> {
      let ended = false;
      try {
        yield* readLoop();
        ended = true;
        readEnded();
      } finally {
        // Reached only when no read is in flight; a loop stopped early (the scanner
        // answered first, or an error) drops its buffer: the scanner may still hold a chunk.
        if (ended) buffers.give(buffer);
      }
    }
    async function* readLoop(): AsyncGenerator<Uint8Array> {
      for (;;) {
        deps.signal?.throwIfAborted();
        // One buffer per file, reused for each chunk (consumers copy what they keep).
        // The last read asks for one byte past the listed size: a file that grew is caught,
        // and a read that stops exactly at the listed size is its end, with no extra read.
        const want = Math.min(CHUNK_BYTES, stat.size - digest.bytesSeen + 1);
        const reading = readAt(fd, buffer, want, digest.bytesSeen);
        inFlight.current = reading;
        const bytesRead = await untilAborted(reading, deps.signal); // a hung drive must not outlast a stop
        if (bytesRead === 0) return;
        const chunk = buffer.subarray(0, bytesRead);
        const atEnd = digest.bytesSeen + bytesRead === stat.size && bytesRead < want;
        if (digest.bytesSeen + bytesRead > policy.limits.maxFileBytes || digest.bytesSeen + bytesRead > stat.size) {
          overLimit = true;
          return;
        }
        if (digest.bytesSeen === 0) {
          // A container (by its bytes, not its name) is kept whole in the work folder, to be opened after the scan.
          const formats = detectContainers(chunk.subarray(0, CONTAINER_HEAD_BYTES));
          container.format = formats[0] ?? null;
          // A head two formats claim is read differently by different tools: it is not opened at all.
          if (formats.length > 1) container.ambiguous = formats;
          else if (deps.inspection) {
            // Binary content that may pass is kept too, to ask 7-Zip whether it is an archive (programs are never probed: controlled).
            const sniffHead = chunk.subarray(0, SNIFF_BYTES);
            holdForProbe = container.format === null && mayPass && !looksText(sniffHead) && !EXECUTABLE_KINDS.has(sniffContent(sniffHead));
            if (container.format !== null || holdForProbe) {
              const file = deps.inspection.folder.create();
              container.path = file.path;
              container.fd = file.fd;
            }
          }
        }
        if (!sevenZipSearches(container.format)) hidden = null; // 7-Zip opens it as its own format: it searches nothing inside
        hidden?.push(chunk);
        textScan.push(chunk);
        if (container.fd !== null) writeChunk(container.fd, chunk);
        const chunkEnd = digest.bytesSeen + chunk.length;
        if (chunkEnd > tailFrom) {
          const from = Math.max(tailFrom, digest.bytesSeen);
          tail.set(chunk.subarray(from - digest.bytesSeen, Math.min(chunk.length, stat.size - digest.bytesSeen)), from - tailFrom);
        }
        digest.update(chunk);
        if (headFilled < head.length) {
          const take = Math.min(head.length - headFilled, bytesRead);
          head.set(chunk.subarray(0, take), headFilled);
          headFilled += take;
        }
        onBytes(bytesRead);
        yield chunk;
        if (atEnd) return;
      }
    }
    try {
      if (deps.scanner && stat.size > 0) {
        const result = await deps.scanner.scanStream(chunks(), deps.signal);
        if (result.status === 'found') for (const f of [result, ...(result.more ?? [])]) reasons.push({ code: f.reason, detail: engineDetail(f.signature, policy) });
        // A macro alert comes only when nothing else matched: the engines covered the file, and the policy decides.
        if ((result.status === 'clean' || result.reason === 'MACRO') && !overLimit && digest.bytesSeen === stat.size) for (const e of deps.scanner.engines) cleanBy.add(e);
      } else {
        const drain = chunks();
        while (!(await drain.next()).done);
        // An empty file holds nothing for an engine to find.
        if (deps.scanner && stat.size === 0 && digest.bytesSeen === 0) for (const e of deps.scanner.engines) cleanBy.add(e);
      }
      if (container.fd !== null) {
        closeSync(container.fd);
        container.fd = null;
      }
      if (overLimit || digest.bytesSeen !== stat.size) {
        reasons.push({ code: 'SCAN_ERROR', detail: `the file's size changed while it was read (${stat.size} bytes listed)` });
        return { digest: null, head, reasons, cleanBy: new Set() };
      }
      const finished = digest.finish();
      // An allowlisted file (a vendor's self-extracting installer) is vouched for as it is; asked only when something was found.
      const listed = (): boolean => deps.allowlist.lookup(finished) !== null;
      const name = entry.path ?? entry.display;
      const installer = container.format === 'ole2' && container.path !== null && isInstallerClass(compoundRootClass(readHeld(container.path)));
      const facts: ContentFacts = { text: textScan.text, installer };
      hidden?.finish();
      // Content must not end in a zip (a polyglot); a container the kiosk opens must not end in one whose comment runs
      // to its end (a zip in tar padding, a gzip FEXTRA field or a zstd skippable frame, which its reader skips).
      const searched = sevenZipSearches(container.format);
      if (container.format !== 'zip' && endsWithZip(tail, stat.size, { exact: !searched }) && !listed()) {
        reasons.push({ code: 'NOT_INSPECTED', detail: `a zip archive ends this ${checkType(name, head, stat.size, facts).kind} file (a polyglot): what it holds was not inspected` });
      } else if (hidden?.found && !listed()) {
        reasons.push(hiddenArchiveReason(hidden.found));
      }
      // Everything inside a container is judged too, unless an engine already blocked the file.
      if (container.ambiguous !== null) {
        reasons.push({ code: 'NOT_INSPECTED', detail: `its first bytes are both ${container.ambiguous.join(' and ')} content: tools would read it differently, so it is not opened` });
      } else if (container.format !== null && !reasons.some((r) => r.code !== 'MACRO')) {
        const inside = await inspectHeld(entry, container.format, container.path, stat.size, head, finished, facts, deps, early);
        // ClamAV's macro alert on a container the kiosk opens is decided member by member (an allowlisted
        // part may have macros); a container that could not be opened is blocked by its own reason. An OLE2
        // file's streams no longer show clamd its macros, so there its alert stands.
        reasons.splice(0, reasons.length, ...reasons.filter((r) => r.code !== 'MACRO' || container.format === 'ole2'), ...inside);
      } else if (holdForProbe && container.path !== null && reasons.length === 0 && deps.inspection && !listed()) {
        // Binary content that would pass must be no archive to 7-Zip (an NSIS block, a disk image, a DMG at its end).
        const type = checkType(name, head, stat.size, facts);
        const itself = decideFile({ path: entry.path, display: entry.display, size: stat.size, digest: finished, extensions: extensionsOf(name), contentKind: type.kind, reasons: type.findings, cleanBy }, deps.allowlist, policy);
        if (itself.verdict !== 'blocked') {
          const seen = (await (early ?? sevenZipView(container.path, null, null, deps.inspection, performance.now() + policy.clamav.maxScanSeconds * 1000, deps.signal))).reason;
          if (seen !== null) reasons.push(seen);
        }
      }
      return { digest: finished, head, reasons, cleanBy, facts };
    } finally {
      if (container.fd !== null) closeSync(container.fd);
      // The probe binds the held file into its sandbox: it stays until the probe has ended.
      if (early !== null) await (early as Promise<SevenZipView>).catch(() => undefined);
      if (container.path !== null) removeQuietly(container.path);
    }
  } finally {
    const reading = inFlight.current;
    if (reading !== null && deps.signal?.aborted === true) {
      // Stopped, perhaps with a read hanging on the drive: close once it settles, without waiting.
      void reading.catch(() => 0).then(() => closeFile(fd));
    } else {
      await reading?.catch(() => 0);
      await closeFile(fd);
    }
  }
}

const MAX_EXTRAS_LISTED = 100; // items of the .portcullis folder named in the report; more are counted

export async function scanDrive(root: string, deps: ScanDeps): Promise<ScanReport> {
  const now = deps.now ?? (() => performance.now());
  const started = now();
  const { policy } = deps.policy;
  const driveReasons: DriveReason[] = [];
  const extras = { listed: [] as string[], more: 0 };
  // Everything per file goes to the ledger, not the heap: memory stays flat however large the drive.
  const ledger = ScanLedger.open(deps.ledgerDir ?? tmpdir());
  const record = (entryId: number | null, o: Observation): void => ledger.addFile(entryId, decideFile(o, deps.allowlist, policy));
  // The drive's own deadline (limits.maxScanMinutes): a drive of thousands of slow files ends, rejected, not days later.
  const overtime = new AbortController();
  const deadline = setTimeout(() => overtime.abort(new Error('the drive took longer than the policy allows')), deps.scanDeadlineMs ?? policy.limits.maxScanMinutes * 60_000);
  const driveSignal = deps.signal ? AbortSignal.any([deps.signal, overtime.signal]) : overtime.signal;
  const overtimeReason = (): DriveReason => ({ code: 'LIMIT_EXCEEDED', detail: `scanning the drive took longer than the policy's limits.maxScanMinutes (${policy.limits.maxScanMinutes} minutes): the files not yet scanned were not inspected` });
  try {
    // Phase 1: the walk, metadata only, so progress can show totals.
    let bytesTotal = 0;
    let tooDeep = 0;
    const walk = walkDrive(root, policy.limits, {
      onManifestFolderEntry: (e) => {
        if (KNOWN_MANIFEST_FILES.has((e.path ?? e.display).toLowerCase())) return;
        if (extras.listed.length < MAX_EXTRAS_LISTED) extras.listed.push(e.display);
        else extras.more++;
      },
      onTooDeep: (e) => {
        tooDeep++;
        record(null, blockedEntry(e, { code: 'LIMIT_EXCEEDED', detail: `folder deeper than ${policy.limits.maxDepth} levels (the policy's limits.maxDepth): its content was not scanned` }));
      },
      onUnreadable: (e, error) => record(null, blockedEntry(e, { code: 'SCAN_ERROR', detail: `folder could not be read: ${error.message}` })),
    }, driveSignal);
    try {
      for (;;) {
        const step = await walk.next();
        if (step.done) {
          if (step.value) driveReasons.push(step.value);
          break;
        }
        if (step.value.kind === 'directory') continue;
        ledger.addEntry(step.value);
        bytesTotal += step.value.size;
        if (ledger.entryCount % 256 === 0) deps.onProgress?.({ phase: 'walking', filesTotal: ledger.entryCount, bytesTotal, filesDone: 0, bytesDone: 0, current: null });
      }
    } catch (error) {
      if (error instanceof ScanLedgerError) throw error; // the work folder, not the drive
      if (overtime.signal.aborted && deps.signal?.aborted !== true) driveReasons.push(overtimeReason());
      else if (deps.signal?.aborted) driveReasons.push({ code: 'SCAN_ABORTED', detail: 'the scan was stopped' });
      else driveReasons.push({ code: 'WALK_ERROR', detail: (error as Error).message });
    }
    const walkDone = now();
    const filesTotal = ledger.entryCount;
    for (const u of deps.unseen ?? []) {
      record(null, { path: null, display: u.display, size: 0, digest: null, extensions: [], contentKind: null, reasons: [{ code: 'UNSAFE_NAME', detail: u.detail }], cleanBy: new Set() });
    }
    // Names that collide on a case-insensitive filesystem block every file involved.
    ledger.findCollisions();

    // Phase 2: read and scan each file once, concurrently; entries come from the ledger a page at a time.
    let filesDone = 0;
    let bytesDone = 0;
    const progress = (current: string | null): void =>
      deps.onProgress?.({ phase: 'scanning', filesTotal, bytesTotal, filesDone, bytesDone, current });
    let page: LedgerEntry[] = [];
    let pageAt = 0;
    let lastId = 0;
    const nextEntry = (): LedgerEntry | undefined => {
      if (pageAt >= page.length) {
        page = ledger.entriesAfter(lastId);
        pageAt = 0;
      }
      const item = page[pageAt++];
      if (item) lastId = item.id;
      return item;
    };
    let failure: ScannerFailure | null = null;
    const stopAll = new AbortController();
    const signal = AbortSignal.any([driveSignal, stopAll.signal]);
    const scanDeps: ScanDeps = { ...deps, signal };
    const buffers = new ReadBuffers();

    async function worker(): Promise<void> {
      while (failure === null && !signal.aborted) {
        const item = nextEntry();
        if (!item) return;
        const { entry } = item;
        progress(entry.display);
        const reasons: Reason[] = [...nameReasons(entry), ...item.collisions];
        let outcome: ReadOutcome = { digest: null, head: new Uint8Array(), reasons: [], cleanBy: new Set() };
        let kind: ContentKind | null = null;
        if (entry.kind !== 'file') {
          reasons.push({ code: 'NOT_REGULAR_FILE', detail: `a ${entry.kind}, not a regular file: never followed or read` });
        } else if (entry.size > policy.limits.maxFileBytes) {
          reasons.push({ code: 'LIMIT_EXCEEDED', detail: `${entry.size} bytes, over the policy's limits.maxFileBytes (${policy.limits.maxFileBytes} bytes per file)` });
        } else {
          try {
            outcome = await readAndScan(entry, scanDeps, buffers, (n) => { bytesDone += n; });
          } catch (error) {
            const scannerFailure = deps.classifyScannerError(error);
            if (scannerFailure) {
              failure ??= scannerFailure;
              stopAll.abort();
              return;
            }
            if (signal.aborted) return;
            outcome = { ...outcome, reasons: [{ code: 'SCAN_ERROR', detail: (error as Error).message }] };
          }
          const type = checkType(entry.path ?? entry.display, outcome.head, entry.size, outcome.facts);
          kind = type.kind;
          if (policy.types.blockMismatch) for (const f of type.findings) reasons.push({ code: f.code, detail: f.detail });
        }
        record(item.id, {
          path: entry.path,
          display: entry.display,
          size: entry.size,
          digest: outcome.digest,
          extensions: extensionsOf(entry.path ?? entry.display),
          contentKind: kind,
          reasons: [...reasons, ...outcome.reasons],
          cleanBy: outcome.cleanBy,
        });
        filesDone++;
        progress(null);
      }
    }
    if (driveReasons.length === 0) {
      // A worker that fails outside the scanner (the ledger's write, a bug) stops the others
      // and is waited for with them, so no file is still being read when the scan returns.
      const settled = await Promise.allSettled(Array.from({ length: policy.concurrency }, () => worker().catch((error: unknown) => {
        stopAll.abort();
        throw error;
      })));
      const broken = settled.find((r) => r.status === 'rejected');
      if (broken) throw broken.reason;
      if (failure) driveReasons.push(failure);
      else if (overtime.signal.aborted && deps.signal?.aborted !== true) driveReasons.push(overtimeReason());
      else if (deps.signal?.aborted) driveReasons.push({ code: 'SCAN_ABORTED', detail: 'the scan was stopped before every file was read' });
    }
    // Every file the walk found is in the report, scanned or not.
    for (let undecided = ledger.undecidedAfter(0); undecided.length > 0; undecided = ledger.undecidedAfter(undecided[undecided.length - 1]!.id)) {
      for (const { id, entry } of undecided) record(id, blockedEntry(entry, { code: 'SCAN_ERROR', detail: 'not scanned: the scan stopped before this file' }));
    }
    const scanDone = now();
    const decision = settleDrive(ledger.files(), ledger.counts, driveReasons);
    deps.onProgress?.({ phase: 'done', filesTotal, bytesTotal, filesDone, bytesDone, current: null });
    return {
      decision,
      stats: { files: filesTotal, bytes: bytesTotal, entries: filesTotal + tooDeep },
      manifestFolderExtras: extras.more > 0 ? [...extras.listed, `... and ${extras.more} more`] : extras.listed,
      durations: { walkMs: Math.round(walkDone - started), scanMs: Math.round(scanDone - walkDone), totalMs: Math.round(scanDone - started) },
      close: () => ledger.close(),
    };
  } catch (error) {
    ledger.close();
    throw error;
  } finally {
    clearTimeout(deadline);
  }
}

function blockedEntry(entry: WalkEntry, reason: Reason): Observation {
  return { path: entry.path, display: entry.display, size: 0, digest: null, extensions: [], contentKind: null, reasons: [reason], cleanBy: new Set() };
}
