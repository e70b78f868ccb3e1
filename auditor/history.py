"""A repository (pygit2) → the commits of ``git rev-list --all``: ids, root trees, parents, times and ref tips.

What each commit changed is ``changes``' job; where matched blobs sit is ``attribution``'s.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from auditor.errors import RepositoryError

# A raw tree object is a run of "<mode> <name>\0<20-byte id>".
TREE_ENTRY = re.compile(rb"(\d+) ([^\0]*)\0(.{20})", re.S)
MODE_TREE = b"40000"
# For the git processes auditor starts: the repository is named explicitly, so inherited GIT_* variables must not
# point git elsewhere, replace refs must not swap the objects scanned, and a partial clone must not fetch (git ≥ 2.44).
GIT_ENV = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | {
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_NO_REPLACE_OBJECTS": "1", "GIT_NO_LAZY_FETCH": "1"}


def commit_tree(repo: pygit2.Repository, commit: bytes, errors: list[str] | None = None) -> bytes | None:
    """The root tree id of a commit, or None (said in ``errors``, if given) when it cannot be read."""
    try:
        return repo[pygit2.Oid(raw=commit)].tree_id.raw
    except (KeyError, pygit2.GitError, ValueError, AttributeError):
        try:
            tree = read_commit(repo, commit).tree  # libgit2 rejects some commits git reads
            if tree is None:
                raise ValueError("it names no tree") from None
            return tree
        except (KeyError, pygit2.GitError, ValueError) as e:
            if errors is not None:
                errors.append(f"commit {commit.hex()}: {type(e).__name__}: {e}")
            return None


def tree_entries(repo: pygit2.Repository, tree: bytes, errors: list[str]) -> list[tuple[bytes, bytes, bytes]]:
    """(mode, name, raw id) of one tree, parsed from its raw bytes; [] (said in ``errors``) when unreadable."""
    try:
        kind, data = repo.odb.read(pygit2.Oid(raw=tree))
        if kind != pygit2.enums.ObjectType.TREE:
            raise ValueError(f"a {kind.name.lower()}, not a tree")
        return TREE_ENTRY.findall(data)
    except (KeyError, pygit2.GitError, ValueError) as e:
        errors.append(f"tree {tree.hex()}: {type(e).__name__}: {e}")
        return []


def partial_clone(repo: pygit2.Repository) -> bool:
    """Whether the repository was cloned with ``--filter``: git would fetch what it lacks from the remote
    (network traffic in the middle of an audit), so only libgit2, which never fetches, may read it."""
    try:
        return any(e.name.lower() == "extensions.partialclone" or
                   (e.name.lower().startswith("remote.") and e.name.lower().endswith(".promisor"))
                   for e in repo.config) or any(Path(repo.path, "objects", "pack").glob("*.promisor"))
    except (pygit2.GitError, OSError, ValueError):
        return False


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
        said = str(e)
        if "object format" in said:
            hint = "SHA-256 repositories are not supported yet: libgit2, which reads the history, reads SHA-1 ones"
        elif "not owned by current user" in said:
            hint = (f"it belongs to another user: if you trust it, run `git config --global --add safe.directory "
                    f"{found.rstrip('/').removesuffix('/.git')}` or scan it as its owner")
        else:
            hint = "check that it is readable"
        raise RepositoryError(f"{path}: cannot open the repository ({said}). {hint[0].upper()}{hint[1:]}.") from None


@dataclass(slots=True)
class Commits:
    """Every commit reachable from any ref or HEAD, exactly ``git rev-list --all``.

    On a rerun the commits an earlier complete listing saw and that are all still reachable are only ``known``:
    their trees, parents and times are not loaded again.
    """

    tree: dict[bytes, bytes] = field(default_factory=dict)  # commit raw id → root tree raw id (b"": unreadable)
    parents: dict[bytes, tuple[bytes, ...]] = field(default_factory=dict)
    time: dict[bytes, int] = field(default_factory=dict)  # commit raw id → committer time (Unix seconds)
    tips: dict[bytes, list[str]] = field(default_factory=dict)  # commit raw id → ref names pointing at it
    outside: dict[str, str] = field(default_factory=dict)  # ref → "tree" / "blob": content in no commit
    known: frozenset[bytes] = frozenset()
    errors: list[str] = field(default_factory=list)
    shallow: bool = False

    def __len__(self) -> int:
        return len(self.tree) + len(self.known)

    def __contains__(self, commit: bytes) -> bool:
        return commit in self.tree or commit in self.known


@dataclass(frozen=True, slots=True)
class CommitHead:
    """A commit's header as git reads it, parsed from the raw object: libgit2 rejects some commits git accepts
    (an author without <>, a garbled time, CR line ends) and decodes names by an ``encoding`` header that may lie."""

    tree: bytes | None
    parents: tuple[bytes, ...]
    time: int  # committer time, 0 where unreadable (as git)
    author_email: str
    author_time: int


def _oid(text: bytes) -> bytes | None:
    text = text.strip()
    if len(text) != 40:
        return None
    try:
        return bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None


def _ident(value: bytes) -> tuple[str, int]:
    """"Name <email> time zone" → (email, time); a missing or garbled part is empty or 0."""
    lt, gt = value.find(b"<"), value.rfind(b">")
    email = value[lt + 1:gt] if 0 <= lt < gt else b""
    when = value[gt + 1:].split()[:1] if gt >= 0 else value.split()[-2:-1]
    return email.decode("utf-8", "replace"), int(when[0]) if when and when[0].isdigit() else 0


def read_commit(repo: pygit2.Repository, commit: bytes) -> CommitHead:
    """The header of a commit object; KeyError/ValueError/GitError when it is missing or not a commit."""
    kind, data = repo.odb.read(pygit2.Oid(raw=commit))
    if kind != pygit2.enums.ObjectType.COMMIT:
        raise ValueError(f"a {kind.name.lower()}, not a commit")
    fields: dict[bytes, list[bytes]] = {}
    for line in data.split(b"\n\n", 1)[0].split(b"\n"):
        key, _, value = line.rstrip(b"\r").partition(b" ")
        fields.setdefault(key, []).append(value)
    email, author_time = _ident(fields.get(b"author", [b""])[0])
    parents = tuple(p for p in map(_oid, fields.get(b"parent", [])) if p is not None)
    return CommitHead(tree=_oid(fields.get(b"tree", [b""])[0]), parents=parents,
                      time=_ident(fields.get(b"committer", [b""])[0])[1], author_email=email, author_time=author_time)


def author(repo: pygit2.Repository, commit: bytes) -> tuple[str, int]:
    """(email, time) of a commit's author, decoded by its ``encoding`` header, or as UTF-8 where that fails."""
    try:
        a = repo[pygit2.Oid(raw=commit)].author
    except (KeyError, pygit2.GitError, ValueError, AttributeError):
        try:
            head = read_commit(repo, commit)
        except (KeyError, pygit2.GitError, ValueError):
            return "", 0
        return head.author_email, head.author_time
    try:
        return a.email, a.time
    except (ValueError, LookupError):  # undecodable by its encoding header, or an unknown encoding
        return a.raw_email.decode("utf-8", "replace"), a.time


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
        target = _oid(data[7:47]) if data.startswith(b"object ") else None
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
            if head.parent != gitdir and head.is_file() and (oid := _oid(head.read_bytes())) is not None:
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


def _ref_tips(repo: pygit2.Repository, out: Commits) -> bool:
    """Fill ``out.tips`` (commit → the refs and HEADs pointing at it, peeled) and ``out.outside``; return whether
    a tip is a commit libgit2 cannot parse (then only ``read_commit`` can walk the history)."""
    unpeeled: list[tuple[str, bytes]] = []
    for name, ref in _refs(repo, out.errors):
        try:
            out.tips.setdefault(ref.peel(pygit2.Commit).id.raw, []).append(_name(name))  # type: ignore[attr-defined]
        except (pygit2.GitError, KeyError, ValueError, pygit2.InvalidSpecError):
            try:
                unpeeled.append((name, ref.resolve().target.raw))  # type: ignore[attr-defined]
            except (pygit2.GitError, KeyError, ValueError, AttributeError):
                continue  # a dangling symbolic ref: git ignores it too
    unparsed = False
    for name, oid in unpeeled + _worktree_heads(repo):  # a tree or blob, unreadable, or what libgit2 rejects
        target, kind, why = _peel(repo, oid)
        if why:
            out.errors.append(f"ref {_name(name)}: {why}")
        elif kind == "commit":
            out.tips.setdefault(target, []).append(_name(name))  # type: ignore[arg-type]
            unparsed = unparsed or (name, oid) in unpeeled
        elif kind:
            out.outside[_name(name)] = kind
    return unparsed


def list_commits(repo: pygit2.Repository, known_tips: frozenset[bytes] = frozenset(),
                 known: frozenset[bytes] = frozenset()) -> Commits:
    """Walk every commit of every ref; given an earlier listing (its tips and commits) whose tips are all still
    reachable, walk only what is new (the earlier tips hidden) and keep the rest as ``known``.

    libgit2's walker stops at the first commit it cannot parse; the history is then walked again with
    ``read_commit``, which reads what git reads, and what cannot be read at all is said in ``errors``.
    """
    out = Commits(shallow=repo.is_shallow)
    unparsed = _ref_tips(repo, out)
    if not out.tips:
        return out
    if known and _all_reachable(repo, known_tips, set(out.tips)):
        out.known = known
    if not unparsed:
        try:
            walker = repo.walk(None, pygit2.enums.SortMode.NONE)
            for raw in out.tips:
                walker.push(pygit2.Oid(raw=raw))
            for raw in known_tips if out.known else ():
                walker.hide(pygit2.Oid(raw=raw))
            for c in walker:
                cid = c.id.raw
                out.tree[cid] = c.tree_id.raw
                out.parents[cid] = tuple(p.raw for p in c.parent_ids)
                out.time[cid] = c.commit_time
            return out
        except (pygit2.GitError, KeyError, ValueError):
            for listed in (out.tree, out.parents, out.time):
                listed.clear()
    _walk_raw(repo, out)
    return out


def _walk_raw(repo: pygit2.Repository, out: Commits) -> None:
    """Every commit reachable from ``out.tips`` and not ``known``, read by ``read_commit``; a shallow clone's
    boundary commits have no parents, as in git."""
    try:
        shallow = {o for line in Path(repo.path, "shallow").read_bytes().split() if (o := _oid(line))}
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
        out.tree[commit] = head.tree or b""
        out.parents[commit] = () if commit in shallow else head.parents
        out.time[commit] = head.time
        stack.extend(out.parents[commit])


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
