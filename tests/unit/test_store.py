"""store.Store on a real SQLite file: incremental blobs, the validity cache, one repository's results and the
state a rerun builds on, as they round-trip; never a token in the file."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor import store as store_module
from auditor.commit_rows import CommitRows, iso
from auditor.errors import OutputError
from auditor.models import CheckResult, OccurrenceRow, RemovalRow, RepoState, TipRow, Validity, redact
from auditor.store import Store
from tests.helpers.pairs import make_pair, sha
from tests.helpers.stores import OLD_OCCURRENCES, OLD_REMOVALS


def oid(n: int) -> bytes:
    return n.to_bytes(20, "big")


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "audit.sqlite")
    yield s
    s.close()


def _occurrence(pair, commit: str, path: str, line: int = 1) -> OccurrenceRow:
    return OccurrenceRow(detector="twilio_master_credentials", commit=commit, path=path, line=line, blob="b" * 40,
                         client_id=pair[0], secret_redacted=redact(pair[1]), secret_sha256=sha(pair),
                         author_email="a@example.com", author_time="2021-03-01T00:00:00Z", author_name="Ada Example",
                         commit_message="add settings", commit_time="2021-03-01T00:00:30Z")


def test_the_store_is_owner_only_even_if_it_existed_readable(tmp_path):
    path = tmp_path / "audit.sqlite"
    path.write_bytes(b"")
    os.chmod(path, 0o644)
    Store(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_store_that_cannot_be_opened_is_an_output_error(tmp_path):
    (tmp_path / "audit.sqlite").mkdir()
    with pytest.raises(OutputError, match="cannot open the store"):
        Store(tmp_path / "audit.sqlite")
    (tmp_path / "damaged.sqlite").write_bytes(b"this is not a database, it is text " * 100)
    with pytest.raises(OutputError, match="damaged audit.sqlite"):
        Store(tmp_path / "damaged.sqlite")


# -- incremental detection ----------------------------------------------------------------------------------------

def test_scanned_blobs_are_those_that_matched_nothing_under_the_same_ruleset(store):
    assert store.scanned_blobs("r1") == set()
    store.mark_scanned("r1", [oid(1), oid(2), oid(3)], matched={oid(2)})
    store.mark_scanned("r1", [oid(4)], matched=set())
    store.mark_scanned("r1", [], matched=set())  # nothing to record: no row
    store.mark_scanned("r2", [oid(5)], matched=set())
    assert store.scanned_blobs("r1") == {oid(1), oid(3), oid(4)}  # oid(2) matched: read again on every run
    assert store.scanned_blobs("r2") == {oid(5)}
    assert store.scanned_blobs("another") == set()
    assert store.db.execute("SELECT count(*) FROM scanned").fetchone() == (3,)


def test_a_blob_that_matched_once_is_never_skipped(store):
    store.mark_scanned("r1", [oid(1)], matched=set())
    store.mark_scanned("r1", [oid(1)], matched={oid(1)})  # a later batch found it matched
    assert store.scanned_blobs("r1") == set()


# -- the validity cache ---------------------------------------------------------------------------------------------

def test_checks_round_trip_and_only_answers_are_cached(store):
    live, dead, down, unchecked = (make_pair() for _ in range(4))
    now = datetime.now(UTC).isoformat(timespec="seconds")
    store.save_check(sha(live), "twilio_master_credentials", live[0], CheckResult(
        validity=Validity.VALID, scope="live", account_status="active", account_type="Full", checked_at=now))
    store.save_check(sha(dead), "twilio_master_credentials", dead[0],
                     CheckResult(validity=Validity.INVALID, checked_at=now))
    store.save_check(sha(down), "twilio_master_credentials", down[0],
                     CheckResult(validity=Validity.FAILED_TO_CHECK, checked_at=now))
    store.save_check(sha(unchecked), "twilio_master_credentials", unchecked[0], CheckResult.unchecked())
    fresh = store.fresh_checks(timedelta(hours=24))
    assert fresh == {
        sha(live): CheckResult(validity=Validity.VALID, scope="live", account_status="active", account_type="Full",
                               checked_at=now),
        sha(dead): CheckResult(validity=Validity.INVALID, checked_at=now)}
    # a failure is kept (for the report) but never trusted; "unchecked" is not a check at all
    assert dict(store.db.execute("SELECT client_id, validity FROM checks").fetchall()) == {
        live[0]: "valid", dead[0]: "invalid", down[0]: "failed_to_check"}


def test_old_checks_are_not_fresh(store):
    old, new = make_pair(), make_pair()
    long_ago = (datetime.now(UTC) - timedelta(days=3)).isoformat(timespec="seconds")
    store.save_check(sha(old), "twilio_master_credentials", old[0],
                     CheckResult(validity=Validity.VALID, scope="live", checked_at=long_ago))
    store.save_check(sha(new), "twilio_master_credentials", new[0], CheckResult(validity=Validity.INVALID))
    assert set(store.fresh_checks(timedelta(hours=24))) == {sha(new)}  # checked_at defaults to now
    assert set(store.fresh_checks(timedelta(days=7))) == {sha(old), sha(new)}
    assert set(store.fresh_checks(None)) == {sha(old), sha(new)}
    # a newer answer replaces the older one
    store.save_check(sha(old), "twilio_master_credentials", old[0], CheckResult(validity=Validity.INVALID))
    assert store.fresh_checks(timedelta(hours=24))[sha(old)].validity is Validity.INVALID


def test_a_check_keeps_the_servers_that_gave_it_and_whether_the_account_is_a_subaccount(store):
    found, refused, sub = make_pair(), make_pair(), make_pair()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    kept = {
        sha(found): CheckResult(validity=Validity.VALID, scope="live", account_status="active", subaccount=False,
                                checked_at=now, base="http://127.0.0.1:1", region="ie1",
                                fallbacks="au1=http://127.0.0.1:2 ie1=http://127.0.0.1:3"),
        sha(refused): CheckResult(validity=Validity.INVALID, checked_at=now, base="https://api.twilio.com",
                                  region="us1", fallbacks=""),
        sha(sub): CheckResult(validity=Validity.VALID, scope="live", subaccount=True, checked_at=now,
                              base="https://api.twilio.com", region="us1"),
    }
    for pair in (found, refused, sub):
        store.save_check(sha(pair), "twilio_master_credentials", pair[0], dataclasses.replace(kept[sha(pair)],
                                                                                              requests=3))
    assert store.fresh_checks(timedelta(hours=1)) == kept  # requests is this run's cost, not kept


OLD_CHECKS = """CREATE TABLE checks (secret_sha256 TEXT PRIMARY KEY, detector TEXT NOT NULL, client_id TEXT NOT NULL,
    validity TEXT NOT NULL, scope TEXT, account_status TEXT, account_type TEXT, checked_at TEXT NOT NULL)"""


@pytest.mark.parametrize("version", ["1", "2", "3"])
def test_an_older_store_works_and_its_checks_have_no_base(tmp_path, version):
    """Schema 3 added the servers of a check: an older store gains the columns empty, so its checks are read back
    without a base (the validator reuses none of them) and new ones are kept whole."""
    path = tmp_path / "audit.sqlite"
    old, new = make_pair(), make_pair()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    con = sqlite3.connect(path)
    with con:
        con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        con.execute("INSERT INTO meta VALUES ('schema_version', ?)", (version,))
        con.execute(OLD_CHECKS)
        con.execute("INSERT INTO checks VALUES (?, ?, ?, 'valid', 'live', 'active', 'Full', ?)",
                    (sha(old), "twilio_master_credentials", old[0], now))
        con.execute(OLD_OCCURRENCES)
        con.execute(OLD_REMOVALS)
        con.executescript(Path(store_module.__file__).with_name("schema.sql").read_text())
        con.execute("INSERT INTO occurrences VALUES ('/r', 'twilio_master_credentials', ?, 'a.py', 1, ?, ?, ?, ?, "
                    "'a@example.com', '2021-03-01T00:00:00Z')", ("1" * 40, "b" * 40, old[0], redact(old[1]), sha(old)))
        con.execute("INSERT INTO rescan_state VALUES ('/r', '/r/.git', 'x', x'', x'', x'')")
    con.close()
    s = Store(path)
    try:
        assert s.fresh_checks(None) == {sha(old): CheckResult(validity=Validity.VALID, scope="live",
                                                              account_status="active", account_type="Full",
                                                              checked_at=now)}
        result = CheckResult(validity=Validity.VALID, scope="live", subaccount=True, checked_at=now,
                             base="https://api.twilio.com", region="us1")
        s.save_check(sha(new), "twilio_master_credentials", new[0], result)
        assert s.fresh_checks(None)[sha(new)] == result
        assert s.db.execute("SELECT value FROM meta").fetchone() == (store_module.SCHEMA_VERSION,)
        # its occurrences read back with the newer fields empty, and new ones are kept whole
        [kept] = s.occurrences("/r")
        assert (kept.client_id, kept.author_name, kept.commit_message, kept.commit_time) == (old[0], None, None, None)
        # two detectors matching one pair at one place are two occurrences (SPEC §4): the detector is in the key now
        twice = [_occurrence(new, "2" * 40, "b.py"), _occurrence(new, "2" * 40, "b.py")._replace(detector="other")]
        gone = [RemovalRow(detector=d, commit="3" * 40, path="b.py", secret_sha256=sha(new),
                           commit_time="2021-04-01T00:00:00Z") for d in ("twilio_master_credentials", "other")]
        s.save_repo("/r", "/r/.git", {}, False, twice, [], gone)
        assert sorted(s.occurrences("/r")) == sorted(twice) and sorted(s.removals("/r")) == sorted(gone)
        # schema 1 had no exposure ends, schemas 1–3 no author name, message or commit time: their repositories
        # are attributed whole once
        assert s.db.execute("SELECT count(*) FROM rescan_state").fetchone() == (0,)
    finally:
        s.close()
    Store(path).close()  # and opens again as a store of this version


# -- one repository's results --------------------------------------------------------------------------------------

def test_save_repo_round_trips_occurrences_removals_tips_and_commits(store):
    a, b = make_pair(), make_pair()
    occurrences = [_occurrence(a, "1" * 40, "app.py", 3), _occurrence(b, "2" * 40, "dir/ünï cødé.py")]
    removals = [RemovalRow(detector="twilio_master_credentials", commit="3" * 40, path="app.py",
                           secret_sha256=sha(a), commit_time="2021-04-01T00:00:00Z")]
    tips = [TipRow(secret_sha256=sha(b), ref="refs/heads/main", path="dir/ünï cødé.py")]
    commits = {"1" * 40: "2021-03-01T00:00:00Z", "2" * 40: "2021-03-02T00:00:00Z", "3" * 40: "2021-04-01T00:00:00Z"}
    store.save_repo("/repos/one", "/repos/one/.git", commits, False, occurrences, tips, removals)
    assert sorted(store.occurrences("/repos/one")) == sorted(occurrences)
    assert store.removals("/repos/one") == removals
    assert store.occurrences("/repos/other") == [] and store.removals("/repos/other") == []
    assert store.db.execute("SELECT secret_sha256, ref, path FROM tip_presence").fetchall() == [tuple(tips[0])]
    assert store.db.execute("SELECT repo, path, commits_scanned, shallow FROM repos").fetchall() == [
        ("/repos/one", "/repos/one/.git", 3, 0)]
    for pair in (a, b):  # the store never holds a token
        assert pair[1].encode() not in store.path.read_bytes()


def test_save_repo_replaces_that_repository_only(store):
    a, b, c = make_pair(), make_pair(), make_pair()
    store.save_repo("/repos/one", "/p1", {"1" * 40: "2021-03-01T00:00:00Z"}, False, [_occurrence(a, "1" * 40, "a")],
                    [])
    store.save_repo("/repos/two", "/p2", {"2" * 40: "2021-03-01T00:00:00Z"}, True, [_occurrence(b, "2" * 40, "b")],
                    [])
    store.save_repo("/repos/one", "/p1", {"4" * 40: "2021-05-01T00:00:00Z"}, False, [_occurrence(c, "4" * 40, "c")],
                    [])
    assert [o.client_id for o in store.occurrences("/repos/one")] == [c[0]]
    assert [o.client_id for o in store.occurrences("/repos/two")] == [b[0]]
    assert dict(store.db.execute("SELECT repo, commits_scanned FROM repos").fetchall()) == {
        "/repos/one": 1, "/repos/two": 1}
    # add_commits: the stored commits stay (all still reachable), the new ones join them
    store.save_repo("/repos/one", "/p1", {"5" * 40: "2021-06-01T00:00:00Z"}, False, [], [], add_commits=True)
    assert dict(store.db.execute("SELECT repo, commits_scanned FROM repos").fetchall())["/repos/one"] == 2


def test_load_state_round_trip_and_where_it_does_not_apply(store):
    state = RepoState(path="/repos/one/.git", ruleset="rules:64", matched=frozenset({oid(1), oid(2)}),
                      tips=frozenset({oid(10)}), commits=frozenset({oid(10), oid(11), oid(12)}))
    assert store.load_state("/repos/one", "/repos/one/.git", "rules:64") is None
    store.save_repo("/repos/one", "/repos/one/.git", {}, False, [], [], state=state)
    assert store.load_state("/repos/one", "/repos/one/.git", "rules:64") == state
    assert store.load_state("/repos/one", "/elsewhere/.git", "rules:64") is None  # another path starts afresh
    assert store.load_state("/repos/one", "/repos/one/.git", "rules:128") is None  # another ruleset too
    assert store.load_state("/repos/two", "/repos/one/.git", "rules:64") is None
    # a scan that leaves no state (a partial walk, a shallow clone): the next one starts afresh
    store.save_repo("/repos/one", "/repos/one/.git", {}, False, [], [])
    assert store.load_state("/repos/one", "/repos/one/.git", "rules:64") is None


def test_a_failed_transaction_leaves_the_previous_results(store):
    a = make_pair()
    store.save_repo("/repos/one", "/p1", {"1" * 40: "2021-03-01T00:00:00Z"}, False, [_occurrence(a, "1" * 40, "a")],
                    [])
    bad = [("not", "an", "occurrence")]  # too few columns: the insert fails mid-transaction
    with pytest.raises(sqlite3.Error):
        store.save_repo("/repos/one", "/p1", {}, False, bad, [])
    assert [o.client_id for o in store.occurrences("/repos/one")] == [a[0]]


@settings(max_examples=60, deadline=None)
@given(width=st.sampled_from([20, 32]),
       times=st.lists(st.integers(min_value=-2 ** 62, max_value=2 ** 62) | st.sampled_from(
           [0, -1, 86399, 86400, 951782400, -62135596800, -62135596801, 253402300799, 253402300800]), max_size=40),
       reach=st.dictionaries(st.binary(min_size=20, max_size=20).map(bytes.hex),  # commit ids, as reach holds
                             st.sampled_from(["pull requests only", "other refs only"]), max_size=5),
       json_functions=st.booleans())
def test_commit_rows_are_stored_as_iso_writes_them_whichever_way_they_are_inserted(tmp_path_factory, width, times,
                                                                                     reach, json_functions):
    """The listing's rows go in through SQLite's JSON functions (no Python object per commit) where SQLite has them:
    the same rows as one INSERT per commit, for every time a commit may say (clamped to years 1–9999), and ids of
    both hash widths."""
    store = Store(tmp_path_factory.mktemp("s") / "audit.sqlite")
    try:
        store.json = store.json and json_functions
        ids = {i.to_bytes(width, "big")[::-1]: t for i, t in enumerate(times)}
        store.save_repo("/r", "/r/.git", CommitRows(ids), False, [], [], reach=reach)
        got = dict(store.db.execute("SELECT commit_id, commit_time FROM commits WHERE repo = '/r'"))
        assert got == {c.hex(): iso(t) for c, t in ids.items()}
        assert dict(CommitRows(ids).items()) == got
        assert dict(store.db.execute("SELECT commit_id, reach FROM commit_reach WHERE repo = '/r'")) == reach
    finally:
        store.close()
