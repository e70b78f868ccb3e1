"""The ``git log --raw`` process that streams every commit's changes (``changes`` reads it), and one started for a
repository before the command has loaded: git then computes the changes on the core the command's imports leave
idle (flask: 0.15 s of git's CPU off the critical path).

Light on purpose (standard library only): ``detection.boot`` starts the early one before anything heavy loads.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import shutil
import subprocess
from collections.abc import Sequence

from auditor.git.env import GIT_ENV

# git log reads trees through delta chains of small objects: an 8 MiB delta-base cache (96 by default) halves
# its heap on git/git (152 → 47 MiB) at no measurable cost
LOG_CACHE = ("-c", "core.deltaBaseCacheLimit=8m")

_early: dict[str, subprocess.Popen[bytes]] = {}  # realpath of a git dir → its log of every ref, started early


def start(git: str, git_dir: str, commits: Sequence[bytes] | None = None) -> subprocess.Popen[bytes]:
    """git's changes of ``commits`` (raw ids, written to its stdin), or of every ref and HEAD when None, against
    each commit's first parent, NUL-separated (``changes.batches`` parses them). OSError when git cannot start."""
    which = ["--all"] if commits is None else ["--no-walk=unsorted", "--stdin"]
    proc = subprocess.Popen(
        [git, *LOG_CACHE, "--git-dir", git_dir, "log", *which, "-z", "--raw", "--no-abbrev", "--no-renames",
         "--no-ext-diff", "--no-textconv", "--root", "--diff-merges=first-parent", "--ignore-submodules=none",
         "--format=%x01%H %P"],
        stdin=subprocess.PIPE if commits is not None else subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, env=GIT_ENV)
    try:  # 1 MiB instead of 64 KiB: git writes ahead while the listing thread holds the GIL (flask: -4 % wall)
        fcntl.fcntl(proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)  # type: ignore[union-attr]
    except (OSError, AttributeError):  # not Linux
        pass
    if commits is not None:
        try:
            proc.stdin.write(b"".join(c.hex().encode() + b"\n" for c in commits))  # type: ignore[union-attr]
            proc.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
    return proc


def start_early(git_dir: str) -> None:
    """Start the log of every ref of ``git_dir`` now, for the scan to take (``take_early``); one the scan does not
    take (a rerun reads only new commits) is stopped at exit."""
    git = shutil.which("git")
    key = os.path.realpath(git_dir)
    if git is None or key in _early:
        return
    try:
        _early[key] = start(git, git_dir)
    except OSError:
        return
    if len(_early) == 1:
        atexit.register(_stop_untaken)


def take_early(git_dir: str) -> subprocess.Popen[bytes] | None:
    """The log of every ref of ``git_dir`` started early, if one was: the caller owns it from now on."""
    return _early.pop(os.path.realpath(git_dir), None)


def early_fds() -> list[int]:
    """The read ends of the early logs no scan has taken yet (a forked worker closes them: only the scan reads)."""
    return [p.stdout.fileno() for p in _early.values() if p.stdout is not None]


def _stop_untaken() -> None:
    for proc in _early.values():
        proc.kill()
        proc.wait()
    _early.clear()
