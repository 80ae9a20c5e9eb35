import { PortcullisError } from '../../manifest/errors.ts';

/** Every code the audit store raises; each goes into logs and exit messages unchanged. */
export const AUDIT_ERROR_CODES = [
  /** The database cannot be opened or set up (path, permissions, WAL refused). */
  'AUDIT_OPEN_FAILED',
  /** The database was written by a newer kiosk: this code does not know its schema. */
  'AUDIT_SCHEMA_TOO_NEW',
  /** A read-only open found a schema older than this code, which it may not migrate. */
  'AUDIT_SCHEMA_OUTDATED',
  /** An SQLite database with tables but no audit schema: someone else's database, never migrated into (nothing is written to it). */
  'AUDIT_NOT_AN_AUDIT_LOG',
  /** A record could not be committed: the operation it records must fail closed. */
  'AUDIT_WRITE_FAILED',
  /** A record's content is malformed or contradicts itself (a caller bug): nothing was written. */
  'AUDIT_INVALID_RECORD',
  /** beginScan for a scan id that is already in the log. */
  'AUDIT_SCAN_EXISTS',
  /** finishScan for a scan id that was never begun. */
  'AUDIT_SCAN_UNKNOWN',
  /** finishScan for a scan that already has its outcome. */
  'AUDIT_SCAN_FINISHED',
] as const;

export type AuditErrorCode = (typeof AUDIT_ERROR_CODES)[number];

export class AuditError extends PortcullisError<AuditErrorCode> {}
