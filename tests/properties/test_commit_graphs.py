"""Properties of the whole scan (hypothesis, bounded): on random commit graphs (branches, merges with conflict
resolutions, renames, copies, a rename plus copies in one commit, removals, re-adds of a few planted pairs, tags,
deleted branches, orphan roots) built with pygit2, the scanner's occurrences equal the reference oracle's
(``tests.helpers.reference``: SPEC §4 and the README's rename rule applied literally to what git says), on a first
scan and on an incremental rerun.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pygit2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.env import env
from tests.helpers.pairs import make_pair
from tests.helpers.reference import banned, brute_force_occurrences
from tests.helpers.scan import run_scan

# Two paths share a file name (a.py, g): a rename there pairs by name, not by order. No file name is used three
# times, so which new path a rename pairs with is always decided by the rule (same name first, else first by name).
PATHS = ["a.py", "b.txt", "conf/c.cfg", "conf/deep/d.env", "notes.md", "web/e.js", "docs/f.html", "g", "moved/a.py",
         "old/g"]
FILLER = ["# " + "x" * 70] * 3


def _content(pairs: list[tuple[str, str]], which: frozenset[int], nonce: int) -> bytes:
    """A file holding exactly the pairs ``which``; each SID's own token is its nearest (the others are far)."""
    lines = [f"# revision {nonce}"]
    for i in sorted(which):
        lines += [*FILLER, f'sid_{i} = "{pairs[i][0]}"', f'auth_token_{i} = "{pairs[i][1]}"']
    lines += FILLER
    return ("\n".join(lines) + "\n").encode()


class Graph:
    """Commits made with pygit2 in a bare repository; ``files`` remembers each commit's {path: content}."""

    def __init__(self, path: Path) -> None:
        self.repo = pygit2.init_repository(str(path), bare=True, initial_head="main")
        self.files: dict[pygit2.Oid, dict[str, bytes]] = {}
        self.order: list[pygit2.Oid] = []  # commits in the order made: draws must not depend on random ids
        self.branches: dict[str, pygit2.Oid] = {}
        self.clock = 1_600_000_000
        self.made = 0
        self.tags = 0

    def _tree(self, files: dict[str, bytes]) -> pygit2.Oid:
        root: dict = {}
        for path, content in files.items():
            *dirs, name = path.split("/")
            node = root
            for d in dirs:
                node = node.setdefault(d, {})
            node[name] = content

        def build(node: dict) -> pygit2.Oid:
            tb = self.repo.TreeBuilder()
            for name, value in sorted(node.items()):
                if isinstance(value, dict):
                    tb.insert(name, build(value), pygit2.enums.FileMode.TREE)
                else:
                    tb.insert(name, self.repo.create_blob(value), pygit2.enums.FileMode.BLOB)
            return tb.write()

        return build(root)

    def commit(self, branch: str, files: dict[str, bytes], parents: list[pygit2.Oid]) -> pygit2.Oid:
        self.clock += 60
        sig = pygit2.Signature("Graph Tester", "graph@example.com", self.clock, 0)
        oid = self.repo.create_commit(None, sig, sig, f"commit {self.made}", self._tree(files), parents)
        self.made += 1
        self.files[oid] = dict(files)
        self.order.append(oid)
        self.branches[branch] = oid
        return oid

    def tag(self, target: pygit2.Oid, annotated: bool) -> None:
        name = f"t{self.tags}"
        self.tags += 1
        if annotated:
            sig = pygit2.Signature("Graph Tester", "graph@example.com", self.clock, 0)
            self.repo.create_tag(name, target, pygit2.enums.ObjectType.COMMIT, sig, "tag")
        else:
            self.repo.references.create(f"refs/tags/{name}", target)

    def publish(self) -> None:
        for name, oid in self.branches.items():
            self.repo.references.create(f"refs/heads/{name}", oid, force=True)
        for ref in list(self.repo.references):  # a deleted branch leaves its commits unreachable
            if ref.startswith("refs/heads/") and ref[len("refs/heads/"):] not in self.branches:
                self.repo.references.delete(ref)


# weighted: merges need diverged branches, so branching, writing and merging come up most
OPS = ["write"] * 4 + ["merge"] * 3 + ["branch"] * 2 + ["delete", "rename", "copy", "rename_copy", "readd", "tag",
                                                        "delete_branch", "orphan"]


def _build(g: Graph, data: st.DataObject, pairs: list[tuple[str, str]], max_commits: int) -> list[str]:
    """Draw and apply operations until ``max_commits`` commits exist; returns a log of what was done."""
    log: list[str] = []
    nonce = iter(range(10_000))
    subsets = st.frozensets(st.integers(0, len(pairs) - 1))
    history: list[tuple[str, bytes]] = []  # every (path, content) ever written: candidates for re-adding

    def write(files: dict[str, bytes], path: str, which: frozenset[int]) -> None:
        files[path] = _content(pairs, which, next(nonce))
        history.append((path, files[path]))

    if not g.made:
        root: dict[str, bytes] = {}
        write(root, data.draw(st.sampled_from(PATHS), label="first path"), data.draw(subsets, label="first pairs"))
        g.commit("main", root, [])
        log.append(f"root {sorted(root)}")
    while g.made < max_commits:
        op = data.draw(st.sampled_from(OPS), label="op")
        branch = data.draw(st.sampled_from(sorted(g.branches)), label="branch")
        tip = g.branches[branch]
        files = dict(g.files[tip])
        present, absent = sorted(files), [p for p in PATHS if p not in files]
        if op == "write":
            path = data.draw(st.sampled_from(PATHS))
            write(files, path, data.draw(subsets))
        elif op == "delete" and present:
            path = data.draw(st.sampled_from(present))
            del files[path]
        elif op in ("rename", "copy") and present and absent:
            src = data.draw(st.sampled_from(present))
            dst = data.draw(st.sampled_from(absent if op == "rename" else [p for p in PATHS if p != src]))
            files[dst] = files[src]
            if op == "rename":
                del files[src]
            path = f"{src}->{dst}"
        elif op == "rename_copy" and present and absent:  # in one commit: a rename and copies of the same blob
            src = data.draw(st.sampled_from(present))
            dst = data.draw(st.sampled_from(absent))
            copies = data.draw(st.lists(st.sampled_from([p for p in PATHS if p not in (src, dst)]), min_size=1,
                                        max_size=2, unique=True))
            for target in (dst, *copies):
                files[target] = files[src]
            del files[src]
            path = f"{src}->{dst}+{'+'.join(copies)}"
        elif op == "readd" and history:
            path, content = data.draw(st.sampled_from(history))
            files[path] = content
        elif op == "branch":
            name = f"b{len(g.branches)}"
            g.branches[name] = data.draw(st.sampled_from(g.order))
            log.append(f"branch {name}")
            continue
        elif op == "orphan":
            name = f"b{len(g.branches)}"
            fresh: dict[str, bytes] = {}
            write(fresh, data.draw(st.sampled_from(PATHS)), data.draw(subsets))
            g.commit(name, fresh, [])
            log.append(f"orphan {name}")
            continue
        elif op == "tag":
            g.tag(data.draw(st.sampled_from(g.order)), data.draw(st.booleans()))
            log.append("tag")
            continue
        elif op == "delete_branch" and branch != "main":
            del g.branches[branch]
            log.append(f"delete branch {branch}")
            continue
        elif op == "merge":
            others = [b for b in sorted(g.branches) if g.branches[b] != tip]
            if not others:
                continue
            other = data.draw(st.sampled_from(others))
            theirs = g.files[g.branches[other]]
            merged: dict[str, bytes] = {}
            for path in sorted(set(files) | set(theirs)):
                mine, yours = files.get(path), theirs.get(path)
                if mine is None or yours is None:
                    if data.draw(st.booleans()):  # kept, or deleted on the way
                        merged[path] = mine if mine is not None else yours
                elif mine == yours:
                    merged[path] = mine
                else:
                    choice = data.draw(st.sampled_from(["ours", "theirs", "resolution"]))
                    if choice == "resolution":  # an evil merge: content no parent had
                        write(merged, path, data.draw(subsets))
                    else:
                        merged[path] = mine if choice == "ours" else yours
            g.commit(branch, merged, [tip, g.branches[other]])
            log.append(f"merge {other} into {branch}")
            continue
        else:
            continue
        g.commit(branch, files, [tip])
        log.append(f"{op} {path} on {branch}")
    g.publish()
    return log


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, env=env(), check=True).stdout.decode()


def _scan(repo: Path, out: Path) -> tuple[set[tuple[str, str, str, str]], dict]:
    r = run_scan(repo, out, "--show-secrets", "--jobs", "1", timeout=120)
    assert r.returncode in (0, 1), r.stderr
    return {(f["commit"], f["path"], f["client_id"], f["client_secret"]) for f in r.findings}, r.summary


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), max_commits=st.integers(2, 15))
def test_random_commit_graphs_match_the_brute_force_reference(data: st.DataObject, max_commits: int) -> None:
    pairs = [make_pair() for _ in range(3)]
    with tempfile.TemporaryDirectory(prefix="auditor-graph-") as td:
        repo = Path(td) / "repo.git"
        g = Graph(repo)
        log = _build(g, data, pairs, max_commits)
        expected = brute_force_occurrences(repo, pairs)
        got, summary = _scan(repo, Path(td) / "out")
        assert summary["commits_scanned"] == len(_git(repo, "rev-list", "--all").split())
        assert got == expected, (f"operations: {log}\nmissing: {sorted(expected - got)}\n"
                                 f"extra: {sorted(got - expected)}")


@pytest.mark.slow
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), first=st.integers(2, 10), more=st.integers(1, 8))
def test_a_rerun_after_more_commits_matches_the_reference(data: st.DataObject, first: int, more: int) -> None:
    """An incremental rerun (same --out, new commits, deleted branches) equals SPEC §4 on the whole history."""
    pairs = [make_pair() for _ in range(3)]
    with tempfile.TemporaryDirectory(prefix="auditor-graph-") as td:
        repo, out = Path(td) / "repo.git", Path(td) / "out"
        g = Graph(repo)
        log = _build(g, data, pairs, first)
        before = set(_git(repo, "rev-list", "--all").split())
        _scan(repo, out)
        log += ["-- rescan --", *_build(g, data, pairs, first + more)]
        now = set(_git(repo, "rev-list", "--all").split())
        expected = brute_force_occurrences(repo, pairs)
        got, summary = _scan(repo, out)
        assert summary["commits_scanned"] == len(now)
        assert summary["repos"][0]["commits_new"] == len(now - before)
        assert got == expected, (f"operations: {log}\nmissing: {sorted(expected - got)}\n"
                                 f"extra: {sorted(got - expected)}")


# -- the rename rule's edges, as plain examples --------------------------------------------------------------------

@pytest.mark.parametrize(("src", "dst", "expect_new"), [
    ("keys.py", "moved/keys.py", False),  # a pure rename adds nothing
    ("notes.md", "keys.py", True),  # out of a banned file: the secret is seen for the first time
    ("keys.py", "notes.md", False),  # into a banned file: nothing is scanned there
])
def test_rename_edges(tmp_path: Path, src: str, dst: str, expect_new: bool) -> None:
    pairs = [make_pair()]
    g = Graph(tmp_path / "repo.git")
    content = _content(pairs, frozenset({0}), 1)
    first = g.commit("main", {src: content, "plain.txt": b"plain\n"}, [])
    second = g.commit("main", {dst: content, "plain.txt": b"plain\n"}, [first])
    g.publish()
    expected = brute_force_occurrences(tmp_path / "repo.git", pairs)
    got, _ = _scan(tmp_path / "repo.git", tmp_path / "out")
    assert got == expected
    assert ((str(second), dst, *pairs[0]) in got) is expect_new
    assert ((str(first), src, *pairs[0]) in got) is not banned(src)


@pytest.mark.parametrize(("src", "targets", "new"), [
    ("keys.py", ("b_moved.py", "y_copy.py"), {"y_copy.py"}),  # no file name in common: the first by name moved
    ("keys.py", ("a_copy.py", "moved/keys.py"), {"a_copy.py"}),  # the same file name moved, whatever the order
    ("keys.py", ("docs.md", "z_copy.py"), set()),  # the banned path is not scanned: the scanned one moved
    ("keys.py", ("a.py", "b.py", "moved/keys.py"), {"a.py", "b.py"}),  # one rename, two copies
])
def test_rename_plus_copies_in_one_commit(tmp_path: Path, src: str, targets: tuple[str, ...], new: set[str]) -> None:
    """README "Renames:": the source pairs with one new path (the one with the same file name first, else the first
    by name); every other new path is a copy, an occurrence."""
    pairs = [make_pair()]
    g = Graph(tmp_path / "repo.git")
    content = _content(pairs, frozenset({0}), 1)
    first = g.commit("main", {src: content, "plain.txt": b"plain\n"}, [])
    second = g.commit("main", {**{t: content for t in targets}, "plain.txt": b"plain\n"}, [first])
    g.publish()
    expected = brute_force_occurrences(tmp_path / "repo.git", pairs)
    got, _ = _scan(tmp_path / "repo.git", tmp_path / "out")
    assert got == expected
    assert got == {(str(first), src, *pairs[0]), *((str(second), p, *pairs[0]) for p in new)}
