"""Commits → what each changed against its first parent (every file whose blob differs), the one stream that both
enumeration (each blob of the history appears in some commit's changes) and attribution read.

Why first-parent changes and not a walk of every tree: a commit's files are its first parent's plus its changes,
so the changes name every (blob, path) of the history once per change instead of once per tree version, and
where matched blobs sit in every commit follows from them without reading a tree again. ``git log --raw`` computes
them in C, in its own process (the other core), skipping equal subtrees: 0.3 s for 20k synthetic commits, 2 s for
numpy's 75k, where a Python walk of the trees takes 1.3 s and 4.9 s. Where git cannot run or read the repository
(not installed, a missing or corrupt tree), the same changes are computed with pygit2, object by object, and what
cannot be read is reported.

Memory: the stream is read once, by the blob feed; what attribution will need of it is logged to a temporary file
(``ChangeLog``) and read back, once the matched blobs are known, only where a change touches one (``Kept``), so no
Python object per commit outlives the feed (issue 16).
"""

from __future__ import annotations

import pickle
import shutil
import subprocess
import tempfile
from binascii import unhexlify
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from enum import IntEnum, StrEnum
from typing import IO, NamedTuple

import pygit2

from auditor.git.objects import MODE_TREE, commit_tree, tree_entries
from auditor.git.repository import GIT_ENV


class Kind(IntEnum):
    """What one side of a change is."""

    NONE = 0  # absent (added or deleted), or a tree
    FILE = 1
    LINK = 2  # a symlink: its blob is a target path, not file content
    GITLINK = 3  # a submodule: a commit of another repository


NONE, FILE, LINK, GITLINK = Kind.NONE, Kind.FILE, Kind.LINK, Kind.GITLINK


class Change(NamedTuple):
    """One path whose blob differs between a commit and its first parent."""

    path: bytes
    old_kind: Kind
    new_kind: Kind
    old: bytes | None  # raw blob id before
    new: bytes | None  # raw blob id after


class Verdict(StrEnum):
    """What the blob feed does with a blob met under a file name."""

    KNOWN = "known"  # never yield it (already scanned, or read again anyway)
    SCAN = "scan"
    BANNED = "banned"  # not under this name; the same blob may still be wanted under another name


# git log reads trees through delta chains of small objects: an 8 MiB delta-base cache (96 by default) halves
# its heap on git/git (152 → 47 MiB) at no measurable cost
LOG_CACHE = ("-c", "core.deltaBaseCacheLimit=8m")

Record = tuple[bytes, bytes | None, list[Change]]  # (commit raw id, first parent diffed against, changes)

_KINDS = {b"100": FILE, b"120": LINK, b"160": GITLINK}
# the modes git writes, and their kinds as plain ints (equal to the Kinds)
_MODES = {b"100644": 1, b"100755": 1, b"120000": 2, b"160000": 3, b"000000": 0, b"040000": 0}


def _tokens(stream: IO[bytes]) -> Iterator[bytes]:
    """The NUL-terminated tokens of a stream, read in large chunks."""
    pending = b""
    while chunk := stream.read(1 << 20):
        parts = (pending + chunk).split(b"\0")
        pending = parts.pop()
        yield from parts
    if pending:
        yield pending


def _kind(mode: bytes) -> Kind:
    return _KINDS.get(mode[:3], NONE) if mode != b"000000" else NONE


class Changes:
    """``records(...)`` yields one Record per commit; ``errors`` lists what could not be read."""

    def __init__(self, repo: pygit2.Repository, *, use_git: bool = True) -> None:
        self.repo = repo
        self.git = shutil.which("git") if use_git else None
        self.parents: Mapping[bytes, tuple[bytes, ...]] = {}
        self.errors: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, commits: Sequence[bytes] | None = None) -> None:
        """Start git on ``commits``, or on every ref and HEAD when None: it then runs while pygit2 lists them."""
        if not self.git or self._proc is not None:
            return
        which = ["--all"] if commits is None else ["--no-walk=unsorted", "--stdin"]
        try:
            self._proc = subprocess.Popen(
                [self.git, *LOG_CACHE, "--git-dir", self.repo.path, "log", *which, "-z", "--raw", "--no-abbrev",
                 "--no-renames", "--no-ext-diff", "--no-textconv", "--root", "--diff-merges=first-parent",
                 "--ignore-submodules=none", "--format=%x01%H %P"],
                stdin=subprocess.PIPE if commits is not None else subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, env=GIT_ENV)
        except OSError:
            self.git = None
            return
        if commits is not None:
            try:
                self._proc.stdin.write(b"".join(c.hex().encode() + b"\n" for c in commits))  # read before output
                self._proc.stdin.close()
            except OSError:
                pass

    def records(self, wanted: Callable[[], tuple[Collection[bytes], Mapping[bytes, tuple[bytes, ...]]]], *,
                plain: bool = False) -> Iterator[Record]:
        """One record per wanted commit. ``wanted()`` → (the commits, the parents of every commit); called once
        git started on every ref has said all it could (the list may still be being made meanwhile). ``plain``:
        git's changes come as plain tuples of a Change's fields, kinds as ints (what the blob feed reads: a
        million Changes cost ~0.4 s to make and several times more to pickle)."""
        done = bytearray()  # the commits git gave, end to end (git log names each commit once): no set of them
        width = 0
        if self._proc is None:
            commits, self.parents = wanted()
            if commits:
                self.start(commits)
        if self._proc is not None:
            make = tuple.__new__
            for record in self._git_records(self._proc):
                done += record[0]
                width = len(record[0])
                yield record if plain else (record[0], record[1], [make(Change, c) for c in record[2]])
        commits, self.parents = wanted()
        want = commits if isinstance(commits, Collection) and not isinstance(commits, Sequence) else set(commits)
        given = sum(1 for i in range(0, len(done), width or 1) if bytes(done[i:i + width]) in want) if width else 0
        if given == len(want):  # git gave every wanted commit (the rule): nothing for pygit2
            return
        seen = {bytes(done[i:i + width]) for i in range(0, len(done), width)} if width else set()
        del done
        for commit in commits:
            if commit not in seen:
                yield self._pygit2_record(commit)

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    # -- git log --raw -------------------------------------------------------------------------------------
    def _git_records(self, proc: subprocess.Popen[bytes]) -> Iterator[Record]:
        """Complete records from git; after a failure, those before it (pygit2 does the rest)."""
        last: Record | None = None
        finished = False
        try:
            for record in self._parse(_tokens(proc.stdout)):
                if last is not None:
                    yield last
                last = record
            finished = True
        finally:
            if not finished:  # abandoned (interrupted): git must not outlive the scan
                self.close()
            proc.stdout.close()
        if last is not None and proc.wait() == 0:  # after a failure the last record may be cut short
            yield last

    def _parse(self, tokens: Iterator[bytes]) -> Iterator[Record]:
        """NUL-separated tokens → records. A path is always the token after a change's metadata, so no path (a
        hostile one may hold any byte but NUL) is ever read as a header or as metadata."""
        modes = _MODES
        record: Record | None = None
        for token in tokens:
            if token[:1] == b"\n":
                token = token[1:]
            if token[:1] == b":":
                om, nm, oid, nid, _ = token[1:].split(b" ", 4)
                path = next(tokens, None)
                if record is None or path is None:
                    return
                ok, nk = modes.get(om), modes.get(nm)
                change = (path, int(_kind(om)) if ok is None else ok, int(_kind(nm)) if nk is None else nk,
                          unhexlify(oid) if oid.strip(b"0") else None, unhexlify(nid) if nid.strip(b"0") else None)
                record[2].append(change)  # type: ignore[arg-type] - a Change's fields as a plain tuple
            elif token[:1] == b"\x01":
                if record is not None:
                    yield record
                ids = token[1:].split()
                record = (unhexlify(ids[0]), unhexlify(ids[1]) if len(ids) > 1 else None, [])
        if record is not None:
            yield record

    # -- pygit2, object by object ------------------------------------------------------------------------
    def _pygit2_record(self, commit: bytes) -> Record:
        tree = commit_tree(self.repo, commit, self.errors)
        parents = self.parents.get(commit, ())
        parent = parents[0] if parents else None
        base = commit_tree(self.repo, parent, self.errors) if parent else None
        if parent and base is None:
            parent = None  # beyond a shallow boundary, or unreadable: git too diffs against nothing
        out: list[Change] = []
        if tree is not None:
            self._diff(base, tree, b"", out)
        return commit, parent, out

    def _entries(self, tree: bytes | None) -> dict[bytes, tuple[bytes, bytes]]:
        if tree is None:
            return {}
        return {name: (mode, oid) for mode, name, oid in tree_entries(self.repo, tree, self.errors)}

    def _diff(self, old: bytes | None, new: bytes | None, prefix: bytes, out: list[Change]) -> None:
        mine, theirs = self._entries(new), self._entries(old)
        for name in sorted(mine.keys() | theirs.keys()):
            o, n = theirs.get(name), mine.get(name)
            if o == n:
                continue
            o_tree = o[1] if o and o[0] == MODE_TREE else None
            n_tree = n[1] if n and n[0] == MODE_TREE else None
            if o_tree or n_tree:
                self._diff(o_tree, n_tree, prefix + name + b"/", out)
            o_file = o if o and not o_tree else None
            n_file = n if n and not n_tree else None
            if o_file or n_file:
                out.append(Change(prefix + name, _kind(o_file[0]) if o_file else NONE,
                                  _kind(n_file[0]) if n_file else NONE,
                                  o_file[1] if o_file else None, n_file[1] if n_file else None))


class ChangeLog:
    """Every record, in order, kept out of memory: pickled in chunks of plain tuples into an unlinked temporary file
    (the page cache holds it, and may write it out), so what attribution will need costs no Python object per
    commit while detection runs. ``kept(matched, ...)`` reads back only what touches a matched blob."""

    CHUNK = 2048  # records per pickled chunk

    def __init__(self) -> None:
        self._file: IO[bytes] | None = None
        self._pending: list[tuple[bytes, bytes | None, list[tuple]]] = []
        self.commits = 0

    def add(self, commit: bytes, parent: bytes | None, changes: list[Change]) -> None:
        # plain tuples pickle many times faster than Changes: git's records are plain already (``records(plain=True)``)
        self._pending.append((commit, parent, changes if not changes or type(changes[0]) is tuple else
                              [(p, int(o), int(n), a, b) for p, o, n, a, b in changes]))
        self.commits += 1
        if len(self._pending) >= self.CHUNK:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="auditor-changes-")  # noqa: SIM115 - lives with the log
        pickle.dump(self._pending, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self._pending = []

    def _chunks(self) -> Iterator[list[tuple[bytes, bytes | None, list[tuple]]]]:
        if self._file is not None:
            self._flush()
            self._file.seek(0)
            while True:
                try:
                    chunk = pickle.load(self._file)
                except EOFError:
                    break
                yield chunk
            self._file.seek(0, 2)  # more may be added
        yield self._pending

    def replay(self) -> Iterator[Record]:
        """Every record, in the order added."""
        for chunk in self._chunks():
            for commit, parent, changes in chunk:
                yield commit, parent, [Change(p, Kind(o), Kind(n), a, b) for p, o, n, a, b in changes]

    def kept(self, matched: Collection[bytes], recorded: Collection[bytes],
             parents: Mapping[bytes, tuple[bytes, ...]]) -> Kept:
        """The records attribution reads: of each recorded commit, the changes from or to a ``matched`` blob.
        A commit of ``recorded`` whose record holds no such change and diffs against its listed first parent is
        left out (``Kept`` answers for it); every other record is kept with its touching changes."""
        touched: dict[bytes, tuple[bytes | None, list[Change]]] = {}
        if matched:
            for chunk in self._chunks():
                for commit, parent, changes in chunk:
                    mine = [Change(p, Kind(o), Kind(n), a, b) for p, o, n, a, b in changes
                            if a in matched or b in matched]
                    if mine or commit not in recorded or parent != _first(parents, commit):
                        touched[commit] = (parent, mine)
        return Kept(touched, recorded, parents)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._pending = []


def _first(parents: Mapping[bytes, tuple[bytes, ...]], commit: bytes) -> bytes | None:
    got = parents.get(commit)
    return got[0] if got else None


class Kept(Mapping[bytes, tuple[bytes | None, list[Change]]]):
    """commit → (the parent its changes are against, its changes from or to a matched blob): the records
    attribution reads, held only where they say something. A recorded commit without such a record diffs against
    its listed first parent and touches no matched blob; a commit never recorded (an earlier scan's) has none."""

    def __init__(self, touched: dict[bytes, tuple[bytes | None, list[Change]]], recorded: Collection[bytes],
                 parents: Mapping[bytes, tuple[bytes, ...]]) -> None:
        self._touched, self._recorded, self._parents = touched, recorded, parents

    def __getitem__(self, commit: bytes) -> tuple[bytes | None, list[Change]]:
        got = self._touched.get(commit)
        if got is not None:
            return got
        if commit in self._recorded:
            return _first(self._parents, commit), []
        raise KeyError(commit)

    def __iter__(self) -> Iterator[bytes]:
        yield from self._touched
        yield from (c for c in self._recorded if c not in self._touched)

    def __len__(self) -> int:
        return len(self._touched) + sum(1 for c in self._recorded if c not in self._touched)


class BlobFeed:
    """Records → the raw id of each blob once it has a name ``verdict(blob, name)`` calls SCAN (``named``: with its
    path); logs the records (``log``) for attribution."""

    def __init__(self, verdict: Callable[[bytes, bytes], Verdict]) -> None:
        self.verdict = verdict
        self.log = ChangeLog()
        self.changes = 0
        self.symlinks: set[bytes] = set()  # a link's target path is not file content
        self.submodules: set[bytes] = set()

    def __call__(self, records: Iterable[Record]) -> Iterator[bytes]:
        return (blob for blob, _ in self.named(records))

    def named(self, records: Iterable[Record]) -> Iterator[tuple[bytes, bytes]]:
        """(blob, the path it was first chosen under), each chosen blob once."""
        decided: set[bytes] = set()
        banned: dict[bytes, bytes] = {}  # blob → the banned name it was last judged under
        for commit, parent, changes in records:
            self.log.add(commit, parent, changes)
            self.changes += len(changes)
            for path, _, kind, _, blob in changes:
                if kind == FILE:
                    if blob in decided:
                        continue
                    name = path.rpartition(b"/")[2]
                    if banned.get(blob) == name:
                        continue
                    said = self.verdict(blob, name)
                    if said == Verdict.BANNED:
                        banned[blob] = name
                        continue
                    decided.add(blob)
                    if said == Verdict.SCAN:
                        yield blob, path
                elif kind == LINK:
                    self.symlinks.add(blob)
                elif kind == GITLINK:
                    self.submodules.add(blob)
