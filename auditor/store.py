"""Scan state and results ↔ SQLite (schema.sql beside this file): incremental blobs, validity cache, results."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

from auditor.commit_rows import FIRST_SECOND, LAST_SECOND, CommitRows
from auditor.errors import OutputError
from auditor.models import CheckResult, ExposureEnd, OccurrenceRow, RemovalRow, RepoState, TipRow, Validity
from auditor.outdir import private_file

# The columns of OccurrenceRow and RemovalRow, in their field order ("commit" is a keyword in SQL).
OCCURRENCE_COLUMNS = ", ".join("commit_id" if f == "commit" else f for f in OccurrenceRow._fields)
REMOVAL_COLUMNS = ", ".join("commit_id" if f == "commit" else f for f in RemovalRow._fields)


def _ids(raw: bytes) -> frozenset[bytes]:
    """Concatenated 20-byte ids → the set of them."""
    return frozenset(raw[i:i + 20] for i in range(0, len(raw), 20))

SCHEMA_VERSION = "4"  # 2: exposure_ends (lifecycles decided at scan time); 3: checks remember their servers;
# 4: occurrences keep the author's name, the commit's message (first line) and committer time
# The columns of checks that schema 3 added, which an older store gains (empty) when opened.
NEW_CHECK_COLUMNS = {"base": "TEXT", "region": "TEXT", "fallbacks": "TEXT", "subaccount": "INTEGER"}
CHECK_COLUMNS = ("secret_sha256", "detector", "client_id", "validity", "scope", "account_status", "account_type",
                 "checked_at", *NEW_CHECK_COLUMNS)


# CommitRows.packed() → rows: the n-th id of the hex string, the n-th time as commit_rows.iso writes it
INSERT_COMMIT_ROWS = ("INSERT OR IGNORE INTO commits SELECT ?1, CAST(substr(?2, key * ?3 + 1, ?3) AS TEXT), "
                      f"strftime('%Y-%m-%dT%H:%M:%SZ', min(max(value, {FIRST_SECOND}), {LAST_SECOND}), 'unixepoch') "
                      "FROM json_each(?4)")


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            private_file(path)
            self.db = sqlite3.connect(path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(resources.files("auditor").joinpath("schema.sql").read_text())
        except (OSError, sqlite3.Error) as e:
            raise OutputError(f"{path}: cannot open the store ({e}). Choose an --out directory you can write "
                              "to, or delete a damaged audit.sqlite to start afresh.") from None
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is not None and row[0] != SCHEMA_VERSION:
            self._upgrade(row[0])
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        try:  # SQLite's JSON functions (built in since 3.38, an option before): the rows' fast path
            self.json = self.db.execute("SELECT json_valid('[]')").fetchone()[0] == 1
        except sqlite3.OperationalError:
            self.json = False

    def _upgrade(self, version: str) -> None:
        """An older store works on: what it lacks is added empty, and what cannot be trusted any more is redone."""
        with self.transaction():
            if version in ("1", "2", "3"):  # 1: its occurrences have no exposure ends; 1–3: no author name,
                # message or commit time: the next scan of each repository attributes it whole (its blobs that
                # matched nothing stay scanned), which fills them
                self.db.execute("DELETE FROM rescan_state")
            if version in ("1", "2", "3"):  # the detector joins the key of occurrences and removals
                for table in ("occurrences", "removals"):
                    self._rebuild(table)
            have = {r[1] for r in self.db.execute("PRAGMA table_info(checks)")}
            for column, kind in NEW_CHECK_COLUMNS.items():
                if column not in have:  # no base: none of its checks is reused (SPEC §5)
                    self.db.execute(f"ALTER TABLE checks ADD COLUMN {column} {kind}")

    def _rebuild(self, table: str) -> None:
        """``table`` made anew as schema.sql defines it now (a key cannot be altered in SQLite), its rows copied;
        columns it lacked are left empty."""
        text = resources.files("auditor").joinpath("schema.sql").read_text()
        create = re.search(rf"CREATE TABLE IF NOT EXISTS {table} \(.*?\) WITHOUT ROWID;", text, re.S)
        if create is None:
            raise OutputError(f"{self.path}: schema.sql defines no table {table}; reinstall auditor.")
        old = [r[1] for r in self.db.execute(f"PRAGMA table_info({table})")]
        self.db.execute(create.group(0).replace(f"IF NOT EXISTS {table} (", f"{table}_v{SCHEMA_VERSION} (", 1))
        columns = ", ".join(old)
        self.db.execute(f"INSERT OR IGNORE INTO {table}_v{SCHEMA_VERSION} ({columns}) "  # noqa: S608 - fixed names
                        f"SELECT {columns} FROM {table}")
        self.db.execute(f"DROP TABLE {table}")
        self.db.execute(f"ALTER TABLE {table}_v{SCHEMA_VERSION} RENAME TO {table}")

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One explicit transaction (the connection autocommits otherwise: one commit per row would crawl)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- incremental detection -------------------------------------------------------------------------
    def scanned_blobs(self, ruleset: str) -> set[bytes]:
        """Blobs already scanned by this ruleset that matched nothing: the next scan skips them."""
        seen: set[bytes] = set()
        matched: set[bytes] = set()
        for oids, hits in self.db.execute("SELECT oids, matched FROM scanned WHERE ruleset = ?", (ruleset,)):
            seen.update(_ids(oids))
            matched.update(_ids(hits))
        return seen - matched

    def mark_scanned(self, ruleset: str, oids: Iterable[bytes], matched: set[bytes]) -> None:
        oids = list(oids)
        if oids:
            with self.transaction():
                self.db.execute("INSERT INTO scanned VALUES (?, ?, ?)",
                                (ruleset, b"".join(oids), b"".join(o for o in oids if o in matched)))

    # -- validity cache --------------------------------------------------------------------------------
    def fresh_checks(self, max_age: timedelta | None) -> dict[str, CheckResult]:
        """Checks recent enough to trust (all of them when ``max_age`` is None); failures are never cached. Each says
        the servers that gave it: the validator reuses only those of the servers it asks."""
        cutoff = (datetime.now(UTC) - max_age).isoformat(timespec="seconds") if max_age is not None else ""
        rows = self.db.execute("SELECT secret_sha256, validity, scope, account_status, account_type, checked_at, base, "
                               "region, fallbacks, subaccount FROM checks "
                               "WHERE checked_at >= ? AND validity IN ('valid', 'invalid')", (cutoff,))
        return {r[0]: CheckResult(validity=Validity(r[1]), scope=r[2], account_status=r[3], account_type=r[4],
                                  checked_at=r[5], base=r[6], region=r[7], fallbacks=r[8],
                                  subaccount=None if r[9] is None else bool(r[9])) for r in rows}

    def save_check(self, sha: str, detector: str, client_id: str, result: CheckResult) -> None:
        if result.validity is Validity.UNCHECKED:
            return
        with self.transaction():
            self.db.execute(f"INSERT OR REPLACE INTO checks ({', '.join(CHECK_COLUMNS)}) "  # noqa: S608 - fixed names
                            f"VALUES ({', '.join('?' * len(CHECK_COLUMNS))})",
                            (sha, detector, client_id, result.validity.value, result.scope, result.account_status,
                             result.account_type, result.checked_at or datetime.now(UTC).isoformat(), result.base,
                             result.region, result.fallbacks,
                             None if result.subaccount is None else int(result.subaccount)))

    # -- results ---------------------------------------------------------------------------------------
    def load_state(self, repo: str, path: str, ruleset: str) -> RepoState | None:
        """The state of the last complete scan of ``repo`` at ``path`` under ``ruleset``, if any."""
        row = self.db.execute("SELECT matched, tips, commits FROM rescan_state WHERE repo = ? AND path = ? "
                              "AND ruleset = ?", (repo, path, ruleset)).fetchone()
        if row is None:
            return None
        return RepoState(path=path, ruleset=ruleset, matched=_ids(row[0]), tips=_ids(row[1]), commits=_ids(row[2]))

    def load_state_of(self, repo: str, ruleset: str) -> RepoState | None:
        """The state of the last complete scan of ``repo`` under ``ruleset``, wherever it was read (the scan
        checks the path: a corpus client does not open the repositories its workers scan)."""
        row = self.db.execute("SELECT path FROM rescan_state WHERE repo = ? AND ruleset = ?",
                              (repo, ruleset)).fetchone()
        return None if row is None else self.load_state(repo, row[0], ruleset)

    def occurrences(self, repo: str) -> list[OccurrenceRow]:
        """The stored occurrences of ``repo``."""
        return [OccurrenceRow._make(r) for r in self.db.execute(
            f"SELECT {OCCURRENCE_COLUMNS} FROM occurrences WHERE repo = ?", (repo,))]  # noqa: S608

    def removals(self, repo: str) -> list[RemovalRow]:
        """The stored removals of ``repo``."""
        return [RemovalRow._make(r) for r in self.db.execute(
            f"SELECT {REMOVAL_COLUMNS} FROM removals WHERE repo = ?", (repo,))]  # noqa: S608

    def exposure_ends(self, repo: str) -> list[ExposureEnd]:
        """Where the stored occurrences of ``repo`` stopped being exposed."""
        return [ExposureEnd._make(r) for r in self.db.execute(
            "SELECT commit_id, path, secret_sha256, removed_commit, removed_time FROM exposure_ends WHERE repo = ?",
            (repo,))]

    def save_repo(self, repo: str, path: str, commits: Mapping[str, str], shallow: bool,
                  occurrences: Iterable[OccurrenceRow], tips: Iterable[TipRow], removals: Iterable[RemovalRow] = (),
                  state: RepoState | None = None, add_commits: bool = False, ends: Iterable[ExposureEnd] = (),
                  reach: Mapping[str, str] | None = None) -> None:
        """Replace one repository's results in one transaction, so a crash leaves the previous ones intact.

        Without ``state`` (a partial walk, a shallow clone) the next scan of the repository starts afresh. With
        ``add_commits`` the stored commits are all still reachable: ``commits`` holds only the new ones. ``reach``:
        the commits no branch, tag or HEAD reaches, and which kind of ref does (``auditor.git.reach``; all of them).
        """
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self.transaction():
            for table in ("occurrences", "tip_presence", "removals", "exposure_ends", "rescan_state", "commit_reach",
                          *(() if add_commits else ("commits",))):
                self.db.execute(f"DELETE FROM {table} WHERE repo = ?", (repo,))  # noqa: S608 - fixed names
            if state is not None:
                self.db.execute("INSERT INTO rescan_state VALUES (?, ?, ?, ?, ?, ?)",
                                (repo, state.path, state.ruleset, b"".join(state.tips), b"".join(state.commits),
                                 b"".join(state.matched)))
            if isinstance(commits, CommitRows) and self.json:  # in C: no Python object per commit (100k: 0.24 → 0.09 s)
                self.db.execute(INSERT_COMMIT_ROWS, (repo, *commits.packed()))
            else:
                self.db.executemany("INSERT OR IGNORE INTO commits VALUES (?, ?, ?)",
                                    ((repo, c, t) for c, t in commits.items()))
            scanned = self.db.execute("SELECT count(*) FROM commits WHERE repo = ?", (repo,)).fetchone()[0]
            self.db.execute("INSERT OR REPLACE INTO repos VALUES (?, ?, ?, ?, ?)",
                            (repo, path, scanned, int(shallow), now))
            self.db.executemany(f"INSERT OR IGNORE INTO occurrences (repo, {OCCURRENCE_COLUMNS}) "  # noqa: S608
                                f"VALUES ({', '.join('?' * (1 + len(OccurrenceRow._fields)))})",
                                ((repo, *o) for o in occurrences))
            self.db.executemany("INSERT OR IGNORE INTO tip_presence VALUES (?, ?, ?, ?)",
                                ((repo, *t) for t in tips))
            self.db.executemany("INSERT OR IGNORE INTO removals VALUES (?, ?, ?, ?, ?, ?)",
                                ((repo, *r) for r in removals))
            self.db.executemany("INSERT OR IGNORE INTO exposure_ends VALUES (?, ?, ?, ?, ?, ?)",
                                ((repo, *e) for e in ends))
            if self.json:
                self.db.execute("INSERT OR IGNORE INTO commit_reach SELECT ?, key, value FROM json_each(?)",
                                (repo, json.dumps(reach or {})))
            else:
                self.db.executemany("INSERT OR IGNORE INTO commit_reach VALUES (?, ?, ?)",
                                    ((repo, c, r) for c, r in (reach or {}).items()))
