"""report.frames: a scan's store → typed frames (findings with their end of exposure, secrets with their
lifecycles), compared exactly with frames written out by hand from histories known by construction."""

from __future__ import annotations

import json
import sqlite3

import pandas as pd

from auditor import report
from auditor.models import secret_sha256
from auditor.report.frames import PRESENCE_DTYPE, SCOPE, VALIDITY
from tests.helpers.git import GitRepo
from tests.helpers.histories import scan_in_process
from tests.helpers.pairs import make_pair, snippet

TIME = "datetime64[s, UTC]"


def run(repos: list[GitRepo], out, **kw):
    scan_in_process(repos, out, **kw)
    return out


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
        "exposure": [scanned - t[c["c1"]], scanned - t[c["c1"]], scanned - t[c["c6"]], t[c["c9"]] - t[c["c8"]]],
    }).astype({"secret_sha256": "string", "first_commit": "string", "last_commit": "string",
               "occurrences": "int64", "paths": "int64", "introduced_time": TIME, "still_at_tip": "bool",
               "presence": PRESENCE_DTYPE, "removed_time": TIME, "exposure_ongoing": "bool",
               "exposure_days": "Float64", "exposure": "timedelta64[s]"})
    got = (golden.frames.secrets.sort_values("introduced_time", kind="stable")
           .set_index("secret_sha256").loc[expected["secret_sha256"]].reset_index()[list(expected.columns)])
    pd.testing.assert_frame_equal(got, expected)


def test_small_vocabularies_are_categoricals_and_each_finding_says_where_its_secret_is(golden):
    f, c, p = golden.frames, golden.c, golden.pairs
    for frame in (f.findings, f.secrets):
        assert frame["validity"].dtype == VALIDITY and frame["scope"].dtype == SCOPE
        assert frame["presence"].dtype == PRESENCE_DTYPE and frame["presence"].cat.ordered
        # every detector of the scan is a category, found or not (the built-in ones: two)
        assert list(frame["detector"].cat.categories) == ["twilio_api_keys", "twilio_master_credentials"]
    # presence is the secret's (where it still is anywhere); at_tip this occurrence's path at some tip
    got = {(r.commit, r.path): (r.presence, r.at_tip) for r in f.findings.itertuples()}
    assert got[(c["c1"], "config/settings.yaml")] == ("branch tip", False)  # B's first path: removed in c5
    assert got[(c["c5"], "deploy/b.env")] == ("branch tip", True)
    assert got[(c["c8"], "README")] == ("history only", False)
    assert (f.findings["presence"] >= "history only").sum() == 1  # ordered: riskiest first
    a = f.findings[f.findings["client_id"] == p["A"][0]]
    assert a["at_tip"].tolist() == [True, True]  # removed in c3, re-added in c4 at the same path: at a tip there


def test_the_frames_carry_the_scan_they_describe(golden):
    f = golden.frames
    meta = f.findings.attrs["scan"]
    assert meta is f.meta and f.secrets.attrs["scan"] is meta and f.repos.attrs["scan"] is meta
    assert (meta["complete"], meta["shallow"], meta["partial_clone"], meta["unreadable_objects"]) == (True, [], [], 0)
    assert meta["validated"] is False and meta["checked_at_last"] is None
    assert meta["commits_by_reach"] == {"branches and tags": 9, "pull requests only": 0, "other refs only": 0}
    assert f.repos[["name", "partial_clone", "errors"]].iloc[0].tolist() == ["repo", False, 0]


def test_end_of_exposure_follows_ancestry_not_the_clock(tmp_path):
    """The same secret added at the same path on two branches; only main removes it. The branch's occurrence never
    ends, although main's removal is later in time. Ends are decided at scan time from the commit graph: the store
    alone gives the same report, and a rerun that sees a new removal ends an occurrence an earlier run stored."""
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
    repo.path.rename(tmp_path / "moved")  # the store alone gives the same report (SPEC §11)
    ends = report.load(out).findings.set_index("commit")["removed_commit"]
    assert (ends[main], ends[side]) == (gone, pd.NA)
    (tmp_path / "moved").rename(repo.path)
    repo("checkout", "-q", "side")
    later = repo.commit("side removes", remove=("s.py",))
    run([repo], out)  # incremental: only the new commit is attributed
    assert json.loads((out / "summary.json").read_text())["repos"][0]["commits_new"] == 1
    ends = report.load(out).findings.set_index("commit")["removed_commit"]
    assert (ends[main], ends[side]) == (gone, later)


def test_findings_carry_region_and_subaccount_and_an_older_store_reads_without_them(tmp_path):
    """The checks' region and subaccount reach the findings and secrets frames; a store an older auditor wrote (no
    such columns, not yet opened by a scan) is read with them empty."""
    repo = GitRepo(tmp_path / "repo")
    sub, plain = make_pair(), make_pair()
    repo.commit("one", {"a.py": snippet(sub), "b.py": snippet(plain)})
    out = run([repo], tmp_path / "out")
    con = sqlite3.connect(out / "audit.sqlite")
    with con:
        for pair, flag, region in ((sub, 1, "ie1"), (plain, 0, "us1")):
            con.execute("INSERT INTO checks (secret_sha256, detector, client_id, validity, scope, checked_at, base, "
                        "region, subaccount) VALUES (?, 'twilio_master_credentials', ?, 'valid', 'live', "
                        "'2026-01-01T00:00:00+00:00', 'https://api.twilio.com', ?, ?)",
                        (secret_sha256(*pair), pair[0], region, flag))
    findings = report.load(out).findings.set_index("client_id")
    assert (findings.loc[sub[0], "subaccount"], findings.loc[sub[0], "region"]) == (True, "ie1")
    assert (findings.loc[plain[0], "subaccount"], findings.loc[plain[0], "region"]) == (False, "us1")
    assert str(findings["subaccount"].dtype) == "boolean"
    secrets = report.load(out).secrets.set_index("client_id")
    assert (secrets.loc[sub[0], "subaccount"], secrets.loc[sub[0], "region"]) == (True, "ie1")
    with con:
        con.execute("ALTER TABLE checks DROP COLUMN region")
        con.execute("ALTER TABLE checks DROP COLUMN subaccount")
    con.close()
    findings = report.load(out).findings
    assert list(findings["validity"]) == ["valid", "valid"]
    assert findings["region"].isna().all() and findings["subaccount"].isna().all()
