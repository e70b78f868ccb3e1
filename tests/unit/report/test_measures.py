"""report.measures on histories whose answers are known by construction: rates, intervals, breakdowns, timelines.

Repositories are built with real git in tmp_path and scanned in-process with the real pipeline (no validation, or
against the Twilio stand-in); expected frames are written out by hand from the history and compared exactly.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from auditor import report
from auditor.report.frames import PRESENCE_DTYPE, SCOPE, VALIDITY
from auditor.report.stats import poisson_interval
from auditor.testing import TwilioStandIn, serve_in_thread
from tests.helpers.git import GitRepo
from tests.helpers.histories import scan_in_process
from tests.helpers.pairs import make_pair, snippet


def run(repos: list[GitRepo], out, **kw):
    scan_in_process(repos, out, **kw)
    return out


def rates_of(counts: list[int], commits: list[int]) -> dict[str, pd.Series]:
    """rate and 95% interval per million commits, computed independently of auditor.stats.with_rates."""
    bounds = [poisson_interval(k) for k in counts]
    return {"rate": pd.Series([k / n * 1e6 for k, n in zip(counts, commits, strict=True)], dtype="Float64"),
            "rate_low": pd.Series([b[0] / n * 1e6 for b, n in zip(bounds, commits, strict=True)], dtype="Float64"),
            "rate_high": pd.Series([b[1] / n * 1e6 for b, n in zip(bounds, commits, strict=True)], dtype="Float64")}


# -- the history of every lifecycle (the golden fixture, tests/conftest.py) ----------------------------------------
def test_rates_and_breakdowns(golden):
    f = golden.frames
    assert (f.commits_scanned, f.validated) == (9, False)
    measures = ["occurrences", "valid_occurrences", "valid_live_occurrences", "valid_test_occurrences",
                "commits_with_occurrences", "unique_secrets", "valid_unique_secrets"]
    counts = [6, None, None, None, 5, 4, None]
    known = [k is not None for k in counts]
    r = rates_of([k or 0 for k in counts], [9] * 7)
    expected = pd.DataFrame({
        "detector": "twilio_master_credentials", "measure": measures,
        "count": pd.array(counts, dtype="Int64"), "commits": 9,
        **{k: v.where(known) for k, v in r.items()},
        "reference": pd.array([8.33, *[None] * 6], dtype="Float64"),  # the current published figure
    }).astype({"detector": "string", "measure": "string", "commits": "int64"})
    rates = report.rates(f)
    master = rates["detector"] == "twilio_master_credentials"
    pd.testing.assert_frame_equal(rates[master].reset_index(drop=True), expected)
    # the other built-in detector was run too: its rows say zero, with its own published reference
    keys = rates[~master].set_index("measure")
    assert (set(keys["detector"]), keys.loc["occurrences", "count"]) == ({"twilio_api_keys"}, 0)
    assert keys.loc["occurrences", "reference"] == 0.37

    by_year = pd.DataFrame({"year": [2020, 2021], "commits": [3, 6], "occurrences": [2, 4],
                            "valid_occurrences": pd.array([None, None], dtype="Int64"), "unique_secrets": [2, 4],
                            **rates_of([2, 4], [3, 6])})
    pd.testing.assert_frame_equal(report.by_year(f), by_year)

    def breakdown(key: str, labels: list[str], occ: list[int], uniq: list[int], dtype: object = "string"
                  ) -> pd.DataFrame:
        return pd.DataFrame({key: pd.Series(labels, dtype=dtype), "occurrences": occ,
                             "valid_occurrences": pd.array([None] * len(occ), dtype="Int64"),
                             "unique_secrets": uniq, "commits": 9, **rates_of(occ, [9] * len(occ))})

    pd.testing.assert_frame_equal(report.by_extension(f), breakdown(
        "extension", ["py", "(none)", "env", "sh", "yaml"], [2, 1, 1, 1, 1], [1, 1, 1, 1, 1]))
    pd.testing.assert_frame_equal(report.by_directory(f), breakdown(
        "top_directory", ["(root)", "config", "deploy", "tools"], [3, 1, 1, 1], [2, 1, 1, 1]))
    pd.testing.assert_frame_equal(report.by_presence(f), breakdown(
        "presence", ["branch tip", "tag tip", "history only"], [4, 1, 1], [2, 1, 1], PRESENCE_DTYPE))
    validity = breakdown("validity", ["unchecked"], [6], [4], VALIDITY)
    validity.insert(1, "scope", pd.Series([None], dtype=SCOPE))
    pd.testing.assert_frame_equal(report.by_validity(f), validity)


def test_timeline_and_top_paths(golden):
    f = golden.frames
    tl = report.timeline(f, "M")
    assert tl["period"].iloc[0] == pd.Timestamp("2020-06-01") and tl["period"].iloc[-1] == pd.Timestamp("2021-03-01")
    assert len(tl) == 10 and tl["commits"].sum() == 9 and tl["occurrences"].tolist() == [2] + [0] * 8 + [4]
    top = report.top_paths(f, 3)
    assert top[["path", "occurrences", "still_at_tip"]].to_numpy().tolist() == [
        ["app.py", 2, True], ["README", 1, False], ["config/settings.yaml", 1, False]]  # ties: by path
    assert set(report.top_paths(f).query("still_at_tip")["path"]) == {"app.py", "deploy/b.env", "tools/run.sh"}
    life = report.lifecycle(f, golden.pairs["A"][0])
    assert life["removed_commit"].tolist() == [golden.c["c3"], pd.NA]
    assert life["exposure_days"].iloc[0] == pytest.approx(
        (golden.t[golden.c["c3"]] - golden.t[golden.c["c1"]]).total_seconds() / 86400)
    # the ongoing one runs to the scan, as secrets counts it: both agree on the secret's last exposure
    scanned = f.repos["scanned_at"].iloc[0]
    assert life["exposure_ongoing"].tolist() == [False, True]
    assert life["exposure"].tolist() == [golden.t[golden.c["c3"]] - golden.t[golden.c["c1"]],
                                         scanned - golden.t[golden.c["c4"]]]
    assert str(life["exposure"].dtype) == "timedelta64[s]"


# -- edges: no commit, one commit, several repositories, validation --------------------------------------------
def test_one_commit(tmp_path):
    repo = GitRepo(tmp_path / "one")
    pair = make_pair()
    repo.commit("only", {"a.py": snippet(pair)})
    f = report.load(run([repo], tmp_path / "out"))
    occ = report.headline(f).set_index("measure").loc["occurrences"]
    assert (occ["count"], occ["commits"], occ["rate"]) == (1, 1, 1e6)
    assert occ["rate_low"] == pytest.approx(0.025318 * 1e6, rel=1e-5)
    assert occ["rate_high"] == pytest.approx(5.571643 * 1e6, rel=1e-6)
    assert report.by_year(f)[["year", "commits", "occurrences"]].to_numpy().tolist() == [[2020, 1, 1]]
    s = f.secrets.iloc[0]
    assert s["still_at_tip"] and s["exposure_ongoing"] and s["presence"] == "branch tip"


def test_several_repositories(tmp_path):
    one, two = GitRepo(tmp_path / "one"), GitRepo(tmp_path / "two")
    shared, own = make_pair(), make_pair()
    one.commit("a1", {"a.py": snippet(shared)})
    one.commit("a2", {"b.txt": "nothing\n"})
    two.commit("b1", {"a.py": snippet(shared)})
    two.commit("b2", {"c.py": snippet(own)})
    two.commit("b3", {"c.py": "gone\n"})
    f = report.load(run([one, two], tmp_path / "out"))
    table = report.per_repository(f)
    table = table[table["measure"].isin(["occurrences", "unique_secrets"])].reset_index(drop=True)
    repos = [str(one.path), str(two.path)]  # no pooled row: pooled() has it
    counts, commits = [1, 1, 2, 2], [2, 2, 3, 3]
    expected = pd.DataFrame({"repo": [r for r in repos for _ in range(2)],
                             "measure": ["occurrences", "unique_secrets"] * 2,
                             "count": pd.array(counts, dtype="Int64"), "commits": commits,
                             **rates_of(counts, commits)}).astype({"repo": "string", "measure": "string"})
    pd.testing.assert_frame_equal(table, expected)
    pool = report.pooled(f).set_index("measure")
    assert (pool.loc["occurrences", "count"], pool.loc["occurrences", "commits"]) == (3, 5)
    assert pool.loc["occurrences", "rate"] == pytest.approx(3 / 5 * 1e6)
    compared = report.compare(f)  # 3 in 5 commits: far above 8.33 per million; each interval excludes it
    assert sorted(set(compared["detector"])) == ["twilio_api_keys", "twilio_master_credentials"]  # both built-in
    compared = compared[compared["detector"] == "twilio_master_credentials"]
    assert compared["reference"].tolist() == [8.33, 8.33] and compared["excludes_reference"].all()
    assert compared[["name", "occurrences", "reference_is"]].to_numpy().tolist() == [
        ["two", 2, "below"], ["one", 1, "below"]]  # the reference lies below each interval; by commits
    assert report.compare(f, detector="twilio_master_credentials", reference=1e6).set_index("name").loc[
        "one", "reference_is"] == "inside"
    only_two = report.load(tmp_path / "out", repos=[str(two.path)])
    assert only_two.commits_scanned == 3 and len(only_two.findings) == 2


def test_validity_measures_against_the_stand_in(tmp_path):
    repo = GitRepo(tmp_path / "repo")
    live, test, dead = make_pair(), make_pair(), make_pair()
    repo.commit("one", {"live.py": snippet(live), "test.py": snippet(test), "dead.py": snippet(dead)})
    repo.commit("two", {"copy/live.py": snippet(live)})
    with serve_in_thread(TwilioStandIn(valid={live}, test={test})) as base:
        out = run([repo], tmp_path / "out", validate=True, api_urls={"twilio": base}, validate_rate=1000.0)
    f = report.load(out)
    counts = report.headline(f).set_index("measure")["count"].to_dict()
    assert counts == {"occurrences": 4, "valid_occurrences": 3, "valid_live_occurrences": 2,
                      "valid_test_occurrences": 1, "commits_with_occurrences": 2, "unique_secrets": 3,
                      "valid_unique_secrets": 2}
    v = report.by_validity(f)
    assert v[["validity", "scope", "occurrences"]].astype(object).where(v.notna(), None).to_numpy().tolist() == [
        ["valid", "live", 2], ["valid", "test", 1], ["invalid", None, 1]]  # ties: valid first (categories)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["valid_live_occurrences_per_million_commits"] == 1e6
    assert summary["detectors"]["twilio_master_credentials"]["valid_test_occurrences"] == 1




def test_who_introduced_them_and_how_long_they_stayed(golden):
    f = golden.frames
    who = report.by_author(f)
    assert who[["author_name", "author_email", "occurrences", "unique_secrets", "commits", "repos"]].to_numpy(
        ).tolist() == [["Test Author", "author@example.com", 6, 4, 5, 1]]  # one identity made the golden history
    assert who["valid_unique_secrets"].isna().all()  # not checked: NA, never 0
    assert who["first_introduced"].iloc[0] == golden.t[golden.c["c1"]]
    spans = report.exposure_summary(f).set_index("secrets")
    s = f.secrets
    assert spans["count"].tolist() == [1, 3, 4]  # D removed; A, B, C still at a tip
    assert spans.loc["gone from every tip (still in history)", "median"] == golden.t[golden.c["c9"]] - golden.t[
        golden.c["c8"]]
    assert spans.loc["all secrets", "longest"] == s["exposure"].max()
    assert spans.loc["still at a ref tip (until the scan)", "shortest"] == s.loc[s["exposure_ongoing"],
                                                                                "exposure"].min()
    assert str(spans["median"].dtype) == "timedelta64[s]"
