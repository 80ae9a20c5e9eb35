/**
 * One answer for one file from clamd (signatures, and the project's rules in
 * ClamAV's views of the file) and the full YARA engine (every rule, on the
 * file's bytes): clean only when both said clean; every finding of both kept,
 * except a project rule clamd reports that the full engine also matched
 * (the full engine's finding carries the offsets). A finding that is not a
 * macro alert comes first: the scan reads a first MACRO as "covered".
 */
import { classifyClamdSignature } from '../clamav/client.ts';
import type { ScanResult } from '../clamav/protocol.ts';
import { parseYaraMatch, formatYaraMatch } from '../../core/yara-match.ts';
import type { StreamFindingReason, StreamScanResult } from '../../core/ports.ts';
import { ruleFromSignature } from '../yara/clamav-signature.ts';
import type { RuleSet } from '../yara/rule-set.ts';

type Finding = { readonly signature: string; readonly reason: StreamFindingReason };

export function combineAnswers(clamd: ScanResult, full: StreamScanResult, projectRules: RuleSet): StreamScanResult {
  const findings: Finding[] = [];
  const fullFindings: Finding[] = full.status === 'found' ? [full, ...(full.more ?? [])] : [];
  if (clamd.status === 'found') {
    const reason = classifyClamdSignature(clamd.signature);
    const rule = reason === 'YARA_MATCH' ? ruleFromSignature(clamd.signature) : undefined;
    const info = rule === undefined ? undefined : projectRules.rules.find((r) => r.name === rule && !r.isPrivate);
    if (info === undefined) findings.push({ signature: clamd.signature, reason });
    else {
      const alsoFull = fullFindings.some((f) => {
        const facts = f.reason === 'YARA_MATCH' ? parseYaraMatch(f.signature) : null;
        return facts !== null && facts.rule === info.name && facts.namespace === `portcullis/${info.file}`;
      });
      if (!alsoFull) {
        findings.push({
          reason,
          signature: formatYaraMatch({
            rule: info.name, namespace: `clamav:portcullis/${info.file}`, description: info.description ?? null, reference: info.reference ?? null,
            severity: info.severity ?? null, strings: [], clamavView: true,
          }),
        });
      }
    }
  }
  findings.push(...fullFindings);
  if (findings.length === 0) return { status: 'clean' };
  findings.sort((a, b) => Number(a.reason === 'MACRO') - Number(b.reason === 'MACRO'));
  const [first, ...rest] = findings;
  return { status: 'found', signature: first!.signature, reason: first!.reason, ...(rest.length > 0 ? { more: rest } : {}) };
}
