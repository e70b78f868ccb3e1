"""Batches of raw blob ids → BlobScan results, in worker processes (one machine).

Each worker opens its own repository (a ``BatchScanner``: pygit2 and a git reader) and compiles the detectors
once (pool initializer); only raw ids cross the process boundary, and only candidates come back, so the parent
never touches blob bytes. Names are judged in the parent (the blob feed), never here.
"""

from __future__ import annotations

import atexit
import itertools
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import reduction

from auditor.detection import boot
from auditor.detection.batch import BatchScanner
from auditor.detection.boot import BATCH, holds_objects
from auditor.detectors.spec import Detector
from auditor.models import BlobScan

_scanner: BatchScanner | None = None


def _watch_parent(fd: int) -> None:
    """End this worker once the scanning process is gone. ``fd`` is the read end of a pipe whose only write end
    the scanning process holds: it reads EOF the moment that process dies, even while a supervisor that has not
    reaped it keeps its pid alive as a zombie (watching the pid would wait forever then)."""
    try:
        while os.read(fd, 1):
            pass
    except OSError:
        pass
    if _scanner is not None:
        _scanner.close()
    os._exit(1)


def _init(repo_path: str, detectors: Sequence[Detector], max_bytes: int, max_pairs: int, use_git: bool,
          lifeline: int) -> None:
    global _scanner
    # Ctrl-C goes to the parent, which stops the pool; workers must not each print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A survivor of a pool broken by a killed sibling dies on its closed queue with a traceback that only
    # alarms; every real failure of a task reaches the parent through its future.
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the worker
    threading.Thread(target=_watch_parent, args=(lifeline,), daemon=True).start()
    _scanner = BatchScanner(repo_path, detectors, max_bytes=max_bytes, max_pairs=max_pairs, use_git=use_git)
    atexit.register(_scanner.close)


def scan_batch(batch: Sequence[bytes]) -> BlobScan:
    """Read and scan each blob of the batch; failures are counted, never raised."""
    assert _scanner is not None, "scan_batch runs only in a pool worker"
    return _scanner.scan(batch)


def batched(items: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class _Lifeline:
    """A pipe's read end, handed to each worker as its own descriptor (multiprocessing duplicates it through the
    forkserver): ``_init`` receives a plain fd number."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple:
        return _detach, (reduction.DupFd(self.fd),)


def _detach(dup: object) -> int:
    return dup.detach()


RESTARTS = 3  # of a pool whose workers cannot be started, in a row, before the scan fails


class DetectionPool:
    """A process pool bound to one repository; ``scan`` streams results in completion order.

    A worker that dies (killed, out of memory) breaks the pool: it is restarted and the batches that were in
    flight are scanned again, then blob by blob; a blob that still kills a worker is reported as an error.
    """

    def __init__(self, repo_path: str, detectors: Sequence[Detector], *, jobs: int | None = None,
                 max_bytes: int = 0, max_pairs: int = 8, use_git: bool = True) -> None:
        self.jobs = jobs or os.cpu_count() or 1
        # The write end stays in this process alone (os.pipe() fds are not inherited by git or anything else).
        self._lifeline, self._lifeline_w = os.pipe()
        self._initargs = (repo_path, tuple(detectors), max_bytes, max_pairs, use_git, _Lifeline(self._lifeline))
        self.restarts = 0
        self.died_idle = False  # a worker died with no batch in flight and no batch left to give: nothing lost
        self._pool: ProcessPoolExecutor | None = None  # started with the first full batch (``scan``)
        if holds_objects(repo_path, BATCH):  # room for more than one batch: the forkserver boots while git lists
            self._context()

    def _context(self) -> multiprocessing.context.ForkServerContext:
        return boot.context()

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.jobs, mp_context=self._context(),
                                   initializer=_init, initargs=self._initargs)

    def scan(self, blobs: Iterable[bytes], batch_size: int = BATCH) -> Iterator[BlobScan]:
        """Submit batches of raw blob ids as enumeration yields them, keeping a few per worker in flight (bounded
        memory).

        Workers start with the first full batch (the forkserver boots earlier, with the pool, in a repository that
        holds more objects than one batch has blobs). When the first batch is also the last (a small repository, a
        rerun after a few commits), one worker would scan it alone while this process waits for it: this process
        scans it instead, the same way (``BatchScanner``), and no worker starts."""
        batches = batched(blobs, batch_size)
        first = next(batches, None)
        if first is not None and len(first) < batch_size:
            path, detectors, max_bytes, max_pairs, use_git, _ = self._initargs
            scanner = BatchScanner(path, detectors, max_bytes=max_bytes, max_pairs=max_pairs, use_git=use_git)
            try:
                yield scanner.scan(first)
            finally:
                scanner.close()
            return
        if self._pool is None and first is not None:
            self._pool = self._start()
        inflight: dict[Future[BlobScan], tuple[list[bytes], int]] = {}

        def submit(batch: list[bytes], tries: int) -> None:
            # A worker died while idle: restart, the in-flight batches go again. Submitting may also spawn a
            # replacement worker while the pool is being torn down, which fails on its closed queue, or find the
            # forkserver gone (it ends when a worker's start fails midway, and a restart may not see it gone yet):
            # OSError. A few restarts, each a little later, before giving up.
            pending = [(batch, tries)]
            for attempt in range(RESTARTS + 1):
                try:
                    while pending:
                        assert self._pool is not None
                        inflight[self._pool.submit(scan_batch, pending[-1][0])] = pending[-1]
                        pending.pop()
                    return
                except (BrokenProcessPool, OSError):
                    if attempt == RESTARTS:
                        raise
                    time.sleep(0.05 * attempt)
                    pending = self._restart(inflight) + pending

        def drain(block_until: int) -> Iterator[BlobScan]:
            while len(inflight) > block_until:
                done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                broken: list[tuple[list[bytes], int]] = []
                for f in done:
                    batch, tries = inflight.pop(f)
                    try:
                        yield f.result()
                    except BrokenProcessPool:
                        broken.append((batch, tries))
                if broken:
                    for batch, tries in broken + self._restart(inflight):
                        if tries == 0:
                            submit(batch, 1)  # an innocent bystander of another batch, most likely
                        elif len(batch) > 1 or tries == 1:
                            for item in batch:  # find the one blob that kills a worker
                                submit([item], 2 if len(batch) > 1 else tries + 1)
                        else:
                            raw = batch[0]
                            yield BlobScan(errors=(f"blob {raw.hex()}: a detection worker died scanning it; "
                                                   "not scanned",))

        for batch in itertools.chain([first] if first is not None else [], batches):
            submit(batch, 0)
            yield from drain(4 * self.jobs - 1)
        yield from drain(0)

    def _stop_workers(self) -> None:
        if self._pool is None:
            return
        procs = getattr(self._pool, "_processes", None) or {}
        for p in list(procs.values()):
            p.terminate()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _close_lifeline(self) -> None:
        for fd in (self._lifeline, self._lifeline_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._lifeline = self._lifeline_w = -1

    def _restart(self, inflight: dict[Future[BlobScan], tuple[list[bytes], int]]) -> list[tuple[list[bytes], int]]:
        """Replace a broken pool; every in-flight future of it fails too, so hand their batches back."""
        lost = list(inflight.values())
        inflight.clear()
        # the broken pool's manager thread closes its pipes as it ends: were the new pool's pipes opened first, a
        # descriptor number closed twice there could be one of theirs ("Bad file descriptor" forking a worker, on
        # Python 3.11), so it is waited for (shutdown without waiting forgets it: taken first)
        manager = getattr(self._pool, "_executor_manager_thread", None)
        self._stop_workers()  # survivors of a broken pool would wait on its queue forever, and exit would join them
        if manager is not None:
            manager.join(timeout=10)
        self._pool = self._start()
        self.restarts += 1
        return lost

    def close(self) -> None:
        if self._pool is not None:
            procs = list((getattr(self._pool, "_processes", None) or {}).values())
            self._pool.shutdown(wait=True, cancel_futures=True)
            self.died_idle = any(p.exitcode not in (0, None) for p in procs)
        self._close_lifeline()

    def terminate(self) -> None:
        self._stop_workers()
        self._close_lifeline()
