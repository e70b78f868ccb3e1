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

import io
import re
import shutil
import tempfile
from binascii import unhexlify
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from enum import IntEnum, StrEnum
from typing import IO, NamedTuple

import pygit2

from auditor.git import log_process
from auditor.git.objects import MODE_TREE, commit_tree, tree_entries


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


Record = tuple[bytes, bytes | None, list[Change]]  # (commit raw id, first parent diffed against, changes)

_KINDS = {b"100": FILE, b"120": LINK, b"160": GITLINK}
# the modes git writes, and their kinds as plain ints (equal to the Kinds)
_MODES = {b"100644": 1, b"100755": 1, b"120000": 2, b"160000": 3, b"000000": 0, b"040000": 0}
_MODE_OF = {NONE: b"000000", FILE: b"100644", LINK: b"120000", GITLINK: b"160000"}

# One token of ``git log -z --raw --format=%x01%H %P``, as a row of 8 groups (hex ids, empty where absent):
#   a commit's header              → (commit, first parent, "", "", "", "", "", "")
#   a change: metadata, then path  → ("", "", old mode, new mode, old id, new id, path, "")
#   anything else, NUL included    → ("", ..., "", token): the metadata of a change whose path is still to come
# A path is only ever read as the token after a change's metadata, so no path (a hostile one may hold any byte but
# NUL) is read as a header or as metadata; the third branch matches any token, so rows cover the bytes end to end.
# One ``findall`` makes the rows in C: git/git's 812k changes parse in 0.6 s instead of 1.4 s token by token.
_TOKEN = re.compile(rb"\x01([0-9a-f]+)(?: ([0-9a-f]+))?[^\0]*\0"
                    rb"|\n?:([^ \0]*) ([^ \0]*) ([^ \0]*) ([^ \0]*)[^\0]*\0([^\0]*)\0"
                    rb"|([^\0]*\0)")
Row = tuple[bytes, bytes, bytes, bytes, bytes, bytes, bytes, bytes]
CHUNK = 1 << 20


class Batch(NamedTuple):
    """Complete tokens of git's changes: their bytes (what the change log keeps) and their rows."""

    raw: bytes
    rows: list[Row]
    commits: list[bytes]  # hex ids of the headers among the rows, in order


def batches(stream: IO[bytes] | log_process.Log, size: int = CHUNK) -> Iterator[Batch]:
    """Git's raw changes, read ``size`` bytes at a time, as Batches of complete tokens (a change's metadata waits
    for its path); bytes after the last complete token (a stream cut short) are left out."""
    pending = b""
    while chunk := stream.read(size):
        buf = pending + chunk
        cut = buf.rfind(b"\0") + 1
        rows = _TOKEN.findall(buf, 0, cut)
        if rows and rows[-1][7]:  # the metadata of a change whose path has not come yet
            cut -= len(rows.pop()[7])
        pending = buf[cut:]
        if rows:
            yield Batch(buf[:cut], rows, [r[0] for r in rows if r[0]])


def _change(om: bytes, nm: bytes, oid: bytes, nid: bytes, path: bytes) -> Change:
    return Change(path, Kind(_MODES.get(om) or _kind(om)), Kind(_MODES.get(nm) or _kind(nm)),
                  unhexlify(oid) if oid.strip(b"0") else None, unhexlify(nid) if nid.strip(b"0") else None)


def records(source: Iterable[Batch], touching: Collection[bytes] | None = None) -> Iterator[Record]:
    """Batches → one Record per commit, in order (raw ids, Changes); ``touching``: hex ids, only the changes from
    or to one of them (the rest are never made into objects)."""
    commit, parent, changes = b"", None, []
    for batch in source:
        for h, p, om, nm, oid, nid, path, _ in batch.rows:
            if h:
                if commit:
                    yield commit, parent, changes
                commit, parent, changes = unhexlify(h), unhexlify(p) if p else None, []
            elif nm and (touching is None or oid in touching or nid in touching):
                changes.append(_change(om, nm, oid, nid, path))
    if commit:
        yield commit, parent, changes


def _hex(oid: bytes | None, width: int) -> bytes:
    return oid.hex().encode() if oid else b"0" * width


def as_raw(record: Record) -> bytes:
    """A record computed with pygit2, written as git writes it: one format for the feed and the change log."""
    commit, parent, changes = record
    width = 2 * len(commit)
    out = [b"\x01" + commit.hex().encode() + b" " + (parent.hex().encode() if parent else b"") + b"\0"]
    out += [b":%s %s %s %s M\0%s\0" % (_MODE_OF[Kind(o)], _MODE_OF[Kind(n)], _hex(a, width), _hex(b, width), p)
            for p, o, n, a, b in changes]
    return b"".join(out)


def _kind(mode: bytes) -> Kind:
    return _KINDS.get(mode[:3], NONE) if mode != b"000000" else NONE


class Changes:
    """``batches(...)`` yields the changes of every commit as Batches; ``errors`` lists what could not be read."""

    def __init__(self, repo: pygit2.Repository, *, use_git: bool = True) -> None:
        self.repo = repo
        self.git = shutil.which("git") if use_git else None
        self.parents: Mapping[bytes, tuple[bytes, ...]] = {}
        self.errors: list[str] = []
        self.computed_again = False  # some commit's changes came from pygit2 (git failed, or is not used)
        self._log: log_process.Log | None = None

    def start(self, commits: Sequence[bytes] | None = None) -> None:
        """Start git on ``commits``, or on every ref and HEAD when None: it then runs while pygit2 lists them (or
        take the log of every ref the command started before it loaded, ``log_process.start_early``)."""
        if not self.git or self._log is not None:
            return
        if commits is None and (early := log_process.take_early(self.repo.path)) is not None:
            self._log = early
            return
        try:
            self._log = log_process.start(self.git, self.repo.path, commits)
        except OSError:
            self.git = None

    def batches(self, wanted: Callable[[], tuple[Collection[bytes], Mapping[bytes, tuple[bytes, ...]]]]
                ) -> Iterator[Batch]:
        """The changes of every wanted commit, as Batches. ``wanted()`` → (the commits, the parents of every
        commit); called once git started on every ref has said all it could (the list may still be being made
        meanwhile). A commit git did not give in full (git failed, or could not read it) is computed with pygit2."""
        done = bytearray()  # the raw ids git gave, end to end (git log names each commit once): no set of them
        width = 0
        if self._log is None:
            commits, self.parents = wanted()
            if commits:
                self.start(commits)
        if self._log is not None:
            for batch in self._git_batches(self._log):
                if batch.commits:
                    done += unhexlify(b"".join(batch.commits))
                    width = len(batch.commits[0]) // 2
                yield batch
            if self._log.returncode != 0 and width:  # after a failure the last record may be cut short
                del done[-width:]
        commits, self.parents = wanted()
        want = commits if isinstance(commits, Collection) and not isinstance(commits, Sequence) else set(commits)
        given = sum(1 for i in range(0, len(done), width) if bytes(done[i:i + width]) in want) if width else 0
        if given == len(want):  # git gave every wanted commit (the rule): nothing more
            return
        seen = {bytes(done[i:i + width]) for i in range(0, len(done), width)} if width else set()
        del done
        for commit in commits:
            if commit not in seen:
                self.computed_again = True
                raw = as_raw(self._pygit2_record(commit))
                rows = _TOKEN.findall(raw)
                yield Batch(raw, rows, [rows[0][0]])

    def close(self) -> None:
        if self._log is not None:
            self._log.close()

    # -- git log --raw -------------------------------------------------------------------------------------
    def _git_batches(self, log: log_process.Log) -> Iterator[Batch]:
        """Git's changes as they come; after a failure, ``log.returncode`` says so (pygit2 does the rest)."""
        try:
            yield from batches(log)
        finally:  # read to the end, or abandoned (interrupted): git must not outlive the scan either way
            log.close()

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
    """Every batch's bytes, in order, as git wrote them (no pickling, no object per change): beyond 8 MiB in an
    unlinked temporary file (the page cache holds it, and may write it out), so what attribution will need costs
    no Python object per commit while detection runs. ``kept(matched, ...)`` reads it back and makes objects only
    of what touches a matched blob."""

    SPILL = 8 << 20  # bytes held in memory before the log goes to its file (a small history never writes one)

    def __init__(self) -> None:
        self._file: IO[bytes] | None = None
        self._held: list[bytes] = []
        self._size = 0
        self._spans: list[tuple[int, Row | None]] = []  # per batch: its length, the last header among its rows
        self.commits = 0

    def add(self, batch: Batch) -> None:
        self._held.append(batch.raw)
        self._size += len(batch.raw)
        self._spans.append((len(batch.raw), next((r for r in reversed(batch.rows) if r[0]), None)))
        self.commits += len(batch.commits)
        if self._size >= self.SPILL:
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="auditor-changes-")  # noqa: SIM115 - lives with the log
            self._file.write(b"".join(self._held))
            self._held, self._size = [], 0

    def _read(self) -> IO[bytes]:
        """The whole log, from its start."""
        if self._file is None:
            return io.BytesIO(b"".join(self._held))
        self._file.write(b"".join(self._held))
        self._held, self._size = [], 0
        self._file.seek(0)
        return self._file

    def kept(self, matched: Collection[bytes], recorded: Collection[bytes],
             parents: Mapping[bytes, tuple[bytes, ...]], *, exact: bool = False) -> Kept:
        """The records attribution reads: of each recorded commit, the changes from or to a ``matched`` blob.
        A commit of ``recorded`` whose record holds no such change and diffs against its listed first parent is
        left out (``Kept`` answers for it); every other record is kept with its touching changes. A commit logged
        twice (git failed within its record, pygit2 gave it again) is what it was logged as last.

        ``exact``: the log holds each recorded commit once, diffed against its listed first parent (git gave the
        listing itself: no shallow boundary, no grafts, nothing computed again): only the batches whose bytes hold
        a matched id are read then (a few, where a history has a few secrets)."""
        touched: dict[bytes, tuple[bytes | None, list[Change]]] = {}
        if not matched or not self.commits:
            return Kept(touched, recorded, parents)
        wanted = {m.hex().encode() for m in matched}
        if exact:
            for commit, parent, mine in records(self._near(wanted), wanted):
                if mine:  # a record read in parts (its middle unread, nothing matched there) is one record
                    touched[commit] = (parent, [*touched.get(commit, (parent, []))[1], *mine])
            return Kept(touched, recorded, parents)
        first = _first_of(parents)
        for commit, parent, mine in records(_thinned(batches(self._read()), wanted), wanted):
            touched.pop(commit, None)
            if mine or commit not in recorded or parent != first(commit):
                touched[commit] = (parent, mine)
        if self._file is not None:
            self._file.seek(0, 2)  # more may be added
        return Kept(touched, recorded, parents)

    def _near(self, wanted: Collection[bytes]) -> Iterator[Batch]:
        """The logged batches whose bytes may hold one of the ``wanted`` ids (``_may_hold``), parsed; a batch that
        continues a record begun in a batch left unread starts with that record's header."""
        stream, context, skipped = self._read(), None, False
        for length, last in self._spans:
            raw = stream.read(length)
            if _may_hold(raw, wanted):
                rows = _TOKEN.findall(raw)
                if skipped and context is not None and rows and not rows[0][0]:
                    rows.insert(0, context)
                yield Batch(raw, rows, [])
                skipped = False
            else:
                skipped = True
            context = last or context

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._held, self._size, self._spans = [], 0, []


def _may_hold(raw: bytes, wanted: Collection[bytes], most: int = 32) -> bool:
    """Whether ``raw`` may hold one of the ``wanted`` ids: a byte search each, in C, for a few; with more, say yes
    (a search per id would cost more than the parsing it spares)."""
    return len(wanted) > most or any(w in raw for w in wanted)


def _thinned(source: Iterable[Batch], wanted: Collection[bytes]) -> Iterator[Batch]:
    """The batches, with only their headers where their bytes hold none of the ``wanted`` ids: attribution then
    reads every commit's header but only the changes near a matched blob."""
    for batch in source:
        yield batch if _may_hold(batch.raw, wanted) else Batch(batch.raw, [r for r in batch.rows if r[0]],
                                                                batch.commits)


def _first_of(parents: Mapping[bytes, tuple[bytes, ...]]) -> Callable[[bytes], bytes | None]:
    """commit → its first parent: the listing's own lookup where it has one (no tuple of every parent made)."""
    first = getattr(parents, "first", None)
    return first if first is not None else lambda commit: (parents.get(commit) or (None,))[0]


class Kept(Mapping[bytes, tuple[bytes | None, list[Change]]]):
    """commit → (the parent its changes are against, its changes from or to a matched blob): the records
    attribution reads, held only where they say something. A recorded commit without such a record diffs against
    its listed first parent and touches no matched blob; a commit never recorded (an earlier scan's) has none."""

    def __init__(self, touched: dict[bytes, tuple[bytes | None, list[Change]]], recorded: Collection[bytes],
                 parents: Mapping[bytes, tuple[bytes, ...]]) -> None:
        self._touched, self._recorded, self._first = touched, recorded, _first_of(parents)

    def get(self, commit: bytes, default: object = None) -> tuple[bytes | None, list[Change]] | object:
        got = self._touched.get(commit)
        if got is not None:
            return got
        if commit in self._recorded:
            return self._first(commit), []
        return default

    def quiet(self, commit: bytes) -> bool:
        """Whether the commit was recorded and touches no matched blob against its listed first parent."""
        return commit not in self._touched and commit in self._recorded

    def __getitem__(self, commit: bytes) -> tuple[bytes | None, list[Change]]:
        got = self.get(commit, KeyError)
        if got is KeyError:
            raise KeyError(commit)
        return got  # type: ignore[return-value]

    def __iter__(self) -> Iterator[bytes]:
        yield from self._touched
        yield from (c for c in self._recorded if c not in self._touched)

    def __len__(self) -> int:
        return len(self._touched) + sum(1 for c in self._recorded if c not in self._touched)


class BlobFeed:
    """Batches → the raw id of each blob once it has a name ``verdict(blob, name)`` calls SCAN (``named``: with its
    path); logs the batches (``log``) for attribution."""

    def __init__(self, verdict: Callable[[bytes, bytes], Verdict]) -> None:
        self.verdict = verdict
        self.log = ChangeLog()
        self.changes = 0
        self.symlinks: set[bytes] = set()  # hex ids: a link's target path is not file content
        self.submodules: set[bytes] = set()

    def __call__(self, source: Iterable[Batch]) -> Iterator[bytes]:
        return (blob for blob, _ in self.named(source))

    def named(self, source: Iterable[Batch]) -> Iterator[tuple[bytes, bytes]]:
        """(blob, the path it was first chosen under), each chosen blob once."""
        decided: set[bytes] = set()  # hex ids, as git writes them: a blob met again costs no conversion
        banned: dict[bytes, bytes] = {}  # blob → the banned name it was last judged under
        kinds = _MODES
        for batch in source:
            self.log.add(batch)
            self.changes += len(batch.rows) - len(batch.commits)
            for _, _, _, mode, _, blob, path, _ in batch.rows:
                kind = kinds.get(mode)
                if kind is None:  # a header (no mode), or a mode git does not write today
                    if not mode:
                        continue
                    kind = _kind(mode)
                if kind == FILE:
                    if blob in decided:
                        continue
                    name = path.rpartition(b"/")[2]
                    if banned.get(blob) == name:
                        continue
                    raw = unhexlify(blob)
                    said = self.verdict(raw, name)
                    if said == Verdict.BANNED:
                        banned[blob] = name
                        continue
                    decided.add(blob)
                    if said == Verdict.SCAN:
                        yield raw, path
                elif kind == LINK:
                    self.symlinks.add(blob)
                elif kind == GITLINK:
                    self.submodules.add(blob)
