"""Matched blobs + the tree graph → where they sit in each commit, and which commits introduce what (SPEC §4).

Only trees on a path from a root to a matched blob are ever visited again: ancestors are found by walking the
edge arrays upwards (numpy, sorted once), so a commit whose root holds no matched blob costs one set lookup.
On a rerun the walk holds only the new trees' edges; the trees an earlier scan found containing stay containing
(a tree's content never changes), and a new tree contains a match when a child is a match or a containing tree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np  # comes with pandas; vectorized search over millions of tree edges

from auditor.history import MODE_SUBMODULE, MODE_SYMLINK, MODE_TREE, Commits, Trees, id_keys


@dataclass(frozen=True, slots=True, kw_only=True)
class Introduction:
    """In ``commit``, ``blob`` sits at ``path`` while no parent has that very blob there.

    Which secrets it introduces is decided later, once the blob's secrets are resolved:
    secrets(blob) minus the secrets of every parent's blob at the same path.
    """

    commit: bytes
    path: bytes
    blob: bytes
    parent_blobs: tuple[bytes | None, ...]  # one per parent: its blob at path, if that blob matched


class Locator:
    def __init__(self, trees: Trees, matched: Iterable[bytes], containing: Iterable[bytes] = ()) -> None:
        self.trees = trees
        self.matched = set(matched)
        self.containing = set(containing)  # tree raw ids that hold a matched blob somewhere below
        self.containing |= self._ancestors()
        self._relevant = self.containing | self.matched
        self._memo: dict[bytes, dict[bytes, bytes]] = {}

    def _ancestors(self) -> set[bytes]:
        t = self.trees
        if not (self.matched or self.containing) or not t.edge_parent:
            return set()
        child_keys = t.edge_keys()
        order = np.argsort(child_keys)
        sorted_keys = child_keys[order]
        parents = np.frombuffer(t.edge_parent, dtype=np.uint32)
        found = np.zeros(len(t.index), dtype=bool)
        tree_keys = id_keys(t.tree_ids)
        frontier = id_keys(b"".join(self.matched | self.containing))
        while len(frontier):
            lo = np.searchsorted(sorted_keys, frontier, "left")
            hi = np.searchsorted(sorted_keys, frontier, "right")
            lengths = hi - lo
            edges = order[np.repeat(lo, lengths) + np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths,
                                                                                        lengths)]
            holders = np.unique(parents[edges])
            holders = holders[~found[holders]]
            found[holders] = True
            frontier = tree_keys[holders]
        ids = bytes(t.tree_ids)
        return {ids[n * 20:n * 20 + 20] for n in np.flatnonzero(found).tolist()}

    def matched_paths(self, tree: bytes) -> dict[bytes, bytes]:
        """path → matched blob under ``tree`` (empty when it holds none); memoized per tree."""
        if tree not in self.containing:
            return {}
        got = self._memo.get(tree)
        if got is None:
            got = {}
            relevant = self._relevant
            for mode, name, oid in self.trees.entries(tree):
                if oid not in relevant:
                    continue
                if mode == MODE_TREE:
                    for sub, blob in self.matched_paths(oid).items():
                        got[name + b"/" + sub] = blob
                elif mode not in (MODE_SYMLINK, MODE_SUBMODULE) and oid in self.matched:
                    got[name] = oid
            self._memo[tree] = got
        return got

    def _exists(self, tree: bytes, path: bytes) -> bool:
        """Whether ``path`` names any entry under ``tree`` (a file may hold an unmatched blob now)."""
        *dirs, leaf = path.split(b"/")
        for part in dirs:
            sub = next((oid for mode, name, oid in self.trees.entries(tree) if name == part and mode == MODE_TREE),
                       None)
            if sub is None:
                return False
            tree = sub
        return any(name == leaf for _, name, _ in self.trees.entries(tree))

    def introductions(self, commits: Commits, scanned: Callable[[bytes], bool],
                      only: Iterable[bytes] | None = None) -> list[Introduction]:
        """Every (commit, path) whose matched blob no parent has at that path, pure renames excepted.

        ``scanned(path)`` says whether detectors look at a path at all (the filename banlist): a rename
        from or to a path no detector looks at is not a rename of a detected secret. ``only``: these commits.
        """
        out: list[Introduction] = []
        for commit, root in _pick(commits, only):
            here = self.matched_paths(root)
            if not here:
                continue
            parent_maps = [self.matched_paths(commits.tree[p]) if p in commits.tree else {}
                           for p in commits.parents.get(commit, ())]
            new: dict[bytes, list[bytes]] = {}
            for path, blob in here.items():
                if scanned(path) and not any(m.get(path) == blob for m in parent_maps):
                    new.setdefault(blob, []).append(path)
            for blob, paths in new.items():
                # A scanned parent path that held this very blob and is gone from the commit is a rename
                # source: that many new paths are the file moved, not copied (a pure rename adds nothing).
                sources = sorted({p for m in parent_maps for p, b in m.items()
                                  if b == blob and p not in here and scanned(p) and not self._exists(root, p)})
                for source in sources:
                    if not paths:
                        break
                    base = source.rsplit(b"/", 1)[-1]
                    same = [p for p in paths if p.rsplit(b"/", 1)[-1] == base]
                    paths.remove(same[0] if same else sorted(paths)[0])
                for path in sorted(paths):
                    before = tuple(m.get(path) for m in parent_maps)
                    out.append(Introduction(commit=commit, path=path, blob=blob, parent_blobs=before))
        return out

    def removals(self, commits: Commits, secrets_of: Mapping[bytes, frozenset],
                 only: Iterable[bytes] | None = None) -> list[tuple[bytes, bytes, Any]]:
        """(commit, path, secret) where a parent had the secret at path and the commit no longer does."""
        out = []
        for commit, root in _pick(commits, only):
            parent_maps = [self.matched_paths(commits.tree[p]) for p in commits.parents.get(commit, ())
                           if p in commits.tree]
            if not any(parent_maps):
                continue
            here = self.matched_paths(root)
            lost: set[tuple[bytes, Any]] = set()
            for m in parent_maps:
                for path, blob in m.items():
                    now = here.get(path)
                    if now == blob:
                        continue
                    gone = secrets_of.get(blob, frozenset()) - secrets_of.get(now, frozenset()) if now else \
                        secrets_of.get(blob, frozenset())
                    lost.update((path, key) for key in gone)
            out.extend((commit, path, key) for path, key in lost)
        return out


def _pick(commits: Commits, only: Iterable[bytes] | None) -> Iterable[tuple[bytes, bytes]]:
    """(commit, root tree) of every commit, or of ``only`` those."""
    if only is None:
        return commits.tree.items()
    return ((c, commits.tree[c]) for c in only)


def introduced(intro: Introduction, secrets_of: Mapping[bytes, frozenset]) -> frozenset:
    """The secrets the commit introduces at the path: in its blob, in no parent's blob there."""
    mine = secrets_of.get(intro.blob, frozenset())
    for parent_blob in intro.parent_blobs:
        if parent_blob is not None and mine:
            mine = mine - secrets_of.get(parent_blob, frozenset())
    return mine
