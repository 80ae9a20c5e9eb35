import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkDevice, OPEN_DEVICE_POLICY, parseDevicePolicy, StationError, type DevicePolicy, type DeviceRecord } from './device.ts';
import { recordFromRecorded, recordFromWebUsb } from '../drive/device-record.ts';

const FIXTURES = join(import.meta.dirname, '../../test/fixtures/devices');
const recorded = (name: string): Record<string, unknown> => JSON.parse(readFileSync(join(FIXTURES, `${name}.json`), 'utf8')) as Record<string, unknown>;
const fixture = (name: string): DeviceRecord => recordFromRecorded(recorded(name), name);
const policy = (p: Partial<DevicePolicy>): DevicePolicy => ({ ...OPEN_DEVICE_POLICY, id: 'test', ...p });

describe('recorded device fixtures', () => {
  for (const name of ['plain-stick', 'keyboard-stick', 'composite-hub']) {
    it(`${name}: the check gives the outcome recorded beside the descriptors`, () => {
      const check = checkDevice(fixture(name), OPEN_DEVICE_POLICY);
      expect(check.ok ? 'ok' : check.code).toBe(recorded(name).expect);
    });
  }

  it('builds the plain stick from its descriptors, sysfs strings, drivelist and lsblk', () => {
    const d = fixture('plain-stick');
    expect(d).toMatchObject({ vendorId: '0781', productId: '5567', serial: '4C530001230517115272', manufacturer: 'SanDisk', product: 'Cruzer Blade', deviceClass: 0 });
    expect(d.interfaces).toEqual([{ number: 0, alternate: 0, class: 8, subclass: 6, protocol: 80 }]);
    expect(d.drives).toEqual([{ device: '/dev/sdb', size: 16008609792, partitionTableType: 'mbr', partitions: [{ device: '/dev/sdb1', mountpoint: null, label: 'LINE3' }] }]);
  });

  it('names the keyboard in the BadUSB refusal of a keyboard-in-a-stick', () => {
    const check = checkDevice(fixture('keyboard-stick'), OPEN_DEVICE_POLICY);
    expect(check.ok).toBe(false);
    if (!check.ok) expect(check.message).toMatch(/keyboard/);
  });

  it('sees the network adapter behind the hub of a composite hub', () => {
    const d = fixture('composite-hub');
    expect(d.children.map((c) => c.vendorId)).toEqual(['05e3', '0bda']);
    const check = checkDevice(d, OPEN_DEVICE_POLICY);
    expect(check.ok).toBe(false);
    if (!check.ok) expect(check.message).toMatch(/network/);
  });

  it('refuses a record whose sysfs vendor id differs from its descriptor', () => {
    const bad = { ...recorded('plain-stick'), sysfs: { idVendor: '1234\n', idProduct: '5567\n' } };
    expect(() => recordFromRecorded(bad, 'x')).toThrow(StationError);
    try {
      recordFromRecorded(bad, 'x');
    } catch (e) {
      expect((e as StationError).code).toBe('DEVICE_RECORD_INVALID');
    }
  });
});

describe('checkDevice', () => {
  const plain = fixture('plain-stick');

  it('refuses a device with a network adapter but no storage as not a drive', () => {
    const network = fixture('composite-hub').children[1]!;
    expect(checkDevice(network, OPEN_DEVICE_POLICY)).toMatchObject({ ok: false, code: 'DEVICE_NO_STORAGE' });
  });

  it('refuses storage with an RNDIS, wireless or vendor-specific interface as BadUSB', () => {
    for (const extra of [{ class: 0xef, subclass: 0x04, protocol: 0x01 }, { class: 0xe0, subclass: 0x01, protocol: 0x03 }, { class: 0xff, subclass: 0xff, protocol: 0 }]) {
      const d = { ...plain, interfaces: [...plain.interfaces, { number: 1, alternate: 0, ...extra }] };
      expect(checkDevice(d, OPEN_DEVICE_POLICY)).toMatchObject({ ok: false, code: 'DEVICE_BADUSB' });
    }
  });

  it('refuses a device on the deny list, even when it is also allowed', () => {
    const p = policy({ allow: [{ vendorId: '0781' }], deny: [{ vendorId: '0781', productId: '5567', serial: '4C530001230517115272', note: 'reported lost' }] });
    expect(checkDevice(plain, p)).toMatchObject({ ok: false, code: 'DEVICE_DENIED' });
  });

  it('refuses a device missing from a non-empty allow list, and accepts one on it', () => {
    expect(checkDevice(plain, policy({ allow: [{ vendorId: '0951', productId: '1666' }] }))).toMatchObject({ ok: false, code: 'DEVICE_NOT_ALLOWED' });
    expect(checkDevice(plain, policy({ allow: [{ vendorId: '0781', productId: '5567' }] }))).toEqual({ ok: true });
    expect(checkDevice(plain, policy({ allow: [{ vendorId: '0781', serial: 'OTHER' }] }))).toMatchObject({ ok: false, code: 'DEVICE_NOT_ALLOWED' });
  });

  it('escapes a hostile serial number in the refusal message', () => {
    const d = { ...plain, serial: 'AB\u001b[2J\u202eCD' };
    const check = checkDevice(d, policy({ deny: [{ vendorId: '0781' }] }));
    expect(check.ok).toBe(false);
    if (!check.ok) {
      expect(check.message).not.toMatch(/[\u001b\u202e]/);
      expect(check.message).toContain('\\x1b[2J');
    }
  });
});

describe('parseDevicePolicy', () => {
  it('names the field of a malformed rule', () => {
    try {
      parseDevicePolicy({ id: 'p', allow: [{ vendorId: '0781', productId: 'XYZ' }], deny: [] }, 'devices.json');
      expect.unreachable();
    } catch (e) {
      expect((e as StationError).code).toBe('DEVICE_POLICY_INVALID');
      expect((e as Error).message).toContain('allow[0].productId');
    }
  });
});

describe('recordFromWebUsb (usb 3 devices)', () => {
  it('takes every interface of every configuration', () => {
    const d = recordFromWebUsb({
      vendorId: 0x0bda, productId: 0x8153, deviceClass: 0, serialNumber: '001000001', manufacturerName: 'Realtek', productName: 'USB 10/100/1000 LAN',
      configurations: [
        { interfaces: [{ interfaceNumber: 0, alternates: [{ alternateSetting: 0, interfaceClass: 0xff, interfaceSubclass: 0xff, interfaceProtocol: 0 }] }] },
        { interfaces: [{ interfaceNumber: 0, alternates: [{ alternateSetting: 0, interfaceClass: 2, interfaceSubclass: 6, interfaceProtocol: 0 }] }, { interfaceNumber: 1, alternates: [{ alternateSetting: 0, interfaceClass: 8, interfaceSubclass: 6, interfaceProtocol: 80 }] }] },
      ],
    }, '1-2', [], []);
    expect(d.vendorId).toBe('0bda');
    expect(d.interfaces.map((i) => i.class)).toEqual([0xff, 2, 8]);
    expect(checkDevice(d, OPEN_DEVICE_POLICY)).toMatchObject({ ok: false, code: 'DEVICE_BADUSB' });
  });
});
