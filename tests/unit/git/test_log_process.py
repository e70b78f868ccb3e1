"""git.log_process.Log: git's output, written to a file, is read like a pipe — what was written so far, waiting
while the writer runs, the end only once it has exited and everything was read."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time

from auditor.git.log_process import Log


def _writing(script: str) -> Log:
    fd, name = tempfile.mkstemp()
    os.unlink(name)
    return Log(subprocess.Popen(["sh", "-c", script], stdout=fd), fd)


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
