/**
 * Runs the FAT and exFAT readers on a drive image in a child process of
 * their own (volume-child.ts), the way usbsas keeps filesystem parsing out of
 * its main process: under bubblewrap with the archive extractor's sandbox
 * (engines/extractor.ts sandboxArgs: nobody, every namespace unshared so no
 * network, no capabilities, /usr read-only, dies with the kiosk, a session of
 * its own, CPU, file-size and descriptor limits). Node reaches it through two
 * read-only binds: its installation folder and the reader's code. The image is
 * its standard input (opened here read-only, O_NOFOLLOW); the only writable
 * place is the extraction folder, bound at /out in extract mode. Inside, Node's
 * permission model narrows it again (reads of its code and /out only, no child
 * processes, no addons, no eval).
 *
 * No address-space limit: V8 reserves about 1.1 to 1.3 GiB of address space
 * before it runs a line (Node 24.21: under prlimit --as=1GiB it aborts at
 * start-up) and more per thread, so such a cap says nothing about memory.
 * The heap is bounded by V8's own flag instead, and the readers bound every
 * buffer they read (FAT at most 512 MiB, file data in 1 MiB chunks).
 *
 * Everything that comes back is checked as hostile: the report's size is
 * bounded while it is read, its shape by volume-listing.ts, and the extracted
 * folder against the listing (only the names the listing says, each a plain
 * file of the listed size with one link, or a folder). Failures are
 * MediaErrors: the reader's own codes as it reported them; the sandbox not
 * starting MEDIA_SANDBOX_UNAVAILABLE; time, heap, CPU or report size
 * MEDIA_LIMIT_EXCEEDED; a crash or a broken report MEDIA_TOOL_FAILED.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { escapeForDisplay } from '../../manifest/names.ts';
import { EXTRACTOR_DEFAULTS, sandboxArgs } from '../engines/extractor.ts';
import { openFileBlockDevice } from './block-device.ts';
import { MediaError } from './errors.ts';
import { classifyEntries } from './host-names.ts';
import { encodeRequest, parseChildReport, type ChildRequest, type VolumeListing } from './volume-listing.ts';
import type { VolumeIdentity } from './identity.ts';
import { DEFAULT_WALK_LIMITS, type VolumeEntry } from './volume.ts';

export interface VolumeSandboxOptions {
  readonly bwrapPath?: string; // default /usr/bin/bwrap
  readonly prlimitPath?: string; // default /usr/bin/prlimit
  readonly nodePath?: string; // default: the kiosk's own Node (process.execPath)
  /** The child's script; tests put a misbehaving one here. Default: volume-child.ts beside this file. */
  readonly entry?: string;
  /** Bound read-only at their own paths, and all the child may read: the code it loads. */
  readonly codePaths?: readonly string[];
  readonly heapMiB?: number; // MiB of V8 old space for the child
  /** RLIMIT_DATA: all the child's private writable memory (heap, buffers, stacks); default the heap plus 1.5 GiB. */
  readonly dataMiB?: number; // MiB
  /** Wall-clock bound; default 60 s plus 1 s per 16 MiB the reader may read (see volumeSandboxCommand). */
  readonly timeoutMs?: number; // ms
  readonly maxReportBytes?: number; // bytes of standard output read before the child is killed
}

const PROJECT = fileURLToPath(new URL('../../', import.meta.url));

export const VOLUME_SANDBOX_DEFAULTS = {
  bwrapPath: EXTRACTOR_DEFAULTS.bwrapPath,
  prlimitPath: EXTRACTOR_DEFAULTS.prlimitPath,
  entry: fileURLToPath(new URL('./volume-child.ts', import.meta.url)),
  // The child's imports: drive/ (readers), core/ (code page, boot-sector sniffing), manifest/ (the error base), and
  // package.json ("type": "module").
  codePaths: [join(PROJECT, 'kiosk', 'drive'), join(PROJECT, 'kiosk', 'core'), join(PROJECT, 'manifest'), join(PROJECT, 'package.json')],
  heapMiB: 512, // MiB: 100,000 entries and a 4 GiB file's cluster chain fit with room
  // MiB of RLIMIT_DATA beside the heap: Node 24 counts about 600 MiB before it runs a line (its reservations are
  // private and writable), and the readers hold at most a 512 MiB FAT, a 256 MiB exFAT folder and 1 MiB chunks.
  dataBesideHeapMiB: 1536,
  baseTimeoutMs: 60_000, // ms
  bytesPerSecond: 16 * 1024 * 1024, // the slowest read of the image the default timeout allows for
  // bytes of structures a reader may read besides file data: a FAT (at most 512 MiB), folders, the up-case table
  metadataBytes: 2 * 1024 * 1024 * 1024,
  maxReportBytes: 64 * 1024 * 1024, // bytes: 100,000 entries with 200-character names take about 25 MiB
} as const;

/** prlimit --as: the whole x86-64 user address space, i.e. no cap (see above). */
const NO_ADDRESS_SPACE_CAP = 2 ** 47;
const STDERR_KEPT = 4096; // bytes
const INSTALL_HINT = 'install bubblewrap and util-linux (scripts/setup.sh) and allow unprivileged user namespaces (kernel.unprivileged_userns_clone=1), or run the kiosk as root';

/** Node's installation folder, bound read-only unless it is under /usr already. */
function nodeFolder(nodePath: string): string | null {
  const folder = dirname(dirname(realpathSync(nodePath)));
  return folder === '/usr' || folder.startsWith('/usr/') ? null : folder;
}

/** The signal a child died of: Node's own, or bwrap's 128 + n. */
function signalOf(code: number | null, signal: NodeJS.Signals | null): string | null {
  if (signal !== null) return signal;
  if (code === null || code <= 128) return null;
  return Object.entries(osConstants.signals).find(([, n]) => n === code - 128)?.[0] ?? null;
}

function firstLines(text: string): string {
  return escapeForDisplay(text.trim().split('\n').slice(0, 3).join(' | ')).slice(0, 500);
}

export interface SandboxCommand {
  readonly command: string; // bwrap
  readonly args: readonly string[];
  readonly timeoutMs: number; // ms
  readonly limits: { readonly cpuSeconds: number; readonly maxOutputBytes: number };
}

/**
 * The command line that runs the reader on a volume of `deviceSize` bytes:
 * bwrap with the extractor's sandbox, the binds the child needs, and Node
 * with its heap bound and its permission model on. Exported for the tests.
 */
export function volumeSandboxCommand(request: ChildRequest, outDir: string | null, deviceSize: number, options: VolumeSandboxOptions = {}): SandboxCommand {
  const o = { ...VOLUME_SANDBOX_DEFAULTS, ...options };
  // The time follows what the reader may read: its structures, and the files' bytes when it extracts (never more
  // than the image). Not the image's size alone: a sparse 2 TiB image file would have given a hung reader 36 hours.
  const readable = Math.min(deviceSize, o.metadataBytes + (request.mode === 'extract' ? request.limits.maxTotalBytes : 0));
  const timeoutMs = options.timeoutMs ?? o.baseTimeoutMs + Math.ceil((readable / o.bytesPerSecond) * 1000);
  const nodePath = options.nodePath ?? process.execPath;
  const extract = request.mode === 'extract';
  if (extract !== (outDir !== null)) throw new Error('volumeSandboxCommand: an extraction folder goes with extract mode, and only with it');
  const node = [
    // RLIMIT_DATA bounds what V8's heap flag does not (buffers, native allocations); an address-space cap cannot (above).
    o.prlimitPath,
    `--data=${(options.dataMiB ?? o.heapMiB + o.dataBesideHeapMiB) * 1024 * 1024}`,
    '--',
    nodePath,
    `--max-old-space-size=${o.heapMiB}`,
    '--disallow-code-generation-from-strings',
    '--no-addons',
    '--permission', // no child processes, workers or addons; file access only as allowed here
    ...o.codePaths.map((path) => `--allow-fs-read=${path}`),
    ...(extract ? ['--allow-fs-read=/out', '--allow-fs-write=/out'] : []),
    o.entry,
    encodeRequest(request),
  ];
  const folder = nodeFolder(nodePath);
  const binds = [
    ...(folder === null ? [] : ['--ro-bind', folder, folder]),
    ...o.codePaths.flatMap((path) => ['--ro-bind', path, path]),
    ...(outDir === null ? [] : ['--bind', outDir, '/out']),
    // bwrap's root and /dev are tmpfs mounts the reader could fill, in the kiosk's memory and past every limit here.
    '--remount-ro', '/',
    '--remount-ro', '/dev',
  ];
  const limits = {
    cpuSeconds: Math.ceil(timeoutMs / 1000) * 2, // V8's helper threads add CPU time beside the reader's own
    // A file's bytes lie in the volume, so none can be larger than the image.
    maxOutputBytes: extract ? Math.max(1, Math.min(request.limits.maxTotalBytes, deviceSize)) : 1,
  };
  const args = sandboxArgs({ bwrapPath: o.bwrapPath, prlimitPath: o.prlimitPath, maxMemoryBytes: NO_ADDRESS_SPACE_CAP }, node, limits, binds);
  return { command: o.bwrapPath, args, timeoutMs, limits };
}

/**
 * Runs the reader on the image at `imagePath` as `request` asks and returns
 * its checked listing. In extract mode `outDir` (an empty folder of the
 * kiosk's) receives the files and is checked against the listing; the caller
 * removes it when this throws.
 */
export async function readVolumeInSandbox(
  imagePath: string,
  request: ChildRequest,
  outDir: string | null,
  options: VolumeSandboxOptions & { signal?: AbortSignal } = {},
): Promise<VolumeListing> {
  options.signal?.throwIfAborted();
  const o = { ...VOLUME_SANDBOX_DEFAULTS, ...options };
  const device = openFileBlockDevice(imagePath, 'read-only');
  let sandbox: SandboxCommand;
  try {
    sandbox = volumeSandboxCommand(request, outDir, device.size, options);
  } catch (error) {
    device.close();
    throw error;
  }
  const { timeoutMs, limits } = sandbox;
  const deviceSize = device.size;

  let child: ChildProcessByStdio<null, Readable, Readable>;
  try {
    child = spawn(sandbox.command, sandbox.args, { stdio: [device.fd, 'pipe', 'pipe'] }) as unknown as ChildProcessByStdio<null, Readable, Readable>;
  } finally {
    device.close(); // the child holds its own copy
  }

  const out: Buffer[] = [];
  let outBytes = 0;
  let oversized = false;
  let stderr = '';
  let timedOut = false;
  let aborted = false;
  const kill = (): void => {
    child.kill('SIGKILL'); // the reader dies with bwrap (--die-with-parent)
  };
  child.stdout.on('data', (data: Buffer) => {
    if (oversized) return;
    outBytes += data.length;
    if (outBytes > o.maxReportBytes) {
      oversized = true;
      kill();
      return;
    }
    out.push(data);
  });
  child.stderr.on('data', (data: Buffer) => {
    if (stderr.length < STDERR_KEPT) stderr = (stderr + data.toString('utf8')).slice(0, STDERR_KEPT);
  });
  const timer = setTimeout(() => {
    timedOut = true;
    kill();
  }, timeoutMs);
  const onAbort = (): void => {
    aborted = true;
    kill();
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const ended = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; spawnError: Error | null }>((resolve) => {
    let spawnError: Error | null = null;
    child.once('error', (error) => {
      spawnError = error;
      if (child.pid === undefined) resolve({ code: null, signal: null, spawnError });
    });
    child.once('close', (code, signal) => resolve({ code, signal, spawnError }));
  }).finally(() => {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
  });

  if (aborted) throw options.signal?.reason instanceof Error ? options.signal.reason : new Error('the volume reader was stopped');
  const what = `the sandboxed volume reader (${request.mode})`;
  if (ended.spawnError !== null && child.pid === undefined) {
    throw new MediaError('MEDIA_SANDBOX_UNAVAILABLE', `cannot start ${o.bwrapPath} for ${what}: ${ended.spawnError.message}: ${INSTALL_HINT}`, { cause: ended.spawnError });
  }
  if (timedOut) throw new MediaError('MEDIA_LIMIT_EXCEEDED', `${what} did not finish within ${Math.round(timeoutMs / 1000)} s: the drive is refused`);
  if (oversized) throw new MediaError('MEDIA_LIMIT_EXCEEDED', `${what} wrote more than ${o.maxReportBytes} bytes of listing: the drive is refused`);
  const died = signalOf(ended.code, ended.signal);
  if (outBytes === 0 && ended.code !== 0 && /^(bwrap|prlimit): /m.test(stderr)) {
    // bwrap or prlimit could not set the sandbox up: nothing of the image was read.
    throw new MediaError('MEDIA_SANDBOX_UNAVAILABLE', `the sandbox for reading drive volumes cannot start (${firstLines(stderr)}): ${INSTALL_HINT}`);
  }
  if (/JavaScript heap out of memory|Reached heap limit|Array buffer allocation failed/.test(stderr)) {
    throw new MediaError('MEDIA_LIMIT_EXCEEDED', `${what} ran out of its ${o.heapMiB} MiB heap or its memory: the drive is refused`);
  }
  if (died === 'SIGXCPU') throw new MediaError('MEDIA_LIMIT_EXCEEDED', `${what} used more than ${limits.cpuSeconds} s of CPU: the drive is refused`);
  if (died === 'SIGXFSZ') throw new MediaError('MEDIA_LIMIT_EXCEEDED', `${what} wrote a file over ${limits.maxOutputBytes} bytes: the drive is refused`);
  if (ended.code !== 0 && ended.code !== 2) {
    const how = died === null ? `exit ${String(ended.code)}` : died;
    throw new MediaError('MEDIA_TOOL_FAILED', `${what} failed (${how}${stderr.trim() === '' ? '' : `: ${firstLines(stderr)}`}): the drive is refused`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(out));
  } catch {
    throw new MediaError('MEDIA_TOOL_FAILED', `${what} wrote a report that is not UTF-8: the drive is refused`);
  }
  const report = parseChildReport(text, request, deviceSize);
  if (!report.ok) {
    if (ended.code !== 2) throw new MediaError('MEDIA_TOOL_FAILED', `${what} reported ${report.code} but exited ${String(ended.code)}: the drive is refused`);
    throw new MediaError(report.code, escapeForDisplay(report.message));
  }
  if (ended.code !== 0) throw new MediaError('MEDIA_TOOL_FAILED', `${what} reported a listing but exited ${String(ended.code)}: the drive is refused`);
  if (outDir !== null) await checkExtraction(outDir, report.listing.entries);
  return report.listing;
}

function violation(detail: string): MediaError {
  return new MediaError('MEDIA_TOOL_FAILED', `the sandboxed volume reader's extraction does not match its listing (${detail}): the drive is refused`);
}

/**
 * Checks the folder the child wrote against its listing: exactly the entries
 * a host folder can hold as themselves (the same split the child made), each
 * a folder, or a plain file with one link and the listed size; nothing else
 * (no symlink, device, FIFO, hard link or set-id bit). The walk stops at the
 * first surprise, so a child that filled the folder with junk costs little.
 */
export async function checkExtraction(root: string, entries: readonly VolumeEntry[]): Promise<void> {
  const expected = new Map(classifyEntries(entries).representable.map((entry) => [entry.names.join('/'), entry] as const));
  let found = 0;
  const visit = async (folder: string, prefix: string): Promise<void> => {
    for (const name of await readdir(folder)) {
      const path = prefix === '' ? name : `${prefix}/${name}`;
      const entry = expected.get(path);
      const shown = JSON.stringify(escapeForDisplay(path));
      if (entry === undefined) throw violation(`${shown} is not in the listing`);
      const stat = await lstat(join(folder, name));
      if ((stat.mode & 0o7000) !== 0) throw violation(`${shown} has a set-id or sticky bit`);
      found += 1;
      if (entry.kind === 'directory') {
        if (!stat.isDirectory()) throw violation(`${shown} should be a folder`);
        await visit(join(folder, name), path);
      } else if (!stat.isFile() || stat.nlink !== 1) {
        throw violation(`${shown} should be a plain file with one link`);
      } else if (stat.size !== entry.size) {
        throw violation(`${shown} has ${stat.size} bytes, the listing says ${entry.size}`);
      }
    }
  };
  await visit(root, '');
  if (found !== expected.size) {
    const missing = [...expected.keys()].length - found;
    throw violation(`${missing} listed entr${missing === 1 ? 'y is' : 'ies are'} missing`);
  }
}

/** A volume's identity (filesystem, volume id, label, capacity), read in the sandbox. */
export async function readVolumeIdentityInSandbox(path: string, options: VolumeSandboxOptions & { signal?: AbortSignal } = {}): Promise<VolumeIdentity> {
  const request: ChildRequest = { mode: 'identity', limits: { ...DEFAULT_WALK_LIMITS, maxTotalBytes: 0 } };
  return (await readVolumeInSandbox(path, request, null, options)).identity;
}
