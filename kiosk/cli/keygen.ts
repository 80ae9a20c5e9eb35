/**
 * `portcullis-kiosk keygen`: a kiosk signing key. The private key is written
 * with mode 0600 and never overwritten; the public key is what HMI agents pin.
 */
import { constants } from 'node:fs';
import { open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { generateSigningKey, PortcullisError, publicKeyToPem, signingKeyFromPem, signingKeyToPem, type SigningKey } from '../../manifest/index.ts';
import { makeFolder } from './path-option.ts';

export type KeyFileErrorCode = 'KEY_EXISTS' | 'KEY_UNREADABLE' | 'KEY_PERMISSIONS' | 'KEY_WRITE_FAILED' | 'KEY_REQUIRED';
export class KeyFileError extends PortcullisError<KeyFileErrorCode> {}

export const PRIVATE_KEY_FILE = 'kiosk.key';
export const PUBLIC_KEY_FILE = 'kiosk.pub.pem';

async function writeExclusive(path: string, content: string, mode: number): Promise<void> {
  let handle;
  try {
    handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new KeyFileError('KEY_EXISTS', `${path} already exists; keygen never overwrites a key (move it away first)`, { cause });
    }
    throw writeFailed(path, cause);
  }
  try {
    await handle.writeFile(content);
    await handle.chmod(mode); // the umask may have narrowed or widened the create mode
    await handle.sync();
  } catch (cause) {
    await handle.close().catch(() => undefined);
    await unlink(path).catch(() => undefined); // a half-written key is no key
    throw writeFailed(path, cause);
  }
  await handle.close();
}

function writeFailed(path: string, cause: unknown): KeyFileError {
  const why = (cause as NodeJS.ErrnoException).code ?? (cause as Error).message;
  return new KeyFileError('KEY_WRITE_FAILED', `cannot write ${path} (${why}): choose a folder the kiosk's account can write (--out)`, { cause });
}

export interface GeneratedKey {
  readonly keyId: string;
  readonly privateKeyPath: string;
  readonly publicKeyPath: string;
}

export async function generateKeyFiles(dir: string): Promise<GeneratedKey> {
  await makeFolder(dir, '--out', 0o700);
  const key = generateSigningKey();
  const privateKeyPath = join(dir, PRIVATE_KEY_FILE);
  const publicKeyPath = join(dir, PUBLIC_KEY_FILE);
  await writeExclusive(privateKeyPath, signingKeyToPem(key), 0o600);
  try {
    await writeExclusive(publicKeyPath, publicKeyToPem(key.publicKey), 0o644);
  } catch (error) {
    // Both files or neither: a private key without its public half cannot be handed to the agents.
    await unlink(privateKeyPath).catch(() => undefined);
    throw error;
  }
  return { keyId: key.keyId, privateKeyPath, publicKeyPath };
}

/** Loads a private key file, refusing one that others can read. */
export async function loadSigningKey(path: string): Promise<SigningKey> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (cause) {
    throw new KeyFileError('KEY_UNREADABLE', `cannot open the kiosk key ${path}: ${(cause as Error).message}`, { cause });
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new KeyFileError('KEY_UNREADABLE', `${path} is not a key file (${stat.isDirectory() ? 'a folder' : 'not a regular file'}): name the kiosk.key file keygen wrote`);
    if ((stat.mode & 0o077) !== 0) {
      throw new KeyFileError('KEY_PERMISSIONS', `${path} is readable by group or others (mode ${(stat.mode & 0o777).toString(8)}); run chmod 600 on it`);
    }
    const pem = await handle.readFile('utf8').catch((cause: unknown) => {
      throw new KeyFileError('KEY_UNREADABLE', `cannot read the kiosk key ${path}: ${(cause as Error).message}`, { cause });
    });
    return signingKeyFromPem(pem);
  } finally {
    await handle.close();
  }
}

export async function readPublicKeyPem(path: string): Promise<string> {
  return readFile(path, 'utf8');
}
