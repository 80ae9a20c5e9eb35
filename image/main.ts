/**
 * `./portcullis image build [--out DIR] [--root-hash FILE]`: the kiosk's
 * bootable Debian 12 disk image (image/build.sh does the work; docs/image.md).
 * `./portcullis image test [--image DIR] [--out DIR]`: builds the image (or
 * reuses the cached one), boots it under QEMU and plugs emulated USB devices
 * into it (test/image/image-test.ts). Both need root and the image's tools,
 * which `./portcullis image ...` installs first (scripts/setup.sh --image).
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildImage } from './build-image.ts';

const USAGE = `usage: portcullis image <command>
  build [--out DIR] [--root-hash FILE]   the kiosk disk image in DIR (default var/image/):
                                         portcullis-kiosk.img, vmlinuz, initrd.img, image.json
                                         --root-hash: a crypt(3) hash for root on the serial console
                                         (default: root locked, no login anywhere)
  test [--image DIR] [--out DIR]         boot the image under QEMU and plug USB sticks, a keyboard and
                                         a BadUSB device into it; results in DIR (default var/image-test/<time>/)
exit codes: 0 ok (test: every check passed), 1 failed, 64 usage error`;

class UsageError extends Error {}

async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'build': {
      const { values } = parseArgs({ args: rest, strict: true, options: { out: { type: 'string' }, 'root-hash': { type: 'string' } } });
      const image = await buildImage({ ...(values.out ? { out: values.out } : {}), ...(values['root-hash'] ? { rootHashFile: values['root-hash'] } : {}) });
      console.log(`kiosk image: ${image.disk} (${image.info.diskMiB} MiB, image ${image.info.key}, ${image.seconds.toFixed(0)} s)`);
      console.log(`write it to the kiosk's disk: docs/image.md "Installing"`);
      return 0;
    }
    case 'test': {
      const { values } = parseArgs({ args: rest, strict: true, options: { image: { type: 'string' }, out: { type: 'string' } } });
      const { runImageTest } = await import('../test/image/image-test.ts');
      return runImageTest({ ...(values.image ? { imageDir: values.image } : {}), ...(values.out ? { outDir: values.out } : {}) });
    }
    case undefined:
    case 'help':
    case '--help':
      console.log(USAGE);
      return command === undefined ? 64 : 0;
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

export async function main(argv: string[]): Promise<number> {
  try {
    return await run(argv);
  } catch (error) {
    if (error instanceof UsageError || (error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`portcullis image: ${(error as Error).message}\n${USAGE}`);
      return 64;
    }
    console.error(`portcullis image: ${(error as Error).message}`);
    return 1;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
