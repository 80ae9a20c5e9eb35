import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runDemo, DEMO_FILES } from '../demo/demo.ts';

describe('the demo (the README main command)', () => {
  it('lets exactly the clean and allowlisted files reach the HMI inbox, byte for byte, with both logs intact', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'demo-')), 'run');
    const lines: string[] = [];
    const result = await runDemo({ dir, out: (l) => lines.push(l) });
    expect(result.ok).toBe(true);
    expect(result.verdict).toBe('partial');
    const expected = DEMO_FILES.filter((f) => !f.expect.startsWith('blocked')).map((f) => f.path).sort();
    expect(result.inbox).toEqual(expected);
    for (const path of expected) {
      const original = DEMO_FILES.find((f) => f.path === path)!.content;
      expect(Buffer.from(readFileSync(join(dir, 'hmi', 'inbox', path))).equals(Buffer.from(original)), path).toBe(true);
    }
    const text = lines.join('\n');
    expect(text).toMatch(/MALWARE/);
    expect(text).toMatch(/YARA_MATCH/);
    expect(text).toMatch(/TYPE_MISMATCH/);
    expect(text).toMatch(/chain intact/);
  });
});

describe('the demo command line', () => {
  it('refuses bad input with one line and the usage exit code, and a --dir that is a file with its code', async () => {
    const { main } = await import('../demo/main.ts');
    const errors: string[] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => { errors.push(args.join(' ')); };
    try {
      expect(await main(['--bogus'])).toBe(64);
      expect(await main(['now'])).toBe(64);
      expect(await main(['station', 'extra'])).toBe(64);
      const file = join(mkdtempSync(join(tmpdir(), 'portcullis-demo-cli-')), 'a-file');
      writeFileSync(file, 'x');
      expect(await main(['--dir', file])).toBe(1);
    } finally {
      console.error = original;
    }
    expect(errors.at(-1)).toMatch(/^demo: PATH_NOT_A_FOLDER: /);
    expect(errors.every((e) => !/\n\s+at /.test(e))).toBe(true);
  });
});
