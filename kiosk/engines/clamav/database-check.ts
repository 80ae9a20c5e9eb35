/**
 * ClamAV's own check of a database container before the kiosk takes it:
 * `sigtool --info` (Debian's clamav package) verifies Cisco's digital
 * signature on a .cvd and the signed .info index of a .cld, as libclamav does
 * when it loads them. An unsigned .cud (sigtool --unsigned) has nothing to
 * verify; the kiosk then relies on the update's TUF signature alone, and only
 * when its config allows unsigned databases.
 */
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CLAMAV_HEADER_BYTES, parseClamavHeader } from '../../../manifest/update-repository.ts';
import { runTool, ToolStartError } from '../run-tool.ts';

export interface DatabaseCheck {
  /** true: ClamAV verified the container's signature; false: an unsigned .cud. */
  readonly signed: boolean;
}

/** Returns how the container was verified, or the reason ClamAV refuses it. */
export async function checkClamavDatabase(path: string, container: 'cvd' | 'cld' | 'cud', options: { sigtoolPath?: string; timeoutMs?: number } = {}): Promise<{ ok: true; check: DatabaseCheck } | { ok: false; reason: string }> {
  if (container === 'cud') return { ok: true, check: { signed: false } };
  let result;
  try {
    result = await runTool(options.sigtoolPath ?? 'sigtool', [`--info=${path}`], { timeoutMs: options.timeoutMs ?? 120_000 });
  } catch (error) {
    if (error instanceof ToolStartError) return { ok: false, reason: 'sigtool cannot be started (Debian package clamav): ClamAV\'s signature on the database cannot be checked' };
    throw error;
  }
  if (result.code === 0 && !result.timedOut) return { ok: true, check: { signed: true } };
  const lines = `${result.stderr}\n${result.stdout}`.split('\n').map((l) => l.trim()).filter((l) => /error|verif|malformed|signature/i.test(l));
  return { ok: false, reason: `ClamAV's own check (sigtool --info) refuses it: ${lines.slice(0, 2).join('; ') || (result.timedOut ? 'timed out' : `exit ${String(result.code)}`)}` };
}

/**
 * When the signatures in a ClamAV database folder were built: the newest
 * container header (.cvd/.cld/.cud) there. `missing` when the folder holds no
 * database file at all; `builtAt` null when it holds only loose signature
 * files (no header says when they were made).
 */
export async function readDatabaseTime(folder: string): Promise<{ builtAt: string | null } | { missing: string }> {
  let names: string[];
  try {
    names = await readdir(folder);
  } catch (cause) {
    return { missing: `${folder} cannot be read (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})` };
  }
  const containers = names.filter((n) => /\.(cvd|cld|cud)$/.test(n));
  const loose = names.filter((n) => /\.(hdb|hsb|mdb|msb|ndb|ldb|cdb|idb|fp|sfp|pdb|gdb|wdb|ftm|cbc)$/.test(n));
  if (containers.length === 0 && loose.length === 0) return { missing: `no database files in ${folder}` };
  let newest: Date | null = null;
  for (const name of containers) {
    const handle = await open(join(folder, name), 'r').catch(() => null);
    if (!handle) continue;
    try {
      const head = new Uint8Array(CLAMAV_HEADER_BYTES);
      const { bytesRead } = await handle.read(head, 0, head.length, 0);
      const parsed = parseClamavHeader(head.subarray(0, bytesRead));
      if (parsed.ok && (!newest || parsed.header.builtAt > newest)) newest = parsed.header.builtAt;
    } finally {
      await handle.close();
    }
  }
  return { builtAt: newest ? newest.toISOString().replace('.000Z', 'Z') : null };
}
