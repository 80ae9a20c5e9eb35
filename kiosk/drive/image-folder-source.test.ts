import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DeviceSourceEvent } from './device-source.ts';
import { createImageFolderSource } from './image-folder-source.ts';

async function until(check: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('createImageFolderSource', () => {
  it('reports an image dropped into the folder as an insertion with its recorded device, and its deletion as a removal', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'image-folder-'));
    const events: DeviceSourceEvent[] = [];
    const source = createImageFolderSource(dir);
    await source.start((e) => events.push(e));
    try {
      const image = join(dir, 'stick.img');
      await copyFile(new URL('../../test/fixtures/devices/keyboard-stick.json', import.meta.url), `${image}.device.json`);
      await writeFile(image, new Uint8Array(4096));
      await writeFile(join(dir, 'notes.txt'), 'not an image');
      await until(() => events.length === 1);
      const attach = events[0]!;
      expect(attach.type).toBe('attach');
      if (attach.type !== 'attach') return;
      expect(attach.device.id).toBe(image);
      expect(attach.device.vendorId).toBe('03eb');
      expect(attach.device.interfaces.map((i) => i.class)).toEqual([3, 8]);
      expect(attach.device.drives[0]?.partitions[0]).toMatchObject({ device: image, image: true });
      await rm(image);
      await until(() => events.length === 2);
      expect(events[1]).toEqual({ type: 'detach', id: image });
    } finally {
      await source.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
