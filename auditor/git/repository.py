"""Opening a repository, and how auditor runs git on one: the errors that say what to do, the environment."""

from __future__ import annotations

from pathlib import Path

import pygit2

from auditor.errors import RepositoryError


def partial_clone(repo: pygit2.Repository) -> tuple[bool, bool]:
    """(whether the repository is a partial clone — cloned with ``--filter``, objects missing by design —, whether
    git would fetch what it lacks from a promisor remote). A fetching one is read by libgit2 only, which never
    fetches: an audit makes no network call."""
    try:
        fetches = any(e.name.lower() == "extensions.partialclone" or
                      (e.name.lower().startswith("remote.") and e.name.lower().endswith(".promisor"))
                      for e in repo.config)
        return fetches or any(Path(repo.path, "objects", "pack").glob("*.promisor")), fetches
    except (pygit2.GitError, OSError, ValueError):
        return False, False


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
