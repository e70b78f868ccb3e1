"""The detection workers' forkserver, booted the way workers must live — and as early as the command can tell it
will be needed: its interpreter then loads the workers' modules on a core that is idle while the command loads its
own (flask: the forkserver's 0.13 s of imports leave the critical path).

Light on purpose: the command imports it before anything heavy (no pygit2, no detectors).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Iterable
from multiprocessing import forkserver

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


def early(repos: Iterable[str]) -> None:
    """Boot the forkserver now if one of the local ``repos`` (paths as the user gave them) will need workers; a
    URL, a path that is not plainly a repository, or a small one leave it to the pool (``DetectionPool``)."""
    for repo in repos:
        for git_dir in (os.path.join(repo, ".git"), repo):
            if os.path.isdir(os.path.join(git_dir, "objects")):
                if holds_objects(git_dir, BATCH):
                    context()
                    return
                break


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
