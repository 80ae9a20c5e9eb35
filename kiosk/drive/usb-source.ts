/**
 * The real device source for a kiosk: the `usb` package's connect and
 * disconnect events (usb 3, WebUSB-style devices with every configuration's
 * interfaces), drivelist for the block device a USB device brought, lsblk for
 * its partitions. Devices behind a hub that arrive in the same plug are
 * grouped under the hub, so a hub hiding a network adapter is seen whole.
 * Not tested here (no USB bus); the records it builds are the same shape the
 * fixture tests cover.
 */
import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import { StationError, type BlockDeviceRecord, type DeviceRecord } from '../core/device.ts';
import { drivesFrom, recordFromWebUsb, type WebUsbDeviceLike } from './device-record.ts';
import type { DeviceSource, DeviceSourceEvent } from './device-source.ts';

/** Time for the kernel to create the block devices after a connect, and for a hub's children to arrive. */
export const SETTLE_MS = 2500; // ms
/** Where Linux lists USB devices (libusb reads it). */
const USB_SYSFS = '/sys/bus/usb/devices';

type UsbDevice = WebUsbDeviceLike & { readonly bus: string; readonly ports: readonly number[] };

function portPath(d: UsbDevice): string {
  return `${d.bus}-${d.ports.join('.')}`;
}

function lsblk(): Promise<unknown> {
  return new Promise((resolve) => {
    execFile('lsblk', ['-J', '-b', '-o', 'PATH,TYPE,FSTYPE,LABEL,MOUNTPOINT'], { timeout: 10_000 }, (error, stdout) => {
      if (error) resolve(undefined);
      else {
        try {
          resolve(JSON.parse(stdout));
        } catch {
          resolve(undefined);
        }
      }
    });
  });
}

/** drivelist's by-path device names carry the USB port path: "...-usb-0:2.1:1.0-scsi-...". */
async function drivesOn(ports: string): Promise<BlockDeviceRecord[]> {
  const drivelist = await import('drivelist');
  const drives = (await drivelist.list()).filter((d) => d.isUSB && d.devicePath?.includes(`-usb-0:${ports}:`));
  return drivesFrom(drives, await lsblk(), `drivelist(${ports})`);
}

export function createUsbDeviceSource(): DeviceSource {
  let stopped = false;
  const known = new Map<string, UsbDevice>();
  let remove: (() => void) | null = null;
  return {
    async start(listener: (event: DeviceSourceEvent) => void) {
      // Without sysfs's USB bus the usb package rejects a promise nobody holds (and the process dies
      // with its stack) as soon as a listener is added: checked first, and the station never starts.
      await access(USB_SYSFS).catch((cause: unknown) => {
        throw new StationError('USB_UNAVAILABLE', `this machine has no USB bus (${USB_SYSFS} is missing): run the station on the kiosk, or use --demo or --watch DIR`, { cause });
      });
      const { usb } = await import('usb');
      await usb.getDevices().catch((cause: unknown) => {
        throw new StationError('USB_UNAVAILABLE', `cannot list the USB devices (${(cause as Error).message}): check ${USB_SYSFS} and the kiosk's permissions, or use --demo or --watch DIR`, { cause });
      });
      const build = async (root: UsbDevice): Promise<DeviceRecord> => {
        const id = portPath(root);
        const children = [...known.values()].filter((d) => d !== root && portPath(d).startsWith(`${id}.`));
        const childRecords = await Promise.all(children.map(async (c) => recordFromWebUsb(c, portPath(c), [], await drivesOn(c.ports.join('.')))));
        return recordFromWebUsb(root, id, childRecords, await drivesOn(root.ports.join('.')));
      };
      const onConnect = (event: Event): void => {
        const device = (event as Event & { device: UsbDevice }).device;
        known.set(portPath(device), device);
        setTimeout(() => {
          if (stopped || !known.has(portPath(device))) return;
          // A device behind a hub that is itself new is reported with the hub.
          const parent = [...known.values()].find((d) => d !== device && portPath(device).startsWith(`${portPath(d)}.`));
          if (parent) return;
          build(device).then((record) => listener({ type: 'attach', device: record }), (error: unknown) => {
            listener({ type: 'attach', device: { id: portPath(device), vendorId: '0000', productId: '0000', serial: null, manufacturer: null, product: `unreadable device: ${(error as Error).message}`, deviceClass: 0, interfaces: [], children: [], drives: [] } });
          });
        }, SETTLE_MS);
      };
      const onDisconnect = (event: Event): void => {
        const device = (event as Event & { device: UsbDevice }).device;
        known.delete(portPath(device));
        listener({ type: 'detach', id: portPath(device) });
      };
      usb.addEventListener('connect', onConnect);
      usb.addEventListener('disconnect', onDisconnect);
      remove = () => {
        usb.removeEventListener('connect', onConnect);
        usb.removeEventListener('disconnect', onDisconnect);
      };
      // Devices present at start-up (the kiosk's own keyboard, its hubs) are the baseline, not insertions.
      for (const device of (await usb.getDevices()) as unknown as UsbDevice[]) known.set(portPath(device), device);
    },
    stop() {
      stopped = true;
      remove?.();
      return Promise.resolve();
    },
  };
}
