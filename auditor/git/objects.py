"""Raw git objects read the way git reads them: commit headers, root trees, tree entries.

libgit2 rejects some objects git accepts (a commit whose author has no <>, a garbled time, CR line ends) and
decodes names by an ``encoding`` header that may lie; reading the raw bytes keeps every commit git lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pygit2

# A raw tree object is a run of "<mode> <name>\0<20-byte id>".
TREE_ENTRY = re.compile(rb"(\d+) ([^\0]*)\0(.{20})", re.S)
MODE_TREE = b"40000"


@dataclass(frozen=True, slots=True)
class CommitHead:
    """A commit's header, parsed from the raw object as git parses it."""

    tree: bytes | None
    parents: tuple[bytes, ...]
    time: int  # committer time, 0 where unreadable (as git)
    author_email: str
    author_time: int


def parse_oid(text: bytes) -> bytes | None:
    """40 hex digits (surrounding whitespace allowed) → the raw id, else None."""
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
    parents = tuple(p for p in map(parse_oid, fields.get(b"parent", [])) if p is not None)
    return CommitHead(tree=parse_oid(fields.get(b"tree", [b""])[0]), parents=parents,
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
