/**
 * The USB sticks the image test plugs into the kiosk: partitioned disk images
 * (an MBR and partitions from 1 MiB, as sticks come from the shop) built with
 * the ordinary tools, sfdisk, mkfs.vfat with mtools, mkfs.exfat with
 * exfat-fuse, and read back the same way after the guest wrote to them. The
 * project's own FAT/exFAT code is not used here: the kiosk in the guest reads
 * these sticks through the Linux kernel's drivers, and the host reads what it
 * wrote through tools independent of both.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { BOOT_CODE_MARKER } from '../../kiosk/engines/clamav/test-database.ts';

export const PARTITION_OFFSET = 1024 * 1024; // bytes: the first partition starts at sector 2048

export interface StickFile {
  readonly path: string; // POSIX, relative
  readonly content: Uint8Array;
}

/** Runs a tool; rejects with its stderr when it fails. */
export function run(command: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, [...args], { env: { ...process.env, LC_ALL: 'C', MTOOLS_SKIP_CHECK: '1', ...options.env }, timeout: options.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(' ')}: ${stderr.trim() || error.message}`));
      else resolve(stdout);
    });
  });
}

const ascii = (text: string): Uint8Array => new TextEncoder().encode(text);

/** The EICAR test file, assembled here so that no source file holds it whole. */
export const EICAR = ascii(['X5O!P%@AP[4\\PZX54(P^)7CC)7}$', 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'].join(''));

/** Deterministic bytes that are neither text nor any known format (a firmware blob). */
export function pseudoRandom(seed: string, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let block = createHash('sha256').update(seed).digest();
  for (let i = 0; i < size; i += block.length) {
    out.set(block.subarray(0, Math.min(block.length, size - i)), i);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

/** A minimal Windows program header: what the type check sees in a "PDF" that is a program. */
function programBytes(): Uint8Array {
  const b = new Uint8Array(1024);
  b.set(ascii('MZ'), 0);
  b[0x3c] = 0x80; // e_lfanew: the PE header at 0x80
  b.set(ascii('PE\0\0'), 0x80);
  b.set(ascii('This program cannot be run in DOS mode.'), 0x40);
  return b;
}

/** Plain text of about `size` bytes, different per seed: scannable, clean, slow enough to pull a stick mid-scan. */
export function textOf(seed: string, size: number): Uint8Array {
  const words = ['valve', 'pump', 'line', 'tank', 'setpoint', 'alarm', 'batch', 'motor', 'sensor', 'shift', 'report', 'pressure'];
  const digest = pseudoRandom(seed, size);
  let s = '';
  for (let i = 0; s.length < size; i++) s += `${words[digest[i % size]! % words.length]}${i % 13 === 12 ? '\r\n' : ' '}`;
  return ascii(s.slice(0, size));
}

/** The FAT32 stick of issue 19: clean, allowlisted, malicious (EICAR) and disguised files. */
export const MIXED_FILES: readonly StickFile[] = [
  { path: 'README.txt', content: ascii('Line 3 filler: recipe update for the night shift.\r\n') },
  { path: 'docs/line3-setpoints.csv', content: ascii('tag,setpoint,unit\r\nTIC-301,72.5,degC\r\nPIC-302,3.2,bar\r\n') },
  { path: 'firmware/plc-cpu-v2.8.1.bin', content: pseudoRandom('portcullis image test firmware 2.8.1', 64 * 1024) },
  { path: 'tools/update-notes.txt', content: EICAR },
  { path: 'docs/Manual.pdf', content: programBytes() },
];
/** What the kiosk must decide for each of MIXED_FILES. */
export const MIXED_EXPECTED = {
  pass: ['README.txt', 'docs/line3-setpoints.csv', 'firmware/plc-cpu-v2.8.1.bin'],
  blocked: { 'tools/update-notes.txt': 'MALWARE', 'docs/Manual.pdf': 'TYPE_MISMATCH' },
} as const;

/** The allowlist the test's kiosk gets on its persistent partition: the firmware above, by hash. */
export function testAllowlist(): string {
  const firmware = MIXED_FILES.find((f) => f.path.startsWith('firmware/'))!;
  return `${JSON.stringify({
    version: 'image-test-1',
    owner: 'Portcullis image test (test data)',
    entries: [{ vendor: 'Demo Automation', product: 'PLC CPU 1500', version: '2.8.1', file: 'plc-cpu-v2.8.1.bin', sha256: createHash('sha256').update(firmware.content).digest('hex'), source: 'test/image/sticks.ts: computed from the test firmware' }],
  }, null, 2)}\n`;
}

/** Clean files only: the exFAT stick. */
export const CLEAN_FILES: readonly StickFile[] = [
  { path: 'notes.txt', content: ascii('Commissioning notes, pump station 4.\r\n') },
  { path: 'data/trend-2026-11.csv', content: textOf('trend', 8 * 1024) },
];

/**
 * Many data files: a scan under emulation that takes long enough to pull the
 * stick in the middle. Binary, not text: the kiosk scans plain text about 30
 * times slower than binary data of the same size (host: six 1 MiB logs 18 s,
 * six 1 MiB blobs 0.6 s), which made this stick's first file take 110 s under TCG.
 */
export function bulkFiles(count: number, size: number): StickFile[] {
  return Array.from({ length: count }, (_, i) => ({ path: `data/trend-${String(i).padStart(3, '0')}.bin`, content: pseudoRandom(`bulk ${i}`, size) }));
}

async function stage(dir: string, files: readonly StickFile[]): Promise<void> {
  for (const f of files) {
    await mkdir(join(dir, dirname(f.path)), { recursive: true });
    await writeFile(join(dir, f.path), f.content);
  }
}

/** An empty disk image with an MBR holding the given partitions (sizes in MiB; the last one takes the rest). */
async function partitionedDisk(path: string, sizeMiB: number, partitions: ReadonlyArray<{ type: string; sizeMiB?: number }>): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, new Uint8Array(0));
  await run('truncate', ['-s', `${sizeMiB}M`, path]);
  const script = ['label: dos', ...partitions.map((p) => `${p.sizeMiB ? `size=${p.sizeMiB}MiB, ` : ''}type=${p.type}`)].join('\n');
  await new Promise<void>((resolve, reject) => {
    const child = execFile('sfdisk', ['--quiet', path], (error, _o, stderr) => (error ? reject(new Error(`sfdisk ${path}: ${stderr}`)) : resolve()));
    child.stdin?.end(`${script}\n`);
  });
}

export interface StickSpec {
  readonly label: string;
  readonly volumeId: string; // 8 hex digits
  readonly sizeMiB: number;
  readonly files: readonly StickFile[];
}

/** A stick with one FAT32 partition (MBR type 0c) holding `files`. */
export async function buildFat32Stick(path: string, spec: StickSpec): Promise<void> {
  await partitionedDisk(path, spec.sizeMiB, [{ type: 'c' }]);
  const blocks = (spec.sizeMiB * 1024 * 1024 - PARTITION_OFFSET) / 1024;
  await run('mkfs.vfat', ['-F', '32', '--offset', String(PARTITION_OFFSET / 512), '-n', spec.label, '-i', spec.volumeId, path, String(blocks)]);
  const dir = await mkdtemp(join(dirname(path), '.stage-'));
  try {
    await stage(dir, spec.files);
    const top = [...new Set(spec.files.map((f) => f.path.split('/')[0]!))].map((n) => join(dir, n));
    await run('mcopy', ['-s', '-i', `${path}@@${PARTITION_OFFSET}`, ...top, '::/']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A stick with one exFAT partition (MBR type 7) holding `files`, written through exfat-fuse. */
export async function buildExfatStick(path: string, spec: StickSpec): Promise<void> {
  await partitionedDisk(path, spec.sizeMiB, [{ type: '7' }]);
  const volume = `${path}.part`;
  await run('truncate', ['-s', `${spec.sizeMiB - 1}M`, volume]);
  await run('mkfs.exfat', ['-L', spec.label, volume]);
  await run('tune.exfat', ['-I', `0x${spec.volumeId}`, volume]);
  const dir = await mkdtemp(join(dirname(path), '.stage-'));
  const mnt = await mkdtemp(join(dirname(path), '.mnt-'));
  try {
    await stage(dir, spec.files);
    await withExfatMount(volume, mnt, 'rw', () => run('cp', ['-r', '--', ...[...new Set(spec.files.map((f) => f.path.split('/')[0]!))].map((n) => join(dir, n)), `${mnt}/`]));
    await run('dd', [`if=${volume}`, `of=${path}`, 'bs=1M', `seek=${PARTITION_OFFSET / (1024 * 1024)}`, 'conv=notrunc,sparse', 'status=none']);
  } finally {
    await rm(dir, { recursive: true, force: true });
    await rm(mnt, { recursive: true, force: true });
    await rm(volume, { force: true });
  }
}

/** Where boot code runs: the MBR's code area (byte 0 of the disk), a FAT32 boot sector's code (after its BPB, 0x5A). */
export const BOOT_CODE_AT = { mbr: 0, fat32: PARTITION_OFFSET + 0x5a } as const;

/**
 * Writes the test database's boot-code pattern (Portcullis.Test.BootCode) into
 * the stick's MBR code area and its FAT32 partition's boot code, as a boot
 * sector virus would: the partition table, the BPB and the files stay as they are.
 */
export async function infectBootCode(path: string): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    for (const at of Object.values(BOOT_CODE_AT)) await handle.write(ascii(BOOT_CODE_MARKER), 0, BOOT_CODE_MARKER.length, at);
  } finally {
    await handle.close();
  }
}

/** Two FAT32 partitions: the kiosk checks drives with exactly one. */
export async function buildTwoPartitionStick(path: string): Promise<void> {
  await partitionedDisk(path, 80, [{ type: 'c', sizeMiB: 40 }, { type: 'c' }]);
  const sfdisk = JSON.parse(await run('sfdisk', ['--json', path])) as { partitiontable: { partitions: Array<{ start: number; size: number }> } };
  for (const [i, p] of sfdisk.partitiontable.partitions.entries()) {
    await run('mkfs.vfat', ['-F', '32', '--offset', String(p.start), '-n', `PART${i + 1}`, path, String((p.size * 512) / 1024)]);
  }
}

/** A stick of zeros: no partition table, no filesystem. */
export async function buildBlankStick(path: string, sizeMiB: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, new Uint8Array(0));
  await run('truncate', ['-s', `${sizeMiB}M`, path]);
}

/** Mounts an exFAT volume image through exfat-fuse on a loop device (as root exfat-fuse wants a block device). */
async function withExfatMount<T>(volume: string, mnt: string, mode: 'ro' | 'rw', body: () => Promise<T>): Promise<T> {
  const loop = (await run('losetup', ['--find', '--show', ...(mode === 'ro' ? ['--read-only'] : []), volume])).trim();
  try {
    await run('mount.exfat-fuse', ['-o', mode, loop, mnt]);
    try {
      return await body();
    } finally {
      await run('umount', [mnt]);
    }
  } finally {
    await run('losetup', ['--detach', loop]).catch(() => undefined);
  }
}

/** Copies every file of the stick's first partition into `dir` (FAT through mtools, exFAT through exfat-fuse). */
export async function extractStick(path: string, filesystem: 'fat32' | 'exfat', dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  if (filesystem === 'fat32') {
    await run('mcopy', ['-s', '-n', '-i', `${path}@@${PARTITION_OFFSET}`, '::/*', `${dir}/`]);
    return;
  }
  const volume = `${path}.part`;
  const size = (await readFile(path)).length - PARTITION_OFFSET;
  await run('dd', [`if=${path}`, `of=${volume}`, 'bs=1M', `skip=${PARTITION_OFFSET / (1024 * 1024)}`, `count=${size / (1024 * 1024)}`, 'status=none']);
  const mnt = await mkdtemp(join(dirname(path), '.mnt-'));
  try {
    await withExfatMount(volume, mnt, 'ro', () => run('cp', ['-r', '--', `${mnt}/.`, `${dir}/`]));
  } finally {
    await rm(mnt, { recursive: true, force: true });
    await rm(volume, { force: true });
  }
}

/** The identity the manifest binds (docs/manifest.md): read from the partition's boot sector, independently of the kiosk's code. */
export async function volumeIdentity(path: string): Promise<{ filesystem: string; volumeId: string; label: string; capacity: number }> {
  const handle = await open(path, 'r');
  try {
    const b = Buffer.alloc(512);
    await handle.read(b, 0, 512, PARTITION_OFFSET);
    const hexId = (n: number): string => {
      const h = n.toString(16).toUpperCase().padStart(8, '0');
      return `${h.slice(0, 4)}-${h.slice(4)}`;
    };
    if (b.subarray(3, 11).toString('latin1') === 'EXFAT   ') {
      // exFAT boot sector: VolumeLength (sectors) at 72, VolumeSerialNumber at 100, BytesPerSectorShift at 108.
      return { filesystem: 'exfat', volumeId: hexId(b.readUInt32LE(100)), label: '', capacity: Number(b.readBigUInt64LE(72)) * 2 ** b[108]! };
    }
    // FAT32 BPB: BytsPerSec at 11, TotSec32 at 32, BS_VolID at 67, BS_VolLab at 71.
    return { filesystem: 'fat32', volumeId: hexId(b.readUInt32LE(67)), label: b.subarray(71, 82).toString('latin1').trimEnd(), capacity: b.readUInt32LE(32) * b.readUInt16LE(11) };
  } finally {
    await handle.close();
  }
}
