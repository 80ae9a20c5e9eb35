/**
 * Where insertions and removals come from. The station sees only this
 * interface: the real source (usb-source.ts: the `usb` package's connect and
 * disconnect events, drivelist and lsblk) on a kiosk, the fixture source in
 * tests and the demo (this machine has no USB bus).
 */
import { readFile, stat } from 'node:fs/promises';
import type { DeviceRecord } from '../core/device.ts';
import { recordFromRecorded } from './device-record.ts';
import type { DeviceSource, DeviceSourceEvent } from '../core/ports.ts';

export type { DeviceSource, DeviceSourceEvent } from '../core/ports.ts';

/** Insertions and removals made by hand (tests, demo). */
export class FixtureDeviceSource implements DeviceSource {
  private listener: ((event: DeviceSourceEvent) => void) | null = null;
  private readonly present = new Map<string, DeviceRecord>();

  start(listener: (event: DeviceSourceEvent) => void): Promise<void> {
    this.listener = listener;
    for (const device of this.present.values()) listener({ type: 'attach', device });
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.listener = null;
    return Promise.resolve();
  }

  insert(device: DeviceRecord): void {
    this.present.set(device.id, device);
    this.listener?.({ type: 'attach', device });
  }

  remove(id: string): void {
    if (!this.present.delete(id)) return;
    this.listener?.({ type: 'detach', id });
  }
}

/** A recorded device (kiosk/station/fixtures/*.json) as a DeviceRecord. */
export async function loadDeviceFixture(path: string, id: string): Promise<DeviceRecord> {
  const value: unknown = JSON.parse(await readFile(path, 'utf8'));
  return recordFromRecorded(value, id);
}

/** The device with its drive replaced by a filesystem image (one volume, scanned with `image: true`). */
export async function withImageDrive(device: DeviceRecord, imagePath: string): Promise<DeviceRecord> {
  const size = (await stat(imagePath)).size;
  return {
    ...device,
    drives: [{ device: imagePath, size, partitionTableType: null, partitions: [{ device: imagePath, image: true, mountpoint: null, label: null }] }],
  };
}
