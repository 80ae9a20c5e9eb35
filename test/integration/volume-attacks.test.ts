/**
 * Red team of the sandboxed volume reader (issue 18.3): images crafted to make
 * the kiosk hang, write or read more than the drive holds, or take a lie for a
 * listing, and paths that are not image files. Each case is refused with a
 * named code (or kept as the drive holds it), through the real sandbox.
 */
import { spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const work = mkdtempSync(join(tmpdir(), 'portcullis-volume-attacks-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const IMAGE_ACCESS = pathToFileURL(join(import.meta.dirname, '..', '..', 'kiosk', 'drive', 'image-access.ts')).href;

/** Opens `image` in a Node process of its own (a kiosk that hangs must not hang the test); its error code, or OPENED. */
function openInAnotherProcess(image: string): { code: string; timedOut: boolean } {
  const script = `
import { openImageReadOnly } from ${JSON.stringify(IMAGE_ACCESS)};
try { const opened = await openImageReadOnly(${JSON.stringify(image)}, ${JSON.stringify(join(work, 'open'))}); await opened.close(); console.log('OPENED'); }
catch (error) { console.log(error.code ?? error.message); }`;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { timeout: 20_000, encoding: 'utf8' });
  return { code: run.stdout.trim(), timedOut: run.signal === 'SIGTERM' };
}

describe('paths that are not image files', () => {
  it('refuses a FIFO named as the image at once, instead of waiting for a writer forever (run --watch DIR takes what is dropped there)', () => {
    const fifo = join(work, 'stick.img');
    execFileSync('mkfifo', [fifo]);
    expect(openInAnotherProcess(fifo)).toEqual({ code: 'MEDIA_IO', timedOut: false });
  });

  it('refuses a character device as the image', () => {
    expect(openInAnotherProcess('/dev/zero')).toEqual({ code: 'MEDIA_IO', timedOut: false });
  });
});
