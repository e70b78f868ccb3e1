"""A supervisor must never hang on us: when the scanning process is killed (SIGKILL) and its parent has not reaped it
yet — a supervisor that reads the output to its end before waiting, as ``Popen.communicate()`` after ``kill()``
does — the scan's helpers (the multiprocessing forkserver, its resource tracker, the detection workers and their
git readers) must let go of its stdout and stderr at once, although a zombie keeps the scan's pid alive."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from auditor.testing.history import generate

ENV = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}


def _tree(root: int) -> set[int]:
    """Every live descendant of ``root`` (from /proc)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parent[int(entry)] = int(fields[1])
    out, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parent.items() if ppid in frontier} - out
        out |= frontier
    return out


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("supervisor") / "repo"
    generate(repo, commits=20000, files=2000, pairs=8, seed=3)
    return repo


def _described(pid: int) -> str:
    """A process's state and command line, for a failure message."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        return f"{state} {command}"
    except OSError:
        return "gone"


def _cmd(repo: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "auditor", "scan", str(repo), "--out", str(out), "--no-validate", "--no-progress",
            "--jobs", "2"]


def _findings(out: Path) -> set[tuple]:
    rows = [json.loads(line) for line in (out / "findings.jsonl").read_text().splitlines()]
    return {(r["commit"], r["path"], r["line"], r["secret_sha256"]) for r in rows}


def test_sigkill_under_a_supervisor_that_reads_to_eof_first(history: Path, tmp_path: Path) -> None:
    whole = subprocess.run(_cmd(history, tmp_path / "whole"), capture_output=True, env=ENV, timeout=300)
    assert whole.returncode == 1, whole.stderr
    proc = subprocess.Popen(_cmd(history, tmp_path / "out"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    deadline = time.monotonic() + 60
    helpers: set[int] = set()
    while len(helpers) < 4 and proc.poll() is None and time.monotonic() < deadline:  # forkserver + 2 workers + git
        helpers = _tree(proc.pid)
        time.sleep(0.02)
    assert len(helpers) >= 4 and proc.poll() is None, "the scan ended before its workers could be seen"
    os.kill(proc.pid, signal.SIGKILL)
    eof = threading.Event()

    def read_to_eof() -> None:  # what a supervisor does before it waits
        with proc.stdout, proc.stderr:
            proc.stdout.read()
            proc.stderr.read()
        eof.set()

    threading.Thread(target=read_to_eof, daemon=True).start()
    reached = eof.wait(timeout=15)
    lingering = {pid for pid in helpers if _described(pid)[0] not in "gZ"}  # neither gone nor a zombie
    proc.wait(timeout=30)  # only now is the scan reaped
    assert reached, f"stdout/stderr still held open 15 s after the scan was killed; by {sorted(lingering)}"
    time.sleep(2)
    left = {pid: said for pid in helpers if (said := _described(pid)) != "gone"}
    assert not left, f"helpers of the killed scan still run: {left}"
    rerun = subprocess.run(_cmd(history, tmp_path / "out"), capture_output=True, env=ENV, timeout=300)
    assert rerun.returncode == 1, rerun.stderr
    assert _findings(tmp_path / "out") == _findings(tmp_path / "whole")
