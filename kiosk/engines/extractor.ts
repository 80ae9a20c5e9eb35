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
 *   through 7-Zip (`7zz x -t<format> -aou`, the tool Windows users open them
 *   with; an item whose name is taken is renamed, never written over) into
 *   a size-limited tmpfs, repacked by `bsdtar -cf - --format=pax` from that
 *   folder into the tar stream the kiosk reads; an OLE2 compound file
 *   (legacy Office) the same way, with 7-Zip's Compound reader;
 * - a PDF's attachments through poppler's `pdfdetach`, each saved into a
 *   folder of its own (numbered as pdfdetach numbers them) and repacked the
 *   same way;
 * - and 7-Zip's listing of a file (`7zz l -slt`), which says what 7-Zip
 *   opens it as (probe()).
 *
 * The parser runs as nobody, in its own user, mount, network, PID, IPC and
 * UTS namespaces, with no capabilities, no filesystem but /usr read-only (and
 * the tmpfs), no network, resource limits (address space, CPU time, file
 * size, no core files), and dies with the kiosk. Its only input is the
 * container (on standard input, or bound read-only for 7-Zip, which needs a
 * file it can seek), its only output its standard output and error.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { closeSync, constants, openSync, rmSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { PortcullisError } from '../../manifest/index.ts';
import type { ContainerFormat } from '../core/container-format.ts';
import type { ExtractionEnd, ExtractionLimits, Extractor, ProbeAnswer, ProbeQuestion } from '../core/ports.ts';
import { parseListing } from '../core/seven-zip-view.ts';

export type { Extraction, ExtractionEnd, ExtractionLimits, Extractor, ProbeAnswer, ProbeQuestion } from '../core/ports.ts';

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
  '7z': '7z', cab: 'cab', iso9660: 'iso', cpio: 'cpio', ar: 'ar', xar: 'xar', lha: 'lzh', ole2: 'Compound',
};
const SEVEN_ZIP = '/usr/bin/7zz';
const BSDTAR = '/usr/bin/bsdtar';
const PDFDETACH = '/usr/bin/pdfdetach';
const SHELL = '/usr/bin/sh';
const REPACK = `cd /out && exec ${BSDTAR} -cf - --format=pax -s ',^\\./,,' .`;

/**
 * A PDF's attachments, one folder per attachment: pdfdetach numbers them
 * (embedded files, then file-attachment annotations) and saves each under
 * its own name. A name holding a path would land outside its folder (over
 * another attachment): every folder must then hold exactly one file, or
 * the script fails. pdfdetach's syntax warnings about a damaged PDF are not
 * kept; its exit code and the count it lists are.
 */
const PDF_SCRIPT = [
  `n=$(${PDFDETACH} -list /in 2>/dev/null | sed -n '1s/^\\([0-9][0-9]*\\) embedded files$/\\1/p') || exit 3`,
  '[ -n "$n" ] || { echo "pdfdetach could not list the attachments" >&2; exit 3; }',
  'i=1; while [ "$i" -le "$n" ]; do',
  `  mkdir "/out/$i" && cd "/out/$i" && ${PDFDETACH} -enc UTF-8 -save "$i" /in 2>/dev/null || { echo "pdfdetach could not save attachment $i" >&2; exit 4; }`,
  '  i=$((i + 1))',
  'done',
  'i=1; while [ "$i" -le "$n" ]; do',
  '  [ "$(ls -A "/out/$i" | wc -l)" = 1 ] && [ -f "/out/$i/$(ls -A "/out/$i")" ] || { echo "attachment $i was not saved in its own folder (a name that is a path?)" >&2; exit 5; }',
  '  i=$((i + 1))',
  'done',
  '[ "$(ls -A /out | wc -l)" = "$n" ] || { echo "attachments were saved outside their folders" >&2; exit 5; }',
  REPACK,
].join('\n');

/** Whether the extractor has a tool for `format` (zip and tar are the kiosk's own). */
export function extractorOpens(format: ContainerFormat, options: ExtractorOptions = {}): boolean {
  return (options.commands?.[format] ?? DECOMPRESSORS[format]) !== undefined || SEVEN_ZIP_TYPES[format] !== undefined || format === 'pdf';
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
  const tmpfs = ['--size', String(Math.max(1, limits.maxOutputBytes)), '--perms', '0700', '--tmpfs', '/out'];
  if (format === 'pdf') return { tool: [SHELL, '-c', PDF_SCRIPT], extra: tmpfs, boundInput: true };
  const type = SEVEN_ZIP_TYPES[format];
  if (type === undefined) return null;
  // 7-Zip extracts into a tmpfs no bigger than the inspection may still unpack, then bsdtar packs that folder
  // as the stream. -aou: an item whose name is taken is renamed, so no item overwrites another.
  const script = `${SEVEN_ZIP} x -t${type} -aou -y -bso0 -bsp0 -bse2 -o/out -- /in >&2 && ${REPACK}`;
  return { tool: [SHELL, '-c', script], extra: tmpfs, boundInput: true };
}

const LISTING_KEPT = 32 * 1024 * 1024; // bytes of 7-Zip's listing read: 10 000 items take about 3 MiB

/** A PDF's attachments counted and sized: each saved into the scratch tmpfs under a fixed name, measured and removed. */
const PDF_SIZES_SCRIPT = [
  `n=$(${PDFDETACH} -list /in 2>/dev/null | sed -n '1s/^\\([0-9][0-9]*\\) embedded files$/\\1/p') || exit 3`,
  '[ -n "$n" ] || { echo "pdfdetach could not list the attachments" >&2; exit 3; }',
  'echo "$n"',
  'i=1; while [ "$i" -le "$n" ]; do',
  `  ${PDFDETACH} -save "$i" -o /out/attachment /in 2>/dev/null || { echo "pdfdetach could not save attachment $i" >&2; exit 4; }`,
  '  wc -c < /out/attachment && rm -f /out/attachment || exit 4',
  '  i=$((i + 1))',
  'done',
].join('\n');

/** The sandboxed command for a probe asked alone (`any` goes through the batcher): 7-Zip lists, and for `each` prints the types it opened. */
function probeCommand(question: Exclude<ProbeQuestion, { as: 'any' }>): readonly string[] {
  if (question.as === 'attachments') return [SHELL, '-c', PDF_SIZES_SCRIPT];
  if (question.as === 'type') return [SEVEN_ZIP, 'l', '-slt', '-sccUTF-8', `-t${checkedType(question.type)}`, '--', '/in'];
  // Opened means a listing with the archive's Type (7-Zip opens some broken images with an error and a non-zero exit).
  const script = `for t; do ${SEVEN_ZIP} l -slt -t"$t" -- /in 2>/dev/null | /usr/bin/grep -q '^Type = ' && echo "$t"; done; exit 0`;
  return [SHELL, '-c', script, 'probe', ...question.types.map(checkedType)];
}

function checkedType(type: string): string {
  if (!/^[A-Za-z0-9]{1,16}$/.test(type)) throw new Error(`not a 7-Zip format name: ${JSON.stringify(type)}`);
  return type;
}

export function createExtractor(options: ExtractorOptions = {}): Extractor {
  const resolved = { ...EXTRACTOR_DEFAULTS, ...options };
  const batcher = createProbeBatcher(resolved);
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
    async probe(path, question, limits) {
      const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
      closeSync(fd); // refuses a path that is not the kiosk's own regular file before bwrap binds it
      if (question.as === 'any') return batcher.ask(path, question.attachments === true, limits);
      const scratch = question.as === 'attachments' ? ['--size', String(Math.max(1, limits.maxOutputBytes)), '--perms', '0700', '--tmpfs', '/out'] : [];
      return runSandboxed(resolved, probeCommand(question), limits, [...scratch, '--ro-bind', path, '/in']);
    },
  };
}

/** Runs one sandboxed command to its end, its standard output kept up to LISTING_KEPT bytes. */
async function runSandboxed(options: Required<Omit<ExtractorOptions, 'commands'>>, tool: readonly string[], limits: ExtractionLimits, extra: readonly string[]): Promise<ProbeAnswer> {
  const child = spawn(options.bwrapPath, sandboxArgs(options, tool, limits, extra), { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let kept = 0;
  let truncated = false;
  let stderr = '';
  child.stdout.on('data', (data: Buffer) => {
    if (kept + data.length > LISTING_KEPT) {
      truncated = true;
      child.kill('SIGKILL');
      return;
    }
    out.push(data);
    kept += data.length;
  });
  child.stderr.on('data', (data: Buffer) => {
    if (stderr.length < STDERR_KEPT) stderr = (stderr + data.toString('utf8')).slice(0, STDERR_KEPT);
  });
  const end = await new Promise<ExtractionEnd>((resolve) => {
    child.once('error', (error) => {
      if (child.pid === undefined) resolve({ code: null, signal: null, stderr: `cannot run ${options.bwrapPath}: ${error.message}`, killed: false });
    });
    child.once('close', (code, signal) => resolve({ code, signal, stderr, killed: truncated }));
  });
  return { end, stdout: Buffer.concat(out).toString('utf8'), truncated };
}

const BATCH_FILES = 16; // files one sandbox lists at most
const BATCHES_AT_ONCE = 3; // sandboxes listing at the same time

/**
 * 7-Zip's listing of each file, in as few sandboxes and 7-Zip runs as the
 * files asked about at once allow: a sandbox and a 7-Zip start cost more
 * than most listings (about 10 ms each on the reference machine, three
 * times that under load), and a drive of pictures and PDFs asks for one
 * per file. The files are bound read-only at /in/N (/pdf/N for a PDF) and
 * one `7zz l -an -ai!/in/0 -ai!/pdf/1 ...` lists them all, each under its own "Listing
 * archive: /in/N" header; pdfdetach then counts each PDF's attachments,
 * on lines holding a nonce drawn for the batch, which no file can know. A
 * header that shows twice (a name in an archive posing as one) or not at
 * all fails the whole batch, never one answer into another.
 */
function createProbeBatcher(options: Required<Omit<ExtractorOptions, 'commands'>>): { ask(path: string, attachments: boolean, limits: ExtractionLimits): Promise<ProbeAnswer> } {
  interface Pending { readonly path: string; readonly attachments: boolean; readonly limits: ExtractionLimits; readonly resolve: (answer: ProbeAnswer) => void }
  const queue: Pending[] = [];
  let running = 0;
  const script = [
    'n=$1; shift',
    `${SEVEN_ZIP} l -slt -sccUTF-8 -an "$@" 2>/dev/null; echo "@@$n exit $?"`,
    `for a; do f=\${a#-ai!}; case "$f" in /pdf/*) ${PDFDETACH} -list "$f" 2>/dev/null | { IFS= read -r l; echo "@@$n attachments $f $l"; };; esac; done`,
  ].join('\n');
  const runBatch = async (batch: readonly Pending[]): Promise<void> => {
    const nonce = randomBytes(12).toString('hex');
    const where = batch.map((p, i) => `/${p.attachments ? 'pdf' : 'in'}/${i}`);
    const binds = batch.flatMap((p, i) => ['--ro-bind', p.path, where[i]!]);
    const limits: ExtractionLimits = { cpuSeconds: Math.max(...batch.map((p) => p.limits.cpuSeconds)), maxOutputBytes: 1 };
    let answer: ProbeAnswer;
    try {
      answer = await runSandboxed(options, [SHELL, '-c', script, 'probe', nonce, ...where.map((w) => `-ai!${w}`)], limits, binds);
    } catch (error) {
      answer = { end: { code: null, signal: null, stderr: `cannot run ${options.bwrapPath}: ${(error as Error).message}`, killed: false }, stdout: '', truncated: false };
    }
    const lines = answer.stdout.split('\n');
    const marker = `@@${nonce} `;
    const exitAt = lines.findIndex((l) => l.startsWith(`${marker}exit `));
    const exit = exitAt < 0 ? NaN : Number(lines[exitAt]!.slice(`${marker}exit `.length));
    // 7-Zip exits 2 when some file is no archive; anything else but 0 (a signal, no memory) fails the batch.
    const listed = answer.end.signal === null && !answer.truncated && (exit === 0 || exit === 2);
    const headers = new Map<string, number[]>();
    if (listed) {
      for (let i = 0; i < exitAt; i++) {
        const m = /^Listing archive: (\/(?:in|pdf)\/[0-9]+)$/.exec(lines[i]!);
        if (m) headers.set(m[1]!, [...(headers.get(m[1]!) ?? []), i]);
      }
    }
    const starts = [...headers.values()].flat().sort((a, b) => a - b);
    const failed = (p: Pending): void => p.resolve({
      end: { code: null, signal: answer.end.signal, stderr: answer.end.stderr || 'the batch of 7-Zip listings did not complete', killed: answer.end.killed },
      stdout: '',
      truncated: answer.truncated,
      ...(p.attachments ? { attachments: null } : {}),
    });
    const whole = listed && batch.every((_, i) => headers.get(where[i]!)?.length === 1);
    batch.forEach((p, i) => {
      if (!whole) return failed(p);
      const at = headers.get(where[i]!)![0]!;
      const next = starts.find((s) => s > at) ?? exitAt;
      const section = lines.slice(at + 1, next).join('\n');
      const count = p.attachments
        ? lines.filter((l) => l.startsWith(`${marker}attachments ${where[i]!} `)).map((l) => /^([0-9]{1,9}) embedded files$/.exec(l.slice(`${marker}attachments ${where[i]!} `.length))?.[1])
        : [];
      if (p.attachments && count.length !== 1) return failed(p);
      p.resolve({
        end: { code: /^Type = /m.test(section) ? 0 : 2, signal: null, stderr: '', killed: false },
        stdout: section,
        truncated: false,
        ...(p.attachments ? { attachments: count[0] === undefined ? null : Number(count[0]) } : {}),
      });
    });
  };
  const pump = (): void => {
    while (running < BATCHES_AT_ONCE && queue.length > 0) {
      const batch = queue.splice(0, BATCH_FILES);
      running++;
      void runBatch(batch).finally(() => {
        running--;
        pump();
      });
    }
  };
  return {
    ask(path, attachments, limits) {
      return new Promise((resolve) => {
        queue.push({ path, attachments, limits, resolve });
        // Files asked about while both sandboxes are busy wait and go together into the next one.
        queueMicrotask(pump);
      });
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
  const samples: Array<[string, ContainerFormat, Uint8Array]> = [
    ['gzip', 'gzip', gzipSync(content)],
    ['7-Zip', 'cpio', cpioOf('portcullis-check.txt', content)],
    ['pdfdetach', 'pdf', pdfOf('portcullis-check.txt', content)],
  ];
  for (const [what, format, bytes] of samples) {
    const file = scratch();
    try {
      writeFileSync(file.fd, bytes);
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
        throw new ExtractorError('EXTRACTOR_UNAVAILABLE', `the sandboxed archive extractor failed its start-up check (${what}: exit ${String(end.code)}${end.signal ? `, ${end.signal}` : ''}${said ? `: ${said}` : ''}): install bubblewrap, gzip, bzip2, xz-utils, zstd, lz4, 7zip, libarchive-tools and poppler-utils (scripts/setup.sh) and make sure user namespaces are enabled (kernel.unprivileged_userns_clone, or run the kiosk as root)`);
      }
    } finally {
      rmSync(file.path, { force: true });
    }
  }
  await proveProbe(extractor, scratch);
}

/** The probe must list a cpio made here as 7-Zip's Cpio, and say nothing of plain text. */
async function proveProbe(extractor: Extractor, scratch: () => { path: string; fd: number }): Promise<void> {
  const limits: ExtractionLimits = { cpuSeconds: 10, maxOutputBytes: 1024 * 1024 };
  const ask = async (bytes: Uint8Array): Promise<ReturnType<typeof parseListing> | null> => {
    const file = scratch();
    try {
      writeFileSync(file.fd, bytes);
    } finally {
      closeSync(file.fd);
    }
    try {
      const answer = await extractor.probe(file.path, { as: 'any' }, limits);
      return answer.end.signal === null && (answer.end.code === 0 || answer.end.code === 2) ? parseListing(answer.stdout) : null;
    } finally {
      rmSync(file.path, { force: true });
    }
  };
  const archive = await ask(cpioOf('portcullis-check.txt', Buffer.from('check\n')));
  const text = await ask(Buffer.from('Portcullis start-up check: plain text.\n'));
  const ok = archive !== null && 'archives' in archive && archive.archives[0]?.type === 'Cpio' && archive.items.some((i) => i.path === 'portcullis-check.txt')
    && text !== null && 'archives' in text && text.archives.length === 0;
  if (!ok) {
    throw new ExtractorError('EXTRACTOR_UNAVAILABLE', 'the sandboxed 7-Zip listing failed its start-up check (7zz l on a cpio made in memory): install bubblewrap, 7zip, libarchive-tools and poppler-utils (scripts/setup.sh) and make sure user namespaces are enabled');
  }
}

/** A one-page PDF with one attachment (ISO 32000 7.11.4, an EmbeddedFiles name tree), built here for the start-up check. */
function pdfOf(name: string, data: Uint8Array): Uint8Array {
  const objects = [
    `<</Type/Catalog/Pages 2 0 R/Names<</EmbeddedFiles<</Names[(${name}) 4 0 R]>>>>>>`,
    '<</Type/Pages/Kids[3 0 R]/Count 1>>',
    '<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>',
    `<</Type/Filespec/F(${name})/UF(${name})/EF<</F 5 0 R>>>>`,
    `<</Type/EmbeddedFile/Length ${data.length}>>stream\n${Buffer.from(data).toString('latin1')}\nendstream`,
  ];
  let out = '%PDF-1.7\n';
  const offsets: number[] = [];
  objects.forEach((o, i) => {
    offsets.push(out.length);
    out += `${i + 1} 0 obj\n${o}\nendobj\n`;
  });
  const xref = out.length;
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n${offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('')}`;
  out += `trailer\n<</Size ${objects.length + 1}/Root 1 0 R>>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
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
