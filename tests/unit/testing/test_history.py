"""auditor.testing.history against plain git: counts, planted blobs, the reference, decoys, determinism, CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from auditor.testing.history import Manifest, banned, generate, is_placeholder
from tests.helpers.env import env
from tests.helpers.reference import banned as banned_by_the_yaml
from tests.helpers.reference import brute_force_occurrences, pairs_at_tips


def git(repo: Path | str, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, env=env(), check=check)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    return generate(tmp_path_factory.mktemp("synth") / "repo", commits=200, seed=11)


def test_commit_count_is_rev_list_all(small: Manifest) -> None:
    assert small.commits == 200
    assert len(git(small.repo, "rev-list", "--all").stdout.split()) == 200


def test_each_planted_commit_introduces_its_pair_at_its_path(small: Manifest) -> None:
    for p in small.planted:
        blob = git(small.repo, "show", f"{p.commit}:{p.path}").stdout
        assert p.client_id.encode() in blob and p.client_secret.encode() in blob, p
        assert p.client_id.encode() in blob.split(b"\n")[p.line - 1], p  # the SID's 1-based line
        assert not banned(p.path)
        for parent in git(small.repo, "rev-list", "--parents", "-n1", p.commit).stdout.split()[1:]:
            before = git(small.repo, "show", f"{parent.decode()}:{p.path}", check=False).stdout
            assert not (p.client_id.encode() in before and p.client_secret.encode() in before), (p, parent)


def test_scenarios_shape_the_manifest(small: Manifest) -> None:
    by_pair = Counter(p.pair for p in small.planted)
    scen = {p.pair: p.scenario for p in small.planted}
    expected = {"plain": 1, "removed": 1, "readded": 2, "copied": 2, "renamed": 1, "edited": 1,
                "branch_merged": 1, "branch_unmerged": 1, "merge_resolution": 1, "tag_only": 1}
    assert {scen[i]: n for i, n in by_pair.items()} == expected
    copied = [p for p in small.planted if p.scenario == "copied"]
    assert len({p.path for p in copied}) == 2 and len({p.commit for p in copied}) == 2
    readded = [p for p in small.planted if p.scenario == "readded"]
    assert len({p.path for p in readded}) == 1 and len({p.commit for p in readded}) == 2
    merged = next(p for p in small.planted if p.scenario == "branch_merged")
    assert merged.ref.startswith("topic/") and len(git(small.repo, "rev-list", "--parents", "-n1",
                                                        merged.commit).stdout.split()) == 2
    evil = next(p for p in small.planted if p.scenario == "merge_resolution")
    assert len(git(small.repo, "rev-list", "--parents", "-n1", evil.commit).stdout.split()) == 3  # a merge
    assert not next(p for p in small.planted if p.scenario == "removed").still_at_tip
    unmerged = next(p for p in small.planted if p.scenario == "branch_unmerged")
    assert git(small.repo, "branch", "--contains", unmerged.commit).stdout.split() == [unmerged.ref.encode()]
    tag_only = next(p for p in small.planted if p.scenario == "tag_only")
    assert git(small.repo, "branch", "--contains", tag_only.commit).stdout == b""
    assert git(small.repo, "tag", "--contains", tag_only.commit).stdout.strip() == tag_only.ref.encode()


def test_pairs_are_distinct_random_and_never_placeholders(small: Manifest) -> None:
    pairs = small.pairs
    assert len(pairs) == 10 and len({s for s, _ in pairs}) == len({t for _, t in pairs}) == 10
    for sid, tok in pairs:
        assert sid.startswith("AC") and len(sid) == 34 and len(tok) == 32
        assert not is_placeholder(sid[2:]) and not is_placeholder(tok) and len(set(tok)) >= 6 and tok != sid[2:]


def test_refs_include_branches_and_both_kinds_of_tags(small: Manifest) -> None:
    refs = small.refs
    assert "refs/heads/main" in refs and sum(r.startswith("refs/heads/") for r in refs) == 4  # main + 3
    assert not any(r.startswith("refs/heads/_synth") for r in refs)
    kinds = {git(small.repo, "cat-file", "-t", r).stdout.strip() for r in refs if r.startswith("refs/tags/")}
    assert kinds == {b"tag", b"commit"}  # annotated and lightweight
    assert git(small.repo, "rev-list", "--all", "--merges").stdout.strip()


@pytest.mark.parametrize("kw", [{"seed": 1},
                                {"seed": 2, "bare": True, "decoys": False, "branches": 0, "tags": 0},
                                {"seed": 3, "pairs": 30, "files": 20},
                                {"seed": 4, "branches": 5, "tags": 4, "pairs": 15}])
def test_manifest_equals_brute_force_reference(tmp_path: Path, kw: dict) -> None:
    m = generate(tmp_path / "repo", commits=150, **kw)
    assert brute_force_occurrences(m.repo, m.pairs) == m.occurrences()
    assert pairs_at_tips(m.repo, m.pairs) == {(p.client_id, p.client_secret) for p in m.planted if p.still_at_tip}
    assert len(m.planted) >= len(m.pairs) == kw.get("pairs", 10)


def test_the_generators_banlist_is_the_detectors(small: Manifest) -> None:
    """The synthetic history keeps its own copy of the banned extensions; it must say what the YAML says."""
    paths = {p.path for p in small.planted} | {d.path for d in small.decoys} | {
        "a.md", "b.HTML~", "yarn.lock", "c.scss", ".md", "d.markdown", "e.htm", "f.py", "Makefile", "docs.md/x.py",
        "p.xhtml2", "q.storyboardc", "r.xib", "s.mdx", "t.css~"}
    assert {p: banned(p) for p in paths} == {p: banned_by_the_yaml(p) for p in paths}


def test_decoys_are_present_and_yield_nothing(small: Manifest) -> None:
    kinds = Counter(d.kind for d in small.decoys)
    assert {"sid_alone", "token_alone", "placeholder_pair", "low_entropy_token", "token_equals_sid", "binary",
            "sid_in_longer_run", "uppercase_sid", "template", "banned_md", "banned_html", "banned_lock"} <= set(kinds)
    assert kinds["md5"] >= 2
    # real-looking pairs in files that are never scanned: a banned type, a binary blob
    skipped = [(d.client_id, d.client_secret) for d in small.decoys
               if d.kind.startswith("banned_") or d.kind == "binary"]
    assert len(skipped) == 4 and brute_force_occurrences(small.repo, skipped) == set()
    for d in small.decoys:
        blob = git(small.repo, "show", f"HEAD:{d.path}").stdout
        if d.kind in ("sid_in_longer_run", "uppercase_sid", "template", "token_alone"):
            assert not re.search(rb"\bAC[0-9a-f]{32}\b", blob), d  # no SID as SPEC §3 defines one
        for s in (d.client_id, d.client_secret):
            assert s is None or s.lower().encode() in blob.lower(), d
        assert not any(sid.encode() in blob for sid, _ in small.pairs)


def test_generation_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    a, b = (generate(tmp_path / n, commits=150, seed=5) for n in ("a", "b"))
    c = generate(tmp_path / "c", commits=150, seed=6)
    assert a.refs == b.refs and a.planted == b.planted and a.decoys == b.decoys
    assert a.refs["refs/heads/main"] != c.refs["refs/heads/main"] and a.pairs != c.pairs


def test_manifest_json_round_trip(small: Manifest) -> None:
    assert Manifest.from_json(small.to_json()) == small


def test_bad_parameters_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="too few"):
        generate(tmp_path / "few", commits=10, pairs=10)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(FileExistsError):
        generate(tmp_path / "full", commits=100)


def test_cli_writes_the_manifest_beside_the_repository(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "auditor.testing.history", str(tmp_path / "demo"), "--commits", "80", "--pairs", "3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    m = Manifest.from_json((tmp_path / "demo.manifest.json").read_text())
    assert m.commits == 80 and len(m.pairs) == 3 and "80 commits" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "auditor.testing.history", str(tmp_path / "demo2"), "--commits", "80",
                           "--pairs", "3", "--bare", "--manifest", "-"], capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout)["commits"] == 80
    bad = subprocess.run([*cmd[:3], str(tmp_path / "demo3"), "--commits", "5"], capture_output=True, text=True,
                         check=False)
    assert bad.returncode == 2 and "too few" in bad.stderr


@pytest.mark.slow
def test_five_thousand_commits(tmp_path: Path) -> None:
    """Scale tests build 5k-commit histories in CI: what the manifest says of itself is what git finds there."""
    m = generate(tmp_path / "big", commits=5000, files=300, pairs=20)
    assert m.commits == 5000 and len(m.pairs) == 20
    assert len(git(m.repo, "rev-list", "--all").stdout.split()) == 5000
    refs = git(m.repo, "for-each-ref", "--format=%(refname) %(objectname)").stdout.decode().split("\n")
    assert dict(line.split() for line in refs if line) == m.refs
    for p in m.planted[::7]:  # a sample of the planted occurrences, read back from git
        blob = git(m.repo, "show", f"{p.commit}:{p.path}").stdout
        assert p.client_id.encode() in blob.split(b"\n")[p.line - 1] and p.client_secret.encode() in blob, p
