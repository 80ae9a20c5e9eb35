/**
 * Statement checks shared by the signer (never sign what a verifier would
 * refuse) and the verifier: version, schema, subject names, time window shape.
 */
import { ManifestError } from './errors.ts';
import { findCollisions } from './names.ts';
import { formatIssues, parse } from './schema.ts';
import { LIMITS, PREDICATE_TYPE, PREDICATE_TYPE_FAMILY, STATEMENT_TYPE, statementSchema, type Statement } from './statement.ts';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function checkStatement(value: unknown): Statement {
  if (!isRecord(value)) throw new ManifestError('MANIFEST_SCHEMA', '(root): expected a JSON object');
  // Versions first, so a newer manifest is reported as such, not as a schema error.
  if (value._type !== STATEMENT_TYPE) {
    throw new ManifestError('MANIFEST_VERSION', `_type: expected ${STATEMENT_TYPE}, got ${JSON.stringify(value._type)}`);
  }
  if (value.predicateType !== PREDICATE_TYPE) {
    const got = JSON.stringify(value.predicateType);
    const hint = typeof value.predicateType === 'string' && PREDICATE_TYPE_FAMILY.test(value.predicateType)
      ? 'a different version of the Portcullis manifest: update the agent or rescan at a matching kiosk'
      : 'not a Portcullis manifest';
    throw new ManifestError('MANIFEST_VERSION', `predicateType: expected ${PREDICATE_TYPE}, got ${got} (${hint})`);
  }
  const result = parse(statementSchema, value);
  if (!result.ok) {
    const unsafe = result.issues.filter((i) => /^subject\[\d+\]\.name$/.test(i.path) && !i.message.startsWith('expected a string'));
    if (unsafe.length > 0) throw new ManifestError('SUBJECT_UNSAFE', formatIssues(unsafe));
    throw new ManifestError('MANIFEST_SCHEMA', formatIssues(result.issues));
  }
  const statement = result.value;
  const collisions = findCollisions(statement.subject.map((s) => s.name));
  const first = collisions[0];
  if (first) {
    throw new ManifestError(
      'SUBJECT_UNSAFE',
      `subject names collide on a case-insensitive filesystem: ${JSON.stringify(first[0])} and ${JSON.stringify(first[1])}` +
        (collisions.length > 1 ? ` (and ${collisions.length - 1} more)` : ''),
    );
  }
  const issued = Date.parse(statement.predicate.issuedAt);
  const expires = Date.parse(statement.predicate.expiresAt);
  if (expires <= issued) throw new ManifestError('MANIFEST_SCHEMA', 'predicate.expiresAt: must be later than predicate.issuedAt');
  if ((expires - issued) / 1000 > LIMITS.maxValiditySeconds) {
    throw new ManifestError('MANIFEST_SCHEMA', `predicate.expiresAt: validity longer than ${LIMITS.maxValiditySeconds / 86400} days`);
  }
  return statement;
}
