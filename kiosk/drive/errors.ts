import { PortcullisError } from '../../manifest/errors.ts';

/** Every code the media layer (image building, access, identity) can raise. */
export const MEDIA_ERROR_CODES = [
  /** The volume has no room for what was to be written; nothing partial was left. */
  'MEDIA_FULL',
  /** A drive-image spec or write request is malformed (size, label, volume id, path). */
  'MEDIA_SPEC_INVALID',
  /** A name the filesystem cannot hold (forbidden character, too long, case-only clash). */
  'MEDIA_NAME_UNSUPPORTED',
  /** The bytes are not a FAT12/16/32 or exFAT volume this code understands. */
  'MEDIA_UNRECOGNIZED',
  /** The volume's structures contradict themselves (bad chain, checksum, loop, out-of-range cluster). */
  'MEDIA_CORRUPT',
  /** The volume holds more entries, depth or bytes than the configured bounds allow. */
  'MEDIA_LIMIT_EXCEEDED',
  /** A path asked for is not on the volume. */
  'MEDIA_NOT_FOUND',
  /** An external tool (mkfs, mtools, losetup, mount) failed or is missing. */
  'MEDIA_TOOL_FAILED',
  /** Reading or writing the image or device itself failed. */
  'MEDIA_IO',
  /**
   * The sandbox the volume readers run in cannot start (bubblewrap or prlimit
   * missing, user namespaces off): nothing was read; install what the message names.
   */
  'MEDIA_SANDBOX_UNAVAILABLE',
] as const;

export type MediaErrorCode = (typeof MEDIA_ERROR_CODES)[number];

export class MediaError extends PortcullisError<MediaErrorCode> {}
