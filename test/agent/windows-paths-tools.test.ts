import { describe, expect, it } from 'vitest';
import { systemTool } from '../../agent/drive-identity.ts';
import { windowsLetterSource, type LetterProbe } from '../../agent/drive-sources.ts';

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
      exists: (letter) => Promise.resolve(letter === 'E'),
      describe: () => {
        calls++;
        return Promise.resolve(calls === 1 ? null : { letter: 'E', removable: true, identity: { filesystem: 'FAT32', volumeId: '1A2B-3C4D', label: 'X', capacity: 1 } });
      },
    };
    const source = windowsLetterSource(probe);
    expect(await source.list()).toEqual([]);
    expect((await source.list()).map((d) => d.mount)).toEqual(['E:\\']);
  });
});
