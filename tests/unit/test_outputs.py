"""outputs.write_results: findings.jsonl, secrets.jsonl and summary.json (SPEC §7), written from hand-made findings
and from the golden history's scan; redacted unless asked, owner-only, every summary field accounted for."""

from __future__ import annotations

import json
import os
import stat
from collections import Counter
from pathlib import Path

import pytest

from auditor.detectors import load_detectors
from auditor.errors import OutputError
from auditor.models import Finding, RepoStats, Validity
from auditor.outdir import OutDir
from auditor.outputs import FINDING_COLUMNS, write_results
from auditor.report.stats import poisson_interval
from tests.helpers.pairs import make_pair, redacted, sha
from tests.helpers.scan import load_jsonl

DETECTOR = "twilio_master_credentials"


def _git_times(golden, fmt: str) -> dict[str, str]:
    """commit → its author time as ISO 8601 UTC, as git says it."""
    lines = golden.repo("log", "--all", f"--format=%H %{fmt}").split("\n")
    return {c: t.replace("+00:00", "Z") for c, t in (ln.split() for ln in lines if ln)}


# -- on the golden history's scan ---------------------------------------------------------------------------

def test_secrets_jsonl_has_each_exposure(golden):
    c, p = golden.c, golden.pairs
    rows = {s["client_id"]: s for s in load_jsonl(golden.out / "secrets.jsonl")}
    a = rows[p["A"][0]]
    assert [(e["path"], e["introduced_commit"], e["removed_commit"]) for e in a["exposures"]] == [
        ("app.py", c["c1"], c["c3"]), ("app.py", c["c4"], None)]
    assert a["still_at_tip"] is True and a["exposure_ongoing"] is True and a["removed_time"] is None
    b = rows[p["B"][0]]
    assert [(e["path"], e["removed_commit"]) for e in b["exposures"]] == [("config/settings.yaml", c["c5"]),
                                                                          ("deploy/b.env", None)]
    d = rows[p["D"][0]]
    assert d["presence"] == "history only" and d["still_at_tip"] is False
    span = golden.t[c["c9"]] - golden.t[c["c8"]]
    assert d["removed_time"] == d["exposures"][0]["removed_time"] == golden.t[c["c9"]].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert d["exposure_days"] == pytest.approx(span.total_seconds() / 86400)
    assert rows[p["C"][0]]["tip_refs"] == ["refs/tags/v1"]
    assert all(s["client_secret"].count("…") == 1 for s in rows.values())
    # SPEC §7: first/last introducing commit and time, number of occurrences and of commits, validity
    when = _git_times(golden, "aI")
    assert (a["first_commit"], a["first_time"], a["last_commit"], a["last_time"]) == (
        c["c1"], when[c["c1"]], c["c4"], when[c["c4"]])
    assert {k: (rows[p[k][0]]["occurrences"], rows[p[k][0]]["commits"]) for k in "ABCD"} == {
        "A": (2, 2), "B": (2, 2), "C": (1, 1), "D": (1, 1)}
    for s in rows.values():
        assert (s["validity"], s["scope"], s["account_status"], s["account_type"]) == ("unchecked", None, None, None)
        assert s["detector"] == DETECTOR and s["secret_sha256"] == sha((s["client_id"], golden_token(golden, s)))


def golden_token(golden, row: dict) -> str:
    return next(t for sid, t in golden.pairs.values() if sid == row["client_id"])


def test_summary_json_has_intervals(golden):
    summary = json.loads((golden.out / "summary.json").read_text())
    low, high = poisson_interval(6)
    assert summary["occurrences_per_million_commits"] == round(6 / 9 * 1e6, 4)
    assert summary["confidence_intervals"]["occurrences_per_million_commits"] == [
        round(low / 9 * 1e6, 4), round(high / 9 * 1e6, 4)]
    assert summary["valid_occurrences_per_million_commits"] is None
    assert summary["confidence_intervals"]["valid_occurrences_per_million_commits"] is None
    assert summary["commits_with_occurrences"] == 5 and "Garwood" in summary["confidence_interval_method"]
    # the other fields SPEC §7 names
    assert summary["bytes_scanned"] > 0 and summary["blobs_scanned"] >= 1
    assert {"detection", "validation", "attribution", "total"} <= set(summary["seconds"])
    assert summary["interrupted"] is False and summary["validated"] is False
    assert (summary["validation_requests"], summary["validation_unique"]) == (0, 0)
    assert summary["unique_secrets"] == 4
    assert summary["unique_secrets_per_million_commits"] == round(4 / 9 * 1e6, 4)
    assert summary["commits_with_occurrences_per_million_commits"] == round(5 / 9 * 1e6, 4)
    detector = summary["detectors"][DETECTOR]
    # the primary published figure (data/reference_rates.csv: GitGuardian's current page), with where it was read
    assert detector["reference_occurrences_per_million_commits"] == 8.33
    assert detector["reference"]["address"].endswith("/detectors/specifics/twilio_master_credentials")
    assert detector["reference"]["date_read"] == "2026-11-27" and "public GitHub" in detector["reference"]["population"]
    assert detector["occurrences"] == 6 and detector["occurrences_per_million_commits"] == round(6 / 9 * 1e6, 4)


# -- write_results on hand-made values --------------------------------------------------------------------------

def _finding(pair, *, commit: str, path: str, validity: Validity = Validity.UNCHECKED, scope: str | None = None,
             status: str | None = None, kind: str | None = None, repo: str = "/repos/one",
             subaccount: bool | None = None, region: str | None = None) -> Finding:
    return Finding(detector=DETECTOR, repo=repo, commit=commit, path=path, line=3, client_id=pair[0],
                   client_secret=pair[1], secret_sha256=sha(pair), validity=validity, scope=scope,
                   account_status=status, account_type=kind, author_email="a@example.com",
                   author_time="2021-03-01T00:00:00Z", blob="b" * 40, subaccount=subaccount, region=region,
                   author_name="Ada Example", commit_time="2021-03-02T10:00:00+00:00", commit_message="add settings")


def _stats(repo: str = "/repos/one", **kw) -> RepoStats:
    return RepoStats(repo=repo, path=repo + "/.git", commits_scanned=kw.pop("commits", 4), **kw)


def _write(out: Path, findings: list[Finding], repos: list[RepoStats], *, tips=(), prepare: bool = True, **kw):
    if prepare:
        OutDir(out).prepare()
    opts = {"show_secrets": False, "validated": False, "validation_requests": 0, "validation_unique": 0,
            "wall_seconds": 1.25, "interrupted": False, **kw}
    return write_results(OutDir(out), findings, repos, list(tips), load_detectors(), **opts)


@pytest.fixture
def made():
    live, dead = make_pair(), make_pair()
    findings = [
        _finding(live, commit="1" * 40, path="app.py", validity=Validity.VALID, scope="live", status="active",
                 kind="Full", subaccount=True, region="ie1"),
        _finding(live, commit="2" * 40, path="copy/app.py", validity=Validity.VALID, scope="live",
                 status="active", kind="Full", subaccount=True, region="ie1"),
        _finding(dead, commit="2" * 40, path="old.py", validity=Validity.FAILED_TO_CHECK),
    ]
    return live, dead, findings


def test_findings_are_redacted_unless_asked(tmp_path, made):
    live, dead, findings = made
    _write(tmp_path / "r", findings, [_stats()])
    rows = load_jsonl(tmp_path / "r" / "findings.jsonl")
    assert sorted(r["client_secret"] for r in rows) == sorted([redacted(live[1])] * 2 + [redacted(dead[1])])
    for name in ("findings.jsonl", "secrets.jsonl", "summary.json"):
        data = (tmp_path / "r" / name).read_bytes()
        assert live[1].encode() not in data and dead[1].encode() not in data, name
    _write(tmp_path / "s", findings, [_stats()], show_secrets=True)
    rows = load_jsonl(tmp_path / "s" / "findings.jsonl")
    assert sorted(r["client_secret"] for r in rows) == sorted([live[1]] * 2 + [dead[1]])
    assert sorted(s["client_secret"] for s in load_jsonl(tmp_path / "s" / "secrets.jsonl")) == sorted(
        [live[1], dead[1]])


def test_findings_jsonl_has_every_field_of_spec_7(tmp_path, made):
    live, _, findings = made
    _write(tmp_path, findings, [_stats()], validated=True)
    row = next(r for r in load_jsonl(tmp_path / "findings.jsonl") if r["path"] == "app.py")
    assert row == {"detector": DETECTOR, "repo": "/repos/one", "commit": "1" * 40, "path": "app.py", "line": 3,
                   "client_id": live[0], "client_secret": redacted(live[1]), "secret_sha256": sha(live),
                   "validity": "valid", "scope": "live", "account_status": "active", "account_type": "Full",
                   "subaccount": True, "region": "ie1", "author_email": "a@example.com", "author_name": "Ada Example",
                   "author_time": "2021-03-01T00:00:00Z", "commit_time": "2021-03-02T10:00:00Z",
                   "commit_message": "add settings", "blob": "b" * 40}
    assert list(row) == list(FINDING_COLUMNS)  # SPEC §7's columns first, in its order; additions after author_email


def test_secrets_jsonl_one_row_per_secret_with_its_validity(tmp_path, made):
    live, dead, findings = made
    _write(tmp_path, findings, [_stats()], validated=True,
           tips=[("/repos/one", sha(live), "refs/heads/main", "app.py")])
    rows = {r["client_id"]: r for r in load_jsonl(tmp_path / "secrets.jsonl")}
    assert set(rows) == {live[0], dead[0]}
    got = {k: (r["occurrences"], r["commits"], r["validity"], r["scope"], r["account_status"], r["account_type"],
               r["subaccount"], r["region"], r["still_at_tip"], r["tip_refs"]) for k, r in rows.items()}
    assert got == {live[0]: (2, 2, "valid", "live", "active", "Full", True, "ie1", True, ["refs/heads/main"]),
                   dead[0]: (1, 1, "failed_to_check", None, None, None, None, None, False, [])}


def test_summary_says_which_regions_were_asked_and_which_answered(tmp_path, made):
    live, dead, findings = made
    refused = make_pair()
    findings = [*findings, _finding(refused, commit="3" * 40, path="r.py", validity=Validity.INVALID, region="us1")]
    asked = {DETECTOR: ("us1", "ie1")}
    about = _write(tmp_path / "a", findings, [_stats()], validated=True, regions=asked).detectors[DETECTOR]
    assert (about["regions"], about["regions_note"]) == (["us1", "ie1"], None)
    assert about["unique_secrets_by_region"] == {"ie1": {"valid": 1}, "us1": {"invalid": 1}}  # failures: no region
    about = _write(tmp_path / "b", findings, [_stats()], validated=True, regions={DETECTOR: ("us1",)}
                   ).detectors[DETECTOR]
    assert about["regions"] == ["us1"] and about["regions_note"].startswith("only us1 was asked")
    about = _write(tmp_path / "c", findings, [_stats()], regions=asked).detectors[DETECTOR]
    assert (about["regions"], about["regions_note"], about["unique_secrets_by_region"]) == (["us1", "ie1"], None,
                                                                                           None)
    about = _write(tmp_path / "d", findings, [_stats()], validated=True).detectors[DETECTOR]  # knows no regions
    assert (about["regions"], about["regions_note"], about["unique_secrets_by_region"]) == (None, None, None)
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["detectors"][DETECTOR]["regions"] == [
        "us1", "ie1"]


def test_summary_counts_and_rates(tmp_path, made):
    live, dead, findings = made
    one = _stats(blobs_scanned=10, bytes_scanned=1000, blobs_skipped=Counter({"binary": 2}),
                 seconds={"detection": 0.5, "attribution": 0.25}, errors=["blob x: unreadable"])
    two = _stats("/repos/two", commits=6, blobs_scanned=5, bytes_scanned=24,
                 blobs_skipped=Counter({"binary": 1, "too_large": 1}), seconds={"detection": 0.25})
    summary = _write(tmp_path, findings, [one, two], validated=True, validation_requests=7, validation_unique=2)
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s == summary.as_json()
    assert (s["commits_scanned"], s["blobs_scanned"], s["bytes_scanned"]) == (10, 15, 1024)
    assert s["blobs_skipped"] == {"binary": 3, "too_large": 1}
    assert s["seconds"] == {"detection": 0.75, "attribution": 0.25, "total": 1.25}
    assert (s["errors"], s["error_count"]) == (["blob x: unreadable"], 1)
    assert (s["validated"], s["validation_requests"], s["validation_unique"], s["interrupted"]) == (True, 7, 2, False)
    assert (s["occurrences"], s["valid_occurrences"], s["valid_live_occurrences"], s["unique_secrets"],
            s["valid_unique_secrets"], s["commits_with_occurrences"]) == (3, 2, 2, 2, 1, 2)
    assert s["valid_occurrences_per_million_commits"] == round(2 / 10 * 1e6, 4)
    low, high = poisson_interval(2)
    assert s["confidence_intervals"]["valid_occurrences_per_million_commits"] == [
        round(low / 10 * 1e6, 4), round(high / 10 * 1e6, 4)]
    assert s["secrets_failed_to_check"] == 1
    assert [(r["repo"], r["commits_scanned"], r["occurrences"], r["errors"]) for r in s["repos"]] == [
        ("/repos/one", 4, 3, 1), ("/repos/two", 6, 0, 0)]
    assert s["store_also_holds"] == []


def test_an_interrupted_run_says_so(tmp_path, made):
    _, _, findings = made
    assert _write(tmp_path, findings, [_stats()], interrupted=True).interrupted is True
    assert json.loads((tmp_path / "summary.json").read_text())["interrupted"] is True


def test_files_are_owner_only_even_when_they_existed_readable(tmp_path, made):
    _, _, findings = made
    for name in ("findings.jsonl", "secrets.jsonl", "summary.json"):
        (tmp_path / name).write_text("left by someone else, readable by all\n")
        os.chmod(tmp_path / name, 0o644)
    _write(tmp_path, findings, [_stats()])
    for name in ("findings.jsonl", "secrets.jsonl", "summary.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
        assert "someone else" not in (tmp_path / name).read_text()


def test_an_unwritable_out_is_an_output_error(tmp_path, made):
    _, _, findings = made
    (tmp_path / "out").write_text("a file, not a directory\n")
    with pytest.raises(OutputError, match="cannot write the results"):
        _write(tmp_path / "out", findings, [_stats()], prepare=False)
