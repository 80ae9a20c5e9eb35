#!/usr/bin/env python3
"""Independent check of a Portcullis kiosk audit database's hash chain.

Written from kiosk/audit/README.md ("Hash chain") alone, with the Python
standard library only, so an auditor need not trust the kiosk's own code.
Usage: verify_audit_chain.py AUDIT.db   (exit 0 intact, 1 broken)
"""
import hashlib
import json
import sqlite3
import sys

LEDGER_TABLES = ["events", "scans", "devices", "files", "reasons", "scan_results"]
CHAIN_COLUMNS = {"seq", "prev_hash", "hash"}


def canonical(value):
    # RFC 8785 for this content: ASCII keys sorted, no whitespace, integers and strings only.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def main(path):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    records = []
    for table in LEDGER_TABLES:
        for row in db.execute(f"SELECT * FROM {table}"):
            records.append((row["seq"], table, dict(row)))
    records.sort(key=lambda r: r[0])
    prev = "0" * 64
    for expected, (seq, table, row) in enumerate(records, start=1):
        if seq != expected:
            return f"{table} seq {seq}: expected seq {expected}"
        content = {k: v for k, v in row.items() if k not in CHAIN_COLUMNS and v is not None}
        body = canonical({"table": table, "seq": seq, "prev": row["prev_hash"], "row": content})
        digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
        if digest != row["hash"]:
            return f"{table} seq {seq}: hash mismatch"
        if row["prev_hash"] != prev:
            return f"{table} seq {seq}: does not continue the record before it"
        prev = row["hash"]
    head = db.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone()
    if head is None or head["seq"] != len(records) or head["hash"] != prev:
        return f"chain_head does not match the last record ({len(records)})"
    print(f"intact: {len(records)} records; head {len(records)} {prev}")
    return None


if __name__ == "__main__":
    problem = main(sys.argv[1])
    if problem:
        print(f"BROKEN: {problem}")
        sys.exit(1)
