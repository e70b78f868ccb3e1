"""detection.pool: the process pool survives a worker that dies, whenever it dies, and loses no blob.

A real pool (forkserver workers) on a real repository; a worker is killed with SIGKILL as the OOM killer would.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from auditor.detection.pool import DetectionPool
from auditor.detectors import load_detectors
from tests.helpers.git import bulk_repo, run_git
from tests.helpers.procs import wait_for


def _text_blobs(repo: Path) -> list[bytes]:
    listing = run_git(repo, "rev-list", "--all", "--objects").split("\n")
    return [bytes.fromhex(line.split(" ", 1)[0]) for line in listing if line.endswith(".txt")]


def _kill_one_worker(before: set) -> int:
    found = [p for p in multiprocessing.active_children() if p not in before and p.is_alive()]
    assert found, "no worker process found"
    os.kill(found[0].pid, signal.SIGKILL)
    wait_for(lambda: not found[0].is_alive(), 10, "the killed worker to die")
    return found[0].pid


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    bulk_repo(tmp_path / "repo", commits=6, per_commit=100, pairs=3)
    return tmp_path / "repo"


def test_a_worker_dying_between_batches_does_not_break_the_scan(repo: Path) -> None:
    """The pool must survive a worker that dies while no batch is in flight (the OOM killer picks its moment).

    The first batch is scanned to the end (its result consumed) before the kill, so no batch is in flight: the
    next submission meets a broken pool, which is restarted once, and every blob is still scanned exactly once."""
    items = _text_blobs(repo)
    assert len(items) == 600
    before = set(multiprocessing.active_children())
    pool = DetectionPool(str(repo / ".git"), load_detectors(), jobs=2)
    try:
        first = list(pool.scan(items[:256], batch_size=256))
        assert pool.restarts == 0
        _kill_one_worker(before)
        rest = list(pool.scan(items[256:], batch_size=256))
    finally:
        pool.terminate()
    results = first + rest
    scanned = sum(r.blobs_scanned for r in results)
    errors = [e for r in results for e in r.errors]
    assert scanned == len(items), errors
    assert errors == []  # nothing was in flight: nothing to report
    assert sum(len(r.candidates) for r in results) == 3
    assert pool.restarts == 1  # the idle death was met and the pool replaced, once


def test_a_worker_dying_after_the_last_batch_is_reported(tmp_path: Path) -> None:
    """Nothing is lost when a worker dies once every batch is done, and nothing fails either: closing the pool
    still notices, so the summary says it."""
    repo = tmp_path / "repo"
    bulk_repo(repo, commits=2, per_commit=100, pairs=1)
    items = _text_blobs(repo)
    before = set(multiprocessing.active_children())
    pool = DetectionPool(str(repo / ".git"), load_detectors(), jobs=2)
    try:
        results = list(pool.scan(items, batch_size=64))
        _kill_one_worker(before)
        pool.close()
    finally:
        pool.terminate()
    assert sum(r.blobs_scanned for r in results) == len(items)
    assert pool.died_idle and not pool.restarts
