import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MANIFEST_PATH, publicKeyFromPem, verifyManifest } from '../../manifest/index.ts';
import { runDemo } from '../../kiosk/demo.ts';

describe('the demo', () => {
  it('writes a manifest that verifies with the public key it generated and lists every demo file', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'demo-')), 'run');
    const lines: string[] = [];
    const result = await runDemo({ dir, out: (l) => lines.push(l) });
    expect(result.verified).toBe(true);
    const pub = publicKeyFromPem(readFileSync(join(dir, 'keys', 'kiosk.pub.pem'), 'utf8'));
    const keyId = lines.join('\n').match(/kiosk key: ([0-9a-f]{64})/)?.[1];
    const verified = verifyManifest(readFileSync(join(dir, 'drive', MANIFEST_PATH)), { keys: [{ keyId: keyId!, publicKey: pub }] }, new Date());
    expect(verified.statement.subject.map((s) => s.name)).toEqual([
      'README.txt', 'firmware/plc-cpu-v2.8.1.bin', 'hmi/recipes/recipe-42.csv', 'projects/line3-packaging.zap17',
    ]);
    expect(lines.some((l) => l.includes('tampered manifest: refused with SIGNATURE_INVALID'))).toBe(true);
  });
});
