/**
 * `portcullis-kiosk keygen`: a kiosk signing key. The private key is written
 * with mode 0600 and never overwritten; the public key is what HMI agents pin.
 */
import { constants } from 'node:fs';
import { mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateSigningKey, PortcullisError, publicKeyToPem, signingKeyFromPem, signingKeyToPem, type SigningKey } from '../manifest/index.ts';

export type KeyFileErrorCode = 'KEY_EXISTS' | 'KEY_UNREADABLE' | 'KEY_PERMISSIONS';
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
    throw cause;
  }
  try {
    await handle.writeFile(content);
    await handle.chmod(mode); // the umask may have narrowed or widened the create mode
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export interface GeneratedKey {
  readonly keyId: string;
  readonly privateKeyPath: string;
  readonly publicKeyPath: string;
}

export async function generateKeyFiles(dir: string): Promise<GeneratedKey> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const key = generateSigningKey();
  const privateKeyPath = join(dir, PRIVATE_KEY_FILE);
  const publicKeyPath = join(dir, PUBLIC_KEY_FILE);
  await writeExclusive(privateKeyPath, signingKeyToPem(key), 0o600);
  await writeExclusive(publicKeyPath, publicKeyToPem(key.publicKey), 0o644);
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
    if ((stat.mode & 0o077) !== 0) {
      throw new KeyFileError('KEY_PERMISSIONS', `${path} is readable by group or others (mode ${(stat.mode & 0o777).toString(8)}); run chmod 600 on it`);
    }
    return signingKeyFromPem(await handle.readFile('utf8'));
  } finally {
    await handle.close();
  }
}

export async function readPublicKeyPem(path: string): Promise<string> {
  return readFile(path, 'utf8');
}
