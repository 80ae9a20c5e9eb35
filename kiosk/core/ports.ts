/**
 * The ports of the kiosk's core: what the use cases (scan, approval,
 * station) need from the world, as small interfaces the adapters in
 * engines/ and drive/ implement. Types only; main.ts and cli/ wire the real
 * adapters in.
 */
import { PortcullisError, type MediaIdentity } from '../../manifest/index.ts';
import type { ContainerFormat } from './container-format.ts';
import type { DriveReasonCode, EngineName } from './decide.ts';
import type { DeviceRecord } from './device.ts';

export type StreamFindingReason = 'MALWARE' | 'YARA_MATCH' | 'LIMIT_EXCEEDED' | 'ENCRYPTED' | 'MACRO' | 'NOT_INSPECTED';

export type StreamScanResult =
  | { readonly status: 'clean' }
  | {
    readonly status: 'found';
    readonly signature: string;
    readonly reason: StreamFindingReason;
    /** Further findings on the same bytes (another engine, every other YARA rule that matched). */
    readonly more?: ReadonlyArray<{ readonly signature: string; readonly reason: StreamFindingReason }>;
  };

/** A scanner that takes the file's bytes as they are read (clamd, through a spool file or INSTREAM). */
export interface StreamScanner {
  /** Engines whose verdict a clean answer stands for. */
  readonly engines: readonly EngineName[];
  /** Each chunk is valid only until the next one is pulled (the reader reuses its buffer): copy what must be kept. */
  scanStream(chunks: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<StreamScanResult>;
}

/** A scanner failure that must reject the drive (down, timeout, protocol). */
export interface ScannerFailure {
  readonly code: DriveReasonCode;
  readonly detail: string;
}

/** What the sandboxed parser said when it ended. */
export interface ExtractionEnd {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Its standard error (the first 4 KiB), where libarchive names what it could not read. */
  readonly stderr: string;
  /** True when the kiosk ended it (a limit, a stop), not the parser itself. */
  readonly killed: boolean;
}

export interface Extraction {
  /** The pax tar stream (archives) or the decompressed bytes (compression layers). */
  readonly output: AsyncIterable<Uint8Array>;
  /** Settles once the process has exited. Never rejects. */
  readonly ended: Promise<ExtractionEnd>;
  /** Ends the parser now (a limit was crossed, or the scan stops). */
  kill(): void;
}

export interface ExtractionLimits {
  readonly cpuSeconds: number; // s of CPU for the parser
  readonly maxOutputBytes: number; // bytes the parser may write to its tmpfs (7-Zip), and per file
}

/** What to ask 7-Zip about a file (core/seven-zip-view.ts reads the answers). */
export type ProbeQuestion =
  /**
   * `7zz l -slt`: what 7-Zip opens the file as when it is simply given it (by signature, at any offset);
   * for a PDF (`attachments`), also how many attachments pdfdetach lists. Probes asked at once share a sandbox.
   */
  | { readonly as: 'any'; readonly attachments?: boolean }
  /** `7zz l -slt -t<type>`: the listing of an archive in 7-Zip's `type`. */
  | { readonly as: 'type'; readonly type: string }
  /** Each `7zz l -t<type>` in turn: the types it opens the file as (one per line), as it would once the file is named so. */
  | { readonly as: 'each'; readonly types: readonly string[] }
  /** A PDF's attachments by poppler's pdfdetach: their count, then each one's size in bytes, one per line. */
  | { readonly as: 'attachments' };

export interface ProbeAnswer {
  readonly end: ExtractionEnd;
  /** 7-Zip's standard output (the listing), or the types it opened for `each`. */
  readonly stdout: string;
  /** True when the listing was longer than the kiosk reads (it is then not trusted). */
  readonly truncated: boolean;
  /** For `any` with `attachments`: the number pdfdetach listed, or null when it could not list them. */
  readonly attachments?: number | null;
}

export interface Extractor {
  /** Whether it has a tool for `format` (zip and tar the kiosk reads itself). */
  opens(format: ContainerFormat): boolean;
  /**
   * Opens the container at `path` (a regular file in the kiosk's work folder).
   * A compression layer's output is its content; an archive's is a pax tar stream of its members.
   */
  open(path: string, format: ContainerFormat, limits: ExtractionLimits): Extraction;
  /**
   * Asks 7-Zip (or pdfdetach), in the same sandbox, what it makes of the file
   * at `path`; nothing comes out but the answer (`limits.maxOutputBytes`
   * bounds the scratch tmpfs that sizing a PDF's attachments needs).
   */
  probe(path: string, question: ProbeQuestion, limits: ExtractionLimits): Promise<ProbeAnswer>;
}

/** Private files in the kiosk's work folder, for the containers being opened. */
export interface WorkFiles {
  /** A new private file (O_EXCL, O_NOFOLLOW, 0600), open for writing. */
  create(): { path: string; fd: number };
}

export interface Inspection {
  readonly extractor: Extractor;
  readonly folder: WorkFiles;
}


/** Where a scan reads and where its manifest goes (a mounted drive or an image): drive/drive-target.ts. */
export type DriveErrorCode = 'MEDIA_FULL' | 'MANIFEST_WRITE_FAILED' | 'MANIFEST_FOLDER_UNSAFE' | 'DRIVE_UNREADABLE';
export class DriveError extends PortcullisError<DriveErrorCode> {}

export interface UsbIdentity {
  readonly vendorId: string; // 4 lowercase hex digits
  readonly productId: string;
  readonly serial: string | null;
}

export interface DriveTarget {
  /** Folder the scan walks: read-only in spirit (mount ro, or an extraction). */
  readonly root: string;
  readonly media: MediaIdentity;
  /** Entries on the volume the scan cannot see under `root` as themselves: blocked as unsafe names. */
  readonly unseen: ReadonlyArray<{ display: string; detail: string }>;
  readonly description: string;
  /** Removes an old manifest and receipt; true when something was there. */
  removeManifest(): Promise<boolean>;
  /** Writes the files all-or-nothing, synced to the device. */
  writeManifest(files: ReadonlyArray<{ path: string; content: Uint8Array }>): Promise<void>;
  readBack(path: string): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** Switches a read-only mount to read-write and back (the station's remount). */
export interface WritableSwitch {
  makeWritable(): Promise<void>;
  makeReadOnly(): Promise<void>;
}


/** Where insertions and removals come from (drive/usb-source.ts on a kiosk, drive/device-source.ts's fixture source in tests). */
export type DeviceSourceEvent =
  | { readonly type: 'attach'; readonly device: DeviceRecord }
  | { readonly type: 'detach'; readonly id: string };

export interface DeviceSource {
  /** Starts reporting. The fixture source reports devices already inserted; the real one treats devices present at start-up as the baseline. */
  start(listener: (event: DeviceSourceEvent) => void): Promise<void>;
  stop(): Promise<void>;
}

/** Mounts a drive's volume read-only (drive/mount.ts): the station's only way to a real drive's files. */
export interface MountedVolume {
  readonly path: string;
  makeWritable(): Promise<void>;
  makeReadOnly(): Promise<void>;
  unmount(): Promise<void>;
}

export interface MountAdapter {
  mount(device: string, filesystem: 'vfat' | 'exfat'): Promise<MountedVolume>;
}


/** How far a scan is: what the station shows while it runs. */
export interface ScanProgress {
  readonly phase: 'walking' | 'scanning' | 'done';
  readonly filesTotal: number;
  readonly bytesTotal: number; // bytes
  readonly filesDone: number;
  readonly bytesDone: number; // bytes
  readonly current: string | null; // escaped path of a file being read
}

