/** The publisher's errors: one class, a closed set of codes (docs/updates.md lists them). */
import { PortcullisError } from '../manifest/index.ts';

export type PublishErrorCode =
  | 'UPDATE_KEYS_EXIST' // keys init would overwrite a role key
  | 'UPDATE_KEY_MISSING' // a role key the command needs is not in --keys
  | 'UPDATE_KEY_UNREADABLE' // a role key file cannot be read or is not an Ed25519 private key
  | 'UPDATE_KEY_PERMISSIONS' // a role key file that group or others can read
  | 'UPDATE_KEY_MISMATCH' // a role key that the repository's root does not name for its role
  | 'UPDATE_SOURCE_INVALID' // --from holds a file that is not a target of the format, or a bad one
  | 'UPDATE_REPO_INVALID' // --repo holds something that is not this publisher's repository
  | 'UPDATE_WRITE_FAILED'; // the repository or a key could not be written

export class PublishError extends PortcullisError<PublishErrorCode> {}

/** Bad command-line input: exit 64 with the usage text. */
export class UsageError extends Error {}
