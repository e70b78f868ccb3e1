"""What a security engineer acts on (SPEC §11, issue 14): the "What to do" table at the top of the report, one row
per secret sorted by risk with its refs by kind, validity, check time and action; and findings.sarif, SARIF 2.1.0
valid against the OASIS schema (tests/data/sarif-schema-2.1.0.json), written by the scan and by ``auditor report``.

One real history, validated against the Twilio stand-in: L live at main (two paths), H live but removed (history
only), P live only at a pull-request ref (refs/pull/7/head, a fork's contribution), D dead (401) at main."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import jsonschema
import pytest

from auditor.testing import TwilioStandIn, serve_in_thread
from tests.helpers.git import GitRepo
from tests.helpers.pairs import make_pair, sha, snippet
from tests.helpers.scan import run_auditor, run_scan

SCHEMA = Path(__file__).parents[1] / "data" / "sarif-schema-2.1.0.json"


@pytest.fixture(scope="module")
def acted(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("acted")
    live, history, pull, dead = (make_pair() for _ in range(4))
    repo = GitRepo(base / "project")
    repo.commit("dead key", {"settings.py": snippet(dead, line=4)})
    repo.commit("old key", {"old.env": snippet(history)})
    repo.commit("drop old key", remove=("old.env",))
    repo("checkout", "-q", "-b", "contrib")
    repo.commit("fork's change", {"contrib/sms.py": snippet(pull)})
    repo("update-ref", "refs/pull/7/head", "HEAD")
    repo("checkout", "-q", "main")
    repo("branch", "-q", "-D", "contrib")
    repo.commit("live key", {"app/config.py": snippet(live, line=2), "deploy/app.env": snippet(live)})
    standin = TwilioStandIn(valid={live, history, pull})
    out = base / "out"
    with serve_in_thread(standin) as url:
        r = run_scan(repo, out, "--twilio-api-url", url, validate=True)
    assert r.returncode == 1, r.stderr  # valid secrets: alerts
    scanned_sarif = (out / "findings.sarif").read_bytes()
    proc = run_auditor("report", str(out), timeout=180)
    assert proc.returncode == 0, proc.stderr
    return {"live": live, "history": history, "pull": pull, "dead": dead}, out, scanned_sarif


def _what_to_do(md: str) -> list[dict[str, str]]:
    """The rows of report.md's "What to do" table, as column → cell."""
    section = md.split("## What to do", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(head, (c.strip() for c in ln.strip("|").split("|")), strict=True)) for ln in lines[2:]]


def test_what_to_do_comes_first_one_row_per_secret_by_risk(acted):
    pairs, out, _ = acted
    md = (out / "report.md").read_text(encoding="utf-8")
    assert md.index("## What to do") < md.index("## Headline")
    rows = _what_to_do(md)
    by_id = {r["client_id"]: r for r in rows}
    assert [r["client_id"] for r in rows][0] == pairs["live"][0]  # valid at a branch tip comes first
    assert [r["client_id"] for r in rows][-1] == pairs["dead"][0]  # invalid comes last
    live, hist, pull, dead = (by_id[pairs[k][0]] for k in ("live", "history", "pull", "dead"))
    assert (live["risk"], live["action"], live["refs"]) == ("1", "rotate now", "branch: main")
    assert live["location"].endswith("(+1 more)") and live["repo"] == "project"
    assert hist["risk"] == "2" and hist["action"] == "rotate — still in history"
    assert hist["refs"] == "none (history only)" and hist["location"] == "old.env:1"
    assert pull["risk"] == "2" and pull["action"] == "rotate — still in history"
    assert pull["refs"] == "pull request: #7" and pull["location"] == "contrib/sms.py:1"
    assert (dead["risk"], dead["action"], dead["validity"]) == ("4", "nothing to do", "invalid")
    assert dead["location"] == "settings.py:4"
    for row in rows:
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", row["checked_at"]), row  # when validity was true
        assert re.fullmatch(r"[0-9a-f]{10}", row["commit"]) and row["author"] == "author@example.com"
    # never "over" for a secret still in history; a pull-request ref is not "the repository"
    assert "removed everywhere" not in md and "exposure over" not in md
    assert "| pull-request tip |" in md


def test_sarif_is_valid_and_says_what_to_rotate(acted):
    pairs, out, scanned = acted
    data = (out / "findings.sarif").read_bytes()
    assert data == scanned  # the store alone gives what the scan wrote
    log = json.loads(data)
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft4Validator(schema).validate(log)
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    # one rule per detector of the scan (the built-in ones: two), whether it found anything or not
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["twilio_api_keys", "twilio_master_credentials"]
    results = run["results"]
    assert len(results) == 5  # one per occurrence: L at two paths
    got = {(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            r["locations"][0]["physicalLocation"]["region"]["startLine"]): r for r in results}
    want = {("app/config.py", 2): ("live", "error"), ("deploy/app.env", 1): ("live", "error"),
            ("old.env", 1): ("history", "warning"), ("contrib/sms.py", 1): ("pull", "warning"),
            ("settings.py", 4): ("dead", "note")}
    assert set(got) == set(want)
    for where, (name, level) in want.items():
        r = got[where]
        assert r["level"] == level and r["ruleId"] == "twilio_master_credentials", where
        assert r["partialFingerprints"] == {"secret_sha256/v1": sha(pairs[name])}
        assert re.fullmatch(r"[0-9a-f]{40}", r["properties"]["commit"])
    assert got[("contrib/sms.py", 1)]["properties"]["tip_refs"] == ["refs/pull/7/head"]
    for _, token in pairs.values():
        assert token.encode() not in data and token[:4].encode() + "…".encode() not in data  # not even redacted


def test_sarif_of_a_clean_history_has_a_run_and_no_result(tmp_path):
    repo = GitRepo(tmp_path / "clean")
    repo.commit("one", {"README": "nothing here\n"})
    r = run_scan(repo, tmp_path / "out")
    assert r.returncode == 0, r.stderr
    log = json.loads((tmp_path / "out" / "findings.sarif").read_text(encoding="utf-8"))
    jsonschema.Draft4Validator(json.loads(SCHEMA.read_text(encoding="utf-8"))).validate(log)
    assert log["runs"][0]["results"] == [] and log["runs"][0]["tool"]["driver"]["rules"]
    shutil.rmtree(tmp_path / "clean")  # the report needs the store alone
    assert run_auditor("report", str(tmp_path / "out"), timeout=180).returncode == 0
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "Nothing: no secret found in 1 commit." in md
