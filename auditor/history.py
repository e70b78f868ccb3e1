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

import numpy as np  # comes with pandas: compact edge keys
import pygit2
from pygit2.enums import FileMode

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
    """Unique trees of the history: enumerated once for blobs, kept as edges for attribution.

    An edge is (parent tree number, first 8 bytes of the child id): 12 bytes per tree entry. A prefix may
    collide; attribution re-reads the few trees it walks with full ids, so a collision costs time, never results.
    """

    FLUSH = 1 << 26  # child ids buffered before they are packed into 8-byte keys

    def __init__(self, repo: pygit2.Repository) -> None:
        self.repo = repo
        self.index: dict[bytes, int] = {}  # tree raw id → tree number
        self.tree_ids = bytearray()  # 20 bytes per tree number
        self.edge_parent = array("I")  # tree number, one per entry
        self._edge_buf = bytearray()  # child raw ids not yet packed
        self._edge_keys: list[np.ndarray] = []
        self.errors: list[str] = []
        self.symlinks = 0
        self.submodules = 0
        self.seeded = 0  # trees walked by an earlier scan: never read again

    def seed(self, tree_ids: bytes) -> None:
        """Mark the trees an earlier complete scan walked: their blobs are scanned and their edges not needed."""
        if self.index:
            raise ValueError("seed a walk before it starts")
        self.index = {tree_ids[i:i + 20]: n for n, i in enumerate(range(0, len(tree_ids), 20))}
        self.tree_ids = bytearray(tree_ids)
        self.seeded = len(self.index)

    @property
    def read(self) -> int:
        """Trees read by this walk."""
        return len(self.index) - self.seeded

    def _pack(self) -> None:
        if self._edge_buf:
            self._edge_keys.append(id_keys(self._edge_buf))
            self._edge_buf = bytearray()

    def edge_keys(self) -> np.ndarray:
        """uint64 prefix of each edge's child id, aligned with ``edge_parent``."""
        self._pack()
        if len(self._edge_keys) != 1:
            self._edge_keys = [np.concatenate(self._edge_keys) if self._edge_keys else np.empty(0, "<u8")]
        return self._edge_keys[0]

    def blobs(self, roots: Iterator[bytes], verdict: Callable[[bytes, bytes], str]) -> Iterator[tuple[bytes, bytes]]:
        """Yield (blob raw id, file name) once per blob that ``verdict(id, name)`` calls "scan".

        Other verdicts: "known" (never yield it: e.g. already scanned) and "banned" (not under this name; the same
        blob may still be wanted under another name).
        """
        decided: set[bytes] = set()
        banned: dict[bytes, bytes] = {}  # blob → the banned name it was last judged under
        links: set[bytes] = set()
        index, lookup = self.index, self.repo.__getitem__
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
                    children = list(lookup(pygit2.Oid(raw=tid)))
                except (KeyError, pygit2.GitError, ValueError) as e:
                    self.errors.append(f"tree {tid.hex()}: {type(e).__name__}: {e}")
                    continue
                ids = [c.id.raw for c in children]
                self.edge_parent.extend([number] * len(ids))
                self._edge_buf += b"".join(ids)
                if len(self._edge_buf) > self.FLUSH:
                    self._pack()
                # In a new tree version nearly every entry is one seen before. (Binary set difference and
                # set.difference(dict) iterate the small side; the in-place and multi-argument forms do not.)
                new = (set(ids) - decided).difference(index)
                if not new:
                    continue
                for child, oid in zip(children, ids, strict=True):
                    if oid not in new:
                        continue
                    mode = child.filemode
                    if mode == FileMode.TREE:
                        stack.append(oid)
                        new.discard(oid)
                    elif mode == FileMode.COMMIT:
                        self.submodules += 1
                        decided.add(oid)
                    elif mode == FileMode.LINK:
                        if oid not in links:  # a link's target path is not file content
                            links.add(oid)
                            self.symlinks += 1
                    elif oid not in decided and banned.get(oid) != (name := child.raw_name):
                        # a blob may sit at two names in one tree: a banned one, then a scanned one
                        said = verdict(oid, name)
                        if said == "banned":
                            banned[oid] = name
                            continue
                        decided.add(oid)
                        if said == "scan":
                            yield oid, name

    def entries(self, tid: bytes) -> list[tuple[bytes, bytes, bytes]]:
        """(mode, name, raw id) of one tree, read again: only for the few trees on a path to a match."""
        return TREE_ENTRY.findall(self.repo.odb.read(pygit2.Oid(raw=tid))[1])


def id_keys(raw_ids: bytes | bytearray) -> np.ndarray:
    """First 8 bytes of each 20-byte id as uint64: compact, sortable, and unique in practice."""
    return np.frombuffer(bytes(raw_ids), dtype=np.uint8).reshape(-1, 20)[:, :8].copy().view("<u8").ravel()
