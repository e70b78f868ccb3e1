"""Processes as /proc shows them (to find a scan's workers — its forks, or its forkserver's children — and to see
them gone), waiting on a condition, and cleaning up a process group the test started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """Running (not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        return False


def ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _parents() -> dict[int, int]:
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit() and (p := ppid(int(d))) is not None:
            out[int(d)] = p
    return out


def children(pid: int) -> list[int]:
    return [c for c, p in _parents().items() if p == pid]


def descendants(pid: int) -> list[int]:
    parents = _parents()
    out, frontier = [], [pid]
    while frontier:
        frontier = [c for c, p in parents.items() if p in frontier]
        out.extend(frontier)
    return out


def forkservers(pid: int) -> list[int]:
    """The multiprocessing forkservers a scan started (its detection workers are their children)."""
    return [c for c in descendants(pid) if "forkserver" in cmdline(c)]


def forks(pid: int) -> list[int]:
    """Live children of ``pid`` that are forks of it (its command line): the detection workers a scan forked."""
    me = cmdline(pid)
    return [c for c in children(pid) if alive(c) and cmdline(c) == me]


def workers(pid: int) -> list[int]:
    """Live detection workers of the scan ``pid``: its own forks, or children of its forkserver."""
    return forks(pid) + [w for s in forkservers(pid) for w in children(s) if alive(w)]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.005) -> Any:
    """Poll ``predicate`` until it is truthy (its value is returned) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL the process group this test started (the scan, its forkserver and its workers)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()


def free_port() -> int:
    """A port nothing listened on a moment ago (another process could take it before the test uses it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
