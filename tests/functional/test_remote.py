"""``auditor scan URL``: the remote is mirrored (pygit2) into $AUDITOR_CACHE and the mirror is scanned.

Served for real: a ``file://`` URL, and ``git daemon`` on 127.0.0.1 speaking git:// (started per test, on a free
port, killed after). Findings must equal a local scan's, with the URL as ``repo``; a rerun fetches what is new and
prunes what was deleted; an unreachable URL exits 2 with a message and leaves no half-made mirror.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests.helpers.env import env
from tests.helpers.git import GitRepo, run_git
from tests.helpers.pairs import make_pair, snippet
from tests.helpers.procs import free_port
from tests.helpers.scan import Result, run_scan


def _scan(repo: Path | str, out: Path, *args: str, cache: Path, timeout: float = 120) -> Result:
    """A scan with its own mirror cache (and an XDG cache the test can prove untouched)."""
    return run_scan(repo, out, "--show-secrets", *args, timeout=timeout,
                    env={"AUDITOR_CACHE": str(cache), "XDG_CACHE_HOME": str(cache.parent / "xdg")})


def _occ(findings: list[dict[str, Any]]) -> set[tuple[str, str, int, str, str]]:
    return {(f["commit"], f["path"], f["line"], f["client_id"], f["client_secret"]) for f in findings}


def _refs(gitdir: Path) -> set[tuple[str, str]]:
    return {tuple(line.split(" ", 1)) for line in run_git(gitdir, "for-each-ref", "--format=%(objectname) %(refname)")
            .splitlines()}


def _mirrors(cache: Path) -> list[Path]:
    root = cache / "mirrors"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


class Origin(NamedTuple):
    work: GitRepo  # where commits are made
    bare: Path  # what is served: <srv>/origin.git
    pairs: dict[str, tuple[str, str]]


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    """A served bare repository: secrets on main, on a feature branch, and on a commit only a tag reaches."""
    work = GitRepo(tmp_path / "work")
    pairs = {k: make_pair() for k in ("main", "feature", "tagged")}
    work.commit(files={"app/settings.py": snippet(pairs["main"]), "README.txt": "hello\n"})
    work.commit(files={"README.txt": "hello again\n"})
    work("checkout", "-q", "-b", "feature")
    work.commit(files={"feature.cfg": snippet(pairs["feature"])})
    work("checkout", "-q", "main")
    work("checkout", "-q", "-b", "scratch")
    work.commit(files={"release.env": snippet(pairs["tagged"])})
    work("tag", "-a", "-m", "release", "v1.0")
    work("checkout", "-q", "main")
    work("branch", "-q", "-D", "scratch")
    bare = tmp_path / "srv" / "origin.git"
    bare.parent.mkdir()
    subprocess.run(["git", "clone", "-q", "--mirror", str(work), str(bare)], check=True, env=env(),
                   capture_output=True)
    run_git(bare, "remote", "remove", "origin")
    return Origin(work, bare, pairs)


@pytest.fixture
def daemon(tmp_path: Path, origin: Origin) -> Iterator[str]:
    """``git daemon`` serving <srv> on 127.0.0.1; yields the git:// URL of origin.git."""
    base = origin.bare.parent
    for _attempt in range(3):
        port = free_port()
        proc = subprocess.Popen(["git", "daemon", "--export-all", f"--base-path={base}", f"--port={port}",
                                 "--listen=127.0.0.1", "--reuseaddr", "--informative-errors", str(base)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env(),
                                start_new_session=True)
        deadline = time.monotonic() + 10
        ready = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    ready = True
                    break
            except OSError:
                time.sleep(0.05)
        if ready:
            break
        _stop(proc)
    else:
        pytest.fail("git daemon did not start")
    try:
        yield f"git://127.0.0.1:{port}/origin.git"
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    """Stop the daemon and the per-connection children it forked (its own process group)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=5)
            break
        except subprocess.TimeoutExpired:
            continue
    proc.communicate()


# -- tests -------------------------------------------------------------------------------------------------------

def _check_mirror_scan(tmp_path: Path, origin: Origin, url: str) -> tuple[Result, Path]:
    cache = tmp_path / "cache"
    local = _scan(origin.bare, tmp_path / "local", cache=cache)
    assert local.returncode == 1 and len(local.findings) == 3, local
    remote = _scan(url, tmp_path / "remote", cache=cache)
    assert remote.returncode == 1, remote
    assert _occ(remote.findings) == _occ(local.findings)
    assert {f["repo"] for f in remote.findings} == {url}
    assert remote.summary["commits_scanned"] == local.summary["commits_scanned"] == len(
        run_git(origin.bare, "rev-list", "--all").split()) == 4
    [mirror] = _mirrors(cache)  # under $AUDITOR_CACHE, nowhere else
    assert run_git(mirror, "rev-parse", "--is-bare-repository").strip() == "true"
    assert _refs(mirror) == _refs(origin.bare)  # every ref: branches and the annotated tag
    assert run_git(mirror, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    assert not (tmp_path / "xdg").exists()
    return remote, mirror


def test_file_url_is_mirrored_and_scanned(tmp_path: Path, origin: Origin) -> None:
    _check_mirror_scan(tmp_path, origin, f"file://{origin.bare}")


def test_git_daemon_url_is_mirrored_scanned_and_refetched(tmp_path: Path, origin: Origin, daemon: str) -> None:
    first, mirror = _check_mirror_scan(tmp_path, origin, daemon)
    assert {(f["client_id"], f["client_secret"]) for f in first.findings} == set(origin.pairs.values())

    # upstream moves on: a new secret on main, and the feature branch is deleted
    new = make_pair()
    new_commit = origin.work.commit(files={"deploy/prod.env": snippet(new)})
    origin.work("push", "-q", str(origin.bare), "main")
    run_git(origin.bare, "branch", "-q", "-D", "feature")
    cache = tmp_path / "cache"
    rerun = _scan(daemon, tmp_path / "remote", cache=cache)
    assert rerun.returncode == 1, rerun
    assert _mirrors(cache) == [mirror]  # the same mirror, fetched again
    assert _refs(mirror) == _refs(origin.bare)  # the new commit fetched, the deleted branch pruned
    local = _scan(origin.bare, tmp_path / "local2", cache=cache)
    assert _occ(rerun.findings) == _occ(local.findings)
    assert (new_commit, "deploy/prod.env", 1, *new) in _occ(rerun.findings)
    assert origin.pairs["feature"] not in {(f["client_id"], f["client_secret"]) for f in rerun.findings}
    assert rerun.summary["commits_scanned"] == len(run_git(origin.bare, "rev-list", "--all").split()) == 4
    assert rerun.summary["repos"][0]["commits_new"] == 1  # the store resumed: only the new commit read
    assert rerun.summary["blobs_scanned"] <= 1 + 3  # the new blob (+ the matched ones, re-read)


def _unreachable(kind: str, tmp_path: Path, daemon_url: str | None) -> str:
    if kind == "refused":
        return f"git://127.0.0.1:{free_port()}/origin.git"
    if kind == "no_such_path":
        return f"file://{tmp_path}/nothing-here.git"
    if kind == "not_exported":
        assert daemon_url is not None
        return daemon_url.replace("origin.git", "nope.git")
    return f"https://someone:hunter2-{secrets.token_hex(4)}@127.0.0.1:{free_port()}/origin.git"


@pytest.mark.parametrize("kind", ["refused", "no_such_path", "not_exported", "password_in_url"])
def test_unreachable_url_exits_2_with_a_message(tmp_path: Path, origin: Origin, daemon: str, kind: str) -> None:
    url = _unreachable(kind, tmp_path, daemon)
    cache = tmp_path / "cache"
    r = _scan(url, tmp_path / "out", cache=cache, timeout=60)
    assert r.returncode == 2, r
    assert "Traceback" not in r.stderr, r.stderr
    assert "cannot mirror" in r.stderr and "Check the URL" in r.stderr
    assert _mirrors(cache) == []  # no half-made mirror left behind
    if kind == "password_in_url":
        password = url.split(":", 2)[2].split("@", 1)[0]
        assert password not in r.stderr and password not in r.stdout
        assert "127.0.0.1" in r.stderr
    else:
        assert url in r.stderr


def test_a_damaged_mirror_is_reported_with_what_to_do(tmp_path: Path, origin: Origin, monkeypatch) -> None:
    from auditor.git import mirror as sources

    cache = tmp_path / "cache"
    url = f"file://{origin.bare}"
    monkeypatch.setenv("AUDITOR_CACHE", str(cache))
    broken = sources.mirror_path(url)
    broken.mkdir(parents=True)
    (broken / "HEAD").write_text("garbage\n")
    r = _scan(url, tmp_path / "out", cache=cache)
    assert r.returncode == 2, r
    assert "Traceback" not in r.stderr, r.stderr
    assert str(broken) in r.stderr and "Delete" in r.stderr
    # after following the advice, the same command works
    import shutil

    shutil.rmtree(broken)
    ok = _scan(url, tmp_path / "out", cache=cache)
    assert ok.returncode == 1 and len(ok.findings) == 3, ok
