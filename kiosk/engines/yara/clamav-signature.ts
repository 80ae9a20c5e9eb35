/**
 * How clamd names a YARA match. Measured with ClamAV 1.4.6: a rule `R` in a
 * .yar file of the database directory is reported as `YARA.R.UNOFFICIAL FOUND`
 * (".UNOFFICIAL" because the file is not in a Cisco-signed .cvd/.cld).
 * YARA namespaces and tags do not appear in the name.
 */
const YARA_SIGNATURE = /^YARA\.([A-Za-z_][A-Za-z0-9_]{0,127})\.UNOFFICIAL$/;

export function signatureForRule(rule: string): string {
  return `YARA.${rule}.UNOFFICIAL`;
}

/** The rule name from a clamd FOUND signature, or undefined when it is not a YARA match. */
export function ruleFromSignature(signature: string): string | undefined {
  return YARA_SIGNATURE.exec(signature)?.[1];
}
