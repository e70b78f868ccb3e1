"""Which kind of ref reaches each commit, from a scan's own listing (``reach.listed``), is what two ``git rev-list``
walks say (``reach.with_git``): on random histories of branches, merges and several roots, with tips at branches,
tags (annotated too), HEAD, pull-request and merge-request refs, remote-tracking refs, notes-like refs and a
second worktree's detached HEAD — and beyond a shallow boundary."""

from __future__ import annotations

import random
from pathlib import Path

import pygit2
import pytest

from auditor.git import reach
from auditor.git.history import list_commits
from tests.helpers.git import GitRepo
from tests.unit.test_ancestry import random_history

REFS = ["refs/tags/v{}", "refs/pull/{}/head", "refs/merge-requests/{}/head", "refs/remotes/origin/pr/{}",
        "refs/remotes/origin/old{}", "refs/notes/n{}", "refs/stash{}"]


def _ref_everything(repo: GitRepo, seed: int) -> None:
    rng = random.Random(seed)
    ids = repo("rev-list", "--all").split()
    for j in range(2 * len(REFS)):  # each kind twice
        ref = REFS[j % len(REFS)].format(j)
        if ref.startswith("refs/tags/") and j % 2:
            repo("tag", "-a", "-m", "t", ref.removeprefix("refs/tags/"), rng.choice(ids))
        else:
            repo("update-ref", ref, rng.choice(ids))
    for j in range(6):  # most branches go: their commits stay only at the other refs
        if rng.random() < 0.7:
            repo("update-ref", "-d", f"refs/heads/b{j}")
    repo("symbolic-ref", "HEAD", "refs/heads/b0" if rng.random() < 0.5 else "refs/heads/gone")


@pytest.mark.parametrize("seed", range(6))
def test_the_listing_classifies_every_commit_as_git_does(tmp_path: Path, seed: int) -> None:
    repo = random_history(tmp_path / "repo", seed, n=60)
    _ref_everything(repo, seed)
    got = reach.listed(list_commits(pygit2.Repository(str(repo))))
    want = reach.with_git(str(repo))
    assert got == want
    assert set(got.values()) <= {"pull requests only", "other refs only"}


def test_a_second_worktree_head_is_another_ref(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    for i in range(3):
        repo.commit(f"m{i}", {"a.txt": f"{i}\n"})
    repo("worktree", "add", "-q", "--detach", str(tmp_path / "wt"), "HEAD")
    wt = GitRepo(tmp_path / "wt", init=False)
    wt.commit("w", {"w.txt": "w\n"})
    got = reach.listed(list_commits(pygit2.Repository(str(repo))))
    assert got == reach.with_git(str(tmp_path / "repo" / ".git")) and list(got.values()) == ["other refs only"]


def test_nothing_beyond_a_shallow_boundary_is_counted(tmp_path: Path) -> None:
    repo = random_history(tmp_path / "repo", 3, n=40)
    _ref_everything(repo, 3)
    ids = repo("rev-list", "--all").split()
    (repo / "shallow").write_text("".join(f"{c}\n" for c in random.Random(3).sample(ids, 8)))  # as a --depth clone
    commits = list_commits(pygit2.Repository(str(repo)))
    assert commits.shallow and len(commits) < len(ids)
    got = reach.listed(commits)
    assert got == reach.with_git(str(repo))
