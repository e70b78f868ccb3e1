"""attribution's ancestry questions, asked in one batch (``_Ancestry.reaching``), answer what git answers: every
(descendant, ancestor) pair of a random history of branches and merges, against libgit2's ``descendant_of``."""

from __future__ import annotations

import random
from pathlib import Path

import pygit2
import pytest

from auditor.attribution import _Ancestry
from auditor.git.history import list_commits
from tests.helpers.git import GitRepo


def random_history(path: Path, seed: int, n: int = 40) -> GitRepo:
    """``n`` commits, each with one to three parents among the earlier ones (or none: several roots)."""
    rng = random.Random(seed)
    repo = GitRepo(path, bare=True)
    tree = repo("mktree", input=b"").strip()
    ids: list[str] = []
    for i in range(n):
        k = 0 if not ids or rng.random() < 0.05 else rng.choice((1, 1, 1, 2, 2, 3))
        parents = rng.sample(ids, min(k, len(ids)))
        args = [x for p in parents for x in ("-p", p)]
        ids.append(repo("commit-tree", tree, *args, "-m", f"c{i}").strip())
    for j, tip in enumerate(rng.sample(ids, 6)):
        repo("update-ref", f"refs/heads/b{j}", tip)
    return repo


@pytest.mark.parametrize("seed", range(4))
def test_reaching_answers_every_pair_as_git_does(tmp_path: Path, seed: int) -> None:
    repo = random_history(tmp_path / "repo", seed)
    pg = pygit2.Repository(str(repo))
    commits = list_commits(pg)
    ids = list(commits.tree)
    assert len(ids) >= 10
    pairs = [(d, a) for d in ids for a in ids]
    got = _Ancestry(pg, commits).reaching(pairs)
    want = {(d, a) for d, a in pairs
            if d == a or pg.descendant_of(pygit2.Oid(raw=d), pygit2.Oid(raw=a))}
    assert got == want
    some = random.Random(seed).sample(pairs, 50)  # a smaller batch, and one question at a time, say the same
    assert _Ancestry(pg, commits).reaching(some) == want & set(some)
    ancestry = _Ancestry(pg, commits)
    assert all(ancestry.descends(d, a) == ((d, a) in want) for d, a in some[:10])


def test_commits_the_listing_did_not_load_are_asked_of_git(tmp_path: Path) -> None:
    repo = random_history(tmp_path / "repo", 7, n=12)
    pg = pygit2.Repository(str(repo))
    full = list_commits(pg)
    ids = list(full.tree)
    rerun = list_commits(pg, known_tips=frozenset(full.tips), known=frozenset(ids))
    assert not any(c in rerun.parents for c in ids)  # nothing new: every commit is only known
    pairs = [(d, a) for d in ids for a in ids if d != a]
    want = {(d, a) for d, a in pairs if pg.descendant_of(pygit2.Oid(raw=d), pygit2.Oid(raw=a))}
    assert _Ancestry(pg, rerun).reaching(pairs) == want
