/**
 * The agent's error and decision codes. Errors (AgentError) stop a command;
 * decision codes (drive and file results) are outcomes that go into the log
 * unchanged so security staff can filter on them. docs/agent.md lists them all.
 */
import { MANIFEST_ERROR_CODES, PortcullisError, type ManifestErrorCode } from '../manifest/index.ts';

/** Codes of errors that stop a command (exit code 1, or 64 for USAGE). */
export const AGENT_ERROR_CODES = [
  'USAGE',
  /** The trust store is missing, unreadable, not JSON or fails its schema. */
  'TRUST_STORE_INVALID',
  /** A trust change was refused (duplicate key, revoked key, unknown key id). */
  'TRUST_CHANGE_REFUSED',
  /** The watch configuration file is unreadable or fails its schema. */
  'CONFIG_INVALID',
  /** A log record could not be written: the operation failed closed. */
  'LOG_WRITE_FAILED',
  /** The log's last record is torn or does not verify: nothing more is appended. */
  'LOG_CORRUPT',
  /** `log verify` or `log export` found a broken hash chain. */
  'LOG_CHAIN_BROKEN',
  /** The destination folder is unusable (missing, a symlink, outside policy). */
  'DESTINATION_INVALID',
  /** A drive identity file (--identity) is unreadable or malformed. */
  'IDENTITY_INVALID',
  /** The file given to `trust add` is missing, not a file, or not an Ed25519 public key in PEM form. */
  'KEY_FILE_INVALID',
  /** The file given to `trust add` is a private key: an HMI takes the kiosk's public key (kiosk.pub.pem) only. */
  'KEY_IS_PRIVATE',
  /** The drive path given to verify or import (or a drive the service listed) does not exist or is not a folder. */
  'DRIVE_NOT_FOUND',
  /** The log named by --log (log verify, log export) does not exist or is not a readable regular file. */
  'LOG_UNREADABLE',
] as const;
export type AgentErrorCode = (typeof AGENT_ERROR_CODES)[number];

export class AgentError extends PortcullisError<AgentErrorCode> {}

/** Why a whole drive is refused; besides these, every ManifestError code. */
export const DRIVE_REFUSAL_CODES = [
  'NO_MANIFEST',
  'MANIFEST_UNREADABLE',
  'MANIFEST_TOO_OLD',
  'MEDIA_MISMATCH',
  'DRIVE_UNREADABLE',
  'DRIVE_LIMIT_EXCEEDED',
] as const;
export type DriveRefusalCode = (typeof DRIVE_REFUSAL_CODES)[number] | ManifestErrorCode;
export const ALL_DRIVE_REFUSAL_CODES: readonly DriveRefusalCode[] = [...DRIVE_REFUSAL_CODES, ...MANIFEST_ERROR_CODES];

/** Why one file is refused. */
export const FILE_REFUSAL_CODES = [
  /** On the drive but not in the manifest (OPSWAT calls these concealed files). */
  'FILE_UNLISTED',
  'FILE_HASH_MISMATCH',
  'FILE_SIZE_MISMATCH',
  /** Listed in the manifest but not on the drive. */
  'FILE_MISSING',
  /** Listed, but on the drive it is a symlink, folder, device or pipe. */
  'FILE_NOT_REGULAR',
  /** Listed, but reading it failed (I/O error, drive removed, changed under us). */
  'FILE_UNREADABLE',
  /** On the drive and listed in the manifest's predicate.blocked. */
  'BLOCKED_AT_KIOSK',
  /** The name is unsafe on Windows or not valid Unicode. */
  'UNSAFE_NAME',
  /** The destination path would leave the destination folder or is too long. */
  'DESTINATION_UNSAFE',
  /** A file or folder of that name is already at the destination (policy refuse or skip). */
  'DESTINATION_CLASH',
  /** Writing to the destination failed; nothing partial was left. */
  'COPY_FAILED',
  /** The operation was cancelled (drive removed, service stopping) before this file. */
  'ABORTED',
] as const;
export type FileRefusalCode = (typeof FILE_REFUSAL_CODES)[number];

/** Codes of the service's removable-storage policy check (event agent.storage-policy). */
export const STORAGE_POLICY_CODES = [
  /** Deny_All is 1: interactive users cannot open removable storage; drives reach the HMI only through the agent. */
  'STORAGE_POLICY_ON',
  /** Deny_All is missing, not 1, not a REG_DWORD, or could not be read: users may bypass the agent. */
  'STORAGE_POLICY_OFF',
  /** The watch configuration says requireStoragePolicy: false; the policy is not checked (a pilot only). */
  'STORAGE_POLICY_NOT_REQUIRED',
] as const;
export type StoragePolicyCode = (typeof STORAGE_POLICY_CODES)[number];

/** Human text for the person at the HMI, by drive code. */
export const DRIVE_CODE_ADVICE: Record<(typeof DRIVE_REFUSAL_CODES)[number], string> = {
  NO_MANIFEST: 'the drive carries no Portcullis manifest: take it to the kiosk first',
  MANIFEST_UNREADABLE: 'the manifest on the drive cannot be read: rescan at the kiosk',
  MANIFEST_TOO_OLD: 'the approval is older than this HMI accepts: rescan at the kiosk',
  MEDIA_MISMATCH: 'the manifest was issued for a different drive: rescan this drive at the kiosk',
  DRIVE_UNREADABLE: 'the drive cannot be read',
  DRIVE_LIMIT_EXCEEDED: 'the drive holds more files or folders than this HMI accepts',
};
