"""Reading blobs grouped by path (issue 15) finds exactly what reading them in the order met found, and what the
history does not reach (objects a pack may still hold) is never read or counted; with git and without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor.detection.inline import InlineScanner
from auditor.detection.stage import ScanEvents, detect
from auditor.detectors import load_detectors
from auditor.detectors.engine import DetectorSet
from auditor.git.changes import Changes
from auditor.git.history import list_commits
from auditor.git.read_order import by_path
from auditor.git.repository import open_repository
from auditor.models import RepoStats
from auditor.testing.history import Manifest, generate
from tests.helpers.git import GitRepo
from tests.helpers.pairs import make_pair, snippet
from tests.helpers.scan import run_scan


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    return generate(tmp_path_factory.mktemp("synth") / "repo", commits=1500, files=400, pairs=10, seed=15)


def test_windows_group_each_blob_once_by_path_in_the_order_met() -> None:
    named = [(bytes([i]) * 20, b"dir/%d.py" % (i % 7)) for i in range(100)]
    windows = list(by_path(iter(named), first=8, most=32))
    assert [len(w) for w in windows] == [8, 16, 32, 32, 12]
    assert sorted(b for w in windows for b in w) == sorted(b for b, _ in named)
    start = 0
    for w in windows:
        chunk = named[start:start + len(w)]
        start += len(w)
        paths = [dict(chunk)[b] for b in w]
        groups = [p for i, p in enumerate(paths) if i == 0 or paths[i - 1] != p]
        assert len(groups) == len(set(groups))  # one run per path
        for p in set(paths):  # within a path, the order met
            assert [b for b in w if dict(chunk)[b] == p] == [b for b, q in chunk if q == p]


def _detect(repo_path: str, by_path_order: bool) -> tuple[RepoStats, dict]:
    repo = open_repository(repo_path)
    stats = RepoStats(repo="r", path=repo.path)
    commits = list_commits(repo)
    source = Changes(repo)
    scanner = InlineScanner(repo.path, load_detectors())
    try:
        got = detect(stats, scanner, source, DetectorSet(load_detectors()), lambda: (commits.tree, commits.parents),
                     frozenset(), set(), ScanEvents(), by_path=by_path_order)
    finally:
        source.close()
    return stats, {b: sorted(c.pairs for c in cs) for b, cs in got.by_blob.items()}


def test_path_order_finds_what_the_order_met_found(planted: Manifest) -> None:
    met_stats, met = _detect(planted.repo, False)
    path_stats, by_path_found = _detect(planted.repo, True)
    assert by_path_found == met and met
    for field in ("blobs_scanned", "bytes_scanned", "blobs_skipped", "errors"):
        assert getattr(path_stats, field) == getattr(met_stats, field), field


def test_a_scan_finds_the_manifest(planted: Manifest, tmp_path: Path) -> None:
    result = run_scan(planted.repo, tmp_path / "out", "--show-secrets")
    assert result.returncode == 1, result.stderr
    assert {(f["commit"], f["path"], f["client_id"], f["client_secret"]) for f in result.findings} \
        == planted.occurrences()


@pytest.mark.parametrize("with_git", [True, False], ids=["git", "pygit2"])
def test_unreachable_objects_in_the_pack_are_never_counted(tmp_path: Path, with_git: bool) -> None:
    repo = GitRepo(tmp_path / "repo")
    live = make_pair()
    repo.commit("one", {"app/settings.py": snippet(live), "README.txt": "hello\n"})
    repo("checkout", "-q", "-b", "doomed")
    gone = make_pair()
    repo.commit("unreachable soon", {"app/old.py": snippet(gone)})
    stray = make_pair()
    stray_id = repo.raw("hash-object", "-w", "--stdin", input=snippet(stray).encode()).strip().decode()
    repo("tag", "stray", stray_id)  # a blob no commit names
    repo("repack", "-a", "-d")  # every object in one pack, while still reachable
    repo("checkout", "-q", "-")
    repo("branch", "-D", "doomed")
    repo("tag", "-d", "stray")
    repo("reflog", "expire", "--expire=now", "--all")
    assert repo.raw("count-objects", "-v").split(b"count: ")[1].startswith(b"0\n")  # nothing loose: all packed
    assert repo.raw("cat-file", "-t", stray_id) == b"blob\n"  # still in the pack
    (tmp_path / "empty").mkdir()
    # without git on PATH, pygit2 computes the changes and libgit2 reads the blobs
    result = run_scan(repo, tmp_path / "out", "--show-secrets",
                      env=None if with_git else {"PATH": str(tmp_path / "empty")})
    assert result.returncode == 1, result.stderr
    assert result.pairs() == {live}
    assert result.summary is not None
    assert result.summary["commits_scanned"] == 1
    assert result.summary["blobs_scanned"] == 2  # settings.py and README.txt: not old.py, not the stray blob
