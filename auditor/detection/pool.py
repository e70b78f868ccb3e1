"""Batches of raw blob ids → BlobScan results, in worker processes (one machine).

Each worker opens its own repository (a ``BatchScanner``: pygit2 and a git reader) and compiles the detectors
once; only raw ids cross the process boundary, and only candidates come back, so the parent never touches blob
bytes. Names are judged in the parent (the blob feed), never here.

Where workers come from: forks of the command itself, made once it has loaded and before it starts any thread
(``prefork``: no second interpreter loads the same modules, and the core the command's imports leave idle goes
to git — flask −6 %, 20k synthetic commits −9 % wall); else (a pool restarted mid-scan, a caller that already runs
threads) forks of a forkserver that loaded the workers' modules (``boot.context``).
"""

from __future__ import annotations

import atexit
import functools
import itertools
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import reduction
from typing import NamedTuple

from auditor.detection import boot
from auditor.detection.batch import BatchScanner
from auditor.detection.boot import BATCH, holds_objects
from auditor.detectors.spec import Detector
from auditor.git import log_process
from auditor.models import BlobScan

_scanner: BatchScanner | None = None
_scanning: tuple[str, bool] | None = None  # (repository, with git) of ``_scanner``, in a forked worker
_forked: tuple[tuple[Detector, ...], int, int] | None = None  # what forked workers scan with: set before the fork


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


def _init_forked(lifeline: int, closed: tuple[int, ...]) -> None:
    """A worker forked from the command (``prefork``): what ``_init`` does, and what a fork inherits undone — the
    write end of its lifeline and the ends of pipes only the command reads (git's changes) closed, its standard
    streams on /dev/null (never a supervisor's pipe held open), SIGINT ignored before it is unblocked."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    for fd in closed:
        try:
            os.close(fd)
        except OSError:
            pass
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the worker
    threading.Thread(target=_watch_parent, args=(lifeline,), daemon=True).start()


def scan_batch_in(repo_path: str, use_git: bool, batch: Sequence[bytes]) -> BlobScan:
    """``scan_batch`` in a forked worker: the detectors came with the fork, the repository comes with the task."""
    global _scanner, _scanning
    if _scanning != (repo_path, use_git):
        assert _forked is not None, "scan_batch_in runs only in a forked worker"
        if _scanner is not None:
            _scanner.close()
        detectors, max_bytes, max_pairs = _forked
        _scanner = BatchScanner(repo_path, detectors, max_bytes=max_bytes, max_pairs=max_pairs, use_git=use_git)
        _scanning = (repo_path, use_git)
    return _scanner.scan(batch)


class _Reserve(NamedTuple):
    """Workers forked ahead of the pool that adopts them."""

    pool: ProcessPoolExecutor
    key: tuple[tuple[Detector, ...], int, int, int]  # (detectors, max bytes, max pairs, jobs) they scan with
    lifeline: int  # the write end of their lifeline


_reserve: _Reserve | None = None


def prefork(detectors: Sequence[Detector], *, jobs: int | None, max_bytes: int, max_pairs: int) -> bool:
    """Fork the detection workers from this process now, while it runs no other thread (the command, once loaded,
    before validation or progress start theirs); the first ``DetectionPool`` with the same settings adopts them.
    False (nothing forked) when a thread runs, workers wait already, or not on Linux."""
    global _reserve, _forked
    if _reserve is not None or threading.active_count() != 1 or not sys.platform.startswith("linux"):
        return False  # (macOS: system frameworks are not safe across a fork without exec)
    jobs = jobs or os.cpu_count() or 1
    _forked = (tuple(detectors), max_bytes, max_pairs)
    read, write = os.pipe()
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork"), initializer=_init_forked,
                               initargs=(read, (write, *log_process.early_fds())))
    # a Ctrl-C meanwhile waits (blocked, not lost) until every worker is forked and ignores it
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        pool.submit(os.getpid)  # a fork context starts every worker at the first task, before its own threads
    except (OSError, BrokenProcessPool):  # no fork now (out of processes or memory): the forkserver, later
        pool.shutdown(wait=False, cancel_futures=True)
        os.close(write)
        return False
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        os.close(read)  # the workers' alone: they read EOF the moment this process is gone
    _reserve = _Reserve(pool, (*_forked, jobs), write)
    return True


def release() -> None:
    """Stop forked workers no pool adopted (the run needed none after all)."""
    global _reserve
    if _reserve is not None:
        _reserve.pool.shutdown(wait=True, cancel_futures=True)
        os.close(_reserve.lifeline)
        _reserve = None


def _waiting(key: tuple) -> bool:
    """Whether forked workers wait for a pool of these settings."""
    return _reserve is not None and _reserve.key == key


def _adopt(key: tuple) -> _Reserve | None:
    global _reserve
    if not _waiting(key):
        return None
    taken, _reserve = _reserve, None
    return taken


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
        self._key = (*self._initargs[1:4], self.jobs)
        self._task: Callable[[Sequence[bytes]], BlobScan] = scan_batch
        self._forked_lifeline = -1  # the lifeline of adopted forked workers
        self.restarts = 0
        self.died_idle = False  # a worker died with no batch in flight and no batch left to give: nothing lost
        self._pool: ProcessPoolExecutor | None = None  # started with the first full batch (``scan``)
        if not _waiting(self._key) and holds_objects(repo_path, BATCH):
            self._context()  # room for more than one batch, no forked workers: the forkserver boots while git lists

    def _context(self) -> multiprocessing.context.ForkServerContext:
        return boot.context()

    def _start(self) -> ProcessPoolExecutor:
        if (forked := _adopt(self._key)) is not None:
            repo_path, *_, use_git, _ = self._initargs
            self._task = functools.partial(scan_batch_in, repo_path, use_git)
            self._forked_lifeline = forked.lifeline
            return forked.pool
        self._task = scan_batch
        if self._forked_lifeline >= 0:  # adopted workers broke: their lifeline goes with them
            os.close(self._forked_lifeline)
            self._forked_lifeline = -1
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
                        inflight[self._pool.submit(self._task, pending[-1][0])] = pending[-1]
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
        for fd in (self._lifeline, self._lifeline_w, self._forked_lifeline):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._lifeline = self._lifeline_w = self._forked_lifeline = -1

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
