import { describe, expect, it } from 'vitest';
import { systemTool, type WindowsVolumeFacts } from './drive-identity.ts';
import { sameVolume, windowsLetterSource, type LetterProbe, type VolumeStamp } from './drive-sources.ts';
import { DriveWatcher } from './watch.ts';

/** A stick as the fake probe shows it: what stat/boot sector tell cheaply, and what CIM would say. */
interface FakeStick {
  readonly stamp: VolumeStamp;
  readonly facts: WindowsVolumeFacts;
}

function stick(volumeId: string, label: string, capacity = 8_004_304_896): FakeStick {
  return {
    stamp: { serial: volumeId.replace('-', '').toLowerCase(), boot: { filesystem: 'fat32', volumeId, capacity } },
    facts: { letter: 'E', removable: true, identity: { filesystem: 'FAT32', volumeId, label, capacity } },
  };
}

/** A probe whose drive E: holds `slot.current`; counts CIM lookups. */
function fakeProbe(slot: { current: FakeStick | null }): LetterProbe & { described: string[] } {
  const described: string[] = [];
  return {
    described,
    stamp: (letter) => Promise.resolve(letter === 'E' && slot.current ? slot.current.stamp : null),
    describe: (letter) => {
      described.push(letter);
      return Promise.resolve(slot.current ? slot.current.facts : null);
    },
  };
}

describe('Windows system tools and drive letters', () => {
  it('names system tools by full path under SystemRoot, never by a bare name looked up on PATH', () => {
    const saved = process.env.SystemRoot;
    process.env.SystemRoot = 'D:\\WinDir';
    try {
      expect(systemTool('msg.exe')).toBe('D:\\WinDir\\System32\\msg.exe');
    } finally {
      if (saved === undefined) delete process.env.SystemRoot;
      else process.env.SystemRoot = saved;
    }
  });

  it('asks again about a drive whose first lookup failed instead of ignoring it for good', async () => {
    let calls = 0;
    const probe: LetterProbe = {
      stamp: (letter) => Promise.resolve(letter === 'E' ? { serial: '1a2b3c4d', boot: null } : null),
      describe: () => {
        calls++;
        return Promise.resolve(calls === 1 ? null : { letter: 'E', removable: true, identity: { filesystem: 'FAT32', volumeId: '1A2B-3C4D', label: 'X', capacity: 1 } });
      },
    };
    const source = windowsLetterSource(probe);
    expect(await source.list()).toEqual([]);
    expect((await source.list()).map((d) => d.mount)).toEqual(['E:\\']);
  });

  it('describes a stick swapped for another between two polls afresh, though the letter never went away', async () => {
    const slot: { current: FakeStick | null } = { current: stick('1A2B-3C4D', 'LINE3') };
    const probe = fakeProbe(slot);
    const source = windowsLetterSource(probe);
    const first = await source.list();
    expect(first.map((d) => d.identity?.volumeId)).toEqual(['1A2B-3C4D']);
    slot.current = stick('9999-0000', 'OTHER'); // pulled and another inserted as E: between two polls
    const second = await source.list();
    expect(second.map((d) => d.identity)).toEqual([{ filesystem: 'FAT32', volumeId: '9999-0000', label: 'OTHER', capacity: 8_004_304_896 }]);
    expect(second[0]?.key).not.toBe(first[0]?.key);
    expect(probe.described).toEqual(['E', 'E']);
  });

  it('sees a swap even when the new stick clones the old serial but not its size', async () => {
    const slot: { current: FakeStick | null } = { current: stick('1A2B-3C4D', 'LINE3') };
    const probe = fakeProbe(slot);
    const source = windowsLetterSource(probe);
    const first = await source.list();
    slot.current = stick('1A2B-3C4D', 'LINE3', 16_000_000_000);
    const second = await source.list();
    expect(second[0]?.identity?.capacity).toBe(16_000_000_000);
    expect(second[0]?.key).not.toBe(first[0]?.key);
  });

  it('reports a swap at the same letter to the service as a removal and an arrival', async () => {
    const slot: { current: FakeStick | null } = { current: stick('1A2B-3C4D', 'LINE3') };
    const events: string[] = [];
    const watcher = new DriveWatcher({
      source: windowsLetterSource(fakeProbe(slot)),
      intervalMs: 10_000,
      onArrive: (d) => events.push(`+${d.identity?.label ?? '?'}`),
      onRemove: (d) => events.push(`-${d.identity?.label ?? '?'}`),
      onError: (e) => events.push(`error ${String(e)}`),
    });
    await watcher.poll();
    slot.current = stick('9999-0000', 'OTHER');
    await watcher.poll();
    expect(events).toEqual(['+LINE3', '-LINE3', '+OTHER']);
  });

  it('asks CIM nothing more while the same stick stays, even when its boot sector is unreadable for one poll', async () => {
    const same = stick('1A2B-3C4D', 'LINE3');
    const slot: { current: FakeStick | null } = { current: same };
    const probe = fakeProbe(slot);
    const source = windowsLetterSource(probe);
    const keys = [(await source.list())[0]?.key];
    slot.current = { ...same, stamp: { ...same.stamp, boot: null } };
    keys.push((await source.list())[0]?.key);
    slot.current = same;
    keys.push((await source.list())[0]?.key);
    expect(new Set(keys).size).toBe(1);
    expect(probe.described).toEqual(['E']);
  });

  it('compares only the fields both stamps have, and calls a stamp that lost every field another volume', () => {
    const boot = { filesystem: 'fat32', volumeId: '1A2B-3C4D', capacity: 1024 } as const;
    expect(sameVolume({ serial: 'a', boot }, { serial: 'a', boot: null })).toBe(true);
    expect(sameVolume({ serial: 'a', boot }, { serial: 'b', boot })).toBe(false);
    expect(sameVolume({ serial: 'a', boot }, { serial: 'a', boot: { ...boot, volumeId: '0000-0001' } })).toBe(false);
    expect(sameVolume({ serial: 'a', boot: null }, { serial: null, boot })).toBe(false);
    expect(sameVolume({ serial: 'a', boot }, { serial: null, boot: null })).toBe(false);
    expect(sameVolume({ serial: null, boot: null }, { serial: null, boot: null })).toBe(true);
  });
});
