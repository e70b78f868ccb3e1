"""Histories git accepts and libgit2 does not, or that only look like ordinary repositories: malformed commit
objects, refs and HEADs, worktrees, partial clones, other object formats. Each is built with the real ``git`` and
scanned by the real CLI: every commit ``git rev-list --all`` lists is counted, every planted pair found, nothing
crashes, and what could not be read is said. Planted credentials are random hex, never real ones.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.env import env
from tests.helpers.git import GitRepo, run_git
from tests.helpers.pairs import Pair, make_pair, snippet
from tests.helpers.scan import Result, run_auditor, run_scan

IDENT = b"A U <a@example.com> 1700000000 +0000"


def _no_traceback(r: Result) -> None:
    assert "Traceback" not in r.stderr, r.stderr


def _pairs(r: Result) -> set[tuple[str, str]]:
    return r.pairs()


def _object(repo: Path, kind: str, data: bytes) -> str:
    """Write any bytes as an object of ``kind``, as git would never write them itself."""
    return run_git(repo, "hash-object", "-t", kind, "-w", "--stdin", "--literally", input=data).strip()


def _tree_with(repo: Path, name: str, content: str) -> str:
    blob = run_git(repo, "hash-object", "-w", "--stdin", input=content.encode()).strip()
    return run_git(repo, "mktree", input=f"100644 blob {blob}\t{name}\n".encode()).strip()


def _raw_commit(repo: Path, tree: str, parents: list[str], header: bytes = b"") -> str:
    body = f"tree {tree}\n".encode() + b"".join(f"parent {p}\n".encode() for p in parents)
    return _object(repo, "commit", body + (header or b"author " + IDENT + b"\ncommitter " + IDENT + b"\n")
                   + b"\nodd\n")


def _revlist(repo: Path) -> int:
    return len(run_git(repo, "rev-list", "--all").split())


# -- commits libgit2 rejects ---------------------------------------------------------------------------------

MALFORMED = {
    "author_without_brackets": b"author A U a@example.com 1700000000 +0000\ncommitter " + IDENT + b"\n",
    "garbled_times": b"author A U <a@example.com> notatime +0000\ncommitter A U <a@example.com> yesterday zone\n",
    "no_author": b"committer " + IDENT + b"\n",
}


@pytest.mark.parametrize("where", ["mid_history", "at_the_tip"])
@pytest.mark.parametrize("kind", list(MALFORMED))
def test_a_commit_libgit2_cannot_parse_is_walked_like_git(tmp_path: Path, kind: str, where: str) -> None:
    repo = GitRepo(tmp_path / "repo")
    first, odd, last = make_pair(), make_pair(), make_pair()
    root = repo.commit(files={"a.py": snippet(first)})
    bad = _raw_commit(repo, _tree_with(repo, "odd.py", snippet(odd)), [root], MALFORMED[kind])
    tip = bad
    if where == "mid_history":
        tip = run_git(repo, "commit-tree", _tree_with(repo, "last.py", snippet(last)), "-p", bad, "-m", "after").strip()
    run_git(repo, "update-ref", "refs/heads/main", tip)
    r = run_scan(repo, tmp_path / "out", "--show-secrets")
    _no_traceback(r)
    assert r.returncode == 1, r
    assert r.summary["commits_scanned"] == _revlist(repo) == (4 if where == "mid_history" else 3) - 1
    assert _pairs(r) == {first, odd, *([last] if where == "mid_history" else [])}
    assert bad in {f["commit"] for f in r.findings}
    # its facts are read from the raw object as git reads it: the message, the author's name where there is one
    [row] = [f for f in r.findings if f["commit"] == bad]
    assert row["commit_message"] == "odd"
    assert row["author_name"] == {"author_without_brackets": "A U a@example.com 1700000000 +0000",
                                  "garbled_times": "A U", "no_author": ""}[kind]


@pytest.mark.parametrize("encoding", [b"NO-SUCH-ENCODING", b"UTF-8", b"utf-16"])
def test_an_encoding_header_that_lies_is_no_crash(tmp_path: Path, encoding: bytes) -> None:
    repo = GitRepo(tmp_path / "repo")
    pair = make_pair()
    header = (b"author J\xf6rg <j\xf6\xff@example.com> 1700000000 +0000\ncommitter " + IDENT + b"\n"
              b"encoding " + encoding + b"\n")
    commit = _raw_commit(repo, _tree_with(repo, "c.py", snippet(pair)), [], header)
    run_git(repo, "update-ref", "refs/heads/main", commit)
    r = run_scan(repo, tmp_path / "out", "--show-secrets")
    _no_traceback(r)
    assert r.returncode == 1, r
    [f] = r.findings
    assert (f["client_id"], f["client_secret"], f["commit"]) == (*pair, commit)
    assert f["author_email"].endswith("@example.com")
    assert f["author_name"] and f["commit_message"] == "odd"  # UTF-8 bytes are read as UTF-8, a lying header or not


ODD_TIMES = [99999999999999, -99999999999999, 2**63 - 1]


@dataclass
class OddTimes:
    commits: dict[int, tuple[str, Pair]]  # claimed time → (commit, its pair)
    result: Result
    report: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def odd_times(tmp_path_factory: pytest.TempPathFactory) -> OddTimes:
    """One repository, one branch per time no calendar can hold, one scan and one report of them all."""
    base = tmp_path_factory.mktemp("odd-times")
    repo = GitRepo(base / "repo")
    head = repo.commit(files={"plain.txt": "plain\n"})
    commits = {}
    for i, when in enumerate(ODD_TIMES):
        pair = make_pair()
        ident = f"A <a@example.com> {when} +0000".encode()
        odd = _raw_commit(repo, _tree_with(repo, f"config{i}.py", snippet(pair)), [head],
                          b"author " + ident + b"\ncommitter " + ident + b"\n")
        repo("update-ref", f"refs/heads/odd{i}", odd)
        commits[when] = (odd, pair)
    out = base / "out"
    return OddTimes(commits, run_scan(repo, out, "--show-secrets"), run_auditor("report", str(out), timeout=120))


@pytest.mark.parametrize("when", ODD_TIMES)
def test_commit_times_no_calendar_can_hold(odd_times: OddTimes, when: int) -> None:
    """A commit object may claim any time: the scan and the report go on, the time clamped to years 1–9999."""
    r = odd_times.result
    _no_traceback(r)
    assert r.returncode == 1, r
    odd, pair = odd_times.commits[when]
    [f] = [f for f in r.findings if f["commit"] == odd]
    assert (f["commit"], f["client_id"], f["client_secret"]) == (odd, *pair)
    assert f["author_time"] == ("9999-12-31T23:59:59Z" if when > 0 else "0001-01-01T00:00:00Z")
    assert len(r.findings) == len(ODD_TIMES)
    rep = odd_times.report
    assert rep.returncode == 0 and "Traceback" not in rep.stderr, rep.stderr
    assert f"{len(ODD_TIMES)} commit(s) dated before 1970 or after the scan are left out" in (
        r.out / "report.md").read_text()


def test_a_commit_whose_tree_is_a_blob_is_said(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    hidden, good = make_pair(), make_pair()
    blob = run_git(repo, "hash-object", "-w", "--stdin", input=snippet(hidden).encode()).strip()
    odd = _raw_commit(repo, blob, [])
    tip = run_git(repo, "commit-tree", _tree_with(repo, "ok.py", snippet(good)), "-p", odd, "-m", "child").strip()
    run_git(repo, "update-ref", "refs/heads/main", tip)
    r = run_scan(repo, tmp_path / "out", "--show-secrets")
    _no_traceback(r)
    assert r.returncode == 1, r  # the readable secret still alerts: the odd commit did not end the run
    assert _pairs(r) == {good}
    assert any(blob in e and "not a tree" in e for e in r.summary["errors"]), r.summary["errors"]


# -- refs and HEADs ------------------------------------------------------------------------------------------

def test_a_ref_name_that_is_not_utf8(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    repo.commit(files={"x.txt": "x\n"})
    pair = make_pair()
    orphan = run_git(repo, "commit-tree", _tree_with(repo, "o.py", snippet(pair)), "-m", "orphan").strip()
    (repo / ".git" / "refs" / "heads" / os.fsdecode(b"lat\xe9n")).write_text(orphan + "\n")
    r = run_scan(repo, tmp_path / "out", "--show-secrets")
    _no_traceback(r)
    assert r.returncode == 1 and _pairs(r) == {pair}, r
    assert r.summary["commits_scanned"] == _revlist(repo) == 2


def test_a_corrupt_head_is_said_and_the_refs_are_scanned(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    pair = make_pair()
    repo.commit(files={"a.py": snippet(pair)})
    run_git(repo, "branch", "keep")
    (repo / ".git" / "HEAD").write_text("garbage\n")
    r = run_scan(repo, tmp_path / "out", "--show-secrets")
    _no_traceback(r)
    assert r.returncode == 1 and _pairs(r) == {pair}, r
    assert any("HEAD" in e for e in r.summary["errors"]), r.summary["errors"]


def test_a_ref_to_a_missing_object_is_said(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    pair = make_pair()
    repo.commit(files={"a.py": snippet(pair)})
    (repo / ".git" / "refs" / "heads" / "gone").write_text("1234567890abcdef1234567890abcdef12345678\n")
    r = run_scan(repo, tmp_path / "out", "--show-secrets")
    _no_traceback(r)
    assert r.returncode == 1, r
    assert _pairs(r) == {pair}
    assert any("refs/heads/gone" in e for e in r.summary["errors"]), r.summary["errors"]


def test_a_detached_head_of_another_worktree_is_scanned(tmp_path: Path) -> None:
    """``git rev-list --all`` includes every worktree's HEAD: a commit made on a detached one is history too."""
    repo = GitRepo(tmp_path / "main")
    repo.commit(files={"x.txt": "x\n"})
    worktree = tmp_path / "wt"
    run_git(repo, "worktree", "add", "-q", "--detach", str(worktree))
    pair = make_pair()
    (worktree / "d.py").write_text(snippet(pair))
    run_git(worktree, "add", "d.py")
    run_git(worktree, "commit", "-q", "-m", "detached")
    r = run_scan(repo, tmp_path / "out", "--show-secrets")
    _no_traceback(r)
    assert r.returncode == 1 and _pairs(r) == {pair}, r
    assert r.summary["commits_scanned"] == _revlist(repo) == 2


# -- repositories auditor cannot read in full ------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["blob:none", "tree:0"])
def test_a_partial_clone_is_flagged_and_nothing_is_fetched(tmp_path: Path, spec: str) -> None:
    origin = GitRepo(tmp_path / "origin")
    run_git(origin, "config", "uploadpack.allowFilter", "true")
    origin.commit(files={"a.py": snippet(make_pair())})
    origin.commit(files={"b.py": snippet(make_pair())})
    clone = tmp_path / "clone.git"
    subprocess.run(["git", "clone", "-q", "--bare", f"--filter={spec}", f"file://{origin}", str(clone)], check=True,
                   env=env(), capture_output=True)
    packs = sorted(p.name for p in (clone / "objects" / "pack").iterdir())
    r = run_scan(clone, tmp_path / "out")
    _no_traceback(r)
    assert sorted(p.name for p in (clone / "objects" / "pack").iterdir()) == packs, "the scan fetched objects"
    assert r.summary["repos"][0]["partial_clone"] is True
    assert r.summary["commits_scanned"] == 2 and r.summary["error_count"] >= 1
    assert "partial clone" in r.stderr and "--filter" in r.stderr


def test_a_sha256_repository_gets_a_clear_message(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", "--object-format=sha256", str(repo)], check=True, env=env(),
                   capture_output=True)
    r = run_scan(repo, tmp_path / "out")
    assert r.returncode == 2, r
    _no_traceback(r)
    assert "SHA-256" in r.stderr and "not supported" in r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand the repository to another user")
def test_a_repository_of_another_user_says_how_to_trust_it(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    repo.commit(files={"x.txt": "x\n"})
    subprocess.run(["chown", "-R", "nobody", str(repo)], check=True)
    r = run_scan(repo, tmp_path / "out")
    assert r.returncode == 2, r
    _no_traceback(r)
    assert "safe.directory" in r.stderr


def test_refs_to_a_tree_or_blob_are_named_not_scanned(tmp_path: Path) -> None:
    """An occurrence is a commit's (SPEC §4): content only a tag reaches is named in the summary, not counted."""
    repo = GitRepo(tmp_path / "repo")
    pair = make_pair()
    repo.commit(files={"a.py": snippet(pair)})
    blob = run_git(repo, "hash-object", "-w", "--stdin", input=snippet(make_pair()).encode()).strip()
    run_git(repo, "tag", "key-blob", blob)
    run_git(repo, "tag", "-a", "-m", "a tree", "key-tree", _tree_with(repo, "k.py", snippet(make_pair())))
    r = run_scan(repo, tmp_path / "out", "--show-secrets")
    _no_traceback(r)
    assert r.returncode == 1 and _pairs(r) == {pair}, r
    assert r.summary["repos"][0]["refs_outside_commits"] == {"refs/tags/key-blob": "blob",
                                                             "refs/tags/key-tree": "tree"}
    assert "2 ref(s) point at a tree or blob" in r.stderr
