"""A repository path and known (client_id, client_secret) pairs in, the SPEC §4 occurrences out, using only git.

Why: the synthetic manifest and, later, the scanner are checked against this brute force, which shares no
code with either (plain `git rev-list` and `git cat-file --batch`, no pygit2). It applies SPEC §4 literally:
for every commit of `git rev-list --all` and every path of its tree whose blob holds both the SID and the
token as whole words (file type not banned, not binary), the occurrence counts unless some parent's blob at
the same path holds them too, or the commit is a pure rename (the same blob sits in a parent at a path this
commit no longer has). Subtrees equal to a parent's subtree at the same path are skipped: they hold the
parent's blobs, which cannot introduce anything.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

BANNED_EXT = re.compile(rb"(?:cs|x|p|s|r)?html5?~?|[aps]?cssc?~?|lock|mdx?~?|storyboard(?:c|er)?~?|xib", re.IGNORECASE)
BLOB_MODES = (b"100644", b"100755")  # regular files; symlinks (120000) and submodules (160000) are not files


def banned(path: bytes) -> bool:
    base = path.rsplit(b"/", 1)[-1]
    return b"." in base and BANNED_EXT.fullmatch(base.rsplit(b".", 1)[1]) is not None


def _word(s: str) -> re.Pattern[bytes]:
    return re.compile(rb"(?<![0-9A-Za-z_])" + re.escape(s.encode()) + rb"(?![0-9A-Za-z_])")


class _Objects:
    """One `git cat-file --batch` process; trees parsed and blob detections cached by object id."""

    def __init__(self, repo: Path, pairs: list[tuple[str, str]]) -> None:
        self.proc = subprocess.Popen(["git", "-C", str(repo), "cat-file", "--batch"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        self.pairs = [(_word(s), _word(t)) for s, t in pairs]
        self.trees: dict[bytes, dict[bytes, tuple[bytes, bytes]]] = {}
        self.found: dict[bytes, frozenset[int]] = {}

    def read(self, oid: bytes) -> bytes:
        self.proc.stdin.write(oid + b"\n")
        self.proc.stdin.flush()
        header = self.proc.stdout.readline().split()
        if header[1] == b"missing":
            raise KeyError(oid)
        data = self.proc.stdout.read(int(header[2]) + 1)
        return data[:-1]

    def tree(self, oid: bytes) -> dict[bytes, tuple[bytes, bytes]]:
        """name → (mode, hex id)."""
        if oid not in self.trees:
            raw, entries, i = self.read(oid), {}, 0
            while i < len(raw):
                sp, nul = raw.index(b" ", i), raw.index(b"\0", i)
                entries[raw[sp + 1:nul]] = (raw[i:sp], raw[nul + 1:nul + 21].hex().encode())
                i = nul + 21
            self.trees[oid] = entries
        return self.trees[oid]

    def commit_tree(self, oid: bytes) -> bytes:
        return self.read(oid).split(b"\n", 1)[0].split()[1]

    def detect(self, oid: bytes) -> frozenset[int]:
        """Pairs whose SID and token are both whole words of the blob; binary blobs hold none."""
        if oid not in self.found:
            data = self.read(oid)
            self.found[oid] = frozenset() if b"\0" in data[:8000] else frozenset(
                i for i, (s, t) in enumerate(self.pairs) if s.search(data) and t.search(data))
        return self.found[oid]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.proc.wait()


def _blobs(objs: _Objects, tree: bytes | None, prefix: bytes = b"") -> dict[bytes, bytes]:
    """path → blob id of every regular file under `tree`."""
    out: dict[bytes, bytes] = {}
    for name, (mode, oid) in (objs.tree(tree) if tree else {}).items():
        if mode == b"40000":
            out.update(_blobs(objs, oid, prefix + name + b"/"))
        elif mode in BLOB_MODES:
            out[prefix + name] = oid
    return out


def brute_force_occurrences(repo_path: Path | str,
                            pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str, str, str]]:
    """{(commit, path, client_id, client_secret)} of every occurrence of the given pairs (SPEC §4)."""
    pairs = list(pairs)
    lines = subprocess.run(["git", "-C", str(repo_path), "rev-list", "--all", "--parents"], check=True,
                           capture_output=True).stdout.split(b"\n")
    objs, out = _Objects(Path(repo_path), pairs), set()
    try:
        for line in filter(None, lines):
            commit, *parents = line.split()
            tree, ptrees = objs.commit_tree(commit), [objs.commit_tree(p) for p in parents]
            new: dict[bytes, list[tuple[bytes, frozenset]]] = {}
            for path, oid in _changed(objs, tree, ptrees, b""):
                found = objs.detect(oid) if not banned(path) else frozenset()
                if not found:
                    continue
                for ptree in ptrees:
                    pblob = _lookup(objs, ptree, path)
                    if pblob is not None:
                        found -= objs.detect(pblob)
                if found:
                    new.setdefault(oid, []).append((path, found))
            for oid, entries in new.items():
                # Pure renames add nothing: each scanned parent path that held this blob and is gone from the
                # commit accounts for one new path (the one with the same file name, else the first by name).
                for source in _rename_sources(objs, tree, ptrees, oid):
                    if not entries:
                        break
                    base = source.rsplit(b"/", 1)[-1]
                    same = [e for e in entries if e[0].rsplit(b"/", 1)[-1] == base]
                    entries.remove(same[0] if same else min(entries, key=lambda e: e[0]))
                for path, found in entries:
                    for i in found:
                        out.add((commit.decode(), path.decode("utf-8", "surrogateescape"), *pairs[i]))
    finally:
        objs.close()
    return out


def _changed(objs: _Objects, tree: bytes, ptrees: list[bytes | None], prefix: bytes) -> Iterable[tuple[bytes, bytes]]:
    """(path, blob) of the commit's files whose blob differs from every parent's at that path."""
    pents = [objs.tree(p) if p else {} for p in ptrees]
    for name, (mode, oid) in objs.tree(tree).items():
        theirs = [pe.get(name) for pe in pents]
        if any(t is not None and t[1] == oid for t in theirs):
            continue  # the same subtree or blob as a parent's: nothing in it is new
        if mode == b"40000":
            yield from _changed(objs, oid, [t[1] if t and t[0] == b"40000" else None for t in theirs],
                                prefix + name + b"/")
        elif mode in BLOB_MODES:
            yield prefix + name, oid


def _lookup(objs: _Objects, tree: bytes, path: bytes) -> bytes | None:
    *dirs, name = path.split(b"/")
    for d in dirs:
        entry = objs.tree(tree).get(d)
        if entry is None or entry[0] != b"40000":
            return None
        tree = entry[1]
    entry = objs.tree(tree).get(name)
    return entry[1] if entry is not None and entry[0] in BLOB_MODES else None


def _rename_sources(objs: _Objects, tree: bytes, ptrees: list[bytes], oid: bytes) -> list[bytes]:
    """Scanned paths where some parent holds this very blob and which the commit no longer has at all."""
    mine = _all_paths(objs, tree, b"")
    return sorted({p for ptree in ptrees for p, b in _blobs(objs, ptree).items()
                   if b == oid and p not in mine and not banned(p)})


def _all_paths(objs: _Objects, tree: bytes, prefix: bytes) -> set[bytes]:
    out = set()
    for name, (mode, oid) in objs.tree(tree).items():
        out.add(prefix + name)
        if mode == b"40000":
            out |= _all_paths(objs, oid, prefix + name + b"/")
    return out


def pairs_at_tips(repo_path: Path | str, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """The pairs present in some scanned file of some ref tip (every ref, peeled to its commit)."""
    pairs = list(pairs)
    tips = subprocess.run(["git", "-C", str(repo_path), "for-each-ref", "--format=%(objectname)^{commit}"],
                          check=True, capture_output=True).stdout.split()
    commits = subprocess.run(["git", "-C", str(repo_path), "rev-parse", *[t.decode() for t in tips]], check=True,
                             capture_output=True).stdout.split()
    objs, out = _Objects(Path(repo_path), pairs), set()
    try:
        for c in commits:
            for path, oid in _blobs(objs, objs.commit_tree(c)).items():
                if not banned(path):
                    out.update(pairs[i] for i in objs.detect(oid))
    finally:
        objs.close()
    return out
