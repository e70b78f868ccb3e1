"""Histories git accepts and libgit2 does not, or that only look like ordinary repositories: malformed commit
objects, refs and HEADs, worktrees, partial clones, other object formats. Each is built with the real ``git`` and
scanned by the real CLI: every commit ``git rev-list --all`` lists is counted, every planted pair found, nothing
crashes, and what could not be read is said. Planted credentials are random hex, never real ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.procs import _commit, _env, _git, _init, _pair, _scan, _snippet

IDENT = b"A U <a@example.com> 1700000000 +0000"


def _no_traceback(r) -> None:  # noqa: ANN001 - procs.Result
    assert "Traceback" not in r.stderr, r.stderr


def _pairs(r) -> set[tuple[str, str]]:  # noqa: ANN001
    return {(f["client_id"], f["client_secret"]) for f in r.findings}


def _object(repo: Path, kind: str, data: bytes) -> str:
    """Write any bytes as an object of ``kind``, as git would never write them itself."""
    return _git(repo, "hash-object", "-t", kind, "-w", "--stdin", "--literally", input=data).strip()


def _tree_with(repo: Path, name: str, content: str) -> str:
    blob = _git(repo, "hash-object", "-w", "--stdin", input=content.encode()).strip()
    return _git(repo, "mktree", input=f"100644 blob {blob}\t{name}\n".encode()).strip()


def _raw_commit(repo: Path, tree: str, parents: list[str], header: bytes = b"") -> str:
    body = f"tree {tree}\n".encode() + b"".join(f"parent {p}\n".encode() for p in parents)
    return _object(repo, "commit", body + (header or b"author " + IDENT + b"\ncommitter " + IDENT + b"\n")
                   + b"\nodd\n")


def _revlist(repo: Path) -> int:
    return len(_git(repo, "rev-list", "--all").split())


# -- commits libgit2 rejects ---------------------------------------------------------------------------------

MALFORMED = {
    "author_without_brackets": b"author A U a@example.com 1700000000 +0000\ncommitter " + IDENT + b"\n",
    "garbled_times": b"author A U <a@example.com> notatime +0000\ncommitter A U <a@example.com> yesterday zone\n",
    "no_author": b"committer " + IDENT + b"\n",
}


@pytest.mark.parametrize("where", ["mid_history", "at_the_tip"])
@pytest.mark.parametrize("kind", list(MALFORMED))
def test_a_commit_libgit2_cannot_parse_is_walked_like_git(tmp_path: Path, kind: str, where: str) -> None:
    repo = _init(tmp_path / "repo")
    first, odd, last = _pair(), _pair(), _pair()
    root = _commit(repo, {"a.py": _snippet(first)})
    bad = _raw_commit(repo, _tree_with(repo, "odd.py", _snippet(odd)), [root], MALFORMED[kind])
    tip = bad
    if where == "mid_history":
        tip = _git(repo, "commit-tree", _tree_with(repo, "last.py", _snippet(last)), "-p", bad, "-m", "after").strip()
    _git(repo, "update-ref", "refs/heads/main", tip)
    r = _scan(repo, tmp_path / "out", "--show-secrets")
    _no_traceback(r)
    assert r.rc == 1, r
    assert r.summary["commits_scanned"] == _revlist(repo) == (4 if where == "mid_history" else 3) - 1
    assert _pairs(r) == {first, odd, *([last] if where == "mid_history" else [])}
    assert bad in {f["commit"] for f in r.findings}


@pytest.mark.parametrize("encoding", [b"NO-SUCH-ENCODING", b"UTF-8", b"utf-16"])
def test_an_encoding_header_that_lies_is_no_crash(tmp_path: Path, encoding: bytes) -> None:
    repo = _init(tmp_path / "repo")
    pair = _pair()
    header = (b"author J\xf6rg <j\xf6\xff@example.com> 1700000000 +0000\ncommitter " + IDENT + b"\n"
              b"encoding " + encoding + b"\n")
    commit = _raw_commit(repo, _tree_with(repo, "c.py", _snippet(pair)), [], header)
    _git(repo, "update-ref", "refs/heads/main", commit)
    r = _scan(repo, tmp_path / "out", "--show-secrets")
    _no_traceback(r)
    assert r.rc == 1, r
    [f] = r.findings
    assert (f["client_id"], f["client_secret"], f["commit"]) == (*pair, commit)
    assert f["author_email"].endswith("@example.com")


@pytest.mark.parametrize("when", [99999999999999, -99999999999999, 2**63 - 1])
def test_commit_times_no_calendar_can_hold(tmp_path: Path, when: int) -> None:
    """A commit object may claim any time: the scan and the report go on, the time clamped to years 1–9999."""
    repo = _init(tmp_path / "repo")
    head = _commit(repo, {"plain.txt": "plain\n"})
    pair = _pair()
    ident = f"A <a@example.com> {when} +0000".encode()
    odd = _raw_commit(repo, _tree_with(repo, "config.py", _snippet(pair)), [head],
                      b"author " + ident + b"\ncommitter " + ident + b"\n")
    _git(repo, "update-ref", "refs/heads/main", odd)
    out = tmp_path / "out"
    r = _scan(repo, out, "--show-secrets")
    _no_traceback(r)
    assert r.rc == 1, r
    [f] = r.findings
    assert (f["commit"], f["client_id"], f["client_secret"]) == (odd, *pair)
    assert f["author_time"] == ("9999-12-31T23:59:59Z" if when > 0 else "0001-01-01T00:00:00Z")
    rep = subprocess.run([sys.executable, "-m", "auditor", "report", str(out)], capture_output=True, env=_env(),
                         timeout=120)
    assert rep.returncode == 0 and b"Traceback" not in rep.stderr, rep.stderr.decode()
    assert "1 commit(s) dated before 1970 or after the scan are left out" in (out / "report.md").read_text()


def test_a_commit_whose_tree_is_a_blob_is_said(tmp_path: Path) -> None:
    repo = _init(tmp_path / "repo")
    hidden, good = _pair(), _pair()
    blob = _git(repo, "hash-object", "-w", "--stdin", input=_snippet(hidden).encode()).strip()
    odd = _raw_commit(repo, blob, [])
    tip = _git(repo, "commit-tree", _tree_with(repo, "ok.py", _snippet(good)), "-p", odd, "-m", "child").strip()
    _git(repo, "update-ref", "refs/heads/main", tip)
    r = _scan(repo, tmp_path / "out", "--show-secrets")
    _no_traceback(r)
    assert _pairs(r) == {good}
    assert any(blob in e and "not a tree" in e for e in r.summary["errors"]), r.summary["errors"]


# -- refs and HEADs ------------------------------------------------------------------------------------------

def test_a_ref_name_that_is_not_utf8(tmp_path: Path) -> None:
    repo = _init(tmp_path / "repo")
    _commit(repo, {"x.txt": "x\n"})
    pair = _pair()
    orphan = _git(repo, "commit-tree", _tree_with(repo, "o.py", _snippet(pair)), "-m", "orphan").strip()
    (repo / ".git" / "refs" / "heads" / os.fsdecode(b"lat\xe9n")).write_text(orphan + "\n")
    r = _scan(repo, tmp_path / "out", "--show-secrets")
    _no_traceback(r)
    assert r.rc == 1 and _pairs(r) == {pair}, r
    assert r.summary["commits_scanned"] == _revlist(repo) == 2


def test_a_corrupt_head_is_said_and_the_refs_are_scanned(tmp_path: Path) -> None:
    repo = _init(tmp_path / "repo")
    pair = _pair()
    _commit(repo, {"a.py": _snippet(pair)})
    _git(repo, "branch", "keep")
    (repo / ".git" / "HEAD").write_text("garbage\n")
    r = _scan(repo, tmp_path / "out", "--show-secrets")
    _no_traceback(r)
    assert r.rc == 1 and _pairs(r) == {pair}, r
    assert any("HEAD" in e for e in r.summary["errors"]), r.summary["errors"]


def test_a_ref_to_a_missing_object_is_said(tmp_path: Path) -> None:
    repo = _init(tmp_path / "repo")
    pair = _pair()
    _commit(repo, {"a.py": _snippet(pair)})
    (repo / ".git" / "refs" / "heads" / "gone").write_text("1234567890abcdef1234567890abcdef12345678\n")
    r = _scan(repo, tmp_path / "out", "--show-secrets")
    _no_traceback(r)
    assert _pairs(r) == {pair}
    assert any("refs/heads/gone" in e for e in r.summary["errors"]), r.summary["errors"]


def test_a_detached_head_of_another_worktree_is_scanned(tmp_path: Path) -> None:
    """``git rev-list --all`` includes every worktree's HEAD: a commit made on a detached one is history too."""
    repo = _init(tmp_path / "main")
    _commit(repo, {"x.txt": "x\n"})
    worktree = tmp_path / "wt"
    _git(repo, "worktree", "add", "-q", "--detach", str(worktree))
    pair = _pair()
    (worktree / "d.py").write_text(_snippet(pair))
    _git(worktree, "add", "d.py")
    _git(worktree, "commit", "-q", "-m", "detached")
    r = _scan(repo, tmp_path / "out", "--show-secrets")
    _no_traceback(r)
    assert r.rc == 1 and _pairs(r) == {pair}, r
    assert r.summary["commits_scanned"] == _revlist(repo) == 2


# -- repositories auditor cannot read in full ------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["blob:none", "tree:0"])
def test_a_partial_clone_is_flagged_and_nothing_is_fetched(tmp_path: Path, spec: str) -> None:
    origin = _init(tmp_path / "origin")
    _git(origin, "config", "uploadpack.allowFilter", "true")
    _commit(origin, {"a.py": _snippet(_pair())})
    _commit(origin, {"b.py": _snippet(_pair())})
    clone = tmp_path / "clone.git"
    subprocess.run(["git", "clone", "-q", "--bare", f"--filter={spec}", f"file://{origin}", str(clone)], check=True,
                   env=_env(), capture_output=True)
    packs = sorted(p.name for p in (clone / "objects" / "pack").iterdir())
    r = _scan(clone, tmp_path / "out")
    _no_traceback(r)
    assert sorted(p.name for p in (clone / "objects" / "pack").iterdir()) == packs, "the scan fetched objects"
    assert r.summary["repos"][0]["partial_clone"] is True
    assert r.summary["commits_scanned"] == 2 and r.summary["error_count"] >= 1
    assert "partial clone" in r.stderr and "--filter" in r.stderr


def test_a_sha256_repository_gets_a_clear_message(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", "--object-format=sha256", str(repo)], check=True, env=_env(),
                   capture_output=True)
    r = _scan(repo, tmp_path / "out")
    assert r.rc == 2, r
    _no_traceback(r)
    assert "SHA-256" in r.stderr and "not supported" in r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand the repository to another user")
def test_a_repository_of_another_user_says_how_to_trust_it(tmp_path: Path) -> None:
    repo = _init(tmp_path / "repo")
    _commit(repo, {"x.txt": "x\n"})
    subprocess.run(["chown", "-R", "nobody", str(repo)], check=True)
    r = _scan(repo, tmp_path / "out")
    assert r.rc == 2, r
    _no_traceback(r)
    assert "safe.directory" in r.stderr


def test_refs_to_a_tree_or_blob_are_named_not_scanned(tmp_path: Path) -> None:
    """An occurrence is a commit's (SPEC §4): content only a tag reaches is named in the summary, not counted."""
    repo = _init(tmp_path / "repo")
    pair = _pair()
    _commit(repo, {"a.py": _snippet(pair)})
    blob = _git(repo, "hash-object", "-w", "--stdin", input=_snippet(_pair()).encode()).strip()
    _git(repo, "tag", "key-blob", blob)
    _git(repo, "tag", "-a", "-m", "a tree", "key-tree", _tree_with(repo, "k.py", _snippet(_pair())))
    r = _scan(repo, tmp_path / "out", "--show-secrets")
    _no_traceback(r)
    assert r.rc == 1 and _pairs(r) == {pair}, r
    assert r.summary["repos"][0]["refs_outside_commits"] == {"refs/tags/key-blob": "blob",
                                                             "refs/tags/key-tree": "tree"}
    assert "2 ref(s) point at a tree or blob" in r.stderr
