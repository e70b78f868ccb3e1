"""Matched blobs + each commit's first-parent changes → where they sit in every commit, and which commits introduce
what (SPEC §4).

A commit's matched paths are its first parent's with its own changes applied, so they follow from the changes
without reading a tree; a commit that changes no matched path shares its parent's map (one dict for a whole run of
commits), and compares with it by identity. Commits without recorded changes (attributed by an earlier scan, on a
rerun) are listed from their trees instead, memoized per tree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pygit2

from auditor.changes import FILE, Change
from auditor.history import Commits
from auditor.objects import MODE_TREE, commit_tree, tree_entries

Paths = dict[bytes, bytes]  # path → matched blob


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
    def __init__(self, repo: pygit2.Repository, commits: Commits,
                 records: Mapping[bytes, tuple[bytes | None, list[Change]]], matched: Iterable[bytes]) -> None:
        self.repo = repo
        self.commits = commits
        self.records = records
        self.matched = set(matched)
        self.errors: list[str] = []
        self._maps: dict[bytes, Paths] = {}
        self._listed: dict[bytes, Paths] = {}

    def paths(self, commit: bytes) -> Paths:
        """path → matched blob in ``commit`` (regular files only)."""
        maps, matched = self._maps, self.matched
        if not matched:
            return {}
        stack = [commit]
        while stack:
            c = stack[-1]
            if c in maps:
                stack.pop()
                continue
            record = self.records.get(c)
            if record is None:
                maps[c] = self._list(self._tree_of(c))
                stack.pop()
                continue
            parent, changes = record
            if parent is not None and parent not in maps:
                stack.append(parent)  # first-parent chains run deep: an explicit stack, not recursion
                continue
            stack.pop()
            base = maps[parent] if parent is not None else {}
            touched = [ch for ch in changes if ch[3] in matched or ch[4] in matched]
            if not touched:
                maps[c] = base
                continue
            here = dict(base)
            for path, _, new_kind, _, new in touched:
                if new_kind == FILE and new in matched:
                    here[path] = new
                else:
                    here.pop(path, None)
            maps[c] = here
        return maps[commit]

    def _tree_of(self, commit: bytes) -> bytes | None:
        return self.commits.tree.get(commit) or commit_tree(self.repo, commit)

    def _list(self, tree: bytes | None) -> Paths:
        """Matched paths under ``tree``, read object by object (memoized per tree)."""
        if tree is None:
            return {}
        got = self._listed.get(tree)
        if got is None:
            got = {}
            for mode, name, oid in tree_entries(self.repo, tree, self.errors):
                if mode == MODE_TREE:
                    for sub, blob in self._list(oid).items():
                        got[name + b"/" + sub] = blob
                elif mode.startswith(b"100") and oid in self.matched:
                    got[name] = oid
            self._listed[tree] = got
        return got

    def _exists(self, commit: bytes, path: bytes) -> bool:
        """Whether ``path`` names any entry of the commit (a file may hold an unmatched blob now)."""
        tree = self._tree_of(commit)
        try:
            return tree is not None and path.decode("utf-8", "surrogateescape") in self.repo[pygit2.Oid(raw=tree)]
        except (KeyError, pygit2.GitError, ValueError, UnicodeError):
            return False

    def _around(self, commit: bytes) -> tuple[Paths, list[Paths]] | None:
        """(the commit's map, its parents' maps), or None when they are one and the same map."""
        here = self.paths(commit)
        parent_maps = [self.paths(p) for p in self.commits.parents.get(commit, ()) if p in self.commits]
        if len(parent_maps) == 1 and parent_maps[0] is here:
            return None
        return here, parent_maps

    def introductions(self, scanned: Callable[[bytes], bool], only: Iterable[bytes] | None = None
                      ) -> list[Introduction]:
        """Every (commit, path) whose matched blob no parent has at that path, pure renames excepted.

        ``scanned(path)`` says whether detectors look at a path at all (the filename banlist): a rename
        from or to a path no detector looks at is not a rename of a detected secret. ``only``: these commits.
        """
        out: list[Introduction] = []
        if not self.matched:  # most histories: nothing to locate
            return out
        for commit in self.commits.tree if only is None else only:
            around = self._around(commit)
            if around is None or not around[0]:
                continue
            here, parent_maps = around
            new: dict[bytes, list[bytes]] = {}
            for path, blob in here.items():
                if scanned(path) and not any(m.get(path) == blob for m in parent_maps):
                    new.setdefault(blob, []).append(path)
            for blob, paths in new.items():
                # A scanned parent path that held this very blob and is gone from the commit is a rename
                # source: that many new paths are the file moved, not copied (a pure rename adds nothing).
                sources = sorted({p for m in parent_maps for p, b in m.items()
                                  if b == blob and p not in here and scanned(p) and not self._exists(commit, p)})
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

    def removals(self, secrets_of: Mapping[bytes, frozenset], only: Iterable[bytes] | None = None
                 ) -> list[tuple[bytes, bytes, Any]]:
        """(commit, path, secret) where a parent had the secret at path and the commit no longer does."""
        out: list[tuple[bytes, bytes, Any]] = []
        if not self.matched:
            return out
        for commit in self.commits.tree if only is None else only:
            around = self._around(commit)
            if around is None or not any(around[1]):
                continue
            here, parent_maps = around
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


def introduced(intro: Introduction, secrets_of: Mapping[bytes, frozenset]) -> frozenset:
    """The secrets the commit introduces at the path: in its blob, in no parent's blob there."""
    mine = secrets_of.get(intro.blob, frozenset())
    for parent_blob in intro.parent_blobs:
        if parent_blob is not None and mine:
            mine = mine - secrets_of.get(parent_blob, frozenset())
    return mine
