/**
 * The scan ledger: what one scan learns about a drive (the walk's entries,
 * name collisions, every file's decision) kept in a scratch SQLite file
 * rather than on the JS heap, so the kiosk's memory stays flat from a
 * thousand files to a hundred thousand. Reads come back in pages of a few
 * hundred rows; no query keeps a cursor open between pages, so reads and
 * writes may interleave freely.
 *
 * The file is unlinked as soon as it is set up: Linux keeps it while the
 * handle is open, and nothing about a drive's names outlives the scan, not
 * even a crash. It is scratch, not a record (the audit store is the record):
 * its journal is in memory and nothing is fsynced.
 */
import { randomBytes } from 'node:crypto';
import { rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { collisionKey, PortcullisError, type EntryKind } from '../../manifest/index.ts';
import type { AllowlistEntry } from '../core/allowlist.ts';
import type { FileDecision, FileVerdict, Reason } from '../core/decide.ts';
import type { WalkEntry } from './walk.ts';

const PAGE_ROWS = 256; // rows per read and per write batch
const DETAILS_PER_ENTRY = 3; // other names given in a same-name reason; the rest are counted

/**
 * The ledger failed (its work folder is full or gone): the scan cannot go on
 * and the drive is rejected with WORK_FOLDER_FAILED, never partly approved.
 */
export class ScanLedgerError extends PortcullisError<'WORK_FOLDER_FAILED'> {}

function ledgerFailure(dir: string, error: unknown): ScanLedgerError {
  const code = (error as { code?: unknown }).code;
  const what = `${typeof code === 'string' ? `${code}: ` : ''}${error instanceof Error ? error.message : String(error)}`;
  return new ScanLedgerError('WORK_FOLDER_FAILED', `the scan's ledger in the work folder ${JSON.stringify(dir)} failed (${what}): free space there or choose another --work-dir, then scan the drive again`, { cause: error });
}

/** A file the walk listed, with the collision reasons found for its name. */
export interface LedgerEntry {
  readonly id: number;
  readonly entry: WalkEntry;
  readonly collisions: readonly Reason[];
}

interface EntryRow {
  id: number;
  path: string | null;
  display: string;
  raw: Buffer;
  kind: EntryKind;
  size: number;
  depth: number;
  ino: number;
  dev: number;
  coll: string;
}

interface FileRow {
  id: number;
  sort_key: Buffer;
  path: string | null;
  display: string;
  size: number;
  sha256: string | null;
  blake3: string | null;
  verdict: FileVerdict;
  reasons: string;
  allowlist_entry: string | null;
  controlled_class: string | null;
}

/** JS strings order by UTF-16 code units; UTF-16BE bytes compared as SQLite BLOBs keep that order exactly. */
function sortKey(display: string): Buffer {
  return Buffer.from(display, 'utf16le').swap16();
}

const SCHEMA = `
  CREATE TABLE entries (
    id INTEGER PRIMARY KEY, path TEXT, display TEXT NOT NULL, raw BLOB NOT NULL, kind TEXT NOT NULL,
    size INTEGER NOT NULL, depth INTEGER NOT NULL, ino, dev, ckey TEXT
  );
  CREATE INDEX entries_ckey ON entries (ckey);
  CREATE TABLE collisions (entry_id INTEGER NOT NULL, detail TEXT NOT NULL);
  CREATE INDEX collisions_entry ON collisions (entry_id);
  CREATE TABLE files (
    id INTEGER PRIMARY KEY, entry_id INTEGER, sort_key BLOB NOT NULL, path TEXT, display TEXT NOT NULL,
    size INTEGER NOT NULL, sha256 TEXT, blake3 TEXT, verdict TEXT NOT NULL, reasons TEXT NOT NULL,
    allowlist_entry TEXT, controlled_class TEXT
  );
  CREATE INDEX files_order ON files (sort_key);
  CREATE UNIQUE INDEX files_entry ON files (entry_id) WHERE entry_id IS NOT NULL;
`;

export class ScanLedger {
  readonly #db: Database.Database;
  readonly #insertEntry: Database.Statement;
  readonly #insertFile: Database.Statement;
  #pendingEntries: unknown[][] = [];
  #pendingFiles: unknown[][] = [];
  #entries = 0;
  #files = 0;
  #passing = 0;
  #closed = false;

  readonly #dir: string;

  private constructor(db: Database.Database, dir: string) {
    this.#db = db;
    this.#dir = dir;
    this.#insertEntry = db.prepare('INSERT INTO entries (id, path, display, raw, kind, size, depth, ino, dev, ckey) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)');
    this.#insertFile = db.prepare(`INSERT INTO files (entry_id, sort_key, path, display, size, sha256, blake3, verdict, reasons, allowlist_entry, controlled_class)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  }

  /** A new, empty ledger in `dir` (which should be the kiosk's private work folder). */
  static open(dir: string): ScanLedger {
    const path = join(dir, `.scan-ledger-${randomBytes(8).toString('hex')}.db`);
    let db: Database.Database;
    try {
      db = new Database(path);
    } catch (error) {
      throw ledgerFailure(dir, error);
    }
    try {
      // Scratch: no journal file (better-sqlite3's defensive mode refuses OFF) and no fsync.
      // Batches append to fresh tables, so the in-memory journal stays a few pages.
      const mode = db.pragma('journal_mode = MEMORY', { simple: true });
      if (mode !== 'memory') throw new Error(`the scan ledger needs journal_mode=MEMORY; SQLite kept ${String(mode)}`);
      db.pragma('synchronous = OFF');
      // Sorts for the collision queries stay in memory (they hold only colliding names), so no
      // drive name lands in a SQLite temporary file outside the work folder.
      db.pragma('temp_store = MEMORY');
      db.pragma('locking_mode = EXCLUSIVE');
      db.pragma('cache_size = -2048'); // KiB: a small, bounded page cache, whatever the drive holds (better-sqlite3's default is 16 MiB)
      db.exec(SCHEMA);
      unlinkSync(path);
      return new ScanLedger(db, dir);
    } catch (error) {
      db.close();
      rmSync(path, { force: true }); // best effort: the first error is the one to report
      throw ledgerFailure(dir, error);
    }
  }

  /** Files listed so far (regular or not; folders are not counted). */
  get entryCount(): number {
    return this.#entries;
  }

  /** Decisions recorded so far, and how many of them let the file pass. */
  get counts(): { readonly files: number; readonly passing: number } {
    return { files: this.#files, passing: this.#passing };
  }

  /** Records a non-folder entry from the walk; entries are scanned in the order they were added. */
  addEntry(entry: WalkEntry): void {
    this.#entries++;
    const ckey = entry.path === null ? null : collisionKey(entry.path);
    this.#pendingEntries.push([this.#entries, entry.path, entry.display, entry.rawPath, entry.kind, entry.size, entry.depth, entry.ino, entry.dev, ckey]);
    if (this.#pendingEntries.length >= PAGE_ROWS) this.#guard(() => this.#flushEntries());
  }

  /** Records a file's decision; `entryId` is null for what the walk could not list as a file (deep folders, unreadable folders, unseen names). */
  addFile(entryId: number | null, f: FileDecision): void {
    this.#files++;
    if (f.verdict !== 'blocked') this.#passing++;
    this.#pendingFiles.push([
      entryId, sortKey(f.display), f.path, f.display, f.size, f.digest?.sha256 ?? null, f.digest?.blake3 ?? null, f.verdict,
      JSON.stringify(f.reasons.map((r) => ({ code: r.code, detail: r.detail }))),
      f.allowlistEntry === null ? null : JSON.stringify(f.allowlistEntry), f.controlledClass,
    ]);
    if (this.#pendingFiles.length >= PAGE_ROWS) this.#guard(() => this.#flushFiles());
  }

  /** Runs a ledger operation; a SQLite failure (full or vanished work folder) becomes a ScanLedgerError. */
  #guard<T>(operation: () => T): T {
    try {
      return operation();
    } catch (error) {
      if (error instanceof ScanLedgerError || this.#closed) throw error;
      throw ledgerFailure(this.#dir, error);
    }
  }

  /**
   * Names that would collide on Windows or FAT (case folding and NFC, as
   * `collisionKey`): files with the same key, and a file whose name is, in
   * another letter case, a folder holding other files (every file under that
   * folder collides with it). Call once, after the walk.
   */
  findCollisions(): void {
    this.#guard(() => this.#findCollisions());
  }

  #findCollisions(): void {
    this.#flushEntries();
    // All in SQL, so a hostile drive of colliding names costs no JS memory.
    this.#db.transaction(() => {
      // Same key: each member names up to DETAILS_PER_ENTRY of the others.
      this.#db.prepare(`
        INSERT INTO collisions (entry_id, detail)
        SELECT m.id, 'collides with '
          || (SELECT group_concat('"' || o.display || '"', ', ' ORDER BY o.id)
              FROM (SELECT id, display FROM entries o WHERE o.ckey = m.ckey AND o.id != m.id ORDER BY o.id LIMIT ${DETAILS_PER_ENTRY}) o)
          || CASE WHEN n.members - 1 > ${DETAILS_PER_ENTRY} THEN ' and ' || (n.members - 1 - ${DETAILS_PER_ENTRY}) || ' more' ELSE '' END
          || ' on Windows (names differ only in letter case)'
        FROM entries m JOIN (SELECT ckey, count(*) AS members FROM entries WHERE ckey IS NOT NULL GROUP BY ckey HAVING count(*) > 1) n ON n.ckey = m.ckey
        ORDER BY m.id`).run();
      // A file's key used as a folder: keys in (k || '/', k || '0') are exactly those under k/ ('0' follows '/').
      // One reason per file under such folders, however many of its folders clash.
      this.#db.prepare(`
        INSERT INTO collisions (entry_id, detail)
        SELECT p.under_id, 'its folder collides on Windows with the file "' || e.display || '"'
          || CASE WHEN p.files > 1 THEN ' and ' || (p.files - 1) || ' more' ELSE '' END
          || ' (the same name in another letter case)'
        FROM (SELECT g.id AS under_id, min(f.id) AS first_file, count(*) AS files
              FROM entries f JOIN entries g ON g.ckey > f.ckey || '/' AND g.ckey < f.ckey || '0'
              WHERE f.ckey IS NOT NULL GROUP BY g.id) p
        JOIN entries e ON e.id = p.first_file
        ORDER BY p.under_id`).run();
      this.#db.prepare(`
        INSERT INTO collisions (entry_id, detail)
        SELECT f.id, 'collides on Windows with the folder holding "'
          || (SELECT display FROM entries g WHERE g.ckey > f.ckey || '/' AND g.ckey < f.ckey || '0' ORDER BY g.id LIMIT 1) || '"'
          || CASE WHEN f.under > 1 THEN ' and ' || (f.under - 1) || ' more' ELSE '' END
          || ' (the same name in another letter case)'
        FROM (SELECT f.id, f.ckey, count(*) AS under FROM entries f JOIN entries g ON g.ckey > f.ckey || '/' AND g.ckey < f.ckey || '0'
              WHERE f.ckey IS NOT NULL GROUP BY f.id) f
        ORDER BY f.id`).run();
    })();
  }

  /** Listed entries in walk order from `afterId` on, a page at a time, with their collision reasons. */
  entriesAfter(afterId: number): LedgerEntry[] {
    return this.#guard(() => this.#entriesAfter(afterId));
  }

  #entriesAfter(afterId: number): LedgerEntry[] {
    this.#flushEntries();
    const rows = this.#db.prepare(`
      SELECT e.id, e.path, e.display, e.raw, e.kind, e.size, e.depth, e.ino, e.dev,
        (SELECT json_group_array(detail) FROM (SELECT detail FROM collisions c WHERE c.entry_id = e.id ORDER BY c.rowid)) AS coll
      FROM entries e WHERE e.id > ? ORDER BY e.id LIMIT ${PAGE_ROWS}`).all(afterId) as EntryRow[];
    return rows.map(toLedgerEntry);
  }

  /** Listed entries with no decision yet, in walk order from `afterId` on, a page at a time. */
  undecidedAfter(afterId: number): LedgerEntry[] {
    return this.#guard(() => this.#undecidedAfter(afterId));
  }

  #undecidedAfter(afterId: number): LedgerEntry[] {
    this.#flushEntries();
    this.#flushFiles();
    const rows = this.#db.prepare(`
      SELECT e.id, e.path, e.display, e.raw, e.kind, e.size, e.depth, e.ino, e.dev, '[]' AS coll
      FROM entries e WHERE e.id > ? AND NOT EXISTS (SELECT 1 FROM files f WHERE f.entry_id = e.id)
      ORDER BY e.id LIMIT ${PAGE_ROWS}`).all(afterId) as EntryRow[];
    return rows.map(toLedgerEntry);
  }

  /** Every decision in display order; each iteration reads the ledger afresh, a page at a time. */
  files(): Iterable<FileDecision> {
    return {
      [Symbol.iterator]: () => this.#iterateFiles(),
    };
  }

  *#iterateFiles(): Generator<FileDecision> {
    if (this.#closed) throw new Error('the scan ledger was closed before its files were read');
    const { first, next } = this.#guard(() => {
      this.#flushFiles();
      return {
        first: this.#db.prepare(`SELECT * FROM files ORDER BY sort_key, id LIMIT ${PAGE_ROWS}`),
        next: this.#db.prepare(`SELECT * FROM files WHERE (sort_key, id) > (?, ?) ORDER BY sort_key, id LIMIT ${PAGE_ROWS}`),
      };
    });
    let page = this.#guard(() => first.all() as FileRow[]);
    while (page.length > 0) {
      for (const row of page) yield toFileDecision(row);
      if (page.length < PAGE_ROWS) return;
      const last = page[page.length - 1]!;
      if (this.#closed) throw new Error('the scan ledger was closed while its files were being read');
      page = this.#guard(() => next.all(last.sort_key, last.id) as FileRow[]);
    }
  }

  /** Releases the ledger (its file is already gone); further reads fail. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pendingEntries = [];
    this.#pendingFiles = [];
    this.#db.close();
  }

  #flushEntries(): void {
    if (this.#pendingEntries.length === 0) return;
    const rows = this.#pendingEntries;
    this.#pendingEntries = [];
    this.#db.transaction(() => { for (const row of rows) this.#insertEntry.run(...row); })();
  }

  #flushFiles(): void {
    if (this.#pendingFiles.length === 0) return;
    const rows = this.#pendingFiles;
    this.#pendingFiles = [];
    this.#db.transaction(() => { for (const row of rows) this.#insertFile.run(...row); })();
  }
}

function toLedgerEntry(row: EntryRow): LedgerEntry {
  const details = JSON.parse(row.coll) as string[];
  return {
    id: row.id,
    entry: { path: row.path, display: row.display, rawPath: row.raw, kind: row.kind, size: row.size, depth: row.depth, ino: row.ino, dev: row.dev },
    collisions: details.map((detail) => ({ code: 'UNSAFE_NAME' as const, detail })),
  };
}

function toFileDecision(row: FileRow): FileDecision {
  return {
    path: row.path,
    display: row.display,
    size: row.size,
    digest: row.sha256 !== null && row.blake3 !== null ? { sha256: row.sha256, blake3: row.blake3 } : null,
    verdict: row.verdict,
    reasons: JSON.parse(row.reasons) as Reason[],
    allowlistEntry: row.allowlist_entry === null ? null : (JSON.parse(row.allowlist_entry) as AllowlistEntry),
    controlledClass: row.controlled_class,
  };
}
