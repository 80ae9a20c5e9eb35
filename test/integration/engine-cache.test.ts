import { loadPolicy } from '../../kiosk/rules-files.ts';
import { DEFAULT_RULES_DIR } from '../../kiosk/config.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createEngineCache } from '../../kiosk/engines/engines.ts';

const work = mkdtempSync(join(tmpdir(), 'engine-cache-'));
const cache = createEngineCache(work);
afterAll(async () => {
  await cache.invalidate();
  rmSync(work, { recursive: true, force: true });
});

describe('the station engine cache', () => {
  it('reuses one clamd between scans and starts a fresh, self-tested one after it died', async () => {
    const { policy } = await loadPolicy();
    const options = { clamavDb: 'test', rulesDir: DEFAULT_RULES_DIR, policy };
    const first = await cache.get(options);
    const again = await cache.get(options);
    expect(again).toBe(first);
    if (!('pid' in first.clamd)) throw new Error('expected a clamd the cache started itself');
    process.kill(first.clamd.pid, 'SIGKILL');
    await first.clamd.exited;
    const restarted = await cache.get(options);
    expect(restarted).not.toBe(first);
    await expect(restarted.clamd.client.ping()).resolves.toBeUndefined();
  });

  it('starts fresh engines when the full YARA engine died between drives, though clamd still answers', async () => {
    const { policy } = await loadPolicy();
    const options = { clamavDb: 'test', rulesDir: DEFAULT_RULES_DIR, policy };
    const first = await cache.get(options);
    first.fullYara.stop(); // as a crash would leave it
    expect(first.fullYara.alive()).toBe(false);
    const next = await cache.get(options);
    expect(next).not.toBe(first);
    expect(next.fullYara.alive()).toBe(true);
  });
});
