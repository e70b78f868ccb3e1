"""Properties, not just examples (hypothesis, bounded).

1. The detector never crashes on arbitrary bytes, and whatever it returns is well-formed.
2. A planted pair in random surrounding noise is found, with the right token and line.
3. On random commit graphs (branches, merges with conflict resolutions, renames, copies, removals, re-adds of a few
   planted pairs, tags, deleted branches, orphan roots) built with pygit2, the scanner's occurrences equal a
   brute-force reference that applies SPEC §4 literally to what ``git rev-list --all --parents`` and
   ``git ls-tree`` say: for every commit, every scanned path whose blob holds a pair that no parent's blob at the
   same path holds; except a pure rename (the very blob leaves a scanned path that is gone from the commit and
   appears at a new path), which adds nothing.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import pygit2
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from auditor.detectors import CompiledDetector, load_detectors
from auditor.detectors.engine import detect

DETECTORS = [CompiledDetector(d) for d in load_detectors()]
BLOB = "0" * 40
SID_RE = re.compile(rb"^AC[0-9a-f]{32}$")
HEX32 = re.compile(rb"^[0-9a-f]{32}$")
BANNED_EXT = re.compile(r"(?:cs|x|p|s|r)?html5?~?|[aps]?cssc?~?|lock|mdx?~?|storyboard(?:c|er)?~?|xib", re.I)
ENV = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}
ENV.pop("AUDITOR_TWILIO_API_URL", None)


def _placeholder(h: bytes) -> bool:
    """SPEC §3: fewer than 6 distinct hex digits, or a repeated unit."""
    return len(set(h)) < 6 or any(h == h[:k] * (len(h) // k) for k in (1, 2, 4, 8, 16))


def _word(value: bytes) -> re.Pattern[bytes]:
    return re.compile(rb"(?<![0-9A-Za-z_])" + re.escape(value) + rb"(?![0-9A-Za-z_])")


def _pair() -> tuple[str, str]:
    while True:
        sid, tok = secrets.token_hex(16), secrets.token_hex(16)
        if not _placeholder(sid.encode()) and not _placeholder(tok.encode()):
            return "AC" + sid, tok


# -- 1. arbitrary bytes -------------------------------------------------------------------------------------------

_HEXISH = st.text("0123456789abcdefABCDEF", min_size=0, max_size=40).map(str.encode)
_PIECES = st.one_of(
    st.sampled_from([b"AC", b"ac", b"token", b"Auth", b"secret", b"\n", b"\r\n", b" ", b"=", b'"', b":", b"@",
                     b"_", b"\x00", "é".encode(), b"\xe9", b"\xff"]),
    _HEXISH,
    st.binary(max_size=12),
)
_TWILIOISH = st.lists(_PIECES, max_size=80).map(b"".join)


@settings(max_examples=50, deadline=None)
@given(st.one_of(st.binary(max_size=4000), _TWILIOISH))
def test_detect_never_crashes_and_returns_well_formed_candidates(data: bytes) -> None:
    found = detect(DETECTORS, data, BLOB, 8)
    if b"\0" in data[:8000] or not re.search(rb"(?i)ac[0-9a-f]{32}", data):
        assert found == []
    for c in found:
        cid = c.client_id.encode()
        assert SID_RE.match(cid) and _word(cid).search(data)
        assert 1 <= len(c.pairs) <= 8
        assert [p.rank for p in c.pairs] == list(range(len(c.pairs)))
        assert not _placeholder(cid[2:])
        for p in c.pairs:
            tok = p.client_secret.encode()
            assert p.client_id == c.client_id
            assert HEX32.match(tok) and _word(tok).search(data)
            assert tok != cid[2:] and not _placeholder(tok)
            assert 1 <= p.line <= data.count(b"\n") + 1


# -- 2. a planted pair in noise -------------------------------------------------------------------------------------

_SEPARATORS = st.sampled_from([" ", "\n", "\r\n", "\t", " = ", '"', "'", ": ", ", ", "(", ")", "/", "@", ";\n", "\n\n"])
_NOISE_WORD = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=12),
    st.sampled_from(["token", "auth_token", "SECRET", "sid", "twilio", "appid", "x" * 10_000, "ACXXXXXXXX",
                     "{{ auth_token }}", "your_auth_token"]),
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=st.lists(_NOISE_WORD, max_size=30), between=st.lists(_NOISE_WORD, max_size=60),
       after=st.lists(_NOISE_WORD, max_size=30), seps=st.lists(_SEPARATORS, min_size=130, max_size=130),
       token_first=st.booleans(), encoding=st.sampled_from(["utf-8", "latin-1"]), data=st.data())
def test_a_planted_pair_in_noise_is_found(before: list[str], between: list[str], after: list[str],
                                          seps: list[str], token_first: bool, encoding: str,
                                          data: st.DataObject) -> None:
    sid_body = data.draw(st.binary(min_size=16, max_size=16).map(bytes.hex), label="sid")
    tok = data.draw(st.binary(min_size=16, max_size=16).map(bytes.hex), label="token")
    assume(not _placeholder(sid_body.encode()) and not _placeholder(tok.encode()) and tok != sid_body)
    sid = "AC" + sid_body
    first, second = (tok, sid) if token_first else (sid, tok)
    words = [*before, first, *between, second, *after]
    if encoding == "latin-1":
        words = [w.encode("latin-1", "replace").decode("latin-1") for w in words]
    text = "".join(w + seps[i % len(seps)] for i, w in enumerate(words))
    blob = text.encode(encoding, "replace")
    assert b"\0" not in blob
    found = detect(DETECTORS, blob, BLOB, 8)
    assert [c.client_id for c in found] == [sid]
    [cand] = found
    assert cand.pairs[0].client_secret == tok
    assert len(cand.pairs) == 1  # noise words are at most 12 characters: never a 32-hex token
    sid_at = blob.index(sid.encode())
    assert cand.pairs[0].line == blob.count(b"\n", 0, sid_at) + 1


# -- 3. random commit graphs ----------------------------------------------------------------------------------------

PATHS = ["a.py", "b.txt", "conf/c.cfg", "conf/deep/d.env", "notes.md", "web/e.js", "docs/f.html", "g"]
FILLER = ["# " + "x" * 70] * 3


def banned(path: str) -> bool:
    base = path.rsplit("/", 1)[-1]
    return "." in base and BANNED_EXT.fullmatch(base.rsplit(".", 1)[1]) is not None


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
OPS = ["write"] * 4 + ["merge"] * 3 + ["branch"] * 2 + ["delete", "rename", "copy", "readd", "tag", "delete_branch",
                                                        "orphan"]


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
                        merged[path] = mine if mine is not None else yours  # type: ignore[assignment]
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
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, env=ENV, check=True).stdout.decode()


def _ls_tree(repo: Path, commit: str) -> dict[str, str]:
    """path → blob id of every regular file of the commit (symlinks and gitlinks are not files)."""
    out = {}
    for entry in _git(repo, "ls-tree", "-r", "-z", commit).split("\0"):
        if entry:
            meta, path = entry.split("\t", 1)
            mode, kind, oid = meta.split()
            if kind == "blob" and mode in ("100644", "100755"):
                out[path] = oid
    return out


def reference_occurrences(repo: Path, pairs: list[tuple[str, str]]) -> set[tuple[str, str, str, str]]:
    """SPEC §4 by brute force from git's own listing: every commit against every parent."""
    patterns = [(_word(s.encode()), _word(t.encode())) for s, t in pairs]
    found: dict[str, frozenset[int]] = {}

    def secrets_in(oid: str) -> frozenset[int]:
        if oid not in found:
            data = subprocess.run(["git", "-C", str(repo), "cat-file", "blob", oid], capture_output=True, env=ENV,
                                  check=True).stdout
            found[oid] = frozenset() if b"\0" in data[:8000] else frozenset(
                i for i, (s, t) in enumerate(patterns) if s.search(data) and t.search(data))
        return found[oid]

    trees: dict[str, dict[str, str]] = {}

    def files(commit: str) -> dict[str, str]:
        if commit not in trees:
            trees[commit] = _ls_tree(repo, commit)
        return trees[commit]

    out = set()
    for line in _git(repo, "rev-list", "--all", "--parents").splitlines():
        commit, *parents = line.split()
        mine, theirs = files(commit), [files(p) for p in parents]
        new: dict[str, list[str]] = {}
        for path, oid in mine.items():
            if not banned(path) and not any(t.get(path) == oid for t in theirs):
                new.setdefault(oid, []).append(path)
        for oid, paths in new.items():
            # a pure rename: the very blob left a scanned path that no longer exists in this commit
            moved = {p for t in theirs for p, o in t.items() if o == oid and p not in mine and not banned(p)}
            assert len(paths) <= 1 or not moved, "ambiguous rename + copy: the generator makes none"
            if moved:
                continue
            for path in paths:
                introduced = set(secrets_in(oid))
                for t in theirs:
                    if path in t:
                        introduced -= secrets_in(t[path])
                out.update((commit, path, *pairs[i]) for i in introduced)
    return out


def _scan(repo: Path, out: Path) -> tuple[set[tuple[str, str, str, str]], dict]:
    proc = subprocess.run([sys.executable, "-m", "auditor", "scan", str(repo), "--out", str(out), "--no-progress",
                           "--no-validate", "--show-secrets", "--jobs", "1"], capture_output=True, env=ENV,
                          timeout=120, check=False)
    assert proc.returncode in (0, 1), proc.stderr.decode(errors="replace")
    rows = [json.loads(x) for x in (out / "findings.jsonl").read_text("utf-8").splitlines() if x.strip()]
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    return {(r["commit"], r["path"], r["client_id"], r["client_secret"]) for r in rows}, summary


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), max_commits=st.integers(2, 15))
def test_random_commit_graphs_match_the_brute_force_reference(data: st.DataObject, max_commits: int) -> None:
    pairs = [_pair() for _ in range(3)]
    with tempfile.TemporaryDirectory(prefix="auditor-graph-") as td:
        repo = Path(td) / "repo.git"
        g = Graph(repo)
        log = _build(g, data, pairs, max_commits)
        expected = reference_occurrences(repo, pairs)
        got, summary = _scan(repo, Path(td) / "out")
        assert summary["commits_scanned"] == len(_git(repo, "rev-list", "--all").split())
        assert got == expected, (f"operations: {log}\nmissing: {sorted(expected - got)}\n"
                                 f"extra: {sorted(got - expected)}")


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), first=st.integers(2, 10), more=st.integers(1, 8))
def test_a_rerun_after_more_commits_matches_the_reference(data: st.DataObject, first: int, more: int) -> None:
    """An incremental rerun (same --out, new commits, deleted branches) equals SPEC §4 on the whole history."""
    pairs = [_pair() for _ in range(3)]
    with tempfile.TemporaryDirectory(prefix="auditor-graph-") as td:
        repo, out = Path(td) / "repo.git", Path(td) / "out"
        g = Graph(repo)
        log = _build(g, data, pairs, first)
        before = set(_git(repo, "rev-list", "--all").split())
        _scan(repo, out)
        log += ["-- rescan --", *_build(g, data, pairs, first + more)]
        now = set(_git(repo, "rev-list", "--all").split())
        expected = reference_occurrences(repo, pairs)
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
    pairs = [_pair()]
    g = Graph(tmp_path / "repo.git")
    content = _content(pairs, frozenset({0}), 1)
    first = g.commit("main", {src: content, "plain.txt": b"plain\n"}, [])
    second = g.commit("main", {dst: content, "plain.txt": b"plain\n"}, [first])
    g.publish()
    expected = reference_occurrences(tmp_path / "repo.git", pairs)
    got, _ = _scan(tmp_path / "repo.git", tmp_path / "out")
    assert got == expected
    assert ((str(second), dst, *pairs[0]) in got) is expect_new
    assert ((str(first), src, *pairs[0]) in got) is not banned(src)
