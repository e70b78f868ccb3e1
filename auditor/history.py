"""A repository (pygit2) → the commits of ``git rev-list --all``, each unique blob once, and the tree graph
that later tells which commits hold the few blobs that matched.

Trees are read once each (memoized by id); their entries are parsed from raw object bytes so that no Python
object is built per entry beyond a tuple. Edges (tree → child) are kept as compact arrays, not dicts, so a
100k-commit history stays well inside 1 GiB; ``Locator`` walks them upwards from matched blobs only.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pygit2
from pygit2.enums import ObjectType

from auditor.errors import RepositoryError

# A raw tree object is a run of "<mode> <name>\0<20-byte id>".
TREE_ENTRY = re.compile(rb"(\d+) ([^\0]*)\0(.{20})", re.S)
MODE_TREE = b"40000"
MODE_SYMLINK = b"120000"
MODE_SUBMODULE = b"160000"


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


class Trees:
    """Unique trees of the history: enumerated once for blobs, kept as edges for attribution."""

    def __init__(self, repo: pygit2.Repository) -> None:
        self.repo = repo
        self.index: dict[bytes, int] = {}  # tree raw id → tree number
        self.tree_ids = bytearray()  # 20 bytes per tree number
        self.edge_parent = array("I")  # tree number, one per entry
        self.edge_child = bytearray()  # child raw id, 20 bytes per entry
        self.errors: list[str] = []
        self.symlinks = 0
        self.submodules = 0

    def blobs(self, roots: Iterator[bytes], wanted: Callable[[bytes, bytes], bool]) -> Iterator[tuple[bytes, bytes]]:
        """Yield (blob raw id, file name) once per blob for which ``wanted(id, name)`` says yes."""
        seen_blobs: set[bytes] = set()
        index, read = self.index, self.repo.odb.read
        for root in roots:
            if root in index:
                continue
            stack = [root]
            while stack:
                tid = stack.pop()
                if tid in index:
                    continue
                index[tid] = number = len(index)
                self.tree_ids += tid
                try:
                    kind, data = read(pygit2.Oid(raw=tid))
                except (KeyError, pygit2.GitError, ValueError) as e:
                    self.errors.append(f"tree {tid.hex()}: {e}")
                    continue
                entries = TREE_ENTRY.findall(data)
                self.edge_parent.extend([number] * len(entries))
                self.edge_child += b"".join(e[2] for e in entries)
                for mode, name, oid in entries:
                    if mode == MODE_TREE:
                        if oid not in index:
                            stack.append(oid)
                    elif oid not in seen_blobs:
                        if mode == MODE_SUBMODULE:
                            self.submodules += 1
                        elif mode == MODE_SYMLINK:
                            self.symlinks += 1  # a link's target path is not file content
                        elif wanted(oid, name):
                            seen_blobs.add(oid)
                            yield oid, name

    def entries(self, tid: bytes) -> list[tuple[bytes, bytes, bytes]]:
        """(mode, name, raw id) of one tree, read again: only for the few trees on a path to a match."""
        return TREE_ENTRY.findall(self.repo.odb.read(pygit2.Oid(raw=tid))[1])


def is_blob(repo: pygit2.Repository, raw: bytes) -> bool:
    try:
        return repo.odb.read_header(pygit2.Oid(raw=raw))[0] == ObjectType.BLOB
    except (KeyError, pygit2.GitError):
        return False
