/**
 * The audit database's schema as an ordered list of migrations. A migration is
 * frozen once released: a change is a new entry at the end, never an edit.
 * Ledger tables are append-only (triggers refuse UPDATE and DELETE); a later
 * migration may add tables or nullable columns to them, never change the
 * meaning of a column, because old rows' hashes cover their columns by name
 * (README.md "Record hash").
 */

export interface Migration {
  readonly version: number;
  readonly description: string;
  /** SQL statements, run in order inside one transaction. */
  readonly steps: readonly string[];
}

export const GENESIS_HASH = '0'.repeat(64);

/** Tables whose every row is a record of the hash chain, in no particular order. */
export const LEDGER_TABLES = ['events', 'scans', 'devices', 'files', 'reasons', 'scan_results'] as const;
export type LedgerTable = (typeof LEDGER_TABLES)[number];

/** Columns every ledger row carries besides its content; the hash covers every other column. */
export const CHAIN_COLUMNS = ['seq', 'prev_hash', 'hash'] as const;

function appendOnly(table: string): string[] {
  return [
    `CREATE TRIGGER ${table}_no_update BEFORE UPDATE ON ${table} BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END`,
    `CREATE TRIGGER ${table}_no_delete BEFORE DELETE ON ${table} BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END`,
  ];
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'hash-chained ledger: events, scans, devices, files, reasons, scan_results; chain_head',
    steps: [
      // The last record's seq and hash, rewritten in every write transaction: a checkpoint that reveals a cut tail.
      `CREATE TABLE chain_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL
      ) STRICT`,
      `INSERT INTO chain_head (id, seq, hash) VALUES (1, 0, '${GENESIS_HASH}')`,
      `CREATE TRIGGER chain_head_forward BEFORE UPDATE ON chain_head WHEN NEW.seq <= OLD.seq OR NEW.id <> 1
        BEGIN SELECT RAISE(ABORT, 'the chain head only moves forward'); END`,
      `CREATE TRIGGER chain_head_no_delete BEFORE DELETE ON chain_head BEGIN SELECT RAISE(ABORT, 'the chain head cannot be deleted'); END`,
      `CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        type TEXT NOT NULL,
        scan_id TEXT,
        data TEXT NOT NULL
      ) STRICT`,
      `CREATE TABLE scans (
        seq INTEGER PRIMARY KEY,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        scan_id TEXT NOT NULL UNIQUE,
        kiosk_id TEXT NOT NULL,
        operator_id TEXT,
        started_at TEXT NOT NULL
      ) STRICT`,
      `CREATE TABLE devices (
        seq INTEGER PRIMARY KEY,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        scan_id TEXT NOT NULL UNIQUE REFERENCES scans (scan_id),
        usb_vendor_id TEXT,
        usb_product_id TEXT,
        usb_serial TEXT,
        manufacturer TEXT,
        product TEXT,
        filesystem TEXT,
        volume_id TEXT,
        label TEXT,
        capacity INTEGER
      ) STRICT`,
      `CREATE TABLE files (
        seq INTEGER PRIMARY KEY,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        scan_id TEXT NOT NULL REFERENCES scans (scan_id),
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT,
        blake3 TEXT,
        verdict TEXT NOT NULL CHECK (verdict IN ('clean', 'allowlisted', 'blocked')),
        controlled_class TEXT,
        allowlist_vendor TEXT,
        allowlist_product TEXT,
        allowlist_version TEXT,
        allowlist_file TEXT,
        allowlist_source TEXT
      ) STRICT`,
      `CREATE TABLE reasons (
        seq INTEGER PRIMARY KEY,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        scan_id TEXT NOT NULL REFERENCES scans (scan_id),
        level TEXT NOT NULL CHECK (level IN ('file', 'drive')),
        file_seq INTEGER REFERENCES files (seq),
        code TEXT NOT NULL,
        detail TEXT NOT NULL,
        CHECK ((level = 'file') = (file_seq IS NOT NULL))
      ) STRICT`,
      // Written last in finishScan's transaction: the outcome seals the scan's file and reason rows before it.
      `CREATE TABLE scan_results (
        seq INTEGER PRIMARY KEY,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        scan_id TEXT NOT NULL UNIQUE REFERENCES scans (scan_id),
        finished_at TEXT NOT NULL,
        verdict TEXT NOT NULL CHECK (verdict IN ('approved', 'partial', 'rejected')),
        clamav_version TEXT,
        clamav_db_version TEXT,
        clamav_db_time TEXT,
        yara_engine TEXT,
        yara_rule_set_digest TEXT,
        yara_rule_count INTEGER,
        policy_id TEXT NOT NULL,
        policy_digest TEXT NOT NULL,
        allowlist_version TEXT,
        allowlist_digest TEXT,
        file_count INTEGER NOT NULL,
        byte_count INTEGER NOT NULL,
        entry_count INTEGER NOT NULL,
        walk_ms INTEGER NOT NULL,
        scan_ms INTEGER NOT NULL,
        total_ms INTEGER NOT NULL,
        manifest_folder_extras TEXT NOT NULL,
        manifest_digest TEXT,
        manifest_key_id TEXT,
        manifest_expires_at TEXT
      ) STRICT`,
      'CREATE INDEX events_scan ON events (scan_id)',
      'CREATE INDEX scans_started ON scans (started_at)',
      'CREATE INDEX devices_serial ON devices (usb_serial)',
      'CREATE INDEX files_scan ON files (scan_id)',
      'CREATE INDEX files_sha256 ON files (sha256)',
      'CREATE INDEX files_blake3 ON files (blake3)',
      'CREATE INDEX reasons_scan ON reasons (scan_id)',
      'CREATE INDEX reasons_file ON reasons (file_seq)',
      ...['events', 'scans', 'devices', 'files', 'reasons', 'scan_results'].flatMap(appendOnly),
    ],
  },
];

export const SCHEMA_VERSION = MIGRATIONS.at(-1)?.version ?? 0;
