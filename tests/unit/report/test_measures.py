"""The reporter on histories whose answers are known by construction: frames, rates, intervals, lifecycles, files.

Repositories are built with real git in tmp_path and scanned in-process with the real pipeline (no validation, or
against the Twilio stand-in); expected frames are written out by hand from the history and compared exactly.
"""

from __future__ import annotations

import base64
import json
import math
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from conftest import BASE_ENV, GitRepo, load_jsonl, make_pair, snippet

from auditor import report
from auditor.models import secret_sha256
from auditor.pipeline import ScanOptions, scan
from auditor.report.stats import gamma_cdf, gamma_quantile, per_million, poisson_interval, rate_interval
from auditor.testing import TwilioStandIn, serve_in_thread

TIME = "datetime64[s, UTC]"


def ts(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def run(repos: list[GitRepo], out: Path, **kw) -> Path:
    scan([str(r.path) for r in repos], ScanOptions(out=out, progress=False, jobs=1, **{"validate": False, **kw}))
    return out


def times(repo: GitRepo) -> dict[str, pd.Timestamp]:
    lines = repo("log", "--all", "--format=%H %ct").split("\n")
    return {c: pd.Timestamp(int(t), unit="s", tz="UTC") for c, t in (ln.split() for ln in lines if ln)}


def rates_of(counts: list[int], commits: list[int]) -> dict[str, pd.Series]:
    """rate and 95% interval per million commits, computed independently of auditor.stats.with_rates."""
    bounds = [poisson_interval(k) for k in counts]
    return {"rate": pd.Series([k / n * 1e6 for k, n in zip(counts, commits, strict=True)], dtype="Float64"),
            "rate_low": pd.Series([b[0] / n * 1e6 for b, n in zip(bounds, commits, strict=True)], dtype="Float64"),
            "rate_high": pd.Series([b[1] / n * 1e6 for b, n in zip(bounds, commits, strict=True)], dtype="Float64")}


# -- the interval ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("k", "low", "high"), [
    (0, 0.0, 3.688879), (1, 0.025318, 5.571643), (2, 0.242209, 7.224688), (5, 1.623486, 11.668332),
    (10, 4.795389, 18.390356), (100, 81.363991, 121.626794)])
def test_poisson_interval_known_values(k, low, high):
    got = poisson_interval(k)
    assert got[0] == pytest.approx(low, abs=1e-6) and got[1] == pytest.approx(high, abs=1e-6)


def test_gamma_functions_against_closed_forms():
    for x in (0.01, 0.5, 1.0, 3.0, 20.0):
        assert gamma_cdf(1.0, x) == pytest.approx(1 - math.exp(-x), rel=1e-12)  # exponential
        assert gamma_cdf(0.5, x) == pytest.approx(math.erf(math.sqrt(x)), rel=1e-10)  # χ² with 1 d.o.f.
        assert gamma_cdf(3.0, x) == pytest.approx(1 - math.exp(-x) * (1 + x + x * x / 2), rel=1e-10)
    for a in (0.5, 1.0, 7.0, 250.0, 1e5):
        for p in (1e-4, 0.025, 0.5, 0.975):
            assert gamma_cdf(a, gamma_quantile(p, a)) == pytest.approx(p, rel=1e-9)
    big = poisson_interval(10**6)  # normal approximation: ± 1.96 √k
    assert big[0] == pytest.approx(10**6 - 1960, abs=2) and big[1] == pytest.approx(10**6 + 1962, abs=2)


def test_rates_without_commits_are_null_never_inf():
    assert per_million(3, 0) is None and rate_interval(3, 0) == (None, None)
    assert per_million(0, 2000) == 0.0 and rate_interval(0, 2000) == (0.0, round(3.688879454 / 2000 * 1e6, 4))


# -- a history with every lifecycle -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    """A: removed then re-added (still at main); B: moved by copy + delete (still at main); C: only at tag v1;
    D: removed (history only). Three commits in 2020, six in 2021."""
    base = tmp_path_factory.mktemp("golden")
    repo = GitRepo(base / "repo")
    A, B, C, D = (make_pair() for _ in range(4))
    repo.clock = ts("2020-06-01T00:00:00")
    c = {"c1": repo.commit("c1", {"app.py": snippet(A), "config/settings.yaml": snippet(B, line=3)})}
    c["c2"] = repo.commit("c2", {"app.py": "# header\n" + snippet(A)})  # an edit elsewhere: nothing new
    c["c3"] = repo.commit("c3", {"app.py": "print('no secret here')\n"})  # A leaves app.py
    repo.clock = ts("2021-03-01T00:00:00")
    c["c4"] = repo.commit("c4", {"app.py": snippet(A)})  # A comes back: a second occurrence
    c["c5"] = repo.commit("c5", {"deploy/b.env": snippet(B)}, remove=("config/settings.yaml",))
    c["c6"] = repo.commit("c6", {"tools/run.sh": snippet(C)})
    repo("tag", "v1")
    c["c7"] = repo.commit("c7", remove=("tools/run.sh",))
    c["c8"] = repo.commit("c8", {"README": snippet(D)})
    c["c9"] = repo.commit("c9", remove=("README",))
    out = run([repo], base / "out")
    return pd.Series({"repo": repo, "out": out, "frames": report.load(out), "c": c, "t": times(repo),
                      "pairs": {"A": A, "B": B, "C": C, "D": D}})


def test_findings_carry_commit_time_place_and_end_of_exposure(golden):
    c, t = golden.c, golden.t
    rows = [("c1", "app.py", "c3", "py", "(root)"), ("c1", "config/settings.yaml", "c5", "yaml", "config"),
            ("c4", "app.py", None, "py", "(root)"), ("c5", "deploy/b.env", None, "env", "deploy"),
            ("c6", "tools/run.sh", "c7", "sh", "tools"), ("c8", "README", "c9", "(none)", "(root)")]
    expected = pd.DataFrame({
        "commit": [c[r[0]] for r in rows], "path": [r[1] for r in rows],
        "commit_time": [t[c[r[0]]] for r in rows],
        "removed_commit": [c[r[2]] if r[2] else None for r in rows],
        "removed_time": [t[c[r[2]]] if r[2] else pd.NaT for r in rows],
        "extension": [r[3] for r in rows], "top_directory": [r[4] for r in rows],
    }).astype({"commit": "string", "path": "string", "commit_time": TIME, "removed_commit": "string",
               "removed_time": TIME, "extension": "string", "top_directory": "string"})
    got = golden.frames.findings.sort_values(["commit_time", "path"]).reset_index(drop=True)[list(expected.columns)]
    pd.testing.assert_frame_equal(got, expected)
    assert got.dtypes.equals(expected.dtypes)


def test_secret_lifecycles(golden):
    c, t, p = golden.c, golden.t, golden.pairs
    scanned = golden.frames.repos["scanned_at"].iloc[0]

    def days(a, b):
        return (b - a).total_seconds() / 86400

    expected = pd.DataFrame({
        "secret_sha256": [secret_sha256(*p[k]) for k in "ABCD"],
        "first_commit": [c["c1"], c["c1"], c["c6"], c["c8"]],
        "last_commit": [c["c4"], c["c5"], c["c6"], c["c8"]],
        "occurrences": [2, 2, 1, 1], "paths": [1, 2, 1, 1],
        "introduced_time": [t[c["c1"]], t[c["c1"]], t[c["c6"]], t[c["c8"]]],
        "still_at_tip": [True, True, True, False],
        "tip_refs": [["HEAD", "refs/heads/main", "refs/tags/v1"]] * 2 + [["refs/tags/v1"], []],
        "presence": ["branch tip", "branch tip", "tag tip", "history only"],
        "removed_time": [pd.NaT, pd.NaT, pd.NaT, t[c["c9"]]],
        "exposure_ongoing": [True, True, True, False],
        "exposure_days": [days(t[c["c1"]], scanned), days(t[c["c1"]], scanned), days(t[c["c6"]], scanned),
                          days(t[c["c8"]], t[c["c9"]])],
    }).astype({"secret_sha256": "string", "first_commit": "string", "last_commit": "string",
               "occurrences": "int64", "paths": "int64", "introduced_time": TIME, "still_at_tip": "bool",
               "presence": "string", "removed_time": TIME, "exposure_ongoing": "bool", "exposure_days": "Float64"})
    got = (golden.frames.secrets.sort_values("introduced_time", kind="stable")
           .set_index("secret_sha256").loc[expected["secret_sha256"]].reset_index()[list(expected.columns)])
    pd.testing.assert_frame_equal(got, expected)


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
        "reference": pd.array([7.37, *[None] * 6], dtype="Float64"),
    }).astype({"detector": "string", "measure": "string", "commits": "int64"})
    pd.testing.assert_frame_equal(report.rates(f), expected)

    by_year = pd.DataFrame({"year": [2020, 2021], "commits": [3, 6], "occurrences": [2, 4],
                            "valid_occurrences": pd.array([None, None], dtype="Int64"), "unique_secrets": [2, 4],
                            **rates_of([2, 4], [3, 6])})
    pd.testing.assert_frame_equal(report.by_year(f), by_year)

    def breakdown(key: str, labels: list[str], occ: list[int], uniq: list[int]) -> pd.DataFrame:
        return pd.DataFrame({key: pd.array(labels, dtype="string"), "occurrences": occ,
                             "valid_occurrences": pd.array([None] * len(occ), dtype="Int64"),
                             "unique_secrets": uniq, "commits": 9, **rates_of(occ, [9] * len(occ))})

    pd.testing.assert_frame_equal(report.by_extension(f), breakdown(
        "extension", ["py", "(none)", "env", "sh", "yaml"], [2, 1, 1, 1, 1], [1, 1, 1, 1, 1]))
    pd.testing.assert_frame_equal(report.by_directory(f), breakdown(
        "top_directory", ["(root)", "config", "deploy", "tools"], [3, 1, 1, 1], [2, 1, 1, 1]))
    pd.testing.assert_frame_equal(report.by_presence(f), breakdown(
        "presence", ["branch tip", "tag tip", "history only"], [4, 1, 1], [2, 1, 1]))
    validity = breakdown("validity", ["unchecked"], [6], [4])
    validity.insert(1, "scope", pd.array([None], dtype="string"))
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


def test_summary_json_has_intervals(golden):
    summary = json.loads((golden.out / "summary.json").read_text())
    low, high = poisson_interval(6)
    assert summary["occurrences_per_million_commits"] == round(6 / 9 * 1e6, 4)
    assert summary["confidence_intervals"]["occurrences_per_million_commits"] == [
        round(low / 9 * 1e6, 4), round(high / 9 * 1e6, 4)]
    assert summary["valid_occurrences_per_million_commits"] is None
    assert summary["confidence_intervals"]["valid_occurrences_per_million_commits"] is None
    assert summary["commits_with_occurrences"] == 5 and "Garwood" in summary["confidence_interval_method"]


# -- the report files -----------------------------------------------------------------------------------------
class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: dict[str, bytes] = {}
        self.headings: list[str] = []
        self._in_heading = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            assert a["src"].startswith("data:image/png;base64,")  # self-contained
            self.images[a["data-plot"]] = base64.b64decode(a["src"].split(",", 1)[1])
        self._in_heading = tag in ("h1", "h2", "h3")

    def handle_data(self, data):
        if self._in_heading:
            self.headings.append(data)

    def handle_endtag(self, tag):
        self._in_heading = False


def test_auditor_report_command(golden, tmp_path):
    from auditor.report.render import PLOTS

    env = {**os.environ, **BASE_ENV}
    proc = subprocess.run([sys.executable, "-m", "auditor", "report", str(golden.out)], capture_output=True,
                          text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "occurrences: 6 in 9 commits" in proc.stdout and "7.37" in proc.stdout and "8.33" in proc.stdout
    page = Page()
    page.feed((golden.out / "report.html").read_text(encoding="utf-8"))
    page.close()
    assert set(page.images) == set(PLOTS)
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 2000 for png in page.images.values())
    assert {"Headline", "Per repository", "Timeline of introductions", "Exposure time", "Validity",
            "Top paths"} <= set(page.headings)
    md = (golden.out / "report.md").read_text(encoding="utf-8")
    assert "## Headline" in md and "| occurrences | 6 | 9 |" in md and "Garwood" in md
    assert all(f"plots/{name}.png" in md and (golden.out / "plots" / f"{name}.png").is_file() for name in PLOTS)
    frames = golden.out / "frames"
    for name in ("findings", "secrets", "commits", "repos", "rates", "per_repository", "by_year", "by_extension",
                 "by_directory", "by_validity", "by_presence", "timeline", "top_paths"):
        assert (frames / f"{name}.csv").is_file(), name
        parquet = pd.read_parquet(frames / f"{name}.parquet")
        assert len(parquet) == len(pd.read_csv(frames / f"{name}.csv")), name
    pd.testing.assert_frame_equal(pd.read_parquet(frames / "rates.parquet"), report.rates(golden.frames))
    written = [p for p in golden.out.rglob("*") if p.is_file() and "repo" not in p.relative_to(golden.out).parts]
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        data = path.read_bytes()
        for _, token in golden.pairs.values():
            assert token.encode() not in data, path  # the store and every export are redacted


def test_report_of_a_missing_scan_is_a_usage_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "auditor", "report", str(tmp_path / "nothing")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "no audit.sqlite" in proc.stderr


# -- edges: no commit, one commit, several repositories, validation --------------------------------------------
def test_zero_commits(tmp_path):
    empty = GitRepo(tmp_path / "empty")
    out = run([empty], tmp_path / "out")
    f = report.load(out)
    assert f.commits_scanned == 0 and f.findings.empty and f.secrets.empty
    assert report.headline(f)[["rate", "rate_low", "rate_high"]].isna().all().all()
    assert report.by_year(f).empty and report.timeline(f).empty and report.top_paths(f).empty
    summary = json.loads((out / "summary.json").read_text())
    assert summary["occurrences_per_million_commits"] is None
    assert summary["confidence_intervals"]["occurrences_per_million_commits"] is None
    built = report.build(out)
    assert "n/a (no commit scanned)" in "\n".join(built.lines())
    page = Page()
    page.feed(built.html.read_text(encoding="utf-8"))
    assert len(page.images) == len(built.plots)


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
    repos = [str(one.path), str(two.path), "(all repositories)"]
    counts, commits = [1, 1, 2, 2, 3, 2], [2, 2, 3, 3, 5, 5]
    expected = pd.DataFrame({"repo": [r for r in repos for _ in range(2)],
                             "measure": ["occurrences", "unique_secrets"] * 3,
                             "count": pd.array(counts, dtype="Int64"), "commits": commits,
                             **rates_of(counts, commits)}).astype({"repo": "string", "measure": "string"})
    pd.testing.assert_frame_equal(table, expected)
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
        ["valid", "live", 2], ["invalid", None, 1], ["valid", "test", 1]]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["valid_live_occurrences_per_million_commits"] == 1e6
    assert summary["detectors"]["twilio_master_credentials"]["valid_test_occurrences"] == 1


def test_end_of_exposure_follows_ancestry_not_the_clock(tmp_path):
    """The same secret added at the same path on two branches; only main removes it. The branch's occurrence never
    ends, although main's removal is later in time. Without the repository, commit times decide (linear case)."""
    repo = GitRepo(tmp_path / "repo")
    pair = make_pair()
    repo.commit("base", {"readme.txt": "hello\n"})
    repo("checkout", "-q", "-b", "side")
    side = repo.commit("side adds", {"s.py": snippet(pair)})
    repo("checkout", "-q", "main")
    main = repo.commit("main adds", {"s.py": snippet(pair), "other.txt": "x\n"})
    gone = repo.commit("main removes", remove=("s.py",))
    out = run([repo], tmp_path / "out")
    ends = report.load(out).findings.set_index("commit")["removed_commit"]
    assert (ends[main], ends[side]) == (gone, pd.NA)
    s = report.load(out).secrets.iloc[0]
    assert (s["still_at_tip"], s["tip_refs"], s["exposure_ongoing"]) == (True, ["refs/heads/side"], True)
    repo.path.rename(tmp_path / "moved")  # the store alone: a removal counts when it is not older than the commit
    ends = report.load(out).findings.set_index("commit")["removed_commit"]
    assert (ends[main], ends[side]) == (gone, gone)
