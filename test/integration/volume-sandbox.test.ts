/**
 * The FAT and exFAT readers run in a sandboxed child (kiosk/drive/
 * volume-sandbox.ts), not in the kiosk: shown by making the readers throw
 * in this process and opening images anyway, and by probes in the child
 * (its uid, its network, the files it can see). A child that crashes, hangs,
 * prints garbage or too much, or leaves its folder different from its
 * listing makes the open fail with a named code; hostile images are refused
 * with the codes they always had.
 */
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, linkSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openFileBlockDevice } from '../../kiosk/drive/block-device.ts';
import { openFolderTarget, openImageTarget } from '../../kiosk/drive/drive-target.ts';
import { MediaError } from '../../kiosk/drive/errors.ts';
import type * as ExfatVolumeModule from '../../kiosk/drive/exfat-volume.ts';
import type * as FatVolumeModule from '../../kiosk/drive/fat-volume.ts';
import { openFatVolume } from '../../kiosk/drive/fat-volume.ts';
import { readVolumeIdentity } from '../../kiosk/drive/identity.ts';
import { openImageReadOnly, type OpenOptions } from '../../kiosk/drive/image-access.ts';
import { NO_ATTRIBUTES } from '../../kiosk/drive/volume.ts';
import { checkExtraction, readVolumeIdentityInSandbox, VOLUME_SANDBOX_DEFAULTS, volumeSandboxCommand, type VolumeSandboxOptions } from '../../kiosk/drive/volume-sandbox.ts';
import { buildDriveImage } from '../support/image-builder.ts';

// While `inKiosk.forbidden` is set, the readers throw if anything in this process opens a volume with them.
const inKiosk = vi.hoisted(() => ({ forbidden: false }));
const PARSED_IN_KIOSK = 'a volume was parsed in the kiosk process';
vi.mock('../../kiosk/drive/fat-volume.ts', async (importOriginal) => {
  const real = await importOriginal<typeof FatVolumeModule>();
  return { ...real, openFatVolume: (...args: Parameters<typeof real.openFatVolume>) => { if (inKiosk.forbidden) throw new Error(PARSED_IN_KIOSK); return real.openFatVolume(...args); } };
});
vi.mock('../../kiosk/drive/exfat-volume.ts', async (importOriginal) => {
  const real = await importOriginal<typeof ExfatVolumeModule>();
  return { ...real, openExfatVolume: (...args: Parameters<typeof real.openExfatVolume>) => { if (inKiosk.forbidden) throw new Error(PARSED_IN_KIOSK); return real.openExfatVolume(...args); } };
});

const work = mkdtempSync(join(tmpdir(), 'portcullis-volume-sandbox-'));
const children = join(work, 'children'); // fake children, bound read-only into the sandbox
const secret = join(work, 'kiosk-signing.key'); // a file of the kiosk's the reader must not see
const CHILD_URL = pathToFileURL(VOLUME_SANDBOX_DEFAULTS.entry).href;
const PROJECT = join(import.meta.dirname, '..', '..');
const fat = join(work, 'fat.img');
const exfat = join(work, 'exfat.img');
const FILES = [
  { path: 'readme.txt', content: 'hello\n' },
  { path: 'Docs/plan.pdf', content: 'not really a PDF' },
  { path: 'Docs/deep/x.bin', size: 3000, fill: 7 },
];
let server: Server;
let port = 0;

afterAll(async () => {
  inKiosk.forbidden = false;
  await new Promise((resolve) => server.close(resolve));
  rmSync(work, { recursive: true, force: true });
});

beforeAll(async () => {
  mkdirSync(children, { mode: 0o755 });
  writeFileSync(secret, 'private key bytes');
  await buildDriveImage(fat, { filesystem: 'fat32', sizeMiB: 33, label: 'SANDBOX', volumeId: 'C0DE-F00D', files: FILES });
  await buildDriveImage(exfat, { filesystem: 'exfat', sizeMiB: 4, label: 'SANDBOX', volumeId: 'C0DE-F00D', files: FILES });
  server = createServer((socket) => socket.end('kiosk network'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
});

/** A fake child: `body` runs as an ES module in the sandbox, with the real child importable as `runVolumeChild`. */
function child(name: string, body: string): VolumeSandboxOptions {
  const entry = join(children, `${name}.mjs`);
  writeFileSync(entry, `import { runVolumeChild } from ${JSON.stringify(CHILD_URL)};\nimport * as fs from 'node:fs';\n${body}\n`, { mode: 0o644 });
  return { entry, codePaths: [...VOLUME_SANDBOX_DEFAULTS.codePaths, children] };
}

async function codeOf(action: () => Promise<unknown>): Promise<string> {
  try {
    await action();
  } catch (error) {
    return error instanceof MediaError ? error.code : `not a MediaError: ${String(error)}`;
  }
  return 'no error';
}

function leftovers(dir: string): string[] {
  return readdirSync(dir).filter((name) => name.startsWith('extract-') || name.startsWith('mount-'));
}

const LISTED = ['Docs', 'Docs/deep', 'Docs/deep/x.bin', 'Docs/plan.pdf', 'readme.txt'];

describe('the volume is parsed in the sandbox, not in the kiosk', () => {
  it('makes the in-process readers throw (so the checks below would catch an in-process parse)', async () => {
    inKiosk.forbidden = true;
    try {
      await expect(readVolumeIdentity(fat)).rejects.toThrow(PARSED_IN_KIOSK);
      await expect(readVolumeIdentity(exfat)).rejects.toThrow(PARSED_IN_KIOSK);
    } finally {
      inKiosk.forbidden = false;
    }
  });

  it.each([
    ['FAT32', fat, {}],
    ['exFAT, extracted', exfat, { prefer: 'extract' }],
    ['exFAT, listed for the mount', exfat, {}],
  ] as const)('opens %s with every reader in this process disabled', async (_, image, options: OpenOptions) => {
    const expected = await readVolumeIdentity(image);
    const dir = mkdtempSync(join(work, 'open-'));
    inKiosk.forbidden = true;
    try {
      const opened = await openImageReadOnly(image, dir, options);
      try {
        expect(opened.identity).toEqual(expected);
        expect(opened.entries.map((e) => e.names.join('/')).sort()).toEqual(LISTED);
        expect(readFileSync(join(opened.root, 'readme.txt'), 'utf8')).toBe('hello\n');
        expect(readFileSync(join(opened.root, 'Docs/deep/x.bin'))).toEqual(Buffer.alloc(3000, 7));
      } finally {
        await opened.close();
      }
      expect(await readVolumeIdentityInSandbox(image)).toEqual(expected);
    } finally {
      inKiosk.forbidden = false;
    }
  });

  it('reads the identity for the manifest in the sandbox too: an image target and a mounted drive\'s device', async () => {
    const dir = mkdtempSync(join(work, 'target-'));
    const mounted = mkdtempSync(join(work, 'mounted-'));
    inKiosk.forbidden = true;
    try {
      const image = await openImageTarget(fat, dir);
      try {
        expect(image.media).toMatchObject({ filesystem: 'vfat', volumeId: 'C0DE-F00D', label: 'SANDBOX', capacity: 33 * 1024 * 1024 });
      } finally {
        await image.close();
      }
      const folder = await openFolderTarget(mounted, { device: exfat });
      expect(folder.media).toMatchObject({ filesystem: 'exfat', volumeId: 'C0DE-F00D', label: 'SANDBOX', capacity: 4 * 1024 * 1024 });
    } finally {
      inKiosk.forbidden = false;
    }
  });

  it('refuses the corrupt and unrecognisable volumes with the codes the readers raise, from the sandbox', async () => {
    const loop = join(work, 'loop.img');
    await buildDriveImage(loop, { filesystem: 'fat32', sizeMiB: 33, label: 'LOOP', files: [{ path: 'dir/inner.txt', content: 'x' }] });
    const device = openFileBlockDevice(loop, 'read-write');
    try {
      const volume = openFatVolume(device);
      const dir = volume.walk().find((e) => e.names.join('/') === 'dir') ?? expect.fail('no dir');
      const root = volume.boot.rootCluster; // the folder now points back at the root
      device.write(dir.shortEntryOffset + 20, Uint8Array.of((root >> 16) & 0xff, root >> 24));
      device.write(dir.shortEntryOffset + 26, Uint8Array.of(root & 0xff, (root >> 8) & 0xff));
    } finally {
      device.close();
    }
    const zeros = join(work, 'zeros.img');
    writeFileSync(zeros, new Uint8Array(1024 * 1024));
    const dir = mkdtempSync(join(work, 'hostile-'));
    inKiosk.forbidden = true;
    try {
      expect(await codeOf(() => openImageReadOnly(loop, dir))).toBe('MEDIA_CORRUPT');
      expect(await codeOf(() => openImageReadOnly(zeros, dir))).toBe('MEDIA_UNRECOGNIZED');
      expect(await codeOf(() => openImageReadOnly(exfat, dir, { prefer: 'extract', limits: { maxEntries: 2 } }))).toBe('MEDIA_LIMIT_EXCEEDED');
      expect(await codeOf(() => openImageReadOnly(fat, dir, { limits: { maxTotalBytes: 10 } }))).toBe('MEDIA_LIMIT_EXCEEDED');
    } finally {
      inKiosk.forbidden = false;
    }
    expect(leftovers(dir)).toEqual([]);
  });
});

describe('what the reader can reach', () => {
  const PROBE = (facts: string) => `
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
const attempt = (f) => { try { f(); return 'allowed'; } catch (e) { return e.code ?? e.message; } };
const facts = {
  uid: process.getuid(), gid: process.getgid(), interfaces: Object.keys(networkInterfaces()),
  connect: await new Promise((resolve) => { const s = connect(${port}, '127.0.0.1'); s.on('connect', () => { s.destroy(); resolve('connected'); }); s.on('error', (e) => resolve(e.code)); }),
  ${facts}
};`;

  it('runs the real reader as nobody, with no network, no kiosk file and no write outside its folder', async () => {
    const options = child('probe', `${PROBE(`
  readSecret: attempt(() => fs.readFileSync(${JSON.stringify(secret)})),
  readImage: attempt(() => fs.readFileSync(${JSON.stringify(fat)})),
  writeCode: attempt(() => fs.writeFileSync(${JSON.stringify(join(VOLUME_SANDBOX_DEFAULTS.codePaths[0], 'planted.ts'))}, 'x')),
  writeImage: attempt(() => fs.writeSync(0, 'x', 0)),`)}
const { report, exitCode } = runVolumeChild(process.argv.slice(2));
const parsed = JSON.parse(report);
const bytes = JSON.stringify(facts);
fs.writeFileSync('/out/probe.json', bytes, { flag: 'wx', mode: 0o600 });
parsed.entries.push([-1, 'probe.json', 'f', Buffer.byteLength(bytes), '', null]);
process.stdout.write(JSON.stringify(parsed));
process.exitCode = exitCode;`);
    const opened = await openImageReadOnly(fat, work, { sandbox: options });
    try {
      const facts = JSON.parse(readFileSync(join(opened.root, 'probe.json'), 'utf8')) as Record<string, unknown>;
      expect(facts.connect).not.toBe('connected'); // the kiosk's 127.0.0.1 is in another network namespace
      expect({ ...facts, connect: null }).toEqual({
        uid: 65534,
        gid: 65534,
        interfaces: ['lo'], // a network namespace of its own: its loopback only, down
        connect: null,
        readSecret: 'ERR_ACCESS_DENIED',
        readImage: 'ERR_ACCESS_DENIED',
        writeCode: 'ERR_ACCESS_DENIED',
        writeImage: 'EBADF', // standard input is the image, opened read-only
      });
      expect(readFileSync(join(opened.root, 'readme.txt'), 'utf8')).toBe('hello\n');
    } finally {
      await opened.close();
    }
  });

  it('hides the kiosk\'s files from the reader even without Node\'s permission model (bubblewrap alone)', async () => {
    const entry = join(children, 'bwrap-probe.mjs');
    writeFileSync(entry, `import * as fs from 'node:fs';\n${PROBE(`
  root: fs.readdirSync('/').sort(),
  proc: attempt(() => fs.readdirSync('/proc')),
  readSecret: attempt(() => fs.readFileSync(${JSON.stringify(secret)})),
  readImage: attempt(() => fs.readFileSync(${JSON.stringify(fat)})),
  readKioskCode: attempt(() => fs.readFileSync(${JSON.stringify(join(PROJECT, 'kiosk', 'main.ts'))})),
  writeCode: attempt(() => fs.writeFileSync(${JSON.stringify(join(VOLUME_SANDBOX_DEFAULTS.codePaths[0], 'planted.ts'))}, 'x')),
  writeOut: attempt(() => fs.writeFileSync('/out/x', 'x')),
  // Writable tmpfs mounts would hold whatever the reader writes in the kiosk's memory, beyond every limit.
  writeRoot: attempt(() => fs.writeFileSync('/planted', 'x')),
  writeDev: attempt(() => fs.writeFileSync('/dev/planted', 'x')),
  writeShm: attempt(() => fs.writeFileSync('/dev/shm/planted', 'x')),
  devNull: attempt(() => fs.writeFileSync('/dev/null', 'x')),`)}
process.stdout.write(JSON.stringify(facts));`, { mode: 0o644 });
    const outDir = mkdtempSync(join(work, 'bwrap-out-'));
    const request = { mode: 'extract', limits: { maxEntries: 10, maxDepth: 5, maxTotalBytes: 1000 } } as const;
    const command = volumeSandboxCommand(request, outDir, 1024, { entry, codePaths: [...VOLUME_SANDBOX_DEFAULTS.codePaths, children] });
    // The same command line, with Node's permission flags taken out.
    const args = command.args.filter((arg) => arg !== '--permission' && !arg.startsWith('--allow-fs-'));
    expect(args.length).toBe(command.args.length - 1 - VOLUME_SANDBOX_DEFAULTS.codePaths.length - 1 - 2);
    const fd = openSync(fat, 'r');
    const output = await new Promise<string>((resolve, reject) => {
      const proc = spawn(command.command, args, { stdio: [fd, 'pipe', 'inherit'] });
      let text = '';
      proc.stdout!.on('data', (data: Buffer) => (text += data.toString()));
      proc.on('error', reject);
      proc.on('close', () => resolve(text));
    }).finally(() => closeSync(fd));
    const facts = JSON.parse(output) as Record<string, unknown>;
    expect(facts).toMatchObject({
      uid: 65534,
      interfaces: ['lo'],
      proc: 'ENOENT',
      readSecret: 'ENOENT',
      readImage: 'ENOENT',
      readKioskCode: 'ENOENT',
      writeCode: 'EROFS',
      writeOut: 'allowed',
      writeRoot: 'EROFS',
      writeDev: 'EROFS',
      writeShm: 'EROFS',
      devNull: 'allowed',
    });
    expect(facts.connect).not.toBe('connected');
    // The root holds /usr and its links, /dev, /out and the folders leading to the bound code; nothing else.
    expect(facts.root).toEqual(expect.arrayContaining(['bin', 'dev', 'lib', 'lib64', 'out', 'usr']));
    for (const absent of ['etc', 'home', 'proc', 'root', 'run', 'sys', 'var']) expect(facts.root).not.toContain(absent);
  });
});

describe('a reader that misbehaves makes the open fail closed', () => {
  const CASES: Array<[string, string, string, Partial<VolumeSandboxOptions>?]> = [
    ['crashes', `throw new Error('reader bug');`, 'MEDIA_TOOL_FAILED'],
    ['dies of a signal', `process.kill(process.pid, 'SIGSEGV');`, 'MEDIA_TOOL_FAILED'],
    ['hangs', `setInterval(() => {}, 1000);`, 'MEDIA_LIMIT_EXCEEDED', { timeoutMs: 1500 }],
    ['spins', `for (;;) {}`, 'MEDIA_LIMIT_EXCEEDED', { timeoutMs: 1500 }],
    ['runs out of heap', `const keep = []; for (;;) keep.push(new Array(1e5).fill({}));`, 'MEDIA_LIMIT_EXCEEDED', { heapMiB: 32 }],
    // Buffers live outside V8's heap: only the data limit (RLIMIT_DATA) bounds them. Zero-filled pages cost no RAM until touched.
    ['allocates 4 GiB outside the heap', `const keep = []; for (let i = 0; i < 64; i += 1) keep.push(Buffer.alloc(64 * 1024 * 1024)); const { report, exitCode } = runVolumeChild(process.argv.slice(2)); process.stdout.write(report); process.exitCode = exitCode;`, 'MEDIA_LIMIT_EXCEEDED'],
    ['prints garbage', `process.stdout.write('all fine, trust me');`, 'MEDIA_TOOL_FAILED'],
    ['prints bytes that are not UTF-8', `process.stdout.write(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));`, 'MEDIA_TOOL_FAILED'],
    ['prints a listing of the wrong shape', `process.stdout.write(JSON.stringify({ v: 1, identity: { filesystem: 'fat32', volumeId: null, label: '', capacity: 0 }, entries: [[3, 'x', 'f', 0, '', null]] }));`, 'MEDIA_TOOL_FAILED'],
    ['prints an oversized report', `const chunk = '['.repeat(65536); for (let i = 0; i < 64; i += 1) process.stdout.write(chunk);`, 'MEDIA_LIMIT_EXCEEDED', { maxReportBytes: 1024 * 1024 }],
    ['reports a listing but exits 3', `const { report } = runVolumeChild(process.argv.slice(2)); process.stdout.write(report); process.exitCode = 3;`, 'MEDIA_TOOL_FAILED'],
    ['reports a refusal but exits 0', `process.stdout.write(JSON.stringify({ v: 1, error: { code: 'MEDIA_CORRUPT', message: 'x' } }));`, 'MEDIA_TOOL_FAILED'],
    ['says FAT is exFAT', `const { report } = runVolumeChild(process.argv.slice(2)); const r = JSON.parse(report); r.identity.filesystem = 'exfat'; r.entries.forEach((e) => (e[5] = null)); process.stdout.write(JSON.stringify(r));`, 'MEDIA_TOOL_FAILED'],
    ['leaves a file its listing does not hold', `const { report } = runVolumeChild(process.argv.slice(2)); fs.writeFileSync('/out/extra.exe', 'MZ'); process.stdout.write(report);`, 'MEDIA_TOOL_FAILED'],
    ['leaves out a listed file', `const { report } = runVolumeChild(process.argv.slice(2)); fs.rmSync('/out/readme.txt'); process.stdout.write(report);`, 'MEDIA_TOOL_FAILED'],
    ['hard-links two files', `const { report } = runVolumeChild(process.argv.slice(2)); fs.rmSync('/out/Docs/plan.pdf'); fs.linkSync('/out/readme.txt', '/out/Docs/plan.pdf'); process.stdout.write(report);`, 'MEDIA_TOOL_FAILED'],
    ['claims a file lies under a path of its own making', `const { report } = runVolumeChild(process.argv.slice(2)); const r = JSON.parse(report); r.entries.push([-1, 'escape/../../x', 'f', 1, '', null]); fs.mkdirSync('/out/escape'); fs.writeFileSync('/out/escape/x', 'x'); process.stdout.write(JSON.stringify(r));`, 'MEDIA_TOOL_FAILED'],
  ];

  it.each(CASES)('refuses a reader that %s', async (name, body, code, extra = {}) => {
    const dir = mkdtempSync(join(work, 'bad-'));
    const started = Date.now();
    expect(await codeOf(() => openImageReadOnly(fat, dir, { sandbox: { ...child(name.replace(/\W+/g, '-'), body), ...extra } }))).toBe(code);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(leftovers(dir)).toEqual([]);
  });

  it('names what to install when the sandbox cannot start, and reads nothing', async () => {
    const dir = mkdtempSync(join(work, 'nosandbox-'));
    const noBwrap = await openImageReadOnly(fat, dir, { sandbox: { bwrapPath: join(work, 'no-bwrap') } }).catch((e: unknown) => e as MediaError);
    expect(noBwrap).toBeInstanceOf(MediaError);
    expect((noBwrap as MediaError).code).toBe('MEDIA_SANDBOX_UNAVAILABLE');
    expect((noBwrap as MediaError).message).toMatch(/install bubblewrap/);
    expect(await codeOf(() => openImageReadOnly(fat, dir, { sandbox: { prlimitPath: join(work, 'no-prlimit') } }))).toBe('MEDIA_SANDBOX_UNAVAILABLE');
    expect(await codeOf(() => readVolumeIdentityInSandbox(fat, { bwrapPath: join(work, 'no-bwrap') }))).toBe('MEDIA_SANDBOX_UNAVAILABLE');
    expect(leftovers(dir)).toEqual([]);
  });

  it('kills the reader when the open is aborted, and removes its folder', async () => {
    const dir = mkdtempSync(join(work, 'abort-'));
    const options = child('abort', `setInterval(() => {}, 1000);`);
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 500);
    const started = Date.now();
    const error = await openImageReadOnly(fat, dir, { sandbox: options, signal: abort.signal }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'AbortError' });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(leftovers(dir)).toEqual([]);
    // No process of this reader is left running.
    const running = (): boolean => execFileSync('ps', ['-eo', 'args']).toString().includes(options.entry ?? '');
    for (let i = 0; i < 30 && running(); i += 1) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(running()).toBe(false);
  });
});

describe('the bounds of the sandbox', () => {
  const request = (mode: 'identity' | 'list' | 'extract') => ({ mode, limits: { maxEntries: 100_000, maxDepth: 64, maxTotalBytes: 8 * 1024 ** 3 } }) as const;

  it('bounds the time by what the reader may read, not by the image\'s size (a sparse 2 TiB image gave a hung reader 36 hours)', () => {
    const tiB = 2 * 1024 ** 4;
    const small = volumeSandboxCommand(request('identity'), null, 64 * 1024 ** 2);
    for (const mode of ['identity', 'list'] as const) {
      const huge = volumeSandboxCommand(request(mode), null, tiB);
      expect(huge.timeoutMs).toBeLessThanOrEqual(small.timeoutMs + (2 * 1024 ** 3 / VOLUME_SANDBOX_DEFAULTS.bytesPerSecond) * 1000);
    }
    const extract = volumeSandboxCommand(request('extract'), work, tiB);
    expect(extract.timeoutMs).toBeLessThanOrEqual(small.timeoutMs + ((2 + 8) * 1024 ** 3 / VOLUME_SANDBOX_DEFAULTS.bytesPerSecond) * 1000);
    expect(extract.limits.cpuSeconds).toBeLessThanOrEqual(2 * Math.ceil(extract.timeoutMs / 1000));
    // A small image keeps the small bound.
    expect(volumeSandboxCommand(request('extract'), work, 64 * 1024 ** 2).timeoutMs).toBeLessThan(extract.timeoutMs);
  });
});

describe('checkExtraction', () => {
  const entries = [
    { names: ['a.txt'], kind: 'file' as const, size: 1, attributes: NO_ATTRIBUTES },
    { names: ['d'], kind: 'directory' as const, size: 0, attributes: NO_ATTRIBUTES },
    { names: ['..'], kind: 'directory' as const, size: 0, attributes: NO_ATTRIBUTES }, // never extracted: not a host name
  ];
  const folder = (plant: (root: string) => void): string => {
    const root = mkdtempSync(join(work, 'check-'));
    writeFileSync(join(root, 'a.txt'), 'x');
    mkdirSync(join(root, 'd'));
    plant(root);
    return root;
  };

  it('accepts exactly the listed host names', async () => {
    await expect(checkExtraction(folder(() => undefined), entries)).resolves.toBeUndefined();
  });

  it.each([
    ['a symlink out of the folder', (root: string) => symlinkSync('/etc/passwd', join(root, 'd', 'passwd'))],
    ['a symlink in place of a listed file', (root: string) => { rmSync(join(root, 'a.txt')); symlinkSync('/etc/hostname', join(root, 'a.txt')); }],
    ['a FIFO in place of a listed file', (root: string) => { rmSync(join(root, 'a.txt')); execFileSync('mkfifo', [join(root, 'a.txt')]); }],
    ['a file in place of a listed folder', (root: string) => { rmSync(join(root, 'd'), { recursive: true }); writeFileSync(join(root, 'd'), ''); }],
    ['a hard link', (root: string) => linkSync(join(root, 'a.txt'), join(root, 'd', 'b.txt'))],
    ['a file of the wrong size', (root: string) => writeFileSync(join(root, 'a.txt'), 'xy')],
    ['a set-uid file', (root: string) => execFileSync('chmod', ['u+s', join(root, 'a.txt')])],
    ['a missing folder', (root: string) => rmSync(join(root, 'd'), { recursive: true })],
  ])('refuses %s', async (_, plant) => {
    await expect(checkExtraction(folder(plant), entries)).rejects.toMatchObject({ code: 'MEDIA_TOOL_FAILED' });
  });
});
