"""A REPO argument → the path of a git directory to scan; remote URLs are mirrored into a cache first."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pygit2

from auditor.errors import RepositoryError

_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")


def is_remote(arg: str) -> bool:
    return "://" in arg or bool(_SCP_LIKE.match(arg))


def cache_dir() -> Path:
    base = os.environ.get("AUDITOR_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                          os.path.expanduser("~/.cache"), "auditor")
    return Path(base) / "mirrors"


def mirror(url: str) -> Path:
    """Clone (or update) a bare mirror of every ref of ``url``; a rerun fetches only what is new."""
    dest = cache_dir() / (hashlib.sha256(url.encode()).hexdigest()[:16] + ".git")
    try:
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            repo = pygit2.init_repository(str(dest), bare=True)
            repo.remotes.create("origin", url, "+refs/*:refs/*")
        else:
            repo = pygit2.Repository(str(dest))
        repo.remotes["origin"].fetch(prune=pygit2.enums.FetchOption.PRUNE)
    except (pygit2.GitError, OSError, KeyError) as e:
        raise RepositoryError(f"{url}: cannot mirror the remote repository ({e}). Check the URL and that it is "
                              "reachable, or clone it yourself and pass the local path.") from None
    return dest


def resolve(arg: str) -> str:
    """The local path to open for ``arg``."""
    return str(mirror(arg)) if is_remote(arg) else arg
