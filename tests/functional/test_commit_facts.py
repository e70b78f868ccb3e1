"""Each finding says who introduced it and in which commit (issue 14 point 4): the author's name, the first line of
the commit message and the committer time reach findings.jsonl, findings.sarif, the store and the frames; a store
written before schema 4 upgrades when a scan opens it, and its next scan fills them."""

from __future__ import annotations

import json
import sqlite3
import subprocess

from auditor import report
from auditor.store import SCHEMA_VERSION
from tests.helpers.git import AUTHOR_NAME, GitRepo
from tests.helpers.pairs import make_pair, redacted, snippet
from tests.helpers.scan import load_jsonl, run_auditor, run_scan
from tests.helpers.stores import make_schema_3


def _git(repo: GitRepo, fmt: str, commit: str) -> str:
    return repo("show", "-s", f"--format={fmt}", commit).strip()


def _history(tmp_path):
    repo = GitRepo(tmp_path / "repo")
    pair = make_pair()
    # the message quotes the token: the first line is kept, the token in it replaced (SARIF holds no token, not even
    # redacted)
    first = repo.commit(f"Add Twilio settings ({pair[1]})\n\nThe body is not kept.", {"app/settings.py": snippet(pair)})
    repo.commit("unrelated", {"README": "hello\n"})
    return repo, pair, first


def test_findings_carry_author_name_commit_message_and_commit_time(tmp_path):
    repo, pair, first = _history(tmp_path)
    out = tmp_path / "out"
    run_scan(repo, out)
    [row] = load_jsonl(out / "findings.jsonl")
    committed = _git(repo, "%cI", first).replace("+00:00", "Z")
    assert (row["author_name"], row["commit_time"]) == (AUTHOR_NAME, committed)
    assert row["commit_time"] != row["author_time"]  # committer time, not the author's (the helper's clocks differ)
    assert row["commit_message"] == "Add Twilio settings ([secret])"
    for name in ("findings.jsonl", "findings.sarif", "audit.sqlite", "secrets.jsonl"):
        assert pair[1].encode() not in (out / name).read_bytes(), name
    assert redacted(pair[1]).encode() not in (out / "findings.sarif").read_bytes()
    [result] = json.loads((out / "findings.sarif").read_text())["runs"][0]["results"]
    props = result["properties"]
    assert (props["author_name"], props["commit_time"], props["commit_message"]) == (
        AUTHOR_NAME, committed, row["commit_message"])
    assert f"introduced in commit {first[:10]} by {AUTHOR_NAME} of repo" in result["message"]["text"]
    f = report.load(out)
    got = f.findings.iloc[0]
    assert (got["author_name"], got["commit_message"]) == (AUTHOR_NAME, row["commit_message"])
    assert got["commit_time"].isoformat().replace("+00:00", "Z") == committed


def test_a_schema_3_store_is_reported_then_upgraded_and_filled_by_the_next_scan(tmp_path):
    repo, pair, first = _history(tmp_path)
    out = tmp_path / "out"
    run_scan(repo, out)
    store = out / "audit.sqlite"
    make_schema_3(store)
    # the report reads an old store as it is (read-only): no name or message, the commit time from its commits
    proc = run_auditor("report", str(out))
    assert proc.returncode == 0, proc.stderr
    f = report.load(out)
    assert f.findings["author_name"].isna().all() and f.findings["commit_message"].isna().all()
    assert f.findings["commit_time"].iloc[0].isoformat().replace("+00:00", "Z") == _git(repo, "%cI", first).replace(
        "+00:00", "Z")
    # a rerun into it upgrades the store and attributes the repository afresh, which fills them
    result = run_scan(repo, out)
    assert result.returncode == 1, result.stderr  # --no-validate: every finding is an alert
    con = sqlite3.connect(store)
    try:
        assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (SCHEMA_VERSION,)
        assert con.execute("SELECT author_name, commit_message FROM occurrences").fetchall() == [
            (AUTHOR_NAME, "Add Twilio settings ([secret])")]
    finally:
        con.close()
    [row] = load_jsonl(out / "findings.jsonl")
    assert row["author_name"] == AUTHOR_NAME
    assert subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True,
                          text=True).stdout == ""  # the scan read the repository, never wrote it
