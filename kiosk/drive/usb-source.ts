/**
 * The real device source for a kiosk: the `usb` package's connect and
 * disconnect events (usb 3, WebUSB-style devices with every configuration's
 * interfaces), drivelist for the block devices, sysfs to tell which USB device
 * brought which block device, lsblk for their partitions. Devices behind a hub
 * that arrive in the same plug are grouped under the hub, so a hub hiding a
 * network adapter is seen whole; one that shows a new device after the group
 * was reported is reported again, whole. Run for real by the kiosk image's
 * QEMU test (test/image/, docs/image.md); the pure parts are tested beside it.
 */
import { execFile } from 'node:child_process';
import { access, realpath } from 'node:fs/promises';
import { basename } from 'node:path';
import { StationError, USB_CLASS, type BlockDeviceRecord, type DeviceRecord } from '../core/device.ts';
import { drivesFrom, recordFromWebUsb, type WebUsbDeviceLike } from './device-record.ts';
import type { DeviceSource, DeviceSourceEvent } from './device-source.ts';

/** Quiet time after the last device of a plug arrives (a hub's devices come one by one) before it is reported. */
export const SETTLE_MS = 2500; // ms
/** How long a mass-storage device may take to bring its disk and partitions (SCSI scan, partition table). */
export const BLOCK_DEVICE_WAIT_MS = 20_000; // ms
const BLOCK_DEVICE_POLL_MS = 500; // ms
/** Where Linux lists USB devices (libusb reads it). */
const USB_SYSFS = '/sys/bus/usb/devices';

type UsbDevice = WebUsbDeviceLike & { readonly bus: string; readonly ports: readonly number[] };

/**
 * The device's sysfs name, as the kernel writes it: bus, then the port path
 * ("2-1", "2-3.1"). The usb package gives the bus as usbfs names it ("002").
 */
export function portPath(d: { readonly bus: string; readonly ports: readonly number[] }): string {
  return `${Number.parseInt(d.bus, 10)}-${d.ports.join('.')}`;
}

/**
 * Whether the block device at `sysfsPath` (the real path of /sys/block/sdX)
 * belongs to USB device `usbId`: the path runs through one of that device's own
 * interfaces ("/2-1/2-1:1.0/host2/..."). Exact per bus and port, unlike a
 * /dev/disk/by-path name, which drops the bus number.
 */
export function ownsBlockDevice(sysfsPath: string, usbId: string): boolean {
  return sysfsPath.includes(`/${usbId}:`);
}

/**
 * The plug a device came in with: its top-most ancestor among the devices
 * plugged in since the start (`plugged`: a hub brought to the gate), or itself.
 * The kiosk's own hubs, present at start-up, are never a plug: a stick in a
 * port behind one is a plug of its own.
 */
export function plugRoot(id: string, plugged: Iterable<string>): string {
  let root = id;
  for (const other of plugged) if (other !== id && id.startsWith(`${other}.`) && other.length < root.length) root = other;
  return root;
}

/** True when any configuration of the device has a mass-storage interface: it will bring a disk. */
export function hasMassStorage(d: WebUsbDeviceLike): boolean {
  return d.configurations.some((c) => c.interfaces.some((i) => i.alternates.some((a) => a.interfaceClass === USB_CLASS.massStorage)));
}

/** Partitions come as children only in lsblk's tree, which needs a tree column: without NAME, lsblk lists flat. */
export const LSBLK_ARGS = ['-J', '-b', '--tree=PATH', '-o', 'PATH,TYPE,FSTYPE,LABEL,MOUNTPOINT'] as const;

function lsblk(): Promise<unknown> {
  return new Promise((resolve) => {
    execFile('lsblk', [...LSBLK_ARGS], { timeout: 10_000 }, (error, stdout) => {
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

/** The block devices USB device `usbId` brought: drivelist's USB drives whose sysfs path runs through its interfaces. */
async function drivesOf(usbId: string): Promise<BlockDeviceRecord[]> {
  const drivelist = await import('drivelist');
  const mine = [];
  for (const d of await drivelist.list()) {
    if (!d.isUSB) continue;
    const sysfs = await realpath(`/sys/block/${basename(d.device)}`).catch(() => '');
    if (ownsBlockDevice(sysfs, usbId)) mine.push(d);
  }
  return drivesFrom(mine, await lsblk(), `drivelist(${usbId})`);
}

/**
 * A mass-storage device's drives once they have settled: its disk and partitions
 * appear some time after the USB connect (seconds under emulation), so the list
 * is read until it is there and the same twice in a row, or the wait is over.
 */
async function settledDrivesOf(usbId: string, storage: boolean, present: () => boolean): Promise<BlockDeviceRecord[]> {
  let drives = await drivesOf(usbId);
  if (!storage) return drives;
  const deadline = Date.now() + BLOCK_DEVICE_WAIT_MS;
  for (;;) {
    if (!present() || Date.now() > deadline) return drives;
    await new Promise((r) => setTimeout(r, BLOCK_DEVICE_POLL_MS));
    const again = await drivesOf(usbId);
    if (drives.length > 0 && JSON.stringify(again) === JSON.stringify(drives)) return drives;
    drives = again;
  }
}

export function createUsbDeviceSource(): DeviceSource {
  let stopped = false;
  const known = new Map<string, UsbDevice>();
  const baseline = new Set<string>(); // present at start-up: the kiosk's own devices and hubs
  const timers = new Map<string, NodeJS.Timeout>(); // plug root -> its settle timer
  const reported = new Set<string>(); // plug roots reported as attached
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
        const present = (): boolean => !stopped && known.get(id) === root;
        const children = [...known.values()].filter((d) => d !== root && portPath(d).startsWith(`${id}.`));
        const childRecords = await Promise.all(children.map(async (c) => recordFromWebUsb(c, portPath(c), [], await settledDrivesOf(portPath(c), hasMassStorage(c), present))));
        return recordFromWebUsb(root, id, childRecords, await settledDrivesOf(id, hasMassStorage(root), present));
      };
      const report = (id: string): void => {
        timers.delete(id);
        const device = known.get(id);
        if (stopped || !device) return;
        reported.add(id);
        build(device).then((record) => {
          if (known.get(id) === device && reported.has(id)) listener({ type: 'attach', device: record });
        }, (error: unknown) => {
          listener({ type: 'attach', device: { id, vendorId: '0000', productId: '0000', serial: null, manufacturer: null, product: `unreadable device: ${(error as Error).message}`, deviceClass: 0, interfaces: [], children: [], drives: [] } });
        });
      };
      const onConnect = (event: Event): void => {
        const device = (event as Event & { device: UsbDevice }).device;
        const id = portPath(device);
        known.set(id, device);
        // Every device of a plug (a hub and what is behind it) restarts the plug's quiet time.
        const root = plugRoot(id, [...known.keys()].filter((k) => !baseline.has(k)));
        if (reported.has(root)) {
          // A device that appears behind a plug already reported (a hub that shows a keyboard
          // later): the plug is taken back and reported again, whole, with it.
          reported.delete(root);
          listener({ type: 'detach', id: root });
        }
        clearTimeout(timers.get(root));
        timers.set(root, setTimeout(() => report(root), SETTLE_MS));
      };
      const onDisconnect = (event: Event): void => {
        const device = (event as Event & { device: UsbDevice }).device;
        const id = portPath(device);
        known.delete(id);
        baseline.delete(id);
        clearTimeout(timers.get(id));
        timers.delete(id);
        reported.delete(id);
        listener({ type: 'detach', id });
      };
      usb.addEventListener('connect', onConnect);
      usb.addEventListener('disconnect', onDisconnect);
      remove = () => {
        usb.removeEventListener('connect', onConnect);
        usb.removeEventListener('disconnect', onDisconnect);
      };
      // Devices present at start-up (the kiosk's own keyboard, its hubs) are the baseline, not insertions.
      for (const device of (await usb.getDevices()) as unknown as UsbDevice[]) {
        known.set(portPath(device), device);
        baseline.add(portPath(device));
      }
    },
    stop() {
      stopped = true;
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
      remove?.();
      return Promise.resolve();
    },
  };
}
