"""The changes stream: git's `log --raw` and the pygit2 fallback must say the same thing, whatever the names.

Real repositories built with pygit2 (hostile file names, symlinks, gitlinks, type changes, a directory replacing a
file, merges, an orphan root); `Changes` is read once through git and once through pygit2 and the records compared.
"""

from __future__ import annotations

import io
import secrets
from pathlib import Path

import pygit2
import pytest

from auditor.git.changes import (
    FILE,
    GITLINK,
    LINK,
    NONE,
    BlobFeed,
    ChangeLog,
    Changes,
    Verdict,
    batches,
    records,
)
from auditor.git.history import list_commits

# Names a parser could misread: a header marker with a commit id, change metadata, NUL-free control bytes.
HOSTILE = [
    b"\x01" + b"a" * 40 + b" " + b"b" * 40,
    b"\n:100644 100644 " + b"c" * 40 + b" " + b"d" * 40 + b" M",
    b":000000 100644 " + b"0" * 40 + b" " + b"e" * 40 + b" A",
    b"tab\tand\rcarriage",
]  # (non-UTF-8 names: tests/test_faults.py, through git fast-import; pygit2 cannot write them)


class Repo:
    def __init__(self, path: Path) -> None:
        self.repo = pygit2.init_repository(str(path), bare=True, initial_head="main")
        self.clock = 1_700_000_000

    def tree(self, entries: dict[bytes, tuple[bytes | dict, int]]) -> pygit2.Oid:
        tb = self.repo.TreeBuilder()
        for name, (value, mode) in entries.items():
            if isinstance(value, dict):
                oid = self.tree(value)
            elif mode == pygit2.enums.FileMode.COMMIT:
                oid = pygit2.Oid(hex=value.decode())
            else:
                oid = self.repo.create_blob(value)
            tb.insert(name.decode(), oid, mode)
        return tb.write()

    def commit(self, ref: str | None, entries: dict, parents: list[pygit2.Oid]) -> pygit2.Oid:
        self.clock += 60
        sig = pygit2.Signature("T", "t@example.com", self.clock, 0)
        return self.repo.create_commit(ref, sig, sig, "c", self.tree(entries), parents)


BLOB, EXEC, LINK_MODE, TREE, GIT = (pygit2.enums.FileMode.BLOB, pygit2.enums.FileMode.BLOB_EXECUTABLE,
                                    pygit2.enums.FileMode.LINK, pygit2.enums.FileMode.TREE,
                                    pygit2.enums.FileMode.COMMIT)


@pytest.fixture
def history(tmp_path: Path) -> Repo:
    r = Repo(tmp_path / "repo.git")
    sub = secrets.token_hex(20).encode()
    first = {**{name: (b"hostile " + name + b"\n", BLOB) for name in HOSTILE},
             b"run.sh": (b"#!/bin/sh\n", EXEC), b"link": (b"run.sh", LINK_MODE), b"vendor": (sub, GIT),
             b"dir": ({b"a.txt": (b"a\n", BLOB), b"deep": ({b"b.txt": (b"b\n", BLOB)}, TREE)}, TREE),
             b"file-then-dir": (b"x\n", BLOB)}
    c1 = r.commit(None, first, [])
    second = dict(first)
    second[HOSTILE[0]] = (b"changed\n", BLOB)  # modified
    del second[HOSTILE[1]]  # deleted
    second[b"link"] = (b"now a file\n", BLOB)  # symlink → file
    second[b"run.sh"] = (b"#!/bin/sh\n", BLOB)  # mode change only
    second[b"file-then-dir"] = ({b"inner.txt": (b"inner\n", BLOB)}, TREE)  # a file becomes a directory
    second[b"dir"] = ({b"a.txt": (b"a\n", BLOB)}, TREE)  # a whole subtree removed below
    c2 = r.commit(None, second, [c1])
    side = dict(first)
    side[b"side.txt"] = (b"from the side\n", BLOB)
    c3 = r.commit("refs/heads/side", side, [c1])
    merged = dict(second)
    merged[b"side.txt"] = (b"from the side\n", BLOB)
    merged[b"resolution.txt"] = (b"only in the merge\n", BLOB)
    r.commit("refs/heads/main", merged, [c2, c3])
    r.commit("refs/heads/orphan", {b"alone.txt": (b"alone\n", BLOB)}, [])
    return r


def _records(repo: pygit2.Repository, use_git: bool) -> tuple[dict, list[str]]:
    commits = list_commits(repo)
    source = Changes(repo, use_git=use_git)
    got = {c: (p, sorted(ch)) for c, p, ch in records(source.batches(lambda: (list(commits.tree), commits.parents)))}
    return got, source.errors


def test_git_and_pygit2_agree_on_every_change(history: Repo) -> None:
    via_git, errors_git = _records(history.repo, use_git=True)
    via_pygit2, errors_pygit2 = _records(history.repo, use_git=False)
    assert errors_git == errors_pygit2 == []
    assert len(via_git) == 5
    assert via_git == via_pygit2
    every = [ch for _, changes in via_git.values() for ch in changes]
    paths = {ch[0] for ch in every}
    assert set(HOSTILE) <= paths  # each hostile name is read as a path, and as nothing else
    kinds = {ch[0]: (ch[1], ch[2]) for _, changes in via_git.values() for ch in changes if ch[1] != NONE}
    assert kinds[b"link"] == (LINK, FILE)
    assert kinds[b"file-then-dir"] == (FILE, NONE)
    assert (NONE, GITLINK) in {(ch[1], ch[2]) for ch in every if ch[0] == b"vendor"}


def test_the_changes_of_one_commit_exactly(history: Repo) -> None:
    """An anchor independent of both readers: c2's changes against c1, written out by hand (blob ids by hashing)."""
    via_git, _ = _records(history.repo, use_git=True)
    [(c2, (parent, changes))] = [(c, r) for c, r in via_git.items() if len(r[1]) == 7]
    assert parent is not None and history.repo[pygit2.Oid(raw=c2)].parents[0].id.raw == parent

    def h(data: bytes) -> bytes:
        return pygit2.hash(data).raw

    assert changes == sorted([
        (HOSTILE[0], FILE, FILE, h(b"hostile " + HOSTILE[0] + b"\n"), h(b"changed\n")),  # modified
        (HOSTILE[1], FILE, NONE, h(b"hostile " + HOSTILE[1] + b"\n"), None),  # deleted
        (b"dir/deep/b.txt", FILE, NONE, h(b"b\n"), None),  # a whole subtree removed
        (b"file-then-dir", FILE, NONE, h(b"x\n"), None),  # a file becomes a directory …
        (b"file-then-dir/inner.txt", NONE, FILE, None, h(b"inner\n")),  # … holding a file
        (b"link", LINK, FILE, h(b"run.sh"), h(b"now a file\n")),  # a symlink becomes a file
        (b"run.sh", FILE, FILE, h(b"#!/bin/sh\n"), h(b"#!/bin/sh\n")),  # the mode alone changed
    ])


def test_every_blob_of_the_history_is_fed_once(history: Repo) -> None:
    repo = history.repo
    commits = list_commits(repo)
    feed = BlobFeed(lambda oid, name: Verdict.SCAN)
    fed = list(feed(Changes(repo).batches(lambda: (list(commits.tree), commits.parents))))
    assert len(fed) == len(set(fed))
    reachable = set()

    def walk(tree: pygit2.Tree) -> None:
        for e in tree:
            if e.filemode == TREE:
                walk(repo[e.id])
            elif e.filemode in (BLOB, EXEC):
                reachable.add(e.id.raw)

    for commit in commits.tree:
        walk(repo[pygit2.Oid(raw=commit)].tree)
    assert set(fed) == reachable
    assert len(feed.symlinks) == 1 and len(feed.submodules) == 1


def test_git_output_cut_anywhere_parses_the_same(history: Repo) -> None:
    """Git's bytes arrive in chunks that may end inside a header, a change's metadata or a (hostile) path: read a
    byte, two, … at a time, every commit's record is what it is read whole, and a stream cut short yields only
    complete records' changes."""
    commits = list_commits(history.repo)
    source = Changes(history.repo)
    raw = b"".join(b.raw for b in source.batches(lambda: (list(commits.tree), commits.parents)))
    whole = list(records(batches(io.BytesIO(raw))))
    assert len(whole) == 5 and sum(len(ch) for _, _, ch in whole) > 20
    for size in (1, 2, 3, 5, 7, 16, 41, 97):
        assert list(records(batches(io.BytesIO(raw), size))) == whole, size
    cut = raw[:raw.index(HOSTILE[1]) + 3]  # within a path: its change is not read
    got = [ch for _, _, changes in records(batches(io.BytesIO(cut), 4)) for ch in changes]
    assert got and HOSTILE[1] not in {ch.path for ch in got}
    assert all(ch in {c for _, _, changes in whole for c in changes} for ch in got)


@pytest.mark.parametrize("size", [5, 64, 300])
def test_the_log_read_only_where_a_matched_id_is_says_what_the_whole_log_says(history: Repo, size: int) -> None:
    """``kept(exact=True)`` reads only the logged batches whose bytes hold a matched id (a record may begin in a
    batch it leaves unread); it must give attribution what reading every batch gives, whatever the batches."""
    commits = list_commits(history.repo)
    source = Changes(history.repo)
    raw = b"".join(b.raw for b in source.batches(lambda: (list(commits.tree), commits.parents)))
    assert not source.computed_again
    blobs = sorted({ch.new for _, _, changes in records(batches(io.BytesIO(raw))) for ch in changes if ch.new})

    def kept(matched: list[bytes], exact: bool) -> dict:
        log = ChangeLog()
        for batch in batches(io.BytesIO(raw), size):
            log.add(batch)
        got = log.kept(set(matched), commits.tree, commits.parents, exact=exact)
        return {c: (p, sorted(changes)) for c, (p, changes) in got.items()}

    for matched in ([blobs[0]], blobs[1::3], blobs):
        whole = kept(matched, exact=False)
        assert kept(matched, exact=True) == whole
        assert any(changes for _, changes in whole.values())
