"""SPEC §5 through the command line: the CLI in a subprocess against the Twilio stand-in on 127.0.0.1, which counts
what reached it. Exit codes and the alert list with validation on, the validity fields of every output, the options
that bound the checks (--max-pairs-per-sid, --recheck-after, --no-validate, $AUDITOR_TWILIO_API_URL), a provider
that only ever throttles, and a cached answer that belongs to another base URL."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from auditor.testing import TwilioStandIn, serve_in_thread
from tests.helpers.git import GitRepo
from tests.helpers.pairs import make_pair, make_token, redacted, sha, snippet
from tests.helpers.scan import Result, load_jsonl, run_scan


def _repo(tmp_path: Path, files: dict[str, str]) -> GitRepo:
    repo = GitRepo(tmp_path / "repo")
    repo.commit("one", files)
    return repo


def _validated(repo: GitRepo, out: Path, url: str, *args: str, progress: bool = False) -> Result:
    return run_scan(repo, out, "--twilio-api-url", url, *args, validate=True, progress=progress)


def _alerts(r: Result) -> dict[str, str]:
    """client_id → the [validity/scope] of its ALERT line."""
    return {m.group(1): m.group(2) for line in r.alerts()
            if (m := re.match(r"ALERT \S+ (AC[0-9a-f]{32}):\S+ \[([^\]]+)\]", line))}


@pytest.fixture(scope="module")
def validated(tmp_path_factory: pytest.TempPathFactory):
    """Live (at two paths), test-scoped, suspended (Twilio's 403 20403) and unknown (401) secrets; one scan."""
    base = tmp_path_factory.mktemp("validated")
    live, test, suspended, dead = (make_pair() for _ in range(4))
    repo = _repo(base, {"app.py": snippet(live), "copy/app.py": snippet(live), "test.py": snippet(test),
                        "old.py": snippet(suspended), "gone.py": snippet(dead)})
    standin = TwilioStandIn(valid={live}, test={test}, suspended={suspended}, account_type="Trial")
    with serve_in_thread(standin) as url:
        r = _validated(repo, base / "out", url)
    return {"live": live, "test": test, "suspended": suspended, "dead": dead}, r, len(standin.requests)


def test_only_valid_secrets_alert(validated) -> None:
    pairs, r, _ = validated
    assert r.returncode == 1, r
    assert _alerts(r) == {pairs["live"][0]: "valid/live", pairs["test"][0]: "valid/test"}
    assert len(r.alerts()) == 2  # one line per secret, not per occurrence
    for _, tok in pairs.values():
        assert tok not in r.stdout and tok not in r.stderr
    assert redacted(pairs["live"][1]) in "\n".join(r.alerts())


def test_findings_carry_validity_scope_and_the_account(validated) -> None:
    pairs, r, _ = validated
    got = {(f["path"], f["validity"], f["scope"], f["account_status"], f["account_type"]) for f in r.findings}
    assert got == {("app.py", "valid", "live", "active", "Trial"), ("copy/app.py", "valid", "live", "active", "Trial"),
                   ("test.py", "valid", "test", None, None), ("old.py", "invalid", None, None, None),
                   ("gone.py", "invalid", None, None, None)}


def test_secrets_jsonl_carries_validity_and_the_account(validated) -> None:
    pairs, r, _ = validated
    rows = {s["client_id"]: s for s in load_jsonl(r.out / "secrets.jsonl")}
    got = {k: (rows[p[0]]["validity"], rows[p[0]]["scope"], rows[p[0]]["account_status"],
               rows[p[0]]["account_type"], rows[p[0]]["occurrences"], rows[p[0]]["commits"])
           for k, p in pairs.items()}
    assert got == {"live": ("valid", "live", "active", "Trial", 2, 1), "test": ("valid", "test", None, None, 1, 1),
                   "suspended": ("invalid", None, None, None, 1, 1), "dead": ("invalid", None, None, None, 1, 1)}
    assert all(s["secret_sha256"] == sha((s["client_id"], dict(pairs.values())[s["client_id"]])) for s in rows.values())


def test_summary_counts_what_was_asked_and_what_is_valid(validated) -> None:
    _, r, requests = validated
    s = r.summary
    assert s["validated"] is True
    assert (s["validation_requests"], s["validation_unique"]) == (requests, 4) == (4, 4)  # each secret asked once
    assert (s["occurrences"], s["valid_occurrences"], s["valid_live_occurrences"], s["valid_test_occurrences"],
            s["unique_secrets"], s["valid_unique_secrets"], s["secrets_failed_to_check"]) == (5, 3, 2, 1, 4, 2, 0)
    assert s["valid_occurrences_per_million_commits"] == 3e6  # one commit
    assert s["confidence_intervals"]["valid_occurrences_per_million_commits"] is not None
    assert s["detectors"]["twilio_master_credentials"]["valid_occurrences"] == 3


def test_invalid_secrets_alone_exit_0_without_alerts(tmp_path: Path) -> None:
    dead = make_pair()
    standin = TwilioStandIn()
    with serve_in_thread(standin) as url:
        r = _validated(_repo(tmp_path, {"a.py": snippet(dead)}), tmp_path / "out", url)
    assert r.returncode == 0, r
    assert r.alerts() == [] and "ALERT" not in r.stdout
    assert [f["validity"] for f in r.findings] == ["invalid"]
    assert r.summary["secrets_failed_to_check"] == 0 and len(standin.requests) == 1


def test_a_test_scoped_secret_alone_alerts(tmp_path: Path) -> None:
    test = make_pair()
    with serve_in_thread(TwilioStandIn(test={test})) as url:
        r = _validated(_repo(tmp_path, {"a.py": snippet(test)}), tmp_path / "out", url)
    assert r.returncode == 1, r
    assert _alerts(r) == {test[0]: "valid/test"}


def test_max_pairs_per_sid_bounds_the_candidates_tried(tmp_path: Path) -> None:
    """No keyword near any token: the two decoys are nearer the SID than its token, which ranks third."""
    sid, token = make_pair()
    near, nearer = make_token(), make_token()
    repo = _repo(tmp_path, {"cfg.py": f'sid = "{sid}"\na = "{nearer}"\nb = "{near}"\nc = "{token}"\n'})
    standin = TwilioStandIn(valid={(sid, token)})
    with serve_in_thread(standin) as url:
        capped = _validated(repo, tmp_path / "capped", url, "--max-pairs-per-sid", "2", "--show-secrets")
        asked_capped = list(standin.requests)
        standin.requests.clear()
        full = _validated(repo, tmp_path / "full", url, "--show-secrets")
        asked_full = list(standin.requests)
    assert (len(asked_capped), len(asked_full)) == (2, 3)
    # capped: neither tried pair is valid, so the best-ranked one is the finding, with its validity
    assert capped.returncode == 0, capped
    assert [(f["client_secret"], f["validity"]) for f in capped.findings] == [(nearer, "invalid")]
    assert full.returncode == 1, full
    assert [(f["client_secret"], f["validity"]) for f in full.findings] == [(token, "valid")]


def _age_checks(out: Path, age: timedelta) -> None:
    """Make every stored check ``age`` old, as if it had been asked that long ago."""
    when = (datetime.now(UTC) - age).isoformat(timespec="seconds")
    con = sqlite3.connect(out / "audit.sqlite")
    try:
        with con:
            con.execute("UPDATE checks SET checked_at = ?", (when,))
    finally:
        con.close()


def test_recheck_after_decides_which_stored_answers_are_trusted(tmp_path: Path) -> None:
    pairs = [make_pair(), make_pair()]
    repo = _repo(tmp_path, {f"a{i}.py": snippet(p) for i, p in enumerate(pairs)})
    out = tmp_path / "out"
    standin = TwilioStandIn(valid={pairs[0]})
    asked = []
    with serve_in_thread(standin) as url:
        for age, args in ((None, ()), (timedelta(hours=2), ()), (None, ("--recheck-after", "1h")),
                          (timedelta(hours=25), ())):
            if age is not None:
                _age_checks(out, age)
            standin.requests.clear()
            r = _validated(repo, out, url, *args)
            assert r.returncode == 1 and {f["validity"] for f in r.findings} == {"valid", "invalid"}, r
            asked.append(len(standin.requests))
    # first run: both asked; 2 h old under the 24 h default: trusted; under --recheck-after 1h: asked again;
    # 25 h old under the default: asked again
    assert asked == [2, 0, 2, 2]


def test_no_validate_makes_no_request_at_all(tmp_path: Path) -> None:
    pair = make_pair()
    standin = TwilioStandIn(valid={pair})
    with serve_in_thread(standin) as url:
        r = run_scan(_repo(tmp_path, {"a.py": snippet(pair)}), tmp_path / "out", "--twilio-api-url", url,
                     env={"AUDITOR_TWILIO_API_URL": url})
    assert standin.requests == []
    assert r.returncode == 1, r  # without validation every finding counts as an alert
    assert [f["validity"] for f in r.findings] == ["unchecked"]
    assert r.summary["validated"] is False and r.summary["validation_requests"] == 0


def test_the_environment_variable_points_the_cli_at_the_provider(tmp_path: Path) -> None:
    pair = make_pair()
    standin = TwilioStandIn(valid={pair})
    with serve_in_thread(standin) as url:
        r = run_scan(_repo(tmp_path, {"a.py": snippet(pair)}), tmp_path / "out", validate=True,
                     env={"AUDITOR_TWILIO_API_URL": url})
    assert r.returncode == 1, r
    assert standin.sids() == [pair[0]] and [f["validity"] for f in r.findings] == ["valid"]


def test_a_provider_that_only_throttles_ends_as_failed_to_check(tmp_path: Path) -> None:
    pair = make_pair()
    standin = TwilioStandIn(valid={pair}, faults=["429"] * 100, retry_after=0)
    with serve_in_thread(standin) as url:
        r = _validated(_repo(tmp_path, {"a.py": snippet(pair)}), tmp_path / "out", url)
    assert r.returncode == 0, r
    assert [f["validity"] for f in r.findings] == ["failed_to_check"]
    assert len(standin.requests) == r.summary["validation_requests"] == 10  # the throttle cap, then it stops
    assert "1 of 1 secrets could not be checked" in r.stderr


def test_progress_lines_name_each_stage_when_stderr_is_not_a_tty(tmp_path: Path) -> None:
    pair = make_pair()
    with serve_in_thread(TwilioStandIn(valid={pair})) as url:
        r = _validated(_repo(tmp_path, {"a.py": snippet(pair)}), tmp_path / "out", url, progress=True)
    assert r.returncode == 1, r
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert [line.split(":")[1].strip() for line in lines] == ["detection", "validation"], r.stderr
    # how many candidates were still pending when detection ended depends on timing; the requests do not
    assert re.fullmatch(r"auditor: validation: [01] candidates resolved, 1 requests in [0-9.]+ s", lines[1]), lines


def test_a_cached_answer_is_reused_only_for_the_same_base(tmp_path: Path) -> None:
    pair = make_pair()
    repo = _repo(tmp_path, {"a.py": snippet(pair)})
    out = tmp_path / "out"
    a, b = TwilioStandIn(valid={pair}), TwilioStandIn()  # B knows no account: 401
    with serve_in_thread(a) as url_a, serve_in_thread(b) as url_b:
        first = _validated(repo, out, url_a)
        second = _validated(repo, out, url_b)
        third = _validated(repo, out, url_b)
        fourth = _validated(repo, out, url_a)
    assert [f["validity"] for f in first.findings] == ["valid"]
    assert [f["validity"] for f in second.findings] == ["invalid"]  # another base: asked, not answered from the store
    assert [f["validity"] for f in third.findings] == ["invalid"]  # the same base again: from the store
    assert [f["validity"] for f in fourth.findings] == ["valid"]  # the store keeps one answer a secret: B's, not A's
    assert (len(a.requests), len(b.requests)) == (2, 1)
    assert [r.summary["validation_requests"] for r in (first, second, third, fourth)] == [1, 1, 0, 1]
