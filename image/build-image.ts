/**
 * Builds the kiosk image through image/build.sh (two cached layers; see its
 * header and docs/image.md) and says where it is: the library behind
 * `./portcullis image build`, also used by the image test.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** Where both layers of the build are cached (build.sh): a re-run with the same inputs reuses them. */
export const IMAGE_CACHE = join(PROJECT_ROOT, 'var', 'image-cache');
export const DEFAULT_IMAGE_OUT = join(PROJECT_ROOT, 'var', 'image');

/** What build.sh wrote into image.json. */
export interface ImageInfo {
  readonly key: string;
  readonly kernel: string;
  readonly cmdline: string;
  readonly rootPartuuid: string;
  readonly diskMiB: number;
  readonly buildSeconds: number;
}

export interface BuiltImage {
  readonly dir: string;
  readonly disk: string;
  readonly kernel: string;
  readonly initrd: string;
  readonly info: ImageInfo;
  /** Seconds this call took: the whole build, or the cache look-up when nothing changed. */
  readonly seconds: number;
}

/** Runs image/build.sh; its progress goes to stderr, the image's folder is its last line of output. */
export async function buildImage(options: { out?: string; rootHashFile?: string; log?: (line: string) => void } = {}): Promise<BuiltImage> {
  const started = Date.now();
  const out = resolve(options.out ?? DEFAULT_IMAGE_OUT);
  const args = [join(PROJECT_ROOT, 'image', 'build.sh'), out, IMAGE_CACHE, dirname(process.execPath), ...(options.rootHashFile ? [resolve(options.rootHashFile)] : [])];
  const stdout = await new Promise<string>((resolvePromise, reject) => {
    const child = spawn('bash', args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => { text += d; });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolvePromise(text) : reject(new Error(`image/build.sh failed (exit ${code}); its messages are above`))));
  });
  const cached = stdout.trim().split('\n').pop() ?? '';
  const info = JSON.parse(await readFile(join(out, 'image.json'), 'utf8')) as ImageInfo;
  options.log?.(`image ${info.key} in ${out} (cached in ${cached})`);
  return { dir: out, disk: join(out, 'portcullis-kiosk.img'), kernel: join(out, 'vmlinuz'), initrd: join(out, 'initrd.img'), info, seconds: (Date.now() - started) / 1000 };
}
