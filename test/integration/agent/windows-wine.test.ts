/**
 * The Windows single executable, run for real: scripts/windows-smoke.sh
 * builds portcullis-agent.exe and runs help, verify, import and log verify
 * under Wine 10 (Debian trixie in a debootstrap chroot; Debian 12's Wine 8
 * cannot start Node 24) on a kiosk-signed drive with Windows paths, non-ASCII
 * and spaced names, and an unlisted file. The script checks exit codes,
 * per-file codes, byte-identical copies and the log chain.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

describe('portcullis-agent.exe on Windows (Wine)', () => {
  it('verifies and imports a signed drive byte for byte, keeps the unlisted file out, writes a log that verifies, and installs and removes the MSI silently', () => {
    // A complete chroot from an earlier run is reused, never fetched again (its root keeps its inode).
    const chroot = join(import.meta.dirname, '../../../var/wine-trixie');
    const before = existsSync(join(chroot, 'usr/lib/wine/wine64')) && !existsSync(join(chroot, 'debootstrap')) ? statSync(chroot).ino : null;
    const run = spawnSync('bash', [join(import.meta.dirname, '../../../scripts/windows-smoke.sh')], { encoding: 'utf8', timeout: 900_000 });
    if (before !== null) {
      expect(run.stderr).toContain('windows-smoke: reusing the Wine chroot');
      expect(statSync(chroot).ino).toBe(before);
    }
    expect(run.stderr.split('\n').filter((l) => l.startsWith('windows-smoke: FAIL'))).toEqual([]);
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^windows-smoke: portcullis-agent\.exe under wine-10/mu);
    expect(run.stdout).toMatch(/^windows-smoke: portcullis-agent\.msi under Wine msiexec \/qn: /mu);
  }, 900_000);
});
