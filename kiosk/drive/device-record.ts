/**
 * Builds a DeviceRecord from what the real sources return: the `usb`
 * package's descriptors (`device.deviceDescriptor`, `configDescriptor.interfaces`,
 * or the WebUSB-style objects of usb 3), sysfs string attributes (the
 * descriptors carry only string indices), drivelist's drive list and lsblk's
 * partitions. Every value crossing in is checked; a malformed one refuses the
 * record (DEVICE_RECORD_INVALID), it is never guessed.
 */
import { StationError, type BlockDeviceRecord, type DeviceRecord, type PartitionRecord, type UsbInterfaceRecord } from '../core/device.ts';

type Json = Record<string, unknown>;

function invalid(where: string, what: string): never {
  throw new StationError('DEVICE_RECORD_INVALID', `${where}: ${what}`);
}

function obj(v: unknown, where: string): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) invalid(where, 'expected an object');
  return v as Json;
}

function list(v: unknown, where: string): unknown[] {
  if (!Array.isArray(v)) invalid(where, 'expected an array');
  return v;
}

function byte(v: unknown, where: string, max = 0xff): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) invalid(where, `expected an integer from 0 to ${max}`);
  return v;
}

function text(v: unknown, where: string): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || v.length > 256) invalid(where, 'expected a string of at most 256 characters');
  // sysfs ends attributes with a newline.
  return v.replace(/\n$/, '');
}

const hex4 = (n: number): string => n.toString(16).padStart(4, '0');

function sysfsHex(v: unknown, where: string): number {
  const s = text(v, where);
  if (s === null || !/^[0-9a-fA-F]{4}$/.test(s)) invalid(where, 'expected 4 hex digits');
  return Number.parseInt(s, 16);
}

/** `configDescriptor.interfaces`: one array of alternate settings per interface. */
function interfacesFromLegacy(config: unknown, where: string): UsbInterfaceRecord[] {
  const interfaces = list(obj(config, where).interfaces, `${where}.interfaces`);
  return interfaces.flatMap((alts, i) => list(alts, `${where}.interfaces[${i}]`).map((alt, j) => {
    const a = obj(alt, `${where}.interfaces[${i}][${j}]`);
    const at = (k: string): number => byte(a[k], `${where}.interfaces[${i}][${j}].${k}`);
    return { number: at('bInterfaceNumber'), alternate: at('bAlternateSetting'), class: at('bInterfaceClass'), subclass: at('bInterfaceSubClass'), protocol: at('bInterfaceProtocol') };
  }));
}

function partitionsFromLsblk(disk: Json, where: string): PartitionRecord[] {
  const children = disk.children === undefined ? [] : list(disk.children, `${where}.children`);
  return children.map((c, i) => {
    const p = obj(c, `${where}.children[${i}]`);
    const device = text(p.path, `${where}.children[${i}].path`) ?? invalid(`${where}.children[${i}].path`, 'missing');
    return { device, mountpoint: text(p.mountpoint, `${where}.children[${i}].mountpoint`), label: text(p.label, `${where}.children[${i}].label`) };
  });
}

/** drivelist's `list()` entries, with partitions from `lsblk -J -b -o PATH,TYPE,FSTYPE,LABEL,MOUNTPOINT` where given. */
export function drivesFrom(drivelist: unknown, lsblk: unknown, where: string): BlockDeviceRecord[] {
  const disks = lsblk === undefined ? [] : list(obj(lsblk, `${where}.lsblk`).blockdevices, `${where}.lsblk.blockdevices`).map((d, i) => obj(d, `${where}.lsblk.blockdevices[${i}]`));
  return list(drivelist ?? [], `${where}.drivelist`).map((d, i) => {
    const drive = obj(d, `${where}.drivelist[${i}]`);
    const device = text(drive.device, `${where}.drivelist[${i}].device`) ?? invalid(`${where}.drivelist[${i}].device`, 'missing');
    const size = drive.size === null || drive.size === undefined ? null : byte(drive.size, `${where}.drivelist[${i}].size`, Number.MAX_SAFE_INTEGER);
    const table = drive.partitionTableType;
    if (table !== null && table !== undefined && table !== 'mbr' && table !== 'gpt') invalid(`${where}.drivelist[${i}].partitionTableType`, 'expected "mbr", "gpt" or null');
    const disk = disks.find((x) => x.path === device);
    return { device, size, partitionTableType: table ?? null, partitions: disk ? partitionsFromLsblk(disk, `${where}.lsblk[${device}]`) : [] };
  });
}

/**
 * A recorded device: `deviceDescriptor` and `configDescriptor` as the `usb`
 * package gives them, `sysfs` string attributes, optional `children` (devices
 * behind a hub in the same plug), `drivelist` and `lsblk` output.
 */
export function recordFromRecorded(value: unknown, id: string, where = id): DeviceRecord {
  const v = obj(value, where);
  const dd = obj(v.deviceDescriptor, `${where}.deviceDescriptor`);
  const sysfs = v.sysfs === undefined ? {} : obj(v.sysfs, `${where}.sysfs`);
  const vendor = byte(dd.idVendor, `${where}.deviceDescriptor.idVendor`, 0xffff);
  const product = byte(dd.idProduct, `${where}.deviceDescriptor.idProduct`, 0xffff);
  // Where sysfs is recorded too, both sources must agree.
  if (sysfs.idVendor !== undefined && sysfsHex(sysfs.idVendor, `${where}.sysfs.idVendor`) !== vendor) invalid(`${where}.sysfs.idVendor`, 'differs from the device descriptor');
  if (sysfs.idProduct !== undefined && sysfsHex(sysfs.idProduct, `${where}.sysfs.idProduct`) !== product) invalid(`${where}.sysfs.idProduct`, 'differs from the device descriptor');
  const children = v.children === undefined ? [] : list(v.children, `${where}.children`).map((c, i) => recordFromRecorded(c, `${id}.${i + 1}`, `${where}.children[${i}]`));
  return {
    id,
    vendorId: hex4(vendor),
    productId: hex4(product),
    serial: text(sysfs.serial, `${where}.sysfs.serial`),
    manufacturer: text(sysfs.manufacturer, `${where}.sysfs.manufacturer`),
    product: text(sysfs.product, `${where}.sysfs.product`),
    deviceClass: byte(dd.bDeviceClass, `${where}.deviceDescriptor.bDeviceClass`),
    interfaces: interfacesFromLegacy(v.configDescriptor, `${where}.configDescriptor`),
    children,
    drives: drivesFrom(v.drivelist, v.lsblk, where),
  };
}

/** The shape of a usb 3 (WebUSB-style) device, as much as the kiosk reads of it. */
export interface WebUsbDeviceLike {
  readonly vendorId: number;
  readonly productId: number;
  readonly deviceClass: number;
  readonly serialNumber?: string | null | undefined;
  readonly manufacturerName?: string | null | undefined;
  readonly productName?: string | null | undefined;
  readonly configurations: ReadonlyArray<{ readonly interfaces: ReadonlyArray<{ readonly interfaceNumber: number; readonly alternates: ReadonlyArray<{ readonly alternateSetting: number; readonly interfaceClass: number; readonly interfaceSubclass: number; readonly interfaceProtocol: number }> }> }>;
}

/** A device from the `usb` package (usb 3: WebUSB-style objects). */
export function recordFromWebUsb(d: WebUsbDeviceLike, id: string, children: readonly DeviceRecord[], drives: readonly BlockDeviceRecord[]): DeviceRecord {
  const where = `usb device ${id}`;
  const interfaces: UsbInterfaceRecord[] = [];
  // Every configuration counts: a device can switch to another one after the check.
  for (const config of d.configurations) {
    for (const iface of config.interfaces) {
      for (const alt of iface.alternates) {
        interfaces.push({
          number: byte(iface.interfaceNumber, `${where}.interfaceNumber`),
          alternate: byte(alt.alternateSetting, `${where}.alternateSetting`),
          class: byte(alt.interfaceClass, `${where}.interfaceClass`),
          subclass: byte(alt.interfaceSubclass, `${where}.interfaceSubclass`),
          protocol: byte(alt.interfaceProtocol, `${where}.interfaceProtocol`),
        });
      }
    }
  }
  return {
    id,
    vendorId: hex4(byte(d.vendorId, `${where}.vendorId`, 0xffff)),
    productId: hex4(byte(d.productId, `${where}.productId`, 0xffff)),
    serial: text(d.serialNumber, `${where}.serialNumber`),
    manufacturer: text(d.manufacturerName, `${where}.manufacturerName`),
    product: text(d.productName, `${where}.productName`),
    deviceClass: byte(d.deviceClass, `${where}.deviceClass`),
    interfaces,
    children,
    drives,
  };
}
