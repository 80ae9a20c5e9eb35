/**
 * `portcullis-agent setup`: what an installer needs on a fresh HMI besides
 * the files, done by the agent's own checked code rather than by installer
 * scripting: the data folder, the trust store from a trust bundle, the
 * watch configuration, the destination and status folders. The MSI runs it
 * as a deferred custom action (as LocalSystem) with the TRUSTBUNDLE,
 * DESTINATION and STATUSFOLDER properties (docs/agent.md "MSI").
 *
 * Fail closed and never overwrite: a trust store or configuration already
 * there is checked and kept (an upgrade or repair changes neither; trust
 * changes go through `trust add/revoke`); without a trust store a bundle is
 * required; a bundle that is not a trust store or kiosk public keys, or that
 * holds a private key, stops the install. Every key trusted is logged before
 * the store is written, as `trust add` does.
 */
import { existsSync, lstatSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { publicKeyFromPem } from '../manifest/index.ts';
import { writeFileAtomic } from './atomic-file.ts';
import type { AuditLog } from './audit-log.ts';
import { AgentError } from './errors.ts';
import { readLocalFile } from './local-file.ts';
import { addKey, checkTrustStore, emptyTrustStore, loadTrustStore, makeStoreFolder, saveTrustStore, type TrustStore } from './trust-store.ts';
import { loadWatchConfig } from './watch-config.ts';

export interface SetupOptions {
  /** The watch configuration to write (its folder holds the trust store and the log). */
  readonly config: string;
  readonly destination: string;
  readonly statusFolder: string | null;
  /** A trust store (JSON) or one or more kiosk public keys (PEM); required when there is no trust store yet. */
  readonly trustBundle: string | null;
  readonly now: Date;
  readonly log: (trustPath: string) => AuditLog;
  readonly say: (line: string) => void;
}

const MAX_BUNDLE_BYTES = 4 * 1024 * 1024; // bytes: a trust store at its limits is smaller
const PUBLIC_KEY_BLOCK = /-----BEGIN PUBLIC KEY-----\r?\n[A-Za-z0-9+/=\r\n]+-----END PUBLIC KEY-----/gu;

/** The trust store a bundle stands for: a trust store file as it is, or a new store trusting every PEM key in it. */
export function trustStoreFromBundle(path: string, now: Date): TrustStore {
  let text: string;
  try {
    text = readLocalFile(path, MAX_BUNDLE_BYTES).toString('utf8');
  } catch (cause) {
    throw new AgentError('KEY_FILE_INVALID', `${path}: the trust bundle ${(cause as Error).message}: give a trust store (trust.json) or the kiosks' public keys (kiosk.pub.pem)`, { cause });
  }
  if (/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/u.test(text)) {
    throw new AgentError('KEY_IS_PRIVATE', `${path} holds a private key, which never leaves the kiosk: give the kiosks' public keys only (if this copy left the kiosk, treat the key as exposed)`);
  }
  if (text.trimStart().startsWith('{')) {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (cause) {
      throw new AgentError('TRUST_STORE_INVALID', `${path}: not valid JSON: give a trust store written by "portcullis-agent trust add" or kiosk public keys`, { cause });
    }
    return checkTrustStore(value, path);
  }
  const blocks = text.match(PUBLIC_KEY_BLOCK) ?? [];
  if (blocks.length === 0) throw new AgentError('KEY_FILE_INVALID', `${path} holds neither a trust store nor a PEM public key: give the kiosks' kiosk.pub.pem`);
  let store = emptyTrustStore(now);
  for (const pem of blocks) {
    try {
      publicKeyFromPem(pem);
    } catch (cause) {
      throw new AgentError('KEY_FILE_INVALID', `${path}: a PUBLIC KEY block is not an Ed25519 public key: give the kiosks' kiosk.pub.pem`, { cause });
    }
    store = addKey(store, { pem: pem.replace(/\r\n/gu, '\n') }, now).store;
  }
  return store;
}

/** Creates a folder and the missing ones above it, one level at a time; each must end up a real folder. */
function makeFolders(folder: string, what: string): void {
  const missing: string[] = [];
  for (let at = resolve(folder); !existsSync(at); at = dirname(at)) {
    missing.push(at);
    if (dirname(at) === at) break;
  }
  try {
    for (const level of missing.reverse()) mkdirSync(level);
  } catch (cause) {
    throw new AgentError('DESTINATION_INVALID', `${folder}: cannot create the ${what} (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`, { cause });
  }
  if (!lstatSync(folder).isDirectory()) throw new AgentError('DESTINATION_INVALID', `${folder}: the ${what} is not a real folder (a file, link or junction): remove it`);
}

/** Runs the set-up, saying what it did. */
export function setupHmi(options: SetupOptions): void {
  const config = resolve(options.config);
  const folder = dirname(config);
  const trustPath = join(folder, 'trust.json');
  makeStoreFolder(trustPath);
  // 1. The trust store: kept when there is one (checked), else made from the bundle.
  if (existsSync(trustPath)) {
    const store = loadTrustStore(trustPath);
    options.say(`kept the trust store ${trustPath} (${store.keys.length} key(s), sequence ${store.sequence})${options.trustBundle ? `; the trust bundle was not used: change trust with "portcullis-agent trust add"` : ''}`);
  } else {
    if (!options.trustBundle) {
      throw new AgentError('TRUST_STORE_INVALID', `${trustPath}: there is no trust store and no trust bundle was given: pass TRUSTBUNDLE=<trust.json or kiosk.pub.pem> (msiexec) or --trust-bundle`);
    }
    const store = trustStoreFromBundle(options.trustBundle, options.now);
    const log = options.log(trustPath);
    // Logged first, as `trust add` does: a change that cannot be logged is not made.
    for (const key of store.keys) {
      log.append({ event: 'trust.key-added', outcome: 'changed', code: 'TRUST_CHANGED', reason: `trusted kiosk key ${key.keyId} from the trust bundle given at set-up, from ${key.notBefore ?? 'now'} until ${key.notAfter ?? 'revoked'} (trust store sequence ${store.sequence})`, keyId: key.keyId });
    }
    saveTrustStore(trustPath, store);
    options.say(`wrote the trust store ${trustPath}: ${store.keys.length} key(s) from ${options.trustBundle}`);
  }
  // 2. The folders the service writes to.
  makeFolders(options.destination, 'destination folder');
  if (options.statusFolder) makeFolders(options.statusFolder, 'status folder');
  // 3. The configuration: kept when there is one (it must load), else written.
  if (existsSync(config)) {
    loadWatchConfig(config);
    options.say(`kept the configuration ${config}`);
  } else {
    const written = {
      formatVersion: 1, trust: 'trust.json', log: 'portcullis-agent.log.jsonl', destination: resolve(options.destination),
      hmiName: null, source: 'auto', pollIntervalSeconds: 2, settleSeconds: 2, notify: 'auto',
      statusFolder: options.statusFolder ? resolve(options.statusFolder) : null, requireStoragePolicy: true,
    };
    writeFileAtomic(config, `${JSON.stringify(written, null, 2)}\n`);
    loadWatchConfig(config); // what was written must load
    options.say(`wrote the configuration ${config}`);
  }
}
