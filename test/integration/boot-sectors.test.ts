/**
 * Boot sectors through the real clamd (issue 19, point 4): sticks built with
 * sfdisk and mkfs (an MBR or GPT disk with one FAT32 or exFAT partition, as a
 * shop sells them), some with the test database's boot-code pattern written
 * where boot code runs: the MBR's code area, a FAT32 or exFAT boot sector's
 * code, a GPT partition entry. The regions are read by the kiosk's reader
 * (drive/boot-sectors.ts) from the disk and the partition's own bytes, and a
 * whole scan (runScan) is run as the station runs it (a folder standing for the
 * mount, the partition and the disk as its devices) and as `scan --image`.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAuditStore } from '../../kiosk/audit/store.ts';
import { generateKeyFiles } from '../../kiosk/cli/keygen.ts';
import { runScan } from '../../kiosk/cli/scan-command.ts';
import { DEFAULT_RULES_DIR } from '../../kiosk/config.ts';
import { crc32 } from '../../kiosk/core/boot-regions.ts';
import { readBootRegions } from '../../kiosk/drive/boot-sectors.ts';
import { readFileFromImage } from '../../kiosk/drive/image-access.ts';
import { BOOT_CODE_MARKER, TEST_SIGNATURES } from '../../kiosk/engines/clamav/test-database.ts';
import { createEngineCache, type EngineCache, type Engines } from '../../kiosk/engines/engines.ts';
import { loadPolicy } from '../../kiosk/rules-files.ts';
import { checkBootSectors } from '../../kiosk/scan/boot-sectors.ts';
import { MANIFEST_PATH } from '../../manifest/index.ts';
import { buildDriveImage, type ImageFilesystem } from '../support/image-builder.ts';

const run = promisify(execFile);
const work = mkdtempSync(join(tmpdir(), 'boot-sectors-it-'));
const MiB = 1024 * 1024;
const PARTITION_OFFSET = 1 * MiB; // sfdisk's first partition: sector 2048
/** Where the boot code starts: the MBR's code area, a FAT32 boot sector's (after its BPB), an exFAT boot sector's. */
const CODE_AT = { mbr: 0, fat32: 0x5a, exfat: 0x78 } as const;
const quiet = { out: () => undefined, err: () => undefined };

let cache: EngineCache;
let engines: Engines;
let keyPath: string;

function writeAt(path: string, offset: number, bytes: Uint8Array): void {
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, bytes, 0, bytes.length, offset);
  } finally {
    closeSync(fd);
  }
}

function readAt(path: string, offset: number, length: number): Uint8Array {
  const fd = openSync(path, 'r');
  try {
    const out = new Uint8Array(length);
    readSync(fd, out, 0, length, offset);
    return out;
  } finally {
    closeSync(fd);
  }
}

const marker = new TextEncoder().encode(BOOT_CODE_MARKER);

async function volume(filesystem: ImageFilesystem, name: string, infected = false): Promise<string> {
  const path = join(work, `${name}.vol`);
  await buildDriveImage(path, { filesystem, sizeMiB: filesystem === 'fat32' ? 34 : 8, label: 'BOOTTEST', files: [{ path: 'notes.txt', content: 'commissioning notes, pump station 4\r\n' }] });
  if (infected) {
    writeAt(path, CODE_AT[filesystem], marker);
    if (filesystem === 'exfat') fixExfatBootChecksum(path);
  }
  return path;
}

/** exFAT's boot checksum (sector 11) over sectors 0-10, as a virus that rewrites boot code keeps it valid (exFAT spec 3.4). */
function fixExfatBootChecksum(path: string): void {
  const region = readAt(path, 0, 11 * 512);
  let sum = 0;
  for (let i = 0; i < region.length; i++) {
    if (i === 106 || i === 107 || i === 112) continue; // VolumeFlags and PercentInUse are not covered
    sum = ((sum >>> 1) | ((sum & 1) << 31)) + (region[i] ?? 0);
    sum >>>= 0;
  }
  const sector = new Uint8Array(512);
  const view = new DataView(sector.buffer);
  for (let i = 0; i < 128; i++) view.setUint32(i * 4, sum, true);
  writeAt(path, 11 * 512, sector);
}

/** A disk image: a `label` partition table (sfdisk) with one partition from 1 MiB holding `vol`. */
async function disk(vol: string, label: 'dos' | 'gpt', name: string): Promise<string> {
  const path = join(work, `${name}.disk`);
  const volBytes = statSync(vol).size;
  writeFileSync(path, new Uint8Array(0));
  await run('truncate', ['-s', String(PARTITION_OFFSET + volBytes + MiB), path]);
  await new Promise<void>((resolve, reject) => {
    const child = execFile('sfdisk', ['--quiet', path], (error, _o, stderr) => (error ? reject(new Error(`sfdisk: ${stderr}`)) : resolve()));
    child.stdin?.end(`label: ${label}\nstart=2048, size=${volBytes / 512}, type=${label === 'gpt' ? 'EBD0A0A2-B9E5-4433-87C0-68B6B7269B6A' : 'c'}\n`);
  });
  await run('dd', [`if=${vol}`, `of=${path}`, 'bs=1M', `seek=${PARTITION_OFFSET / MiB}`, 'conv=notrunc', 'status=none']);
  return path;
}

/** Puts `bytes` into GPT entry 1 (an unused one) and fixes both CRCs, as a tool that writes GPTs would. */
function plantInGptEntry(path: string, bytes: Uint8Array): void {
  const header = readAt(path, 512, 512);
  const view = new DataView(header.buffer);
  const entriesAt = Number(view.getBigUint64(72, true)) * 512;
  const entriesBytes = view.getUint32(80, true) * view.getUint32(84, true);
  const entries = readAt(path, entriesAt, entriesBytes);
  entries.set(bytes, 128 + 56); // entry 1's name field
  view.setUint32(88, crc32(entries), true);
  view.setUint32(16, 0, true);
  view.setUint32(16, crc32(header.subarray(0, view.getUint32(12, true))), true);
  writeAt(path, entriesAt, entries);
  writeAt(path, 512, header);
}

async function check(source: { disk: string | null; volume: string }) {
  return checkBootSectors(() => readBootRegions(source), engines.scanner, (e) => engines.classifyScannerError(e));
}

beforeAll(async () => {
  keyPath = (await generateKeyFiles(join(work, 'keys'))).privateKeyPath;
  cache = createEngineCache(join(work, 'engines'));
  engines = await cache.get({ clamavDb: 'test', rulesDir: DEFAULT_RULES_DIR, policy: (await loadPolicy()).policy });
});

afterAll(async () => {
  await cache?.invalidate();
  rmSync(work, { recursive: true, force: true });
});

describe('boot sectors with the real clamd', () => {
  it('finds nothing on clean MBR and GPT sticks, and reads every region firmware would', async () => {
    for (const [fs, label] of [['fat32', 'dos'], ['exfat', 'gpt']] as const) {
      const vol = await volume(fs, `clean-${fs}`);
      const d = await disk(vol, label, `clean-${fs}-${label}`);
      const result = await check({ disk: d, volume: vol });
      expect(result.reason).toBeNull();
      expect(result.results.map((r) => [r.name, r.length, r.result])).toEqual([
        ['mbr', 512, 'clean'],
        ...(label === 'gpt' ? [['gpt-header', 512, 'clean'], ['gpt-entries', 128 * 128, 'clean']] : []),
        ['volume-boot', fs === 'fat32' ? 32 * 512 : 24 * 512, 'clean'],
      ]);
      // The region's digest is of the bytes on the disk.
      const mbr = readAt(d, 0, 512);
      expect(result.results[0]?.sha256).toBe(createHash('sha256').update(mbr).digest('hex'));
    }
  });

  it('refuses infected boot code in the MBR, a FAT32 and an exFAT boot sector, and a GPT entry, naming the region', async () => {
    const clean = await volume('fat32', 'for-mbr');
    const mbr = await disk(clean, 'dos', 'infected-mbr');
    writeAt(mbr, CODE_AT.mbr, marker);
    const fat = await volume('fat32', 'infected-fat32', true);
    const exfat = await volume('exfat', 'infected-exfat', true);
    const gptVol = await volume('exfat', 'for-gpt');
    const gpt = await disk(gptVol, 'gpt', 'infected-gpt-entry');
    plantInGptEntry(gpt, marker);
    const cases = [
      { source: { disk: mbr, volume: clean }, region: 'mbr' },
      { source: { disk: null, volume: fat }, region: 'volume-boot' },
      { source: { disk: null, volume: exfat }, region: 'volume-boot' },
      { source: { disk: gpt, volume: gptVol }, region: 'gpt-entries' },
    ];
    for (const c of cases) {
      const result = await check(c.source);
      expect(result.reason?.code, JSON.stringify(c)).toBe('BOOT_CODE_INFECTED');
      expect(result.reason?.detail).toContain(TEST_SIGNATURES.bootCode);
      const found = result.results.filter((r) => r.result === 'found');
      expect(found.map((r) => [r.name, r.signature])).toEqual([[c.region, TEST_SIGNATURES.bootCode]]);
    }
  });

  it('fails closed: a GPT whose entries do not match their CRC, a protective MBR with no GPT, and a device that cannot be read', async () => {
    const vol = await volume('fat32', 'for-bad-gpt');
    const bad = await disk(vol, 'gpt', 'bad-gpt-crc');
    writeAt(bad, 1024 + 128 + 56, marker); // an entry changed without its CRC
    const noGpt = await disk(vol, 'gpt', 'no-gpt-header');
    writeAt(noGpt, 512, new Uint8Array(512));
    for (const source of [{ disk: bad, volume: vol }, { disk: noGpt, volume: vol }, { disk: join(work, 'missing.disk'), volume: vol }]) {
      const result = await check(source);
      expect(result.reason?.code, source.disk).toBe('BOOT_SECTORS_UNCHECKED');
      expect(result.results).toEqual([]);
    }
  });
});

describe('a scan with boot sectors in hand (runScan)', () => {
  it('rejects a drive whose MBR is infected, writes no manifest, and records every region in the audit log', async () => {
    const vol = await volume('fat32', 'station-vol');
    const d = await disk(vol, 'dos', 'station-disk');
    writeAt(d, CODE_AT.mbr, marker);
    const folder = join(work, 'mounted');
    mkdirSync(folder);
    writeFileSync(join(folder, 'notes.txt'), 'commissioning notes, pump station 4\r\n');
    const db = join(work, 'station.db');
    const outcome = await runScan({ path: folder, device: vol, disk: d, json: true, keyPath, dbPath: db, clamavDb: 'test', engineCache: cache, ...quiet });
    try {
      expect(outcome.summary.report.decision.verdict).toBe('rejected');
      expect(outcome.summary.report.decision.driveReasons.map((r) => r.code)).toEqual(['BOOT_CODE_INFECTED']);
      expect([...outcome.summary.report.decision.files].map((f) => f.verdict)).toEqual(['blocked']);
      expect(outcome.manifest).toBeNull();
    } finally {
      outcome.summary.report.close();
    }
    const store = openAuditStore(db, { readonly: true });
    try {
      const scan = store.getScan(outcome.scanId);
      expect(scan?.status).toBe('rejected');
      expect(JSON.stringify(scan)).toContain('BOOT_CODE_INFECTED');
    } finally {
      store.close();
    }
    const raw = new Database(db, { readonly: true });
    try {
      const event = raw.prepare("SELECT data FROM events WHERE type = 'BOOT_SECTORS_SCANNED' AND scan_id = ?").get(outcome.scanId) as { data: string } | undefined;
      const data = JSON.parse(event?.data ?? '{}') as { regions: Array<{ name: string; result: string; signature?: string }>; reason: { code: string } | null };
      expect(data.regions.map((r) => [r.name, r.result, r.signature ?? null])).toEqual([['mbr', 'found', TEST_SIGNATURES.bootCode], ['volume-boot', 'clean', null]]);
      expect(data.reason?.code).toBe('BOOT_CODE_INFECTED');
    } finally {
      raw.close();
    }
  });

  it('scan --image: an image whose boot sector is infected is rejected, a clean one approved with its manifest', async () => {
    for (const fs of ['fat32', 'exfat'] as const) {
      const infected = await volume(fs, `image-infected-${fs}`, true);
      const bad = await runScan({ path: infected, image: true, json: true, keyPath, dbPath: null, clamavDb: 'test', engineCache: cache, ...quiet });
      try {
        expect(bad.summary.report.decision.driveReasons.map((r) => r.code)).toEqual(['BOOT_CODE_INFECTED']);
        expect(bad.manifest).toBeNull();
      } finally {
        bad.summary.report.close();
      }
      await expect(readFileFromImage(infected, MANIFEST_PATH)).rejects.toThrow();
      const clean = await volume(fs, `image-clean-${fs}`);
      const good = await runScan({ path: clean, image: true, json: true, keyPath, dbPath: null, clamavDb: 'test', engineCache: cache, ...quiet });
      try {
        expect(good.summary.report.decision.verdict).toBe('approved');
        expect(good.summary.notes.some((n) => /^boot sectors: volume-boot clean$/.test(n))).toBe(true);
        expect(good.manifest).not.toBeNull();
      } finally {
        good.summary.report.close();
      }
    }
  });
});
