/**
 * The station's demo (`./portcullis demo station`): the real station on the
 * fixture source, with the demo drive image inserted by hand, the project's
 * test database, a fresh key and the demo allowlist; it ends by itself after
 * showing the result. Test and demo harness, not part of the kiosk.
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { runStation, type StationOptions } from '../../kiosk/cli/run-command.ts';
import { generateKeyFiles } from '../../kiosk/cli/keygen.ts';
import { makeFolder } from '../../kiosk/cli/path-option.ts';
import { manifestTime } from '../../kiosk/core/build-statement.ts';
import { EXIT } from '../../kiosk/core/exit-codes.ts';
import { FixtureDeviceSource, loadDeviceFixture, withImageDrive } from '../../kiosk/drive/device-source.ts';
import { waitForState } from '../../kiosk/station/station.ts';
import { buildDriveImage } from '../support/image-builder.ts';
import { DEMO_FILES, PROJECT_ROOT } from './demo.ts';

/** The fixture device records (a plain stick, a keyboard stick, a composite hub). */
export const FIXTURES_DIR = new URL('../fixtures/devices/', import.meta.url).pathname;

/** The demo drive (demo.ts's files) as a FAT32 image, a key and the demo allowlist. */
export async function prepareDemo(dir: string): Promise<{ image: string; keyPath: string; allowlistDir: string }> {
  await makeFolder(dir, '--work-dir', 0o755);
  const image = join(dir, 'drive.img');
  await buildDriveImage(image, { filesystem: 'fat32', sizeMiB: 34, label: 'LINE3', volumeId: '1A2B-3C4D', files: DEMO_FILES.map((f) => ({ path: f.path, content: f.content })) });
  const keys = await generateKeyFiles(join(dir, 'kiosk-keys'));
  const allowlistDir = join(dir, 'allowlist');
  await mkdir(allowlistDir, { recursive: true });
  const firmware = DEMO_FILES.find((f) => f.path === 'firmware/plc-cpu-v2.8.1.bin')!.content;
  await writeFile(join(allowlistDir, 'demo-vendor.json'), `${JSON.stringify({
    version: 'demo-1',
    owner: 'Demo PLC vendor (demo data)',
    entries: [{ vendor: 'Demo Automation', product: 'PLC CPU 1500', version: '2.8.1', file: 'plc-cpu-v2.8.1.bin', sha256: createHash('sha256').update(firmware).digest('hex'), source: 'demo: computed from the demo firmware' }],
  }, null, 2)}\n`);
  return { image, keyPath: keys.privateKeyPath, allowlistDir };
}

/** Runs the demo station; resolves with its exit code (0 when the demo drive came out partial, as it should). */
export async function runDemoStation(options: StationOptions & { demoPauseMs?: number } = {}): Promise<number> {
  const dir = resolve(options.workDir ?? join(PROJECT_ROOT, 'var', 'demo-station', manifestTime(new Date()).replace(/:/g, '')));
  const demo = await prepareDemo(dir);
  const device = await withImageDrive(await loadDeviceFixture(join(FIXTURES_DIR, 'plain-stick.json'), 'demo-stick'), demo.image);
  const source = options.source ?? new FixtureDeviceSource();
  return runStation({
    clamavDb: 'test',
    keyPath: demo.keyPath,
    allowlistDir: demo.allowlistDir,
    dbPath: join(dir, 'kiosk-audit.db'),
    kioskId: 'demo-kiosk',
    ...options,
    source,
    async onStarted(station) {
      if (!(source instanceof FixtureDeviceSource)) return null;
      source.insert(device);
      const final = await waitForState(station, (s) => ['result', 'refused', 'removed-mid-scan'].includes(s.screen.kind), 300_000);
      await new Promise((r) => setTimeout(r, options.demoPauseMs ?? 4000));
      source.remove(device.id);
      await waitForState(station, (s) => s.screen.kind === 'idle');
      const verdict = final.screen.kind === 'result' ? final.screen.result.verdict : null;
      // The demo drive holds blocked files beside clean ones: partial is the right answer.
      return verdict === 'partial' ? EXIT.OK : EXIT.FAILURE;
    },
  });
}
