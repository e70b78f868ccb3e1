"""A repository (pygit2) → the commits of ``git rev-list --all``: ids, root trees, parents, times and ref tips.

What each commit changed is ``changes``' job; where matched blobs sit is ``attribution``'s.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field

import pygit2

from auditor.errors import RepositoryError

# A raw tree object is a run of "<mode> <name>\0<20-byte id>".
TREE_ENTRY = re.compile(rb"(\d+) ([^\0]*)\0(.{20})", re.S)
MODE_TREE = b"40000"
# For the git processes auditor starts: the repository is named explicitly, so inherited GIT_* variables must not
# point git elsewhere, and replace refs must not swap the objects scanned.
GIT_ENV = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | {
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_NO_REPLACE_OBJECTS": "1"}


def commit_tree(repo: pygit2.Repository, commit: bytes, errors: list[str] | None = None) -> bytes | None:
    """The root tree id of a commit, or None (said in ``errors``, if given) when it cannot be read."""
    try:
        return repo[pygit2.Oid(raw=commit)].tree_id.raw
    except (KeyError, pygit2.GitError, ValueError, AttributeError) as e:
        if errors is not None:
            errors.append(f"commit {commit.hex()}: {type(e).__name__}: {e}")
        return None


def tree_entries(repo: pygit2.Repository, tree: bytes, errors: list[str]) -> list[tuple[bytes, bytes, bytes]]:
    """(mode, name, raw id) of one tree, parsed from its raw bytes; [] (said in ``errors``) when unreadable."""
    try:
        return TREE_ENTRY.findall(repo.odb.read(pygit2.Oid(raw=tree))[1])
    except (KeyError, pygit2.GitError, ValueError) as e:
        errors.append(f"tree {tree.hex()}: {type(e).__name__}: {e}")
        return []


def open_repository(path: str) -> pygit2.Repository:
    """Open a bare or work-tree repository, or explain what was expected."""
    try:
        found = pygit2.discover_repository(path)
    except Exception:  # noqa: BLE001 - pygit2 raises several kinds for an unreadable path
        found = None
    if not found:
        raise RepositoryError(f"{path}: not a git repository. Pass the path of a clone (its work tree or its .git "
                              "directory), a bare repository, or a remote URL.")
    try:
        return pygit2.Repository(found)
    except pygit2.GitError as e:
        raise RepositoryError(f"{path}: cannot open the repository ({e}). Check that it is readable.") from None


@dataclass(slots=True)
class Commits:
    """Every commit reachable from any ref or HEAD, exactly ``git rev-list --all``.

    On a rerun the commits an earlier complete listing saw and that are all still reachable are only ``known``:
    their trees, parents and times are not loaded again.
    """

    tree: dict[bytes, bytes] = field(default_factory=dict)  # commit raw id → root tree raw id
    parents: dict[bytes, tuple[bytes, ...]] = field(default_factory=dict)
    time: dict[bytes, int] = field(default_factory=dict)  # commit raw id → committer time (Unix seconds)
    tips: dict[bytes, list[str]] = field(default_factory=dict)  # commit raw id → ref names pointing at it
    known: frozenset[bytes] = frozenset()
    errors: list[str] = field(default_factory=list)
    shallow: bool = False

    def __len__(self) -> int:
        return len(self.tree) + len(self.known)

    def __contains__(self, commit: bytes) -> bool:
        return commit in self.tree or commit in self.known


def ref_tips(repo: pygit2.Repository) -> dict[bytes, list[str]]:
    """commit raw id → the refs (and HEAD) that point at it, peeled; refs to trees or blobs are left out."""
    tips: dict[bytes, list[str]] = {}
    named = [(ref.name, ref) for ref in repo.references.iterator()]  # one pass: numpy has 20k refs
    if not repo.head_is_unborn:
        named.append(("HEAD", repo.head))
    for name, ref in named:
        try:
            commit = ref.peel(pygit2.Commit)
        except (pygit2.GitError, KeyError, ValueError, pygit2.InvalidSpecError):
            continue  # a ref to a tree or blob, or a dangling symbolic ref: no commit to walk
        tips.setdefault(commit.id.raw, []).append(name)
    return tips


def list_commits(repo: pygit2.Repository, known_tips: frozenset[bytes] = frozenset(),
                 known: frozenset[bytes] = frozenset()) -> Commits:
    """Walk every commit of every ref; given an earlier listing (its tips and commits) whose tips are all still
    reachable, walk only what is new (the earlier tips hidden) and keep the rest as ``known``."""
    out = Commits(shallow=repo.is_shallow, tips=ref_tips(repo))
    if not out.tips:
        return out
    walker = repo.walk(None, pygit2.enums.SortMode.NONE)
    for raw in out.tips:
        walker.push(pygit2.Oid(raw=raw))
    if known and _all_reachable(repo, known_tips, set(out.tips)):
        try:
            for raw in known_tips:
                walker.hide(pygit2.Oid(raw=raw))
            out.known = known
        except (pygit2.GitError, KeyError, ValueError):  # an earlier tip is gone from the object store
            walker = repo.walk(None, pygit2.enums.SortMode.NONE)
            for raw in out.tips:
                walker.push(pygit2.Oid(raw=raw))
            out.known = frozenset()
    try:
        for c in walker:
            out.tree[c.id.raw] = c.tree_id.raw
            out.parents[c.id.raw] = tuple(p.raw for p in c.parent_ids)
            out.time[c.id.raw] = c.commit_time
    except (pygit2.GitError, KeyError) as e:
        out.errors.append(f"history walk stopped early: {e}")
    return out


def _all_reachable(repo: pygit2.Repository, old: frozenset[bytes], now: set[bytes], budget: int = 64,
                   seconds: float = 0.5) -> bool:
    """Whether every earlier tip is a current tip or an ancestor of one (then no earlier commit was dropped);
    after ``budget`` ancestry checks or ``seconds``, say no: the full walk is then cheaper than proving it."""
    heads = sorted(now, key=lambda h: h in old)  # moved refs first: the likely descendants
    deadline = time.monotonic() + seconds
    for tip in old - now:
        found = False
        for head in heads:
            budget -= 1
            if budget < 0 or time.monotonic() > deadline:
                return False
            try:
                if repo.descendant_of(pygit2.Oid(raw=head), pygit2.Oid(raw=tip)):
                    found = True
                    break
            except (pygit2.GitError, KeyError, ValueError):
                return False
        if not found:
            return False
    return True
