"""Stores as an older auditor left them: the tables whose shape a schema upgrade changes, as they were."""

from __future__ import annotations

import sqlite3
from pathlib import Path

# schema 3's occurrences and removals: no author name, message or commit time, and the detector not in the key
OLD_OCCURRENCES = """CREATE TABLE occurrences (repo TEXT NOT NULL, detector TEXT NOT NULL, commit_id TEXT NOT NULL,
    path TEXT NOT NULL, line INTEGER NOT NULL, blob TEXT NOT NULL, client_id TEXT NOT NULL,
    secret_redacted TEXT NOT NULL, secret_sha256 TEXT NOT NULL, author_email TEXT NOT NULL, author_time TEXT NOT NULL,
    PRIMARY KEY (repo, commit_id, path, secret_sha256)) WITHOUT ROWID"""
OLD_REMOVALS = """CREATE TABLE removals (repo TEXT NOT NULL, detector TEXT NOT NULL, commit_id TEXT NOT NULL,
    path TEXT NOT NULL, secret_sha256 TEXT NOT NULL, commit_time TEXT NOT NULL,
    PRIMARY KEY (repo, commit_id, path, secret_sha256)) WITHOUT ROWID"""


def make_schema_3(store: Path) -> None:
    """Turn a store into what a scan before schema 4 left: occurrences and removals keyed without the detector and
    without author name, message or commit time (rows kept), version 3."""
    con = sqlite3.connect(store)
    with con:
        for table, ddl in (("occurrences", OLD_OCCURRENCES), ("removals", OLD_REMOVALS)):
            con.execute(f"ALTER TABLE {table} RENAME TO {table}_v4")
            con.execute(ddl)
            columns = ", ".join(r[1] for r in con.execute(f"PRAGMA table_info({table})"))
            con.execute(f"INSERT INTO {table} SELECT {columns} FROM {table}_v4")
            con.execute(f"DROP TABLE {table}_v4")
        con.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    con.close()
