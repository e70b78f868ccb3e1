"""A repository (pygit2) → the commits of ``git rev-list --all``: ids, root trees, parents, times and ref tips.

What each commit changed is ``changes``' job; where matched blobs sit is ``attribution``'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pygit2

from auditor.errors import RepositoryError

# A raw tree object is a run of "<mode> <name>\0<20-byte id>".
TREE_ENTRY = re.compile(rb"(\d+) ([^\0]*)\0(.{20})", re.S)


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
    """Every commit reachable from any ref or HEAD, exactly ``git rev-list --all``."""

    tree: dict[bytes, bytes] = field(default_factory=dict)  # commit raw id → root tree raw id
    parents: dict[bytes, tuple[bytes, ...]] = field(default_factory=dict)
    time: dict[bytes, int] = field(default_factory=dict)  # commit raw id → committer time (Unix seconds)
    tips: dict[bytes, list[str]] = field(default_factory=dict)  # commit raw id → ref names pointing at it
    errors: list[str] = field(default_factory=list)
    shallow: bool = False

    def __len__(self) -> int:
        return len(self.tree)


def list_commits(repo: pygit2.Repository) -> Commits:
    out = Commits(shallow=repo.is_shallow)
    names = list(repo.references)
    if not repo.head_is_unborn:
        names.append("HEAD")
    for name in names:
        try:
            ref = repo.lookup_reference(name) if name != "HEAD" else repo.head
            commit = ref.peel(pygit2.Commit)
        except (pygit2.GitError, KeyError, ValueError, pygit2.InvalidSpecError):
            continue  # a ref to a tree or blob, or a dangling symbolic ref: no commit to walk
        out.tips.setdefault(commit.id.raw, []).append(name)
    if not out.tips:
        return out
    walker = repo.walk(None, pygit2.enums.SortMode.NONE)
    for raw in out.tips:
        walker.push(pygit2.Oid(raw=raw))
    try:
        for c in walker:
            out.tree[c.id.raw] = c.tree_id.raw
            out.parents[c.id.raw] = tuple(p.raw for p in c.parent_ids)
            out.time[c.id.raw] = c.commit_time
    except (pygit2.GitError, KeyError) as e:
        out.errors.append(f"history walk stopped early: {e}")
    return out
