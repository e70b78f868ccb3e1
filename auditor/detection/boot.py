"""What a scan starts before the command has loaded (light: imported first, before pygit2 or the detectors): git's
changes of the repository (``git log --raw``), on the core the command's imports leave idle — the detection
workers are then forked from the command once it has loaded (``pool.prefork``), so nothing else needs that core.
And the forkserver that workers come from when they cannot be forked (a pool restarted mid-scan, a caller with
threads).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Iterable
from multiprocessing import forkserver

from auditor.git import log_process

BATCH = 256  # blob ids per task: a repository with fewer objects is scanned in the scan's own process
PRELOAD = "auditor.detection.pool"  # what every worker is a fork of a process that has already imported


def context() -> multiprocessing.context.ForkServerContext:
    """The workers' context, the forkserver started (workers never inherit the parent's threads — tqdm, asyncio —
    or open repository handles)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([PRELOAD])
    if threading.current_thread() is threading.main_thread():
        _start_forkserver()
    return ctx


def needs_workers(repos: Iterable[str]) -> str | None:
    """The git directory of the first of the local ``repos`` (paths as the user gave them) that holds more objects
    than one batch has blobs; None when none does (a URL, a path that is not plainly a repository, small ones)."""
    for repo in repos:
        for git_dir in (os.path.join(repo, ".git"), repo):
            if os.path.isdir(os.path.join(git_dir, "objects")):
                if holds_objects(git_dir, BATCH):
                    return git_dir
                break
    return None


def early(repos: Iterable[str], first_scan: bool) -> None:
    """Start git's changes of every ref of the repository that will need workers, if one does and this is its
    ``first_scan`` (no store yet: a rerun asks git for its new commits only)."""
    git_dir = needs_workers(repos) if first_scan else None
    if git_dir is not None and not _may_fetch(git_dir):
        log_process.start_early(git_dir)


def _may_fetch(git_dir: str) -> bool:
    """Whether git might fetch from a promisor remote in this repository (a partial clone's configuration, or a
    configuration this cannot read plainly): the scan reads such a repository with libgit2 only, which never
    fetches (``repository.partial_clone``), so git is not started for it early either."""
    try:
        with open(os.path.join(git_dir, "config"), "rb") as fh:
            text = fh.read().lower()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return any(word in text for word in (b"partialclone", b"promisor", b"include"))


def holds_objects(git_dir: str, least: int) -> bool:
    """Whether the repository at ``git_dir`` holds at least ``least`` objects (the object counts of its pack
    indexes, then its loose objects; True when that cannot be told): fewer objects, fewer blobs to scan."""
    objects = os.path.join(git_dir, "objects")
    total = 0
    try:
        if os.path.exists(os.path.join(objects, "info", "alternates")):
            return True
        pack = os.path.join(objects, "pack")
        for name in os.listdir(pack) if os.path.isdir(pack) else ():
            if name.endswith(".idx"):
                with open(os.path.join(pack, name), "rb") as fh:
                    head = fh.read(8 + 256 * 4)
                fanout = 8 if head[:4] == b"\xfftOc" else 0  # version 2 (a magic and a version first), or version 1
                total += int.from_bytes(head[fanout + 255 * 4:fanout + 256 * 4], "big")
        for name in os.listdir(objects):
            if total >= least:
                break
            if len(name) == 2:
                total += len(os.listdir(os.path.join(objects, name)))
    except OSError:
        return True
    return total >= least


def _start_forkserver() -> None:
    """Start the forkserver (and multiprocessing's resource tracker) the way workers must live.

    Ctrl-C reaches the whole process group: the scan's main process handles it (and stops the pool); a forkserver
    started ignoring SIGINT keeps ignoring it, as do the workers it forks, instead of printing tracebacks mid-import.
    Its stdout and stderr are /dev/null: a worker being forked while the scan stops may fail to unpickle its
    arguments, and neither that nor any worker may hold a supervisor's pipes open after the scan is gone. (A
    restart from another thread finds the forkserver running.)
    """
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        forkserver.ensure_running()
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)
        signal.signal(signal.SIGINT, previous)
