"""Which kind of ref reaches each commit (SPEC §11): a commit reachable from a branch, a tag or HEAD is the
project's; one reachable only from pull-request refs (``refs/pull/*`` on GitHub, ``refs/merge-requests/*`` on
GitLab) is a fork's contribution the host still serves; one reachable only from other refs (remote-tracking refs,
notes, the stash…) is neither. A researcher can then leave pull-request refs out of a denominator.

Two ``git rev-list`` walks over commits only (no tree, no blob: a partial clone's missing blobs are never fetched);
only the commits outside branches and tags are returned, usually a small minority.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping

from auditor.git.repository import GIT_ENV
from auditor.models import REACH

PULL_GLOBS = ("refs/pull/*", "refs/merge-requests/*", "refs/remotes/origin/pr/*")


def _rev_list(git_dir: str, *args: str) -> list[str]:
    proc = subprocess.run(["git", "--git-dir", git_dir, "rev-list", *args], env=GIT_ENV, capture_output=True,
                          check=False)
    if proc.returncode:
        raise OSError(proc.stderr.decode("utf-8", "replace").strip() or f"git rev-list exited {proc.returncode}")
    return proc.stdout.decode("ascii").split()


def classify(git_dir: str) -> dict[str, str]:
    """Hex id → REACH[1] or REACH[2], for every commit no branch, tag or HEAD reaches (the rest are REACH[0])."""
    head = subprocess.run(["git", "--git-dir", git_dir, "rev-parse", "--verify", "-q", "HEAD^{commit}"],
                          env=GIT_ENV, capture_output=True, check=False).returncode == 0
    project = ["--branches", "--tags", *(["HEAD"] if head else [])]
    outside = _rev_list(git_dir, "--all", "--not", *project)
    if not outside:
        return {}
    pulls = set(_rev_list(git_dir, *(f"--glob={g}" for g in PULL_GLOBS), "--not", *project))
    return {c: REACH[1] if c in pulls else REACH[2] for c in outside}


def counts(total: int, reach: Mapping[str, str]) -> dict[str, int]:
    """Commits per kind of ref (REACH order), from the commits scanned and the classification of the others."""
    others = [sum(1 for r in reach.values() if r == kind) for kind in REACH[1:]]
    return dict(zip(REACH, [total - sum(others), *others], strict=True))
