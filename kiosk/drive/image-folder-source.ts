/**
 * A device source over a watched folder (chokidar): a FAT32/exFAT image file
 * appearing in the folder is an insertion, its deletion a removal. For a
 * bench or a training kiosk without USB hardware, and for testing the
 * station end to end on a workstation. The device record comes from a
 * recorded fixture beside the image (`NAME.img.device.json`, the shape of
 * kiosk/station/fixtures/*.json), else a plain mass-storage record, so the
 * device checks run exactly as for a real drive.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import type { DeviceRecord } from '../core/device.ts';
import { recordFromRecorded } from './device-record.ts';
import { withImageDrive, type DeviceSource, type DeviceSourceEvent } from './device-source.ts';

const IMAGE = /\.img$/i;

/** A plain USB stick: one mass-storage interface (bulk-only SCSI). */
function plainRecord(id: string): DeviceRecord {
  return { id, vendorId: '0000', productId: '0000', serial: null, manufacturer: 'image file', product: basename(id), deviceClass: 0, interfaces: [{ number: 0, alternate: 0, class: 0x08, subclass: 0x06, protocol: 0x50 }], children: [], drives: [] };
}

export function createImageFolderSource(folder: string): DeviceSource {
  let watcher: FSWatcher | null = null;
  return {
    async start(listener: (event: DeviceSourceEvent) => void) {
      const attach = async (path: string): Promise<void> => {
        const sidecar = await readFile(`${path}.device.json`, 'utf8').then((t) => JSON.parse(t) as unknown, () => null);
        const record = sidecar === null ? plainRecord(path) : recordFromRecorded(sidecar, path);
        listener({ type: 'attach', device: await withImageDrive(record, path) });
      };
      watcher = watch(folder, { depth: 0, awaitWriteFinish: { stabilityThreshold: 500, pollInterval: 100 } });
      watcher.on('add', (path: string) => {
        if (!IMAGE.test(path)) return;
        attach(path).catch((error: unknown) => {
          listener({ type: 'attach', device: { ...plainRecord(path), interfaces: [], product: `unreadable: ${(error as Error).message}` } });
        });
      });
      watcher.on('unlink', (path: string) => {
        if (IMAGE.test(path)) listener({ type: 'detach', id: path });
      });
      await new Promise<void>((resolve) => watcher!.once('ready', () => resolve()));
    },
    async stop() {
      await watcher?.close();
      watcher = null;
    },
  };
}
