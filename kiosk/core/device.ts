/**
 * Device checks: pure, no I/O. A USB device record (descriptors of the device
 * and every interface, plus the block devices it brought) is checked before
 * anything is mounted:
 *  - mass storage offered together with any other interface (keyboard/HID,
 *    network, wireless, RNDIS, a hub, anything) is a possible BadUSB device;
 *  - the device policy's deny list, then its allow list (when it has one);
 *  - a device with no mass-storage interface is not a drive.
 * The first failing check wins; every refusal carries a stable code.
 */
import { displayText, PortcullisError } from '../../manifest/index.ts';
import { array, formatIssues, object, optional, parse, string, type Infer } from '../../manifest/schema.ts';

export type StationErrorCode =
  | 'DEVICE_BADUSB'
  | 'DEVICE_DENIED'
  | 'DEVICE_NOT_ALLOWED'
  | 'DEVICE_NO_STORAGE'
  | 'DEVICE_RECORD_INVALID'
  | 'VOLUME_NO_PARTITION'
  | 'VOLUME_ENCRYPTED'
  | 'VOLUME_UNKNOWN_FS'
  | 'VOLUME_UNREADABLE'
  | 'DEVICE_POLICY_INVALID'
  | 'DEVICE_POLICY_UNREADABLE'
  | 'USB_UNAVAILABLE'
  | 'MOUNT_FAILED';
export class StationError extends PortcullisError<StationErrorCode> {}

/** USB class codes (usb.org "Defined Class Codes"). */
export const USB_CLASS = {
  communications: 0x02,
  hid: 0x03,
  massStorage: 0x08,
  hub: 0x09,
  cdcData: 0x0a,
  wireless: 0xe0,
  miscellaneous: 0xef,
} as const;

export interface UsbInterfaceRecord {
  readonly number: number;
  readonly alternate: number;
  readonly class: number;
  readonly subclass: number;
  readonly protocol: number;
}

/** One partition (or a whole unpartitioned disk) and the first sector of its volume. */
export interface PartitionRecord {
  readonly device: string; // e.g. /dev/sdb1, or an image file
  /** The volume is a filesystem image file (demo, tests): scanned with `image: true`. */
  readonly image?: boolean;
  readonly mountpoint: string | null;
  readonly label: string | null;
}

export interface BlockDeviceRecord {
  readonly device: string; // e.g. /dev/sdb
  readonly size: number | null; // bytes
  readonly partitionTableType: 'mbr' | 'gpt' | null;
  readonly partitions: readonly PartitionRecord[];
}

export interface DeviceRecord {
  /** Source-unique key of this insertion (bus and port path, or a fixture name). */
  readonly id: string;
  readonly vendorId: string; // 4 lowercase hex digits
  readonly productId: string;
  readonly serial: string | null; // raw from the device: hostile, escape before showing
  readonly manufacturer: string | null;
  readonly product: string | null;
  readonly deviceClass: number;
  readonly interfaces: readonly UsbInterfaceRecord[];
  /** Devices behind a hub in the same plug (a "composite hub" stick). */
  readonly children: readonly DeviceRecord[];
  readonly drives: readonly BlockDeviceRecord[];
}

const hex4 = string({ pattern: /^[0-9a-f]{4}$/, patternMessage: 'expected 4 lowercase hex digits' });
const deviceRule = object({
  vendorId: hex4,
  productId: optional(hex4),
  serial: optional(string({ min: 1, max: 128 })),
  note: optional(string({ max: 200 })),
});
export const devicePolicySchema = object({
  id: string({ min: 1, max: 64, pattern: /^[A-Za-z0-9][A-Za-z0-9._-]*$/, patternMessage: 'expected letters, digits, ".", "_" or "-"' }),
  /** Empty: any device that passes the other checks; else only these. */
  allow: array(deviceRule, { max: 10_000 }),
  /** Always refused, even when also allowed. */
  deny: array(deviceRule, { max: 10_000 }),
});
export type DevicePolicy = Infer<typeof devicePolicySchema>;
export type DeviceRule = Infer<typeof deviceRule>;

export const OPEN_DEVICE_POLICY: DevicePolicy = { id: 'open', allow: [], deny: [] };

export function parseDevicePolicy(value: unknown, source: string): DevicePolicy {
  const result = parse(devicePolicySchema, value);
  if (!result.ok) throw new StationError('DEVICE_POLICY_INVALID', `${source}: ${formatIssues(result.issues)}: correct the device policy file`);
  return result.value;
}

export type DeviceCheck =
  | { readonly ok: true }
  | { readonly ok: false; readonly code: StationErrorCode; readonly message: string };

/** Text from a device, safe for a terminal and a log line. */
export function shownText(text: string | null): string {
  return text === null ? '' : displayText(text);
}

export function describeDevice(d: DeviceRecord): string {
  const name = [d.manufacturer, d.product].filter((s): s is string => s !== null && s !== '').map(shownText).join(' ');
  return `${d.vendorId}:${d.productId}${name ? ` ${name}` : ''}${d.serial ? ` (serial ${shownText(d.serial)})` : ''}`;
}

/** Every interface of the device and of anything behind it in the same plug. */
export function allInterfaces(d: DeviceRecord): Array<{ device: DeviceRecord; iface: UsbInterfaceRecord }> {
  return [...d.interfaces.map((iface) => ({ device: d, iface })), ...d.children.flatMap(allInterfaces)];
}

function allDevices(d: DeviceRecord): DeviceRecord[] {
  return [d, ...d.children.flatMap(allDevices)];
}

/** Why an interface is unexpected on a storage device, in words. */
export function interfaceKind(i: UsbInterfaceRecord): string {
  const c = `class 0x${i.class.toString(16).padStart(2, '0')}`;
  if (i.class === USB_CLASS.hid) return `a keyboard/mouse (HID, ${c})`;
  if (i.class === USB_CLASS.communications || i.class === USB_CLASS.cdcData) return `a network/serial adapter (communications, ${c})`;
  if (i.class === USB_CLASS.wireless) return `a wireless adapter (${c})`;
  if (i.class === USB_CLASS.miscellaneous && i.subclass === 0x04) return `a network adapter (RNDIS, ${c}/0x04)`;
  if (i.class === USB_CLASS.hub) return `a USB hub (${c})`;
  return `an unexpected interface (${c}/0x${i.subclass.toString(16).padStart(2, '0')}/0x${i.protocol.toString(16).padStart(2, '0')})`;
}

function matches(rule: DeviceRule, d: DeviceRecord): boolean {
  return rule.vendorId === d.vendorId
    && (rule.productId === undefined || rule.productId === d.productId)
    && (rule.serial === undefined || rule.serial === d.serial);
}

export function checkDevice(device: DeviceRecord, policy: DevicePolicy): DeviceCheck {
  const interfaces = allInterfaces(device);
  const storage = interfaces.filter((x) => x.iface.class === USB_CLASS.massStorage);
  // A hub's own interface is counted too: a drive behind a hub is one plug with two functions.
  const other = interfaces.filter((x) => x.iface.class !== USB_CLASS.massStorage);
  if (storage.length > 0 && other.length > 0) {
    const kinds = [...new Set(other.map((x) => interfaceKind(x.iface)))];
    return {
      ok: false,
      code: 'DEVICE_BADUSB',
      message: `${describeDevice(device)} is a drive that is also ${kinds.join(' and ')}: possible BadUSB device, not mounted. Hand it to security.`,
    };
  }
  for (const d of allDevices(device)) {
    const rule = policy.deny.find((r) => matches(r, d));
    if (rule) return { ok: false, code: 'DEVICE_DENIED', message: `${describeDevice(d)} is on the device deny list${rule.note ? ` (${shownText(rule.note)})` : ''} of policy ${policy.id}: not mounted.` };
  }
  if (policy.allow.length > 0) {
    const outside = allDevices(device).find((d) => !policy.allow.some((r) => matches(r, d)));
    if (outside) return { ok: false, code: 'DEVICE_NOT_ALLOWED', message: `${describeDevice(outside)} is not on the device allow list of policy ${policy.id}: only issued drives are accepted.` };
  }
  if (storage.length === 0) {
    return { ok: false, code: 'DEVICE_NO_STORAGE', message: `${describeDevice(device)} is not a storage device: nothing to scan.` };
  }
  return { ok: true };
}

/** The USB part of the manifest's media identity. */
export function usbIdentityOf(d: DeviceRecord): { vendorId: string; productId: string; serial: string | null } {
  return { vendorId: d.vendorId, productId: d.productId, serial: d.serial };
}
