"""A REPO argument → the path of a git directory to scan; remote URLs are mirrored into a cache first.

The cache (``$AUDITOR_CACHE/mirrors``, else ``$XDG_CACHE_HOME/auditor/mirrors``, else ``~/.cache/auditor/mirrors``)
holds one bare mirror per URL, named by a hash of the URL. Every ref of the remote (``+refs/*:refs/*``:
branches, tags, notes, pull-request refs…) is fetched, refs deleted upstream are pruned, and HEAD follows the
remote's default branch, so the mirror's ``git rev-list --all`` is the remote's. A rerun fetches only what is new.

A first clone is made in a temporary directory and renamed into place only once complete, so an interrupted or
failed clone never leaves a half-made mirror behind; a lock file serialises runs that mirror the same URL.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pygit2

from auditor.errors import RepositoryError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: runs are not serialised
    fcntl = None

_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")
_USERINFO = re.compile(r"^([a-zA-Z][\w+.-]*://)[^/@]*@")
REFSPEC = "+refs/*:refs/*"
# No pygit2.settings.server_connect_timeout: with libgit2 1.9 it leaves git:// sockets non-blocking and every fetch
# fails with "error receiving data from socket: Resource temporarily unavailable" (tests/test_remote.py).


def is_remote(arg: str) -> bool:
    return "://" in arg or bool(_SCP_LIKE.match(arg))


def display(url: str) -> str:
    """``url`` without the password or token of its user-info part: safe for messages."""
    return _USERINFO.sub(lambda m: m.group(1) + "***@", url)


def cache_dir() -> Path:
    base = os.environ.get("AUDITOR_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                          os.path.expanduser("~/.cache"), "auditor")
    return Path(base) / "mirrors"


def mirror_path(url: str) -> Path:
    """Where the mirror of ``url`` lives (whether or not it exists yet)."""
    return cache_dir() / (hashlib.sha256(url.encode()).hexdigest()[:16] + ".git")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+b") as fh:
        if fcntl is not None:
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _fetch(repo: pygit2.Repository, url: str) -> None:
    """Fetch every ref of origin (pruning deleted ones), then point HEAD at the remote's default branch."""
    remote = repo.remotes["origin"]
    if remote.url != url:
        repo.remotes.set_url("origin", url)
        remote = repo.remotes["origin"]
    remote.fetch([REFSPEC], prune=pygit2.enums.FetchPrune.PRUNE)
    try:
        heads = remote.list_heads(connect=False)  # still available after the fetch's connection closed
    except pygit2.GitError:
        return
    for head in heads:
        if head.name == "HEAD" and head.symref_target and head.symref_target.startswith("refs/"):
            repo.references.create("HEAD", head.symref_target, force=True)
            return


def mirror(url: str) -> Path:
    """Clone (or update) a bare mirror of every ref of ``url``; a rerun fetches only what is new."""
    dest = mirror_path(url)
    shown = display(url)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RepositoryError(f"{dest.parent}: cannot create the mirror cache ({e.strerror or e}). Set "
                              "AUDITOR_CACHE to a directory you can write to.") from None
    with _locked(dest.with_name(dest.name + ".lock")):
        for stale in dest.parent.glob(dest.name + ".tmp-*"):  # left by a run that was killed mid-clone
            shutil.rmtree(stale, ignore_errors=True)
        try:
            if dest.exists():
                try:
                    repo = pygit2.Repository(str(dest))
                    repo.remotes["origin"]
                except (pygit2.GitError, KeyError):
                    raise RepositoryError(f"{dest}: the cached mirror of {shown} is damaged. Delete that directory "
                                          "and rerun to mirror the repository afresh.") from None
                _fetch(repo, url)
            else:
                tmp = dest.with_name(f"{dest.name}.tmp-{os.getpid()}")
                try:
                    repo = pygit2.init_repository(str(tmp), bare=True)
                    repo.remotes.create("origin", url, REFSPEC)
                    _fetch(repo, url)
                    del repo
                    os.rename(tmp, dest)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
        except (pygit2.GitError, OSError, ValueError) as e:
            detail = str(e).replace(url, shown)
            raise RepositoryError(f"{shown}: cannot mirror the remote repository ({detail}). Check the URL and that "
                                  "it is reachable, or clone it yourself and pass the local path.") from None
    return dest


def resolve(arg: str) -> str:
    """The local path to open for ``arg``."""
    return str(mirror(arg)) if is_remote(arg) else arg
