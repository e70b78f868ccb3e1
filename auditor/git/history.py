"""A repository (pygit2) → the commits of ``git rev-list --all``: ids, root trees, parents, times and ref tips.

What each commit changed is ``changes``' job; where matched blobs sit is ``attribution``'s; raw objects are
``objects``'.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from auditor.git.objects import parse_oid, read_commit


class _Rows:
    """The listing's commits as rows: a dict from raw id to row number, and per row the root tree, the committer
    time and the parents in arrays (raw ids end to end), not Python objects: ~150 bytes a commit instead of ~420."""

    __slots__ = ("index", "ids", "trees", "times", "starts", "parent_ids", "unreadable")

    def __init__(self) -> None:
        self.index: dict[bytes, int] = {}
        self.ids: list[bytes] = []  # row → raw id (the dict's own key objects)
        self.trees = bytearray()
        self.times = array("q")
        self.starts = array("q", [0])  # row → where its parents start in parent_ids
        self.parent_ids = bytearray()
        self.unreadable: set[int] = set()  # rows whose root tree is b"" (unreadable)

    def add(self, commit: bytes, tree: bytes, parents: tuple[bytes, ...], when: int) -> None:
        if commit in self.index:
            return
        self.index[commit] = len(self.ids)
        self.ids.append(commit)
        width = len(commit)
        if len(tree) == width:
            self.trees += tree
        else:
            self.unreadable.add(len(self.ids) - 1)
            self.trees += bytes(width)
        self.times.append(when)
        for p in parents:
            self.parent_ids += p
        self.starts.append(len(self.parent_ids))

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]


class _View(Mapping[bytes, object]):
    """One column of the rows, read as a mapping commit → value (what ``Commits.tree`` etc. were as dicts)."""

    __slots__ = ("_rows",)

    def __init__(self, rows: _Rows) -> None:
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows.ids)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._rows.ids)

    def __contains__(self, commit: object) -> bool:
        return commit in self._rows.index

    def __getitem__(self, commit: bytes) -> object:
        return self._value(self._rows.index[commit])

    def get(self, commit: bytes, default: object = None) -> object:
        row = self._rows.index.get(commit)
        return default if row is None else self._value(row)

    def items(self) -> Iterator[tuple[bytes, object]]:  # type: ignore[override]
        return ((c, self._value(i)) for i, c in enumerate(self._rows.ids))

    def _value(self, row: int) -> object:
        raise NotImplementedError


class _Trees(_View):
    __slots__ = ()

    def _value(self, row: int) -> bytes:
        if row in self._rows.unreadable:
            return b""
        w = len(self._rows.ids[row])
        return bytes(self._rows.trees[row * w:(row + 1) * w])


class _Parents(_View):
    __slots__ = ()

    def _value(self, row: int) -> tuple[bytes, ...]:
        r = self._rows
        a, b = r.starts[row], r.starts[row + 1]
        w = len(r.ids[row])
        if b - a == w:  # most commits: one parent
            return (bytes(r.parent_ids[a:b]),)
        return tuple(bytes(r.parent_ids[i:i + w]) for i in range(a, b, w))

    def sole(self, commit: bytes) -> bytes | None:
        """The commit's parent when it has exactly one (and is listed), else None."""
        r = self._rows
        row = r.index.get(commit)
        if row is None:
            return None
        a, b = r.starts[row], r.starts[row + 1]
        return bytes(r.parent_ids[a:b]) if b - a == len(commit) else None

    def first(self, commit: bytes) -> bytes | None:
        """The commit's first parent (None for a root or a commit not listed), without a tuple of them all."""
        r = self._rows
        row = r.index.get(commit)
        if row is None:
            return None
        a = r.starts[row]
        return bytes(r.parent_ids[a:a + len(commit)]) if r.starts[row + 1] > a else None


class _Times(_View):
    __slots__ = ()

    def _value(self, row: int) -> int:
        return self._rows.times[row]


@dataclass(slots=True)
class Commits:
    """Every commit reachable from any ref or HEAD, exactly ``git rev-list --all``.

    On a rerun the commits an earlier complete listing saw and that are all still reachable are only ``known``:
    their trees, parents and times are not loaded again. ``tree``, ``parents`` and ``time`` are read-only mappings
    over compact rows (``add`` fills them).
    """

    rows: _Rows = field(default_factory=_Rows, repr=False)
    tips: dict[bytes, list[str]] = field(default_factory=dict)  # commit raw id → ref names pointing at it
    outside: dict[str, str] = field(default_factory=dict)  # ref → "tree" / "blob": content in no commit
    known: frozenset[bytes] = frozenset()
    errors: list[str] = field(default_factory=list)
    shallow: bool = False

    @property
    def tree(self) -> Mapping[bytes, bytes]:  # commit raw id → root tree raw id (b"": unreadable)
        return _Trees(self.rows)  # type: ignore[return-value]

    @property
    def parents(self) -> Mapping[bytes, tuple[bytes, ...]]:
        return _Parents(self.rows)  # type: ignore[return-value]

    @property
    def time(self) -> Mapping[bytes, int]:  # commit raw id → committer time (Unix seconds)
        return _Times(self.rows)  # type: ignore[return-value]

    def add(self, commit: bytes, tree: bytes, parents: tuple[bytes, ...], when: int) -> None:
        self.rows.add(commit, tree, parents, when)

    def __len__(self) -> int:
        return len(self.rows.ids) + len(self.known)

    def __contains__(self, commit: bytes) -> bool:
        return commit in self.rows.index or commit in self.known


def _name(name: str) -> str:
    """A ref name fit for outputs: git allows any bytes but NUL, pygit2 hands undecodable ones as surrogates."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _peel(repo: pygit2.Repository, oid: bytes) -> tuple[bytes | None, str | None, str | None]:
    """Follow tags from ``oid`` by their raw bytes: (object, "commit" / "tree" / "blob", None) where they end, or
    (None, None, why) when an object on the way cannot be read."""
    for _ in range(64):
        try:
            kind, data = repo.odb.read(pygit2.Oid(raw=oid))
        except (KeyError, pygit2.GitError, ValueError) as e:
            return None, None, f"object {oid.hex()} cannot be read ({type(e).__name__}: {e})"
        if kind != pygit2.enums.ObjectType.TAG:
            return oid, kind.name.lower(), None
        target = parse_oid(data[7:47]) if data.startswith(b"object ") else None
        if target is None:
            return None, None, f"tag {oid.hex()} names no object"
        oid = target
    return None, None, f"tag chain from {oid.hex()} is too long"


def _worktree_heads(repo: pygit2.Repository) -> list[tuple[str, bytes]]:
    """Detached HEADs of the repository's other worktrees, which ``git rev-list --all`` includes too (a HEAD on a
    branch adds nothing: the branch is a ref)."""
    gitdir = Path(repo.path).resolve()
    try:
        common = (gitdir / (gitdir / "commondir").read_text().strip()).resolve() \
            if (gitdir / "commondir").is_file() else gitdir
        heads = [("main-worktree/HEAD", common / "HEAD")] + [
            (f"worktrees/{d.name}/HEAD", d / "HEAD") for d in sorted((common / "worktrees").glob("*"))]
        found = []
        for name, head in heads:
            if head.parent != gitdir and head.is_file() and (oid := parse_oid(head.read_bytes())) is not None:
                found.append((name, oid))
        return found
    except OSError:
        return []


def _refs(repo: pygit2.Repository, errors: list[str]) -> list[tuple[str, object]]:
    """(name, ref) of every ref and HEAD; a ref file that cannot be read is said in ``errors`` and left out."""
    try:
        named = [(ref.name, ref) for ref in repo.references.iterator()]  # one pass: numpy has 20k refs
    except pygit2.GitError:
        named = []
        for name in repo.references:
            try:
                named.append((name, repo.lookup_reference(name)))
            except (pygit2.GitError, KeyError, ValueError) as e:
                errors.append(f"ref {_name(name)}: {e}")
    try:
        if not repo.head_is_unborn:
            named.append(("HEAD", repo.head))
    except (pygit2.GitError, KeyError, ValueError) as e:
        errors.append(f"ref HEAD: {e}")
    return named


def _ref_tips(repo: pygit2.Repository, out: Commits) -> None:
    """Fill ``out.tips`` (commit → the refs and HEADs pointing at it, peeled) and ``out.outside``."""
    unpeeled: list[tuple[str, bytes]] = []
    for name, ref in _refs(repo, out.errors):
        try:
            out.tips.setdefault(ref.peel(pygit2.Commit).id.raw, []).append(_name(name))
        except (pygit2.GitError, KeyError, ValueError, pygit2.InvalidSpecError):
            try:
                unpeeled.append((name, ref.resolve().target.raw))
            except (pygit2.GitError, KeyError, ValueError, AttributeError):
                continue  # a dangling symbolic ref: git ignores it too
    for name, oid in unpeeled + _worktree_heads(repo):  # a tree or blob, unreadable, or what libgit2 rejects
        target, kind, why = _peel(repo, oid)
        if why:
            out.errors.append(f"ref {_name(name)}: {why}")
        elif kind == "commit":
            out.tips.setdefault(target, []).append(_name(name))
        elif kind:
            out.outside[_name(name)] = kind


def list_commits(repo: pygit2.Repository, known_tips: frozenset[bytes] = frozenset(),
                 known: frozenset[bytes] = frozenset()) -> Commits:
    """Walk every commit of every ref; given an earlier listing (its tips and commits) whose tips are all still
    reachable, walk only what is new (the earlier tips hidden) and keep the rest as ``known``.

    libgit2's walker stops at the first commit it cannot parse (a tip included); the history is then walked again
    with ``read_commit``, which reads what git reads, and what cannot be read at all is said in ``errors``.
    """
    out = Commits(shallow=repo.is_shallow)
    _ref_tips(repo, out)
    if not out.tips:
        return out
    if known and _all_reachable(repo, known_tips, set(out.tips)):
        out.known = known
    # libgit2 would keep the walked commits in its object cache (256 MiB by default, process-wide): each is read
    # once here, so the cache only grows the peak (git/git: 368 → 150 MiB after the walk)
    allowed = pygit2.settings.cached_memory[1]
    pygit2.settings.cache_max_size(min(allowed, WALK_CACHE))
    try:
        return _walk(repo, out, known_tips)
    finally:
        pygit2.settings.cache_max_size(allowed)


WALK_CACHE = 16 * 2 ** 20  # bytes of libgit2's object cache while commits are listed


def _walk(repo: pygit2.Repository, out: Commits, known_tips: frozenset[bytes]) -> Commits:
    try:
        walker = repo.walk(None, pygit2.enums.SortMode.NONE)
        for raw in out.tips:
            walker.push(pygit2.Oid(raw=raw))
        for raw in known_tips if out.known else ():
            walker.hide(pygit2.Oid(raw=raw))
        for c in walker:
            cid = c.id.raw
            out.add(cid, c.tree_id.raw, tuple(p.raw for p in c.parent_ids), c.commit_time)
        return out
    except (pygit2.GitError, KeyError, ValueError):
        out.rows.clear()
    _walk_raw(repo, out)
    return out


def _walk_raw(repo: pygit2.Repository, out: Commits) -> None:
    """Every commit reachable from ``out.tips`` and not ``known``, read by ``read_commit``; a shallow clone's
    boundary commits have no parents, as in git."""
    try:
        shallow = {o for line in Path(repo.path, "shallow").read_bytes().split() if (o := parse_oid(line))}
    except OSError:
        shallow = set()
    stack = list(out.tips)
    while stack:
        commit = stack.pop()
        if commit in out.tree or commit in out.known:
            continue
        try:
            head = read_commit(repo, commit)
        except (KeyError, pygit2.GitError, ValueError) as e:
            out.errors.append(f"commit {commit.hex()}: cannot be read ({type(e).__name__}: {e}); the history "
                              "behind it is walked only where other commits reach it")
            continue
        parents = () if commit in shallow else head.parents
        out.add(commit, head.tree or b"", parents, head.time)
        stack.extend(parents)


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
