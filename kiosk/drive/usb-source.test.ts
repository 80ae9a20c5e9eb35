import { describe, expect, it } from 'vitest';
import { hasMassStorage, LSBLK_ARGS, ownsBlockDevice, plugRoot, portPath } from './usb-source.ts';

const storage = { alternateSetting: 0, interfaceClass: 0x08, interfaceSubclass: 0x06, interfaceProtocol: 0x50 };
const hid = { alternateSetting: 0, interfaceClass: 0x03, interfaceSubclass: 0x01, interfaceProtocol: 0x01 };
const device = (...alternates: Array<typeof storage>) => ({
  vendorId: 0x46f4, productId: 0x0001, deviceClass: 0,
  configurations: [{ interfaces: alternates.map((a, i) => ({ interfaceNumber: i, alternates: [a] })) }],
});

describe('usb-source', () => {
  it('names a device as sysfs does: bus, then its port path', () => {
    expect(portPath({ bus: '2', ports: [1] })).toBe('2-1');
    expect(portPath({ bus: '1', ports: [3, 1] })).toBe('1-3.1');
    // usb 3 names the bus as usbfs does (/dev/bus/usb/002): seen in the QEMU guest
    expect(portPath({ bus: '002', ports: [1] })).toBe('2-1');
  });

  it('gives a block device to the USB device whose interface it hangs under (as seen in the QEMU guest)', () => {
    const sda = '/sys/devices/pci0000:00/0000:00:02.0/usb2/2-1/2-1:1.0/host2/target2:0:0/2:0:0:0/block/sda';
    expect(ownsBlockDevice(sda, '2-1')).toBe(true);
    // The same port number on the controller's other bus, a hub's port 1, port 11: not it.
    expect(ownsBlockDevice(sda, '1-1')).toBe(false);
    expect(ownsBlockDevice('/sys/devices/pci0000:00/0000:00:02.0/usb2/2-1/2-1.1/2-1.1:1.0/host3/target3:0:0/3:0:0:0/block/sdb', '2-1')).toBe(false);
    expect(ownsBlockDevice('/sys/devices/pci0000:00/0000:00:02.0/usb2/2-11/2-11:1.0/host4/block/sdc', '2-1')).toBe(false);
  });

  it('groups a hub plugged in with what is behind it, but never under the kiosk\'s own hubs', () => {
    // plugged since the start: a hub on 2-2 with a drive and a keyboard behind it
    expect(plugRoot('2-2.1', ['2-2', '2-2.1', '2-2.2'])).toBe('2-2');
    expect(plugRoot('2-2', ['2-2', '2-2.1'])).toBe('2-2');
    expect(plugRoot('2-2.1.3', ['2-2.1', '2-2', '2-2.1.3'])).toBe('2-2');
    // a stick behind the kiosk's internal hub 1-1 (baseline, so not in the list) is a plug of its own
    expect(plugRoot('1-1.4', ['1-1.4'])).toBe('1-1.4');
    expect(plugRoot('2-21', ['2-2', '2-21'])).toBe('2-21');
  });

  it('waits for block devices only from a device with a mass-storage interface', () => {
    expect(hasMassStorage(device(storage))).toBe(true);
    expect(hasMassStorage(device(hid, storage))).toBe(true);
    expect(hasMassStorage(device(hid))).toBe(false);
  });

  it('asks lsblk for a tree: without a tree column it lists partitions flat, not as children', () => {
    expect(LSBLK_ARGS).toContain('--tree=PATH');
  });
});
