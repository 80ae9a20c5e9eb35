/**
 * Adapter: opens a container the kiosk holds in its work folder with
 * libarchive (Debian's libarchive-tools: `bsdtar` for archives, `bsdcat` for
 * compression layers) inside a bubblewrap sandbox, the way usbsas keeps
 * filesystem parsing out of its main process. The parser of hostile bytes
 * runs as nobody, in its own user, mount, network, PID, IPC and UTS
 * namespaces, with no capabilities, no filesystem but /usr read-only, no
 * network, resource limits (address space, CPU time, no core files), and
 * dies with the kiosk. Its only input is the container on standard input
 * (a regular file, so libarchive reads a zip by its central directory, as
 * Windows does), its only output the members as a pax tar stream on standard
 * output (`bsdtar -cf - --format=pax @-`) or the decompressed bytes
 * (`bsdcat`).
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { closeSync, constants, openSync, rmSync, writeFileSync } from 'node:fs';
import { crc32, gzipSync } from 'node:zlib';
import { PortcullisError } from '../../manifest/index.ts';
import { isCompression, type ContainerFormat } from './container-format.ts';

export type ExtractorErrorCode = 'EXTRACTOR_UNAVAILABLE';
export class ExtractorError extends PortcullisError<ExtractorErrorCode> {}

export interface ExtractorOptions {
  readonly bwrapPath?: string; // default /usr/bin/bwrap
  readonly bsdtarPath?: string; // default /usr/bin/bsdtar
  readonly bsdcatPath?: string; // default /usr/bin/bsdcat
  readonly prlimitPath?: string; // default /usr/bin/prlimit
  readonly maxMemoryBytes?: number; // bytes of address space for the parser, default 1 GiB
}

export const EXTRACTOR_DEFAULTS = {
  bwrapPath: '/usr/bin/bwrap',
  bsdtarPath: '/usr/bin/bsdtar',
  bsdcatPath: '/usr/bin/bsdcat',
  prlimitPath: '/usr/bin/prlimit',
  maxMemoryBytes: 1024 ** 3, // bytes: 7z and xz dictionaries up to a few hundred MiB fit
} as const;

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

export interface Extractor {
  /** Opens the container at `path` (a regular file in the kiosk's work folder). */
  open(path: string, format: ContainerFormat, cpuSeconds: number): Extraction;
}

const STDERR_KEPT = 4096; // bytes

/** The sandbox's command line around one libarchive tool. */
export function sandboxArgs(options: Required<ExtractorOptions>, format: ContainerFormat, cpuSeconds: number): string[] {
  const tool = isCompression(format) ? [options.bsdcatPath] : [options.bsdtarPath, '-cf', '-', '--format=pax', '@-'];
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
    '--clearenv',
    '--setenv', 'LANG', 'C.UTF-8', // member names are written as UTF-8 where they convert
    '--chdir', '/',
    '--',
    options.prlimitPath,
    `--as=${options.maxMemoryBytes}`,
    `--cpu=${Math.max(1, Math.ceil(cpuSeconds))}`,
    '--core=0',
    '--nofile=32',
    '--',
    ...tool,
  ];
}

export function createExtractor(options: ExtractorOptions = {}): Extractor {
  const resolved: Required<ExtractorOptions> = { ...EXTRACTOR_DEFAULTS, ...options };
  return {
    open(path, format, cpuSeconds) {
      // The container goes in as standard input: the sandbox sees no path of the kiosk's.
      const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
      let child: ChildProcessByStdio<null, Readable, Readable>;
      try {
        child = spawn(resolved.bwrapPath, sandboxArgs(resolved, format, cpuSeconds), { stdio: [fd, 'pipe', 'pipe'] }) as unknown as ChildProcessByStdio<null, Readable, Readable>;
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

/** A one-entry stored zip, built here so the start-up check depends on no fixture file. */
function storedZip(name: string, data: Uint8Array): Uint8Array {
  const nameBytes = Buffer.from(name, 'utf8');
  const crc = crc32(data);
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(20, 4);
  local.writeUInt16LE(0x0800, 6); // UTF-8 name
  local.writeUInt32LE(crc, 14);
  local.writeUInt32LE(data.length, 18);
  local.writeUInt32LE(data.length, 22);
  local.writeUInt16LE(nameBytes.length, 26);
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE(20, 4);
  central.writeUInt16LE(20, 6);
  central.writeUInt16LE(0x0800, 8);
  central.writeUInt32LE(crc, 16);
  central.writeUInt32LE(data.length, 20);
  central.writeUInt32LE(data.length, 24);
  central.writeUInt16LE(nameBytes.length, 28);
  const cdOffset = local.length + nameBytes.length + data.length;
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(1, 8);
  end.writeUInt16LE(1, 10);
  end.writeUInt32LE(central.length + nameBytes.length, 12);
  end.writeUInt32LE(cdOffset, 16);
  return Buffer.concat([local, nameBytes, data, central, nameBytes, end]);
}

async function collect(output: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of output) parts.push(Buffer.from(chunk));
  return Buffer.concat(parts);
}

/**
 * Proves the sandboxed extractor works before any drive is scanned: a zip
 * and a gzip stream made here must come out with exactly their content.
 * `scratch` makes a private file to hold each sample. Throws
 * EXTRACTOR_UNAVAILABLE naming what failed and how to fix it.
 */
export async function proveExtractor(extractor: Extractor, scratch: () => { path: string; fd: number }): Promise<void> {
  const content = Buffer.from('Portcullis archive inspection start-up check.\n');
  const samples: Array<[ContainerFormat, Uint8Array]> = [['zip', storedZip('portcullis-check.txt', content)], ['gzip', gzipSync(content)]];
  for (const [format, bytes] of samples) {
    const file = scratch();
    try {
      writeFileSync(file.fd, bytes);
    } finally {
      closeSync(file.fd);
    }
    try {
      const extraction = extractor.open(file.path, format, 10);
      const output = await collect(extraction.output).catch(() => Buffer.alloc(0));
      const end = await extraction.ended;
      const ok = end.code === 0 && end.stderr.trim() === '' && (format === 'gzip' ? output.equals(content) : output.includes(content) && output.includes(Buffer.from('portcullis-check.txt')));
      if (!ok) {
        const said = end.stderr.trim().split('\n').slice(0, 3).join(' | ');
        throw new ExtractorError('EXTRACTOR_UNAVAILABLE', `the sandboxed archive extractor failed its start-up check on a ${format} sample (exit ${String(end.code)}${end.signal ? `, ${end.signal}` : ''}${said ? `: ${said}` : ''}): install bubblewrap and libarchive-tools (scripts/setup.sh) and make sure user namespaces are enabled (kernel.unprivileged_userns_clone, or run the kiosk as root)`);
      }
    } finally {
      rmSync(file.path, { force: true });
    }
  }
}
