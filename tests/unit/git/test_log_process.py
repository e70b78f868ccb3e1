"""git.log_process: git's output, written to a file, is read like a pipe — what was written so far, waiting while
the writer runs, the end only once it has exited and everything was read; and a git started early dies with the
command (it gets no SIGPIPE from a file)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from auditor.git.log_process import Log
from tests.helpers.git import GitRepo


def _writing(script: str) -> Log:
    fd, name = tempfile.mkstemp()
    os.unlink(name)
    return Log(subprocess.Popen(["sh", "-c", script], stdout=fd), fd, growing=True)


def test_a_slow_writer_is_read_as_it_writes_and_ends_only_when_it_has_exited() -> None:
    log = _writing("printf one; sleep 0.3; printf two; sleep 0.3; printf three")
    try:
        got, started = [], time.monotonic()
        while chunk := log.read(1 << 20):
            got.append((chunk, round(time.monotonic() - started, 1)))
        assert b"".join(c for c, _ in got) == b"onetwothree"
        assert [c for c, _ in got][0] == b"one" and got[-1][1] >= 0.6  # the end waited for the writer
        assert log.returncode == 0
    finally:
        log.close()


def test_what_a_writer_wrote_before_it_was_stopped_is_read_then_the_end() -> None:
    log = _writing("printf partial; exec sleep 30")
    try:
        assert log.read(4) == b"part"
        log.stop()
        assert log.read(100) == b"ial"
        assert log.read(100) == b"" and log.returncode not in (0, None)
    finally:
        log.close()
    assert log.fileno() == -1


EARLY = """
import sys, time
from auditor.git import log_process
log_process.start_early(sys.argv[1])
print(log_process._early[next(iter(log_process._early))].proc.pid, flush=True)
time.sleep(60)
"""


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_a_git_started_early_dies_with_the_command(tmp_path: Path) -> None:
    """git writing into a file would run on after a SIGKILLed command (no reader, no SIGPIPE): the kernel kills it
    with the command. The git here never ends by itself (a stand-in on PATH that sleeps)."""
    GitRepo(tmp_path / "repo").commit("one", {"a.txt": "a\n"})
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").write_text("#!/bin/sh\nexec sleep 60\n")
    (bin_dir / "git").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    command = subprocess.Popen([sys.executable, "-c", EARLY, str(tmp_path / "repo" / ".git")], env=env,
                               stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[3])
    try:
        git = int(command.stdout.readline())
        assert _state(git) not in ("gone", "Z")
        os.kill(command.pid, signal.SIGKILL)
        command.wait(timeout=10)
        deadline = time.monotonic() + 5
        while _state(git) not in ("gone", "Z") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _state(git) in ("gone", "Z")
    finally:
        command.kill()
        command.stdout.close()
        command.wait()
