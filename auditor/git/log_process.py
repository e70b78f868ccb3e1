"""The ``git log --raw`` process that streams every commit's changes (``changes`` reads it), and one started for a
repository before the command has loaded: git then computes the changes on the core the command's imports leave
idle.

The early one writes into an unlinked temporary file, read as it grows, not into a pipe: a pipe holds 1 MiB, and
git would then wait for this process, which reads late while it loads and lists the commits (flask −5.5 % wall,
20k synthetic commits −5.4 %, paired). A file gives git no SIGPIPE when the command dies, so the kernel kills it
then (``PR_SET_PDEATHSIG``, armed while the command has no thread yet). Others (a rerun's, one started once the
scan has threads) write into a pipe, as they always did.

Light on purpose (standard library only): ``detection.boot`` starts the early one before anything heavy loads.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence

from auditor.git.env import GIT_ENV

# git log reads trees through delta chains of small objects: an 8 MiB delta-base cache (96 by default) halves
# its heap on git/git (152 → 47 MiB) at no measurable cost
LOG_CACHE = ("-c", "core.deltaBaseCacheLimit=8m")
WAIT = 0.002  # seconds between looks at a file git has not written more to yet


class Log:
    """One running ``git log --raw``: ``read`` answers like a pipe's (what git wrote since, waiting while git runs;
    b"" once it has ended and all was read), whether git writes into a pipe or a ``growing`` file."""

    def __init__(self, proc: subprocess.Popen[bytes], fd: int, *, growing: bool) -> None:
        self.proc, self._fd, self._growing, self._at = proc, fd, growing, 0

    def read(self, size: int) -> bytes:
        if not self._growing:
            return os.read(self._fd, size)
        while True:
            ended = self.proc.poll() is not None  # looked at first: what it wrote before ending is read below
            data = os.pread(self._fd, size, self._at)
            if data or ended:
                self._at += len(data)
                return data
            time.sleep(WAIT)

    def fileno(self) -> int:
        return self._fd

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def stop(self) -> None:
        """git ends now (an abandoned scan must not leave it running)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        self.stop()
        if self._fd >= 0:
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            else:
                os.close(self._fd)
            self._fd = -1


def start(git: str, git_dir: str, commits: Sequence[bytes] | None = None, *,
          early: Callable[[], None] | None = None) -> Log:
    """git's changes of ``commits`` (raw ids, written to its stdin), or of every ref and HEAD when None, against
    each commit's first parent, NUL-separated (``changes.batches`` parses them). ``early``: into a file, git killed
    with this process by this function (``_dies_with_this_process``; only while this process runs one thread).
    OSError when git cannot start."""
    which = ["--all"] if commits is None else ["--no-walk=unsorted", "--stdin"]
    argv = [git, *LOG_CACHE, "--git-dir", git_dir, "log", *which, "-z", "--raw", "--no-abbrev", "--no-renames",
            "--no-ext-diff", "--no-textconv", "--root", "--diff-merges=first-parent", "--ignore-submodules=none",
            "--format=%x01%H %P"]
    stdin = subprocess.PIPE if commits is not None else subprocess.DEVNULL
    if early is not None:
        fd, name = tempfile.mkstemp(prefix="auditor-changes-")
        os.unlink(name)
        try:
            proc = subprocess.Popen(argv, stdin=stdin, stdout=fd, stderr=subprocess.DEVNULL, env=GIT_ENV,
                                    preexec_fn=early)
        except OSError:
            os.close(fd)
            raise
        log = Log(proc, fd, growing=True)
    else:
        proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=GIT_ENV)
        try:  # 1 MiB instead of 64 KiB: git writes ahead while the listing thread holds the GIL (flask: -4 % wall)
            fcntl.fcntl(proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)  # type: ignore[union-attr]
        except (OSError, AttributeError):  # not Linux
            pass
        log = Log(proc, proc.stdout.fileno(), growing=False)  # type: ignore[union-attr]
    if commits is not None:
        try:
            proc.stdin.write(b"".join(c.hex().encode() + b"\n" for c in commits))  # type: ignore[union-attr]
            proc.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
    return log


def _dies_with_this_process() -> Callable[[], None] | None:
    """What git runs before it starts (Linux): the kernel kills it when this process dies, as a pipe's SIGPIPE
    would have; None where prctl is not there."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes  # noqa: PLC0415 - only for an early start, on Linux

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError, ImportError):
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # this process died before that: git must not start at all
            os._exit(1)

    return arm


_early: dict[str, Log] = {}  # realpath of a git dir → its log of every ref, started early


def start_early(git_dir: str) -> None:
    """Start the log of every ref of ``git_dir`` now, for the scan to take (``take_early``); one the scan does not
    take (a rerun reads only new commits) is stopped at exit."""
    git = shutil.which("git")
    key = os.path.realpath(git_dir)
    arm = _dies_with_this_process()
    if git is None or key in _early or arm is None:  # no way to stop git with this process: it starts later
        return
    try:
        _early[key] = start(git, git_dir, early=arm)
    except OSError:
        return
    if len(_early) == 1:
        atexit.register(_stop_untaken)


def take_early(git_dir: str) -> Log | None:
    """The log of every ref of ``git_dir`` started early, if one was: the caller owns it from now on."""
    return _early.pop(os.path.realpath(git_dir), None)


def early_fds() -> list[int]:
    """The files of the early logs no scan has taken yet (a forked worker closes them: only the scan reads)."""
    return [log.fileno() for log in _early.values()]


def _stop_untaken() -> None:
    for log in _early.values():
        log.close()
    _early.clear()
