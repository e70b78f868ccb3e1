"""The suite's one oracle of SPEC §4: a repository and known (client_id, client_secret) pairs in, the occurrences out,
by brute force over what git itself says (``git rev-list --all --parents`` and ``git cat-file --batch``; no pygit2,
no code of the scanner). The scanner, the synthetic history's manifest and the property tests are all checked
against it.

The rule, literally (SPEC §4, README "Renames:"): for every commit and every scanned path whose blob holds a pair
(both halves as whole words; not a binary blob; a path whose extension the detector's FilenameBanlist bans is not
scanned), the blob is *new* at that path when no parent has that very blob there. A scanned path of some parent that
held the very same blob and that the commit no longer has at all is a rename source: each pairs with one new path of
that blob (the one with the same file name first, else the first by name), which therefore adds nothing. Every other
new path introduces the pairs its blob holds minus those of every parent's blob at the same path.

The banned extensions are read from the detector's YAML (``load_detectors()``), the data the product reads too; the
matching is this module's own.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from tests.helpers.env import env

BLOB_MODES = (b"100644", b"100755")  # regular files; symlinks (120000) and submodules (160000) are not files
TREE_MODE = b"40000"
BINARY_PROBE = 8000  # git's rule: a NUL in the first 8000 bytes makes a blob binary
Occurrence = tuple[str, str, str, str]  # (commit, path, client_id, client_secret)


@cache
def _banlist() -> tuple[list[re.Pattern[str]], list[re.Pattern[str]]]:
    from auditor.detectors import load_detectors

    [twilio] = [d for d in load_detectors() if d.id == "twilio_master_credentials"]
    ban = twilio.filename_banlist
    assert ban is not None and ban.banlist_extensions, "the detector YAML bans no extension"
    return ([re.compile(p, re.IGNORECASE) for p in ban.banlist_extensions],
            [re.compile(p) for p in ban.banlist_filenames])


def banned(path: bytes | str) -> bool:
    """SPEC §3 FilenameBanlist: the text after the last '.' of the basename, case-insensitively (or the name)."""
    name = (path.encode("utf-8", "surrogateescape") if isinstance(path, str) else path).rsplit(b"/", 1)[-1]
    text = name.decode("utf-8", "replace")
    extensions, names = _banlist()
    ext = text.rsplit(".", 1)[1] if "." in text else None
    return (ext is not None and any(p.search(ext) for p in extensions)) or any(p.search(text) for p in names)


def _word(s: str) -> re.Pattern[bytes]:
    return re.compile(rb"(?<![0-9A-Za-z_])" + re.escape(s.encode()) + rb"(?![0-9A-Za-z_])")


def _base(path: bytes) -> bytes:
    return path.rsplit(b"/", 1)[-1]


class _Objects:
    """One `git cat-file --batch` process; trees parsed, listings and blob detections cached by object id."""

    def __init__(self, repo: Path | str, pairs: list[tuple[str, str]]) -> None:
        self.proc = subprocess.Popen(["git", "-C", str(repo), "cat-file", "--batch"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env())
        self.pairs = [(_word(s), _word(t)) for s, t in pairs]
        self.trees: dict[bytes, dict[bytes, tuple[bytes, bytes]]] = {}
        self.files: dict[bytes, dict[bytes, bytes]] = {}
        self.names: dict[bytes, frozenset[bytes]] = {}
        self.found: dict[bytes, frozenset[int]] = {}

    def read(self, oid: bytes) -> bytes:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(oid + b"\n")
        self.proc.stdin.flush()
        header = self.proc.stdout.readline().split()
        if header[1] == b"missing":
            raise KeyError(oid)
        return self.proc.stdout.read(int(header[2]) + 1)[:-1]

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

    def blobs(self, tree: bytes) -> dict[bytes, bytes]:
        """path → blob id of every regular file under ``tree``."""
        if tree not in self.files:
            out: dict[bytes, bytes] = {}
            for name, (mode, oid) in self.tree(tree).items():
                if mode == TREE_MODE:
                    out.update((name + b"/" + p, b) for p, b in self.blobs(oid).items())
                elif mode in BLOB_MODES:
                    out[name] = oid
            self.files[tree] = out
        return self.files[tree]

    def paths(self, tree: bytes) -> frozenset[bytes]:
        """Every path under ``tree``, directories, links and submodules included."""
        if tree not in self.names:
            out = set()
            for name, (mode, oid) in self.tree(tree).items():
                out.add(name)
                if mode == TREE_MODE:
                    out.update(name + b"/" + p for p in self.paths(oid))
            self.names[tree] = frozenset(out)
        return self.names[tree]

    def detect(self, oid: bytes) -> frozenset[int]:
        """Pairs whose SID and token are both whole words of the blob; binary blobs hold none."""
        if oid not in self.found:
            data = self.read(oid)
            self.found[oid] = frozenset() if b"\0" in data[:BINARY_PROBE] else frozenset(
                i for i, (s, t) in enumerate(self.pairs) if s.search(data) and t.search(data))
        return self.found[oid]

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.proc.wait()


def _changed(objs: _Objects, tree: bytes, ptrees: list[bytes | None]) -> Iterable[tuple[bytes, bytes]]:
    """(path, blob) of the commit's regular files whose blob differs from every parent's at that path; a subtree
    equal to a parent's at the same path holds nothing new and is skipped."""
    def walk(tree: bytes, ptrees: list[bytes | None], prefix: bytes) -> Iterable[tuple[bytes, bytes]]:
        pents = [objs.tree(p) if p else {} for p in ptrees]
        for name, (mode, oid) in objs.tree(tree).items():
            theirs = [pe.get(name) for pe in pents]
            if any(t is not None and t[1] == oid for t in theirs):
                continue
            if mode == TREE_MODE:
                yield from walk(oid, [t[1] if t and t[0] == TREE_MODE else None for t in theirs], prefix + name + b"/")
            elif mode in BLOB_MODES:
                yield prefix + name, oid
    return walk(tree, list(ptrees), b"")


def brute_force_occurrences(repo_path: Path | str, pairs: Iterable[tuple[str, str]]) -> set[Occurrence]:
    """{(commit, path, client_id, client_secret)} of every occurrence of the given pairs (SPEC §4)."""
    pairs = list(pairs)
    lines = subprocess.run(["git", "-C", str(repo_path), "rev-list", "--all", "--parents"], check=True,
                           capture_output=True, env=env()).stdout.split(b"\n")
    objs, out = _Objects(repo_path, pairs), set()
    try:
        for line in filter(None, lines):
            commit, *parents = line.split()
            tree, ptrees = objs.commit_tree(commit), [objs.commit_tree(p) for p in parents]
            new: dict[bytes, list[bytes]] = {}  # matched blob → scanned paths where no parent has it
            for path, oid in _changed(objs, tree, ptrees):
                if not banned(path) and objs.detect(oid):
                    new.setdefault(oid, []).append(path)
            for oid, paths in new.items():
                paths.sort()
                gone = objs.paths(tree)
                sources = sorted({p for pt in ptrees for p, b in objs.blobs(pt).items()
                                  if b == oid and p not in gone and not banned(p)})
                for source in sources:  # each rename source accounts for one new path: that one was moved
                    if not paths:
                        break
                    same = [p for p in paths if _base(p) == _base(source)]
                    paths.remove(same[0] if same else paths[0])
                for path in paths:
                    found = set(objs.detect(oid))
                    for pt in ptrees:
                        before = objs.blobs(pt).get(path)
                        if before is not None:
                            found -= objs.detect(before)
                    out.update((commit.decode(), path.decode("utf-8", "surrogateescape"), *pairs[i]) for i in found)
    finally:
        objs.close()
    return out


def pairs_at_tips(repo_path: Path | str, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """The pairs present in some scanned file of some ref tip (every ref, peeled to its commit)."""
    pairs = list(pairs)
    tips = subprocess.run(["git", "-C", str(repo_path), "for-each-ref", "--format=%(objectname)^{commit}"],
                          check=True, capture_output=True, env=env()).stdout.split()
    commits = subprocess.run(["git", "-C", str(repo_path), "rev-parse", *[t.decode() for t in tips]], check=True,
                             capture_output=True, env=env()).stdout.split()
    objs, out = _Objects(repo_path, pairs), set()
    try:
        for c in commits:
            for path, oid in objs.blobs(objs.commit_tree(c)).items():
                if not banned(path):
                    out.update(pairs[i] for i in objs.detect(oid))
    finally:
        objs.close()
    return out
