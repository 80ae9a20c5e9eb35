/**
 * The repository's role keys: one Ed25519 key per TUF role (root, targets,
 * snapshot, timestamp), each a PKCS#8 PEM file `<role>.key` (mode 0600) in
 * the keys folder. TUF names a key by the SHA-256 of its canonical JSON
 * (spec §4.2: keytype, scheme, keyval); the public half goes into root.json
 * as 64 hex characters (TUF's "ed25519" key type).
 */
import { createHash, sign, type KeyObject } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Key, Signature } from '@tufjs/models';
import { canonicalize, generateSigningKey, signingKeyFromPem, signingKeyToPem, type SigningKey } from '../manifest/index.ts';
import { UPDATE_ROLES, type UpdateRole } from '../manifest/update-repository.ts';
import { PublishError } from './errors.ts';

export interface RoleKey {
  readonly role: UpdateRole;
  readonly signing: SigningKey;
  /** TUF's key id (not the manifest's: TUF hashes the key's canonical JSON). */
  readonly keyId: string;
  readonly key: Key;
}

/** The key as root.json lists it. */
export function tufPublicKey(publicKey: KeyObject): { keyId: string; key: Key } {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  const raw = der.subarray(der.length - 32).toString('hex'); // Ed25519 SPKI: the last 32 bytes are the key
  const body = { keytype: 'ed25519', scheme: 'ed25519', keyval: { public: raw } };
  const keyId = createHash('sha256').update(canonicalize(body)).digest('hex');
  return { keyId, key: new Key({ keyID: keyId, keyType: 'ed25519', scheme: 'ed25519', keyVal: { public: raw } }) };
}

export function roleKeyOf(role: UpdateRole, signing: SigningKey): RoleKey {
  return { role, signing, ...tufPublicKey(signing.publicKey) };
}

/** A signer for Metadata.sign: Ed25519 over the canonical bytes it is given. */
export function signerOf(key: RoleKey): (data: Buffer) => Signature {
  return (data) => new Signature({ keyID: key.keyId, sig: sign(null, data, key.signing.privateKey).toString('hex') });
}

export const keyFile = (dir: string, role: UpdateRole): string => join(dir, `${role}.key`);

async function writeNewKey(path: string, key: SigningKey): Promise<void> {
  let handle;
  try {
    handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'EEXIST') throw new PublishError('UPDATE_KEYS_EXIST', `${path} already exists: keys are never overwritten (keys rotate replaces one on purpose)`, { cause });
    throw new PublishError('UPDATE_WRITE_FAILED', `cannot write ${path} (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}): choose a folder this account can write`, { cause });
  }
  try {
    await handle.writeFile(signingKeyToPem(key));
    await handle.chmod(0o600);
    await handle.sync();
  } catch (cause) {
    await handle.close().catch(() => undefined);
    await unlink(path).catch(() => undefined);
    throw new PublishError('UPDATE_WRITE_FAILED', `cannot write ${path}: ${(cause as Error).message}`, { cause });
  }
  await handle.close();
}

async function makeKeyFolder(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (cause) {
    throw new PublishError('UPDATE_WRITE_FAILED', `cannot make the keys folder ${dir} (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`, { cause });
  }
  const info = await stat(dir);
  if (!info.isDirectory()) throw new PublishError('UPDATE_WRITE_FAILED', `${dir} is not a folder`);
}

/** `keys init`: one new key per role; refuses when any of them exists (nothing is written then). */
export async function initRoleKeys(dir: string): Promise<RoleKey[]> {
  await makeKeyFolder(dir);
  const present = (await readdir(dir)).filter((n) => UPDATE_ROLES.some((r) => n === `${r}.key`));
  if (present.length > 0) throw new PublishError('UPDATE_KEYS_EXIST', `${dir} already holds ${present.join(', ')}: keys are never overwritten; use another folder, or keys rotate ROLE`);
  const keys = UPDATE_ROLES.map((role) => roleKeyOf(role, generateSigningKey()));
  const written: string[] = [];
  try {
    for (const k of keys) {
      await writeNewKey(keyFile(dir, k.role), k.signing);
      written.push(keyFile(dir, k.role));
    }
  } catch (error) {
    for (const path of written) await unlink(path).catch(() => undefined); // all four or none
    throw error;
  }
  return keys;
}

/** Reads one role's key; null when the file is not there (a key kept offline). */
export async function readRoleKey(dir: string, role: UpdateRole): Promise<RoleKey | null> {
  const path = keyFile(dir, role);
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new PublishError('UPDATE_KEY_UNREADABLE', `cannot open ${path}: ${(cause as Error).message}`, { cause });
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new PublishError('UPDATE_KEY_UNREADABLE', `${path} is not a regular file`);
    if ((info.mode & 0o077) !== 0) throw new PublishError('UPDATE_KEY_PERMISSIONS', `${path} is readable by group or others (mode ${(info.mode & 0o777).toString(8)}): run chmod 600 on it`);
    const pem = await handle.readFile('utf8');
    try {
      return roleKeyOf(role, signingKeyFromPem(pem));
    } catch (cause) {
      throw new PublishError('UPDATE_KEY_UNREADABLE', `${path} is not an Ed25519 private key (PKCS#8 PEM)`, { cause });
    }
  } finally {
    await handle.close();
  }
}

/** Reads a role's key, which the command cannot do without. */
export async function requireRoleKey(dir: string, role: UpdateRole, why: string): Promise<RoleKey> {
  const key = await readRoleKey(dir, role);
  if (!key) throw new PublishError('UPDATE_KEY_MISSING', `${keyFile(dir, role)} is missing: ${why}`);
  return key;
}

/**
 * `keys rotate ROLE`: a new key replaces the role's key file; the old one is
 * kept as `retired/<role>-<key id>.key` (a new root must still be signed by
 * the old root key). Returns the old and the new key.
 */
export async function rotateRoleKey(dir: string, role: UpdateRole): Promise<{ old: RoleKey; next: RoleKey; retiredPath: string }> {
  const old = await requireRoleKey(dir, role, `keys rotate ${role} replaces the current ${role} key, which must be there`);
  const retiredDir = join(dir, 'retired');
  await makeKeyFolder(retiredDir);
  const retiredPath = join(retiredDir, `${role}-${old.keyId.slice(0, 16)}.key`);
  const next = roleKeyOf(role, generateSigningKey());
  const fresh = join(dir, `.${role}.key.new`);
  await unlink(fresh).catch(() => undefined);
  await writeNewKey(fresh, next.signing);
  try {
    await rename(keyFile(dir, role), retiredPath);
    await rename(fresh, keyFile(dir, role));
  } catch (cause) {
    throw new PublishError('UPDATE_WRITE_FAILED', `cannot replace ${keyFile(dir, role)}: ${(cause as Error).message}`, { cause });
  }
  return { old, next, retiredPath };
}
