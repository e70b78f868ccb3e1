"""SPEC §5 through the command line: the CLI in a subprocess against the Twilio stand-in on 127.0.0.1, which counts
what reached it. Exit codes and the alert list with validation on, the validity fields of every output, the options
that bound the checks (--max-pairs-per-sid, --recheck-after, --no-validate, $AUDITOR_TWILIO_API_URL), a provider
that only ever throttles, a cached answer that belongs to another base URL, Twilio's other answers (closed accounts,
subaccounts, foreign 401s, 404s) and regional tokens (--twilio-regions, two stand-ins playing two regions)."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from auditor.testing import TwilioStandIn, serve_in_thread
from tests.helpers.git import GitRepo
from tests.helpers.pairs import make_pair, make_token, redacted, sha, snippet
from tests.helpers.scan import Result, load_jsonl, run_auditor, run_scan


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


def test_answers_twilio_gives_beyond_live_and_dead(tmp_path: Path) -> None:
    """SPEC §5 case by case through the CLI: a closed account (invalid, with its status), a subaccount (valid, and
    said to be one), a 401 that is not Twilio's (failed_to_check, never invalid), Twilio's 404 (asked once)."""
    closed, sub, proxied, missing = (make_pair() for _ in range(4))
    repo = _repo(tmp_path, {f"{name}.py": snippet(pair) for name, pair in
                            (("closed", closed), ("sub", sub), ("proxied", proxied), ("missing", missing))})
    standin = TwilioStandIn(closed={closed}, subaccounts={sub},
                            sid_faults={proxied[0]: ["401-empty", "401-json"] * 2, missing[0]: ["404"] * 4})
    with serve_in_thread(standin) as url:
        r = _validated(repo, tmp_path / "out", url, "--show-secrets")
    assert r.returncode == 1, r
    got = {f["path"]: (f["validity"], f["scope"], f["account_status"], f["subaccount"], f["region"])
           for f in r.findings}
    assert got == {"closed.py": ("invalid", None, "closed", False, "us1"), "sub.py": ("valid", "live", "active", True,
                                                                                     "us1"),
                   "proxied.py": ("failed_to_check", None, None, None, None),
                   "missing.py": ("failed_to_check", None, None, None, None)}
    asked = {sid: n for sid, n in ((p[0], standin.sids().count(p[0])) for p in (closed, sub, proxied, missing))}
    assert asked == {closed[0]: 1, sub[0]: 1, proxied[0]: 4, missing[0]: 1}
    assert _alerts(r) == {sub[0]: "valid/live"}
    rows = {s["client_id"]: s for s in load_jsonl(r.out / "secrets.jsonl")}
    assert (rows[sub[0]]["subaccount"], rows[closed[0]]["account_status"]) == (True, "closed")
    assert "owner@example.com" not in (r.out / "findings.jsonl").read_text()  # Twilio's friendly_name: never kept
    assert "2 of 4 secrets could not be checked" in r.stderr


def _regional(tmp_path: Path):
    """Secrets of three kinds — US1's, IE1's, and dead everywhere — and a stand-in for each region."""
    in_us, in_ie, dead = make_pair(), make_pair(), make_pair()
    repo = _repo(tmp_path, {"us.py": snippet(in_us), "ie.py": snippet(in_ie), "dead.py": snippet(dead)})
    return repo, (in_us, in_ie, dead), TwilioStandIn(valid={in_us}), TwilioStandIn(valid={in_ie}, region="ie1")


def test_a_token_of_another_region_is_found_there_with_twilio_regions(tmp_path: Path) -> None:
    """SPEC §5: auth tokens are regional. Two stand-ins on two ports play US1 and IE1: with --twilio-regions ie1
    the pair US1 refuses is asked of IE1, which knows it; the region that answered is kept everywhere."""
    repo, (in_us, in_ie, dead), us, ie = _regional(tmp_path)
    with serve_in_thread(us) as us_url, serve_in_thread(ie) as ie_url:
        r = _validated(repo, tmp_path / "out", us_url, "--twilio-regions", "ie1",
                       "--twilio-region-url", f"ie1={ie_url}")
    assert r.returncode == 1, r
    assert _alerts(r) == {in_us[0]: "valid/live", in_ie[0]: "valid/live"}
    got = {f["path"]: (f["validity"], f["region"]) for f in r.findings}
    assert got == {"us.py": ("valid", "us1"), "ie.py": ("valid", "ie1"), "dead.py": ("invalid", "us1")}
    assert sorted(us.sids()) == sorted([in_us[0], in_ie[0], dead[0]])
    assert sorted(ie.sids()) == sorted([in_ie[0], dead[0]])  # only what US1 refused
    rows = {s["client_id"]: s["region"] for s in load_jsonl(r.out / "secrets.jsonl")}
    assert rows == {in_us[0]: "us1", in_ie[0]: "ie1", dead[0]: "us1"}
    about = r.summary["detectors"]["twilio_master_credentials"]
    assert (about["regions"], about["regions_note"]) == (["us1", "ie1"], None)
    assert about["unique_secrets_by_region"] == {"ie1": {"valid": 1}, "us1": {"invalid": 1, "valid": 1}}
    assert r.summary["validation_requests"] == 5 and "only us1 was asked" not in r.stderr
    stored = sqlite3.connect(r.out / "audit.sqlite").execute("SELECT region, base, fallbacks FROM checks").fetchall()
    assert sorted(stored, key=str) == sorted([("us1", us_url, None), ("ie1", us_url, f"ie1={ie_url}"),
                                              ("us1", us_url, f"ie1={ie_url}")], key=str)


def test_without_twilio_regions_the_summary_and_stderr_say_only_us1_was_asked(tmp_path: Path) -> None:
    """The same secrets without --twilio-regions: the IE1 token reads invalid, and the run says why it may not be.
    A later run that lists ie1 asks again about what US1 refused (another set of servers), and reuses the rest."""
    repo, (in_us, in_ie, dead), us, ie = _regional(tmp_path)
    out = tmp_path / "out"
    with serve_in_thread(us) as us_url, serve_in_thread(ie) as ie_url:
        plain = _validated(repo, out, us_url)
        asked_plain = (len(us.requests), len(ie.requests))
        reported = run_auditor("report", str(out))
        listed = _validated(repo, out, us_url, "--twilio-regions", "ie1", "--twilio-region-url", f"ie1={ie_url}")
        again = _validated(repo, out, us_url, "--twilio-regions", "ie1", "--twilio-region-url", f"ie1={ie_url}")
    assert plain.returncode == 1, plain
    assert {f["path"]: (f["validity"], f["region"]) for f in plain.findings} == {
        "us.py": ("valid", "us1"), "ie.py": ("invalid", "us1"), "dead.py": ("invalid", "us1")}
    about = plain.summary["detectors"]["twilio_master_credentials"]
    assert about["regions"] == ["us1"] and about["regions_note"].startswith("only us1 was asked")
    assert "--twilio-regions" in about["regions_note"]
    assert re.search(r"twilio_master_credentials: 2 secrets read invalid, and only us1 was asked", plain.stderr)
    assert asked_plain == (3, 0)
    assert reported.returncode == 0, reported.stderr
    text = (out / "report.md").read_text()
    assert "Answered by the API host of region: us1 (3 secrets)" in text and "only us1 was asked" in text
    # the run that lists ie1: the two refused pairs are asked again (US1, then IE1); the valid one is not
    assert {f["path"]: (f["validity"], f["region"]) for f in listed.findings} == {
        "us.py": ("valid", "us1"), "ie.py": ("valid", "ie1"), "dead.py": ("invalid", "us1")}
    assert listed.summary["validation_requests"] == 4 and sorted(ie.sids()) == sorted([in_ie[0], dead[0]])
    assert again.summary["validation_requests"] == 0  # the same servers: every answer from the store
    assert len(us.requests) == 3 + 2
