/**
 * Adapter: opens a container the kiosk holds in its work folder with the
 * one tool made for exactly its format, inside a bubblewrap sandbox, the way
 * usbsas keeps parsing of hostile bytes out of its main process. Nothing is
 * auto-detected (a reader that tries every format and filter in turn can be
 * led to read a tar as an empty lzma stream): the kiosk decides the format
 * from the bytes, and the sandbox runs
 *
 * - a compression layer through its own decompressor: `gzip -dc` (gzip and
 *   compress), `bzip2 -dc`, `xz -dc --format=xz`, `xz -dc --format=lzma`,
 *   `zstd -dc`, `lz4 -dc`; each refuses or complains about bytes after its
 *   stream, which the kiosk takes as not inspected;
 * - any other archive but zip and tar (the kiosk reads those two itself)
 *   through 7-Zip (`7zz x -t<format>`, the tool Windows users open them with)
 *   into a size-limited tmpfs, repacked by `bsdtar -cf - --format=pax` from
 *   that folder into the tar stream the kiosk reads.
 *
 * The parser runs as nobody, in its own user, mount, network, PID, IPC and
 * UTS namespaces, with no capabilities, no filesystem but /usr read-only (and
 * the tmpfs), no network, resource limits (address space, CPU time, file
 * size, no core files), and dies with the kiosk. Its only input is the
 * container (on standard input, or bound read-only for 7-Zip, which needs a
 * file it can seek), its only output its standard output and error.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { closeSync, constants, openSync, rmSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { PortcullisError } from '../../manifest/index.ts';
import type { ContainerFormat } from '../core/container-format.ts';
import type { ExtractionEnd, ExtractionLimits, Extractor } from '../core/ports.ts';

export type { Extraction, ExtractionEnd, ExtractionLimits, Extractor } from '../core/ports.ts';

export type ExtractorErrorCode = 'EXTRACTOR_UNAVAILABLE';
export class ExtractorError extends PortcullisError<ExtractorErrorCode> {}

export interface ExtractorOptions {
  readonly bwrapPath?: string; // default /usr/bin/bwrap
  readonly prlimitPath?: string; // default /usr/bin/prlimit
  readonly maxMemoryBytes?: number; // bytes of address space for the parser, default 1 GiB
  /** Replaces a format's command (tests); the container is on standard input. */
  readonly commands?: Partial<Record<ContainerFormat, readonly string[]>>;
}

export const EXTRACTOR_DEFAULTS = {
  bwrapPath: '/usr/bin/bwrap',
  prlimitPath: '/usr/bin/prlimit',
  maxMemoryBytes: 1024 ** 3, // bytes: 7z and xz dictionaries up to a few hundred MiB fit
} as const;

/** The decompressor of each compression layer: the container on standard input, the content on standard output. */
const DECOMPRESSORS: Partial<Record<ContainerFormat, readonly string[]>> = {
  gzip: ['/usr/bin/gzip', '-dc'],
  compress: ['/usr/bin/gzip', '-dc'],
  bzip2: ['/usr/bin/bzip2', '-dc'],
  xz: ['/usr/bin/xz', '-dc', '--format=xz'],
  lzma: ['/usr/bin/xz', '-dc', '--format=lzma'],
  zstd: ['/usr/bin/zstd', '-dcq'],
  lz4: ['/usr/bin/lz4', '-dcq'],
  lzip: ['/usr/bin/lzip', '-dc'],
};

/** 7-Zip's name for each archive format it opens for the kiosk (-t: no other format is tried). */
const SEVEN_ZIP_TYPES: Partial<Record<ContainerFormat, string>> = {
  '7z': '7z', cab: 'cab', iso9660: 'iso', cpio: 'cpio', ar: 'ar', xar: 'xar', lha: 'lzh',
};
const SEVEN_ZIP = '/usr/bin/7zz';
const BSDTAR = '/usr/bin/bsdtar';
const SHELL = '/usr/bin/sh';

/** Whether the extractor has a tool for `format` (zip and tar are the kiosk's own). */
export function extractorOpens(format: ContainerFormat, options: ExtractorOptions = {}): boolean {
  return (options.commands?.[format] ?? DECOMPRESSORS[format]) !== undefined || SEVEN_ZIP_TYPES[format] !== undefined;
}

const STDERR_KEPT = 4096; // bytes

/** The sandbox's command line around one tool: `extra` adds bwrap options (a bound input, a tmpfs). */
export function sandboxArgs(options: Required<Omit<ExtractorOptions, 'commands'>>, tool: readonly string[], limits: ExtractionLimits, extra: readonly string[] = []): string[] {
  return [
    '--unshare-all', // user, mount, network, PID, IPC, UTS, cgroup namespaces: no network at all
    '--uid', '65534', '--gid', '65534', // nobody inside the sandbox
    '--cap-drop', 'ALL',
    '--die-with-parent',
    '--new-session', // no access to the kiosk's terminal (TIOCSTI)
    '--ro-bind', '/usr', '/usr',
    '--symlink', 'usr/lib', '/lib',
    '--symlink', 'usr/lib64', '/lib64',
    '--symlink', 'usr/bin', '/bin',
    '--dev', '/dev',
    ...extra,
    '--clearenv',
    '--setenv', 'LANG', 'C.UTF-8', // member names are written as UTF-8 where they convert
    '--chdir', '/',
    '--',
    options.prlimitPath,
    `--as=${options.maxMemoryBytes}`,
    `--cpu=${Math.max(1, Math.ceil(limits.cpuSeconds))}`,
    `--fsize=${Math.max(1, limits.maxOutputBytes)}`,
    '--core=0',
    '--nofile=64',
    '--',
    ...tool,
  ];
}

/** The command and sandbox options for one format, or null when the kiosk has no tool for it. */
function commandFor(format: ContainerFormat, options: ExtractorOptions, limits: ExtractionLimits): { tool: readonly string[]; extra: string[]; boundInput: boolean } | null {
  const replaced = options.commands?.[format];
  if (replaced) return { tool: replaced, extra: [], boundInput: false };
  const decompressor = DECOMPRESSORS[format];
  if (decompressor) return { tool: decompressor, extra: [], boundInput: false };
  const type = SEVEN_ZIP_TYPES[format];
  if (type === undefined) return null;
  // 7-Zip extracts into a tmpfs as big as the policy allows, then bsdtar packs that folder as the stream.
  const script = `${SEVEN_ZIP} x -t${type} -y -bso0 -bsp0 -bse2 -o/out -- /in >&2 && cd /out && exec ${BSDTAR} -cf - --format=pax -s ',^\\./,,' .`;
  return {
    tool: [SHELL, '-c', script],
    extra: ['--size', String(Math.max(1, limits.maxOutputBytes)), '--perms', '0700', '--tmpfs', '/out'],
    boundInput: true,
  };
}

export function createExtractor(options: ExtractorOptions = {}): Extractor {
  const resolved = { ...EXTRACTOR_DEFAULTS, ...options };
  return {
    opens: (format) => extractorOpens(format, options),
    open(path, format, limits) {
      const command = commandFor(format, options, limits);
      if (command === null) {
        const output: AsyncIterable<Uint8Array> = { async *[Symbol.asyncIterator]() {} };
        return { output, ended: Promise.resolve({ code: null, signal: null, stderr: `no tool to open ${format} content on this kiosk`, killed: false }), kill() {} };
      }
      // The container goes in as standard input (or bound read-only at /in for 7-Zip): the sandbox sees no path of the kiosk's.
      const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
      let child: ChildProcessByStdio<null, Readable, Readable>;
      try {
        const extra = command.boundInput ? [...command.extra, '--ro-bind', path, '/in'] : command.extra;
        child = spawn(resolved.bwrapPath, sandboxArgs(resolved, command.tool, limits, extra), { stdio: [fd, 'pipe', 'pipe'] }) as unknown as ChildProcessByStdio<null, Readable, Readable>;
      } finally {
        closeSync(fd); // the child holds its own copy
      }
      let stderr = '';
      let killed = false;
      child.stderr.on('data', (data: Buffer) => {
        if (stderr.length < STDERR_KEPT) stderr = (stderr + data.toString('utf8')).slice(0, STDERR_KEPT);
      });
      const ended = new Promise<ExtractionEnd>((resolve) => {
        let spawnError: Error | null = null;
        child.once('error', (error) => {
          spawnError = error;
          if (child.pid === undefined) resolve({ code: null, signal: null, stderr: `cannot run ${resolved.bwrapPath}: ${error.message}`, killed });
        });
        child.once('close', (code, signal) => {
          resolve({ code, signal, stderr: spawnError ? `${stderr}${spawnError.message}` : stderr, killed });
        });
      });
      return {
        output: child.stdout,
        ended,
        kill() {
          killed = true;
          child.kill('SIGKILL'); // bwrap's child dies with it (--die-with-parent)
          child.stdout.destroy();
        },
      };
    },
  };
}

async function collect(output: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of output) parts.push(Buffer.from(chunk));
  return Buffer.concat(parts);
}

/**
 * Proves the sandboxed extractor works before any drive is scanned: a gzip
 * stream and a 7-Zip round (a tar made here, opened by 7-Zip as one of its
 * formats would be, repacked by bsdtar) must come out with exactly their
 * content. `scratch` makes a private file to hold each sample. Throws
 * EXTRACTOR_UNAVAILABLE naming what failed and how to fix it.
 */
export async function proveExtractor(extractor: Extractor, scratch: () => { path: string; fd: number }): Promise<void> {
  const content = Buffer.from('Portcullis archive inspection start-up check.\n');
  const limits: ExtractionLimits = { cpuSeconds: 10, maxOutputBytes: 1024 * 1024 };
  const samples: Array<[string, ContainerFormat, Uint8Array]> = [['gzip', 'gzip', gzipSync(content)], ['7-Zip', 'cpio', Buffer.alloc(0)]];
  for (const [what, format, bytes] of samples) {
    const file = scratch();
    try {
      writeFileSync(file.fd, format === 'cpio' ? cpioOf('portcullis-check.txt', content) : bytes);
    } finally {
      closeSync(file.fd);
    }
    try {
      const extraction = extractor.open(file.path, format, limits);
      const output = await collect(extraction.output).catch(() => Buffer.alloc(0));
      const end = await extraction.ended;
      const ok = end.code === 0 && end.stderr.trim() === '' && (format === 'gzip' ? output.equals(content) : output.includes(content) && output.includes(Buffer.from('portcullis-check.txt')));
      if (!ok) {
        const said = end.stderr.trim().split('\n').slice(0, 3).join(' | ');
        throw new ExtractorError('EXTRACTOR_UNAVAILABLE', `the sandboxed archive extractor failed its start-up check (${what}: exit ${String(end.code)}${end.signal ? `, ${end.signal}` : ''}${said ? `: ${said}` : ''}): install bubblewrap, gzip, bzip2, xz-utils, zstd, lz4, 7zip and libarchive-tools (scripts/setup.sh) and make sure user namespaces are enabled (kernel.unprivileged_userns_clone, or run the kiosk as root)`);
      }
    } finally {
      rmSync(file.path, { force: true });
    }
  }
}

/** A one-member "newc" cpio archive (7-Zip's -tcpio), built here for the start-up check. */
function cpioOf(name: string, data: Uint8Array): Uint8Array {
  const field = (n: number): string => n.toString(16).padStart(8, '0');
  const nameBytes = Buffer.from(`${name}\0`);
  const header = (ino: number, mode: number, size: number, nameLength: number): string =>
    `070701${field(ino)}${field(mode)}${field(0)}${field(0)}${field(1)}${field(0)}${field(size)}${field(0)}${field(0)}${field(0)}${field(0)}${field(nameLength)}${field(0)}`;
  const pad4 = (n: number): Buffer => Buffer.alloc((4 - (n % 4)) % 4);
  const first = Buffer.from(header(1, 0o100644, data.length, nameBytes.length));
  const trailerName = Buffer.from('TRAILER!!!\0');
  const trailer = Buffer.from(header(0, 0, 0, trailerName.length));
  return Buffer.concat([
    first, nameBytes, pad4(first.length + nameBytes.length), data, pad4(data.length),
    trailer, trailerName, pad4(trailer.length + trailerName.length),
  ]);
}
