/**
 * The extractor's sandbox, run for real (bubblewrap from Debian): what a
 * parser taken over by a hostile archive could reach. The sandbox's own
 * command line is reused with a probe tool in libarchive's place.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createExtractor, EXTRACTOR_DEFAULTS, ExtractorError, proveExtractor, sandboxArgs } from './extractor.ts';

const work = mkdtempSync(join(tmpdir(), 'portcullis-extractor-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const LIMITS = { cpuSeconds: 5, maxOutputBytes: 1024 * 1024 };

/** The sandbox's command line with `tool` (and its arguments) where the decompressor would run. */
function sandboxWith(tool: string): string {
  return `${EXTRACTOR_DEFAULTS.bwrapPath} ${sandboxArgs(EXTRACTOR_DEFAULTS, [], LIMITS).map((a) => `'${a}'`).join(' ')} ${tool}`;
}

/** Runs `command` (a program under /usr, no arguments) where a decompressor would run, with `input` on standard input. */
function inSandbox(command: string, input = 'input bytes\n'): { stdout: string; stderr: string; status: number | null } {
  const path = join(work, 'input');
  writeFileSync(path, input);
  const fd = openSync(path, 'r');
  try {
    const r = spawnSync(EXTRACTOR_DEFAULTS.bwrapPath, sandboxArgs(EXTRACTOR_DEFAULTS, [command], LIMITS), { stdio: [fd, 'pipe', 'pipe'] });
    return { stdout: r.stdout.toString(), stderr: r.stderr.toString(), status: r.status };
  } finally {
    closeSync(fd);
  }
}

let counter = 0;
const scratch = (): { path: string; fd: number } => {
  const path = join(work, `sample-${counter++}`);
  return { path, fd: openSync(path, 'wx', 0o600) };
};

describe('the extractor\'s sandbox', () => {
  it('runs the parser as nobody with no capabilities and no environment but its locale', () => {
    expect(inSandbox('/usr/bin/id').stdout.trim()).toBe('uid=65534 gid=65534 groups=65534');
    const dump = spawnSync('sh', ['-c', sandboxWith('/usr/bin/setpriv -d')]).stdout.toString();
    expect(dump).toMatch(/^no_new_privs: 1$/m);
    expect(dump).toMatch(/^Capability bounding set: \[none\]$/m);
    expect(dump).toMatch(/^Parent death signal: KILL$/m);
    expect(inSandbox('/usr/bin/env').stdout.trim().split('\n').sort()).toEqual(['LANG=C.UTF-8', 'PWD=/']);
  });

  it('shows the parser no file of the kiosk: only /usr, a minimal /dev and its input on standard input', () => {
    expect(inSandbox('/usr/bin/ls').stdout.trim().split('\n').sort()).toEqual(['bin', 'dev', 'lib', 'lib64', 'usr']);
    expect(inSandbox('/usr/bin/cat').stdout).toBe('input bytes\n');
  });

  it('gives the parser no network: a namespace of its own with nothing but loopback', () => {
    // /sys is not mounted; the kernel's own view of the network namespace comes through `ip` via netlink.
    const ip = spawnSync('sh', ['-c', sandboxWith('/usr/sbin/ip -o link')]);
    const links = ip.stdout.toString().trim().split('\n');
    expect(links).toHaveLength(1);
    expect(links[0]).toMatch(/^1: lo: /);
  });

  it('proves itself at start-up, and says what to install when it cannot run', async () => {
    await expect(proveExtractor(createExtractor(), scratch)).resolves.toBeUndefined();
    const missing = createExtractor({ bwrapPath: join(work, 'no-bwrap') });
    await expect(proveExtractor(missing, scratch)).rejects.toBeInstanceOf(ExtractorError);
    await expect(proveExtractor(missing, scratch)).rejects.toThrow(/bubblewrap.*libarchive-tools/);
    const wrongTool = createExtractor({ commands: { gzip: ['/usr/bin/false'] } });
    await expect(proveExtractor(wrongTool, scratch)).rejects.toMatchObject({ code: 'EXTRACTOR_UNAVAILABLE' });
  });
});

describe('asking 7-Zip about a file in the sandbox', () => {
  const file = (bytes: Uint8Array): string => {
    const { path, fd } = scratch();
    writeFileSync(fd, bytes);
    closeSync(fd);
    return path;
  };

  it('lists what 7-Zip opens a file as, and nothing for plain text', async () => {
    const dir = mkdtempSync(join(work, 'seven-'));
    writeFileSync(join(dir, 'run.ps1'), 'calc\r\n');
    expect(spawnSync('7zz', ['a', '-bd', '-bso0', 'x.7z', 'run.ps1'], { cwd: dir }).status).toBe(0);
    const hidden = file(Buffer.concat([Buffer.from('\u0089PNG\r\n\u001a\n', 'latin1'), Buffer.alloc(100, 0x20), readFileSync(join(dir, 'x.7z'))]));
    const answer = await createExtractor().probe(hidden, { as: 'any' }, LIMITS);
    expect(answer.end.code).toBe(0);
    expect(answer.stdout).toMatch(/^Type = 7z$/m);
    expect(answer.stdout).toMatch(/^Path = run\.ps1$/m);
    const plain = await createExtractor().probe(file(Buffer.from('notes\n')), { as: 'any' }, LIMITS);
    expect(plain.end.code).toBe(2);
    expect(plain.stdout).not.toMatch(/^Type = /m);
  });

  it('gives each of many files asked about at once its own answer, though they share sandboxes', async () => {
    const dir = mkdtempSync(join(work, 'many-'));
    writeFileSync(join(dir, 'run.ps1'), 'calc\r\n');
    expect(spawnSync('7zz', ['a', '-bd', '-bso0', 'x.7z', 'run.ps1'], { cwd: dir }).status).toBe(0);
    const archive = readFileSync(join(dir, 'x.7z'));
    const extractor = createExtractor();
    const files = Array.from({ length: 40 }, (_, i) => (i % 3 === 0
      ? file(Buffer.concat([Buffer.from('\u0089PNG\r\n\u001a\n', 'latin1'), Buffer.alloc(100 + i, 0x20), archive]))
      : file(Buffer.from(`plain ${i}\n`))));
    const answers = await Promise.all(files.map((f) => extractor.probe(f, { as: 'any' }, LIMITS)));
    answers.forEach((a, i) => {
      if (i % 3 === 0) {
        expect(a.end.code, `file ${i}`).toBe(0);
        expect(a.stdout, `file ${i}`).toMatch(new RegExp(`^Offset = ${108 + i}$`, 'm'));
      } else {
        expect(a.end.code, `file ${i}`).toBe(2);
        expect(a.stdout, `file ${i}`).not.toMatch(/^Type = /m);
      }
    });
  });

  it('names the types it opens a file as, one by one, and none it does not', async () => {
    const dir = mkdtempSync(join(work, 'img-'));
    expect(spawnSync('dd', ['if=/dev/zero', `of=${join(dir, 'fat.img')}`, 'bs=1k', 'count=1440', 'status=none']).status).toBe(0);
    expect(spawnSync('mformat', ['-i', join(dir, 'fat.img'), '-f', '1440', '::']).status).toBe(0);
    const fat = file(readFileSync(join(dir, 'fat.img')));
    expect((await createExtractor().probe(fat, { as: 'each', types: ['Ext', 'FAT', 'Iso'] }, LIMITS)).stdout.trim()).toBe('FAT');
    expect((await createExtractor().probe(file(Buffer.from('notes\n')), { as: 'each', types: ['Ext', 'FAT'] }, LIMITS)).stdout).toBe('');
    await expect(createExtractor().probe(fat, { as: 'each', types: ['FAT; id'] }, LIMITS)).rejects.toThrow(/not a 7-Zip format name/);
  });

  it('counts and sizes a PDF\'s attachments with pdfdetach', async () => {
    const pdf = (files: ReadonlyArray<readonly [string, string]>): string => {
      const names = files.map((_, i) => `(${i}) ${4 + 2 * i} 0 R`).join(' ');
      const objects = [`<</Type/Catalog/Pages 2 0 R/Names<</EmbeddedFiles<</Names[${names}]>>>>>>`, '<</Type/Pages/Kids[3 0 R]/Count 1>>', '<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>'];
      files.forEach(([name, data], i) => objects.push(`<</Type/Filespec/F(${name})/EF<</F ${5 + 2 * i} 0 R>>>>`, `<</Type/EmbeddedFile/Length ${data.length}>>stream\n${data}\nendstream`));
      let out = '%PDF-1.7\n';
      const offsets = objects.map((o, i) => {
        const at = out.length;
        out += `${i + 1} 0 obj\n${o}\nendobj\n`;
        return at;
      });
      const xref = out.length;
      out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n${offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('')}trailer\n<</Size ${objects.length + 1}/Root 1 0 R>>\nstartxref\n${xref}\n%%EOF\n`;
      return file(Buffer.from(out, 'latin1'));
    };
    const sizing = { cpuSeconds: 5, maxOutputBytes: 1024 * 1024 };
    expect((await createExtractor().probe(pdf([['a.txt', 'hello'], ['b.csv', '1,2,3\r\n']]), { as: 'attachments' }, sizing)).stdout.trim().split('\n')).toEqual(['2', '5', '7']);
    expect((await createExtractor().probe(pdf([]), { as: 'attachments' }, sizing)).stdout.trim()).toBe('0');
  });
});
