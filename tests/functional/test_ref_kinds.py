"""Commits by the kind of ref that reaches them (SPEC §11): branches and tags / only pull-request refs / only other
refs, in summary.json (per repository and pooled, with rates per kind), the frames and the report — on a history
built so that each count is known: 4 commits on main and a tag, 3 only at refs/pull/*/head (2 PRs; one secret),
1 only at refs/merge-requests/9/head, 2 only at refs/remotes/origin/old (one secret)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from auditor import report
from tests.helpers.git import GitRepo
from tests.helpers.pairs import make_pair, snippet
from tests.helpers.scan import run_auditor, run_scan


def _side(repo: GitRepo, ref: str, files: list[dict[str, str]]) -> None:
    """Commits on a branch from main's first commit, left only at ``ref``."""
    repo("checkout", "-q", "-b", "side", "main~3")
    for i, f in enumerate(files):
        repo.commit(f"{ref} {i}", f)
    repo("update-ref", ref, "HEAD")
    repo("checkout", "-q", "main")
    repo("branch", "-q", "-D", "side")


@pytest.fixture(scope="module")
def kinds(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("kinds")
    repo = GitRepo(base / "project")
    for i in range(4):
        repo.commit(f"m{i}", {"main.txt": f"{i}\n"})
    repo("tag", "v1", "main~1")
    _side(repo, "refs/pull/620/head", [{"sms.py": snippet(make_pair())}, {"b.txt": "b\n"}])
    _side(repo, "refs/pull/823/head", [{"c.txt": "c\n"}])
    _side(repo, "refs/merge-requests/9/head", [{"d.txt": "d\n"}])
    _side(repo, "refs/remotes/origin/old", [{"e.txt": "e\n"}, {"old.env": snippet(make_pair())}])
    out = base / "out"
    r = run_scan(repo, out)
    assert r.returncode == 1, r.stderr
    assert run_auditor("report", str(out), timeout=180).returncode == 0
    return repo, out, r.summary


def test_summary_counts_commits_and_occurrences_by_kind_of_ref(kinds):
    repo, _, summary = kinds
    assert len(repo.rev_list_all()) == summary["commits_scanned"] == 4 + 3 + 1 + 2
    want = {"branches and tags": 4, "pull requests only": 4, "other refs only": 2}
    assert summary["repos"][0]["commits_by_ref_kind"] == want
    by = summary["by_ref_kind"]
    assert {k: v["commits"] for k, v in by.items()} == want
    assert {k: v["occurrences"] for k, v in by.items()} == {"branches and tags": 0, "pull requests only": 1,
                                                            "other refs only": 1}
    assert by["pull requests only"]["occurrences_per_million_commits"] == pytest.approx(1e6 / 4)
    low, high = by["pull requests only"]["confidence_intervals"]["occurrences_per_million_commits"]
    assert low < 1e6 / 4 < high
    assert by["branches and tags"]["occurrences_per_million_commits"] == 0


def test_frames_and_report_show_the_kinds(kinds):
    repo, out, _ = kinds
    f = report.load(out)
    pulls = set(repo("rev-list", "refs/pull/620/head", "refs/pull/823/head", "refs/merge-requests/9/head",
                     "--not", "main", "--tags").split())
    got = f.commits.set_index("commit")["reach"]
    assert set(got[got == "pull requests only"].index) == pulls and len(pulls) == 4
    assert (f.findings["reach"].value_counts().to_dict() == {"pull requests only": 1, "other refs only": 1})
    table = report.measures.by_ref_kind(f)
    assert table["commits"].tolist() == [4, 4, 2] and table["occurrences"].tolist() == [0, 1, 1]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "frames" / "by_ref_kind.parquet"), table)
    md = (out / "report.md").read_text(encoding="utf-8")
    coverage = md.split("## Coverage", 1)[1].split("\n## ", 1)[0]
    assert ("4 from branches and tags, 4 only from pull-request refs (a fork's contributions, which the host "
            "serves), 2 only from other refs") in coverage
    assert "| pull requests only | 4 | 1 |" in coverage
    assert json.loads((out / "summary.json").read_text())["by_ref_kind"]  # the report did not rewrite it away
