"""detection.pool: the process pool survives a worker that dies, whenever it dies, and loses no blob; workers forked
from the scanning process (``prefork``) scan what forkserver workers scan, and only where forking is safe.

A real pool on a real repository; a worker is killed with SIGKILL as the OOM killer would. What ``prefork`` does
depends on the threads of the whole process, so its tests run in a fresh interpreter of their own.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
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


PREFORK = """
import json, multiprocessing, os, signal, sys, threading, time
from auditor.detection import pool
from auditor.detectors import load_detectors

repo, blobs, kill = sys.argv[1], [bytes.fromhex(x) for x in sys.argv[2].split(",")], sys.argv[3] == "kill"
detectors = load_detectors()

def scan():
    p = pool.DetectionPool(repo, detectors, jobs=2)
    try:
        results = list(p.scan(blobs[:64], batch_size=64))  # the pool starts with this batch: adopts or forks
        used = sorted(w.pid for w in (p._pool._processes or {}).values())
        if kill:  # no batch in flight: the next submission meets a broken pool
            os.kill(used[0], signal.SIGKILL)
            while any(c.pid == used[0] for c in multiprocessing.active_children()):
                time.sleep(0.01)
        results += p.scan(blobs[64:], batch_size=64)
        restarts = p.restarts
    finally:
        p.close()
    found = sorted([c.blob, c.client_id] for r in results for c in r.candidates)
    return {"found": found, "scanned": sum(r.blobs_scanned for r in results), "used": used, "restarts": restarts,
            "errors": [e for r in results for e in r.errors]}

forked = pool.prefork(detectors, jobs=2, max_bytes=0, max_pairs=8)
children = sorted(c.pid for c in multiprocessing.active_children())
first = scan()
stop = threading.Event()
threading.Thread(target=stop.wait).start()  # now a thread runs: forking is no longer safe
declined = not pool.prefork(detectors, jobs=2, max_bytes=0, max_pairs=8)
second = scan()
stop.set()
print(json.dumps({"forked": forked, "children": children, "first": first, "declined": declined, "second": second}))
"""


def _prefork(repo: Path, kill: bool) -> dict:
    blobs = _text_blobs(repo)
    r = subprocess.run([sys.executable, "-c", PREFORK, str(repo / ".git"), ",".join(b.hex() for b in blobs),
                        "kill" if kill else "-"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    said = json.loads(r.stdout)
    assert said["first"]["scanned"] == said["second"]["scanned"] == len(blobs), said
    return said


def test_workers_forked_from_a_process_without_threads_scan_what_forkserver_workers_scan(repo: Path) -> None:
    """``prefork`` forks the workers from the calling process (its children, not a forkserver's), the pool adopts
    them, and they find exactly what forkserver workers find; once a thread runs, it declines."""
    said = _prefork(repo, kill=False)
    assert said["forked"] and said["declined"]
    assert said["children"] and said["first"]["used"] == said["children"]  # the pool ran on the forked ones
    assert not set(said["second"]["used"]) & set(said["children"])
    assert said["first"]["found"] == said["second"]["found"] and len(said["first"]["found"]) == 3
    assert said["first"]["errors"] == said["second"]["errors"] == []


def test_a_forked_worker_killed_mid_scan_is_replaced_and_nothing_is_lost(repo: Path) -> None:
    """A forked worker that dies breaks its pool like any other: the pool is restarted (from the forkserver, the
    scan has threads by then) and every blob is still scanned, once."""
    said = _prefork(repo, kill=True)
    assert said["forked"] and said["first"]["restarts"] == 1
    assert said["first"]["found"] == said["second"]["found"] and len(said["first"]["found"]) == 3
