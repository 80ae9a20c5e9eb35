/**
 * The central review's PostgreSQL schema (docs/review.md "Central review").
 * Each source (kiosk or HMI) is enrolled by name; each of its hash chains
 * (a kiosk's audit log, an HMI's agent log; a reinstall starts a new one) is
 * a row of `chains`, named by the hash of its record 1. `records` holds every
 * chain record received once, keyed (chain, seq), with the state of its link
 * to the record before it; the content is kept in typed tables for the page's
 * queries. What was refused, rewritten or edited is kept as evidence, never
 * merged.
 */

export const CENTRAL_SCHEMA_VERSION = 1;

export const CENTRAL_SCHEMA = [
  `CREATE TABLE IF NOT EXISTS central_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
  `CREATE TABLE IF NOT EXISTS sources (
     id serial PRIMARY KEY, name text NOT NULL UNIQUE, kind text NOT NULL CHECK (kind IN ('kiosk', 'hmi')),
     enrolled_at timestamptz NOT NULL DEFAULT now(), disabled boolean NOT NULL DEFAULT false,
     last_seen timestamptz, last_address text, status jsonb, status_at timestamptz)`,
  // The plant a source belongs to, for the per-site views (a site with one plant needs none).
  `ALTER TABLE sources ADD COLUMN IF NOT EXISTS site text NOT NULL DEFAULT 'site'`,
  `CREATE TABLE IF NOT EXISTS chains (
     id serial PRIMARY KEY, source_id integer NOT NULL REFERENCES sources, genesis text NOT NULL, number integer NOT NULL,
     first_seen timestamptz NOT NULL, UNIQUE (source_id, genesis), UNIQUE (source_id, number))`,
  // Per-chain counts kept by each batch's transaction, so the hosts' health never counts millions of records.
  `ALTER TABLE chains ADD COLUMN IF NOT EXISTS records bigint NOT NULL DEFAULT 0, ADD COLUMN IF NOT EXISTS max_seq bigint NOT NULL DEFAULT 0,
     ADD COLUMN IF NOT EXISTS pending bigint NOT NULL DEFAULT 0, ADD COLUMN IF NOT EXISTS broken bigint NOT NULL DEFAULT 0,
     ADD COLUMN IF NOT EXISTS conflicts bigint NOT NULL DEFAULT 0`,
  // link: ok (prev is the hash of the record before), broken (it is not), pending (the record before has not arrived).
  `CREATE TABLE IF NOT EXISTS records (
     chain_id integer NOT NULL REFERENCES chains, seq bigint NOT NULL, hash text NOT NULL, prev text NOT NULL,
     msg_id text NOT NULL, time timestamptz, received_at timestamptz NOT NULL, link text NOT NULL CHECK (link IN ('ok', 'broken', 'pending')),
     PRIMARY KEY (chain_id, seq))`,
  `CREATE INDEX IF NOT EXISTS records_link ON records (chain_id) WHERE link <> 'ok'`,
  // A second, different record for a (chain, seq) already held: one of them was rewritten.
  `CREATE TABLE IF NOT EXISTS conflicts (
     chain_id integer NOT NULL REFERENCES chains, seq bigint NOT NULL, hash text NOT NULL, body bytea NOT NULL,
     received_at timestamptz NOT NULL, PRIMARY KEY (chain_id, seq, hash))`,
  // Messages refused whole, with the reason's code; the same frame refused again counts up, it is not a new row.
  `CREATE TABLE IF NOT EXISTS refusals (
     id bigserial PRIMARY KEY, source_id integer REFERENCES sources, source_name text NOT NULL, code text NOT NULL, detail text NOT NULL,
     chain text, seq bigint, frame_sha256 text NOT NULL, excerpt text NOT NULL, first_at timestamptz NOT NULL, last_at timestamptz NOT NULL,
     times integer NOT NULL DEFAULT 1, UNIQUE (source_name, frame_sha256, code))`,
  `CREATE TABLE IF NOT EXISTS k_scans (
     chain_id integer NOT NULL, seq bigint NOT NULL, source_id integer NOT NULL, scan_id text NOT NULL, kiosk_id text NOT NULL,
     operator_id text, started_at timestamptz, started_text text NOT NULL, recorded_at text NOT NULL, PRIMARY KEY (chain_id, seq), UNIQUE (chain_id, scan_id))`,
  `CREATE INDEX IF NOT EXISTS k_scans_started ON k_scans (started_at DESC)`,
  `CREATE INDEX IF NOT EXISTS k_scans_operator ON k_scans (operator_id, started_at DESC)`,
  `CREATE TABLE IF NOT EXISTS k_devices (
     chain_id integer NOT NULL, seq bigint NOT NULL, scan_id text NOT NULL, usb_vendor_id text, usb_product_id text, usb_serial text,
     manufacturer text, product text, filesystem text, volume_id text, label text, capacity bigint, PRIMARY KEY (chain_id, seq))`,
  `CREATE INDEX IF NOT EXISTS k_devices_scan ON k_devices (chain_id, scan_id)`,
  `CREATE INDEX IF NOT EXISTS k_devices_serial ON k_devices (usb_serial)`,
  `CREATE TABLE IF NOT EXISTS k_files (
     chain_id integer NOT NULL, seq bigint NOT NULL, scan_id text NOT NULL, path text NOT NULL, size bigint NOT NULL, sha256 text, blake3 text,
     verdict text NOT NULL, controlled_class text, allowlist_vendor text, allowlist_product text, allowlist_version text,
     allowlist_file text, allowlist_source text, PRIMARY KEY (chain_id, seq))`,
  `CREATE INDEX IF NOT EXISTS k_files_scan ON k_files (chain_id, scan_id)`,
  `CREATE INDEX IF NOT EXISTS k_files_sha256 ON k_files (sha256)`,
  `CREATE INDEX IF NOT EXISTS k_files_blake3 ON k_files (blake3)`,
  `CREATE TABLE IF NOT EXISTS k_reasons (
     chain_id integer NOT NULL, seq bigint NOT NULL, scan_id text NOT NULL, level text NOT NULL, file_seq bigint, code text NOT NULL,
     detail text NOT NULL, PRIMARY KEY (chain_id, seq))`,
  `CREATE INDEX IF NOT EXISTS k_reasons_scan ON k_reasons (chain_id, scan_id)`,
  `CREATE TABLE IF NOT EXISTS k_results (
     chain_id integer NOT NULL, seq bigint NOT NULL, scan_id text NOT NULL, recorded_at text NOT NULL, finished_at text NOT NULL, verdict text NOT NULL,
     clamav_version text, clamav_db_version text, clamav_db_time text, yara_engine text, yara_rule_set_digest text, yara_rule_count bigint,
     policy_id text NOT NULL, policy_digest text NOT NULL, allowlist_version text, allowlist_digest text, file_count bigint NOT NULL,
     byte_count bigint NOT NULL, entry_count bigint NOT NULL, walk_ms bigint NOT NULL, scan_ms bigint NOT NULL, total_ms bigint NOT NULL,
     manifest_folder_extras text NOT NULL, manifest_digest text, manifest_key_id text, manifest_expires_at text,
     PRIMARY KEY (chain_id, seq), UNIQUE (chain_id, scan_id))`,
  `CREATE INDEX IF NOT EXISTS k_results_manifest ON k_results (manifest_digest)`,
  `CREATE TABLE IF NOT EXISTS k_events (
     chain_id integer NOT NULL, seq bigint NOT NULL, recorded_at text NOT NULL, type text NOT NULL, scan_id text, data text NOT NULL,
     PRIMARY KEY (chain_id, seq))`,
  `CREATE INDEX IF NOT EXISTS k_events_scan ON k_events (chain_id, scan_id)`,
  `CREATE TABLE IF NOT EXISTS a_records (
     chain_id integer NOT NULL, seq bigint NOT NULL, source_id integer NOT NULL, hmi text NOT NULL, time timestamptz NOT NULL, event text NOT NULL,
     outcome text NOT NULL, code text NOT NULL, reason text NOT NULL, manifest_digest text, key_id text, drive_label text, path text,
     destination text, sha256 text, blake3 text, size bigint, PRIMARY KEY (chain_id, seq))`,
  `CREATE INDEX IF NOT EXISTS a_records_manifest ON a_records (manifest_digest)`,
  `CREATE INDEX IF NOT EXISTS a_records_sha256 ON a_records (sha256)`,
  `CREATE INDEX IF NOT EXISTS a_records_blake3 ON a_records (blake3)`,
  `CREATE INDEX IF NOT EXISTS a_records_time ON a_records (time DESC)`,
  `CREATE INDEX IF NOT EXISTS a_records_no_manifest ON a_records (time DESC) WHERE manifest_digest IS NULL`,
  `CREATE INDEX IF NOT EXISTS a_records_revoked ON a_records (key_id) WHERE event = 'trust.key-revoked'`,
  // Alerts a source sent about itself (a kiosk's CHAIN_BROKEN) or the receiver raised (a new chain).
  `CREATE TABLE IF NOT EXISTS alerts (
     id bigserial PRIMARY KEY, source_id integer REFERENCES sources, code text NOT NULL, detail text NOT NULL, at timestamptz NOT NULL,
     key text NOT NULL UNIQUE)`,
  // Review sign-ins: the central's own and those the kiosks' reviews forward (source_id set).
  `CREATE TABLE IF NOT EXISTS sign_ins (
     id bigserial PRIMARY KEY, source_id integer REFERENCES sources, source_event_id bigint, at timestamptz NOT NULL, event text NOT NULL,
     username text, method text, address text NOT NULL, UNIQUE (source_id, source_event_id))`,
  `CREATE TABLE IF NOT EXISTS staff (username text PRIMARY KEY, password text NOT NULL, created_at timestamptz NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS login_tokens (
     token_sha256 text PRIMARY KEY, label text NOT NULL, created_at timestamptz NOT NULL, expires_at timestamptz NOT NULL, used_at timestamptz)`,
];
