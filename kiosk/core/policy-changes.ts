/**
 * What a new policy lets through that the one in force did not (pure). An
 * update may carry a policy signed by the publisher's targets key; the kiosk
 * takes it (the site decides its policy), but a policy that loosens the gate
 * is said plainly: in the import's output, its audit record and `update
 * status`, one line per loosening, so a reviewer sees "ClamAV no longer
 * required" rather than a new digest.
 */
import type { Policy } from './policy.ts';

const added = (before: readonly string[], after: readonly string[]): string[] => after.filter((x) => !before.includes(x));
const list = (items: readonly string[]): string => items.slice(0, 12).join(', ') + (items.length > 12 ? `, and ${items.length - 12} more` : '');

/** One line per way `after` lets more through than `before`; empty when it loosens nothing. */
export function policyLoosenings(before: Policy, after: Policy): string[] {
  const lines: string[] = [];
  const off = (was: boolean, now: boolean, what: string): void => {
    if (was && !now) lines.push(what);
  };
  off(before.clamav.required, after.clamav.required, 'clamav.required: ClamAV is no longer required');
  off(before.yara.required, after.yara.required, 'yara.required: YARA is no longer required');
  off(before.types.blockMismatch, after.types.blockMismatch, 'types.blockMismatch: files whose content contradicts their extension are no longer blocked');
  off(before.operator.required, after.operator.required, 'operator.required: scans no longer name an operator');

  // Larger limits: bigger, deeper, longer-lived things pass.
  const raised = (path: string, was: number, now: number): void => {
    if (now > was) lines.push(`${path}: raised from ${was} to ${now}`);
  };
  for (const key of Object.keys(after.limits) as (keyof Policy['limits'])[]) raised(`limits.${key}`, before.limits[key], after.limits[key]);
  for (const key of ['maxRecursion', 'maxFilesPerArchive', 'maxScanBytes', 'maxEmbeddedFileBytes'] as const) raised(`clamav.${key}`, before.clamav[key], after.clamav[key]);
  raised('archives.maxCompressionRatio', before.archives.maxCompressionRatio, after.archives.maxCompressionRatio);
  raised('manifest.validityHours', before.manifest.validityHours, after.manifest.validityHours);
  if (before.signatures && after.signatures) raised('signatures.maxAgeHours', before.signatures.maxAgeHours, after.signatures.maxAgeHours);
  if (before.signatures && !after.signatures) lines.push('signatures: the signatures\' age limit is left to the default');
  if (before.signatures?.whenOutdated === 'out-of-service' && after.signatures?.whenOutdated === 'warn') lines.push('signatures.whenOutdated: outdated signatures now only warn (the station stays in service)');

  // Types: new allowed types or extensions, fewer blocked names and extensions.
  for (const type of after.types.allowed) {
    const was = before.types.allowed.find((t) => t.name === type.name);
    if (!was) {
      lines.push(`types.allowed: new type ${type.name} (${list([...type.extensions, ...type.extensionless])})`);
      continue;
    }
    const more = [...added(was.extensions, type.extensions), ...added(was.extensionless, type.extensionless)];
    if (more.length > 0) lines.push(`types.allowed.${type.name}: now also ${list(more)}`);
    if (was.scope === 'document-parts' && type.scope === 'anywhere') lines.push(`types.allowed.${type.name}: allowed anywhere, no longer only inside documents`);
    if (was.members !== type.members) lines.push(`types.allowed.${type.name}: members judged as ${type.members}, were ${was.members}`);
  }
  const unblocked = added(after.types.blockedExtensions, before.types.blockedExtensions);
  if (unblocked.length > 0) lines.push(`types.blockedExtensions: no longer blocked: ${list(unblocked)}`);
  const unblockedNames = added(after.types.blockedNames.map((n) => n.toLowerCase()), before.types.blockedNames.map((n) => n.toLowerCase()));
  if (unblockedNames.length > 0) lines.push(`types.blockedNames: no longer blocked: ${list(unblockedNames)}`);

  // Controlled classes (files that pass only with their hash on the allowlist): fewer of them, or narrower.
  for (const was of before.controlled) {
    const now = after.controlled.find((c) => c.name === was.name);
    if (!now) {
      lines.push(`controlled.${was.name}: no longer controlled`);
      continue;
    }
    const fewer = [...added(now.extensions, was.extensions), ...added(now.contentKinds, was.contentKinds), ...added(now.pathPrefixes, was.pathPrefixes)];
    if (fewer.length > 0) lines.push(`controlled.${was.name}: no longer covers ${list(fewer)}`);
  }
  return lines;
}
