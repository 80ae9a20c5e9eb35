/**
 * Writes the inputs of scripts/windows-smoke.sh into a folder: a drive with a
 * manifest signed as the kiosk signs it (three listed files, one unlisted),
 * a trust store, the drive's identity, and an empty inbox.
 *
 *   node test/support/windows-smoke-fixture.ts DIR
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_IDENTITY, makeDrive, writeTrust } from './agent-fixtures.ts';

const dir = process.argv[2];
if (!dir) throw new Error('usage: node test/support/windows-smoke-fixture.ts DIR');
mkdirSync(join(dir, 'drive'), { recursive: true });
mkdirSync(join(dir, 'inbox'), { recursive: true });
// Over STAGE_ON_WORKERS_FROM_BYTES (16 MiB), so the executable stages on its embedded worker threads.
const big = Buffer.alloc(20 * 1024 * 1024 + 5);
for (let i = 0; i < big.length; i++) big[i] = (i * 131) % 251;
await makeDrive({
  files: {
    'README.txt': 'hello plant\r\n',
    'PLC/Line 3/project.ap17': big,
    'HMI/Ünïcode näme.txt': 'non-ASCII name\n',
    'extra.exe': 'MZ not listed',
  },
  unlisted: ['extra.exe'],
}, join(dir, 'drive'));
writeTrust({}, join(dir, 'trust.json'));
writeFileSync(join(dir, 'identity.json'), JSON.stringify(DEFAULT_IDENTITY));
