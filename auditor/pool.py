"""Batches of (blob id, file name) → BlobScan results, in worker processes.

Each worker opens its own pygit2.Repository (and git reader, see reader.py) and compiles the detectors once (pool
initializer); only raw ids and names cross the process boundary, and only candidates come back, so the parent
never touches blob bytes.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import forkserver
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

import pygit2

from auditor.detectors.engine import CompiledDetector, detect, is_binary
from auditor.detectors.spec import Detector
from auditor.models import BlobScan
from auditor.reader import BlobReader

_reader: BlobReader | None = None
_detectors: list[CompiledDetector] = []
_max_bytes = 0
_max_pairs = 8
_skip_binary = True


def _watch_parent(pid: int) -> None:
    """End this worker once the scanning process is gone (killed with SIGKILL: nothing else would tell it)."""
    while True:
        time.sleep(1.0)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            if _reader is not None:
                _reader.close()
            os._exit(1)
        except PermissionError:
            pass


def _init(repo_path: str, detectors: Sequence[Detector], max_bytes: int, max_pairs: int, use_git: bool,
          parent: int) -> None:
    global _reader, _detectors, _max_bytes, _max_pairs, _skip_binary
    # Ctrl-C goes to the parent, which stops the pool; workers must not each print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A survivor of a pool broken by a killed sibling dies on its closed queue with a traceback that only
    # alarms; every real failure of a task reaches the parent through its future.
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the worker
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    _reader = BlobReader(pygit2.Repository(repo_path), use_git=use_git)
    atexit.register(_reader.close)
    _detectors = [CompiledDetector(d) for d in detectors]
    _max_bytes, _max_pairs = max_bytes, max_pairs
    _skip_binary = all(not d.check_binaries for d in _detectors)


def scan_batch(batch: Sequence[bytes]) -> BlobScan:
    """Read and scan each blob of the batch; failures are counted, never raised."""
    assert _reader is not None, "scan_batch runs only in a pool worker"
    skipped: Counter[str] = Counter()
    errors: list[str] = []
    candidates = []
    scanned: list[bytes] = []
    wanted: list[tuple[bytes, int]] = []
    nbytes = 0
    for raw, size, error in _reader.sizes(batch, _max_bytes):
        if error is not None:
            errors.append(f"blob {raw.hex()}: {error}")
        elif _max_bytes and size is not None and size > _max_bytes:
            skipped["too_large"] += 1
        else:
            wanted.append((raw, size or 0))
    for raw, data, error in _reader.read(wanted):
        if data is None:
            errors.append(f"blob {raw.hex()}: {error}")
            continue
        nbytes += len(data)
        scanned.append(raw)
        binary = is_binary(data) if _skip_binary else None
        if binary:
            skipped["binary"] += 1
            continue
        candidates.extend(detect(_detectors, data, raw.hex(), _max_pairs, binary))
    return BlobScan(blobs_scanned=len(scanned) - skipped["binary"], bytes_scanned=nbytes, skipped=dict(skipped),
                    errors=tuple(errors), candidates=tuple(candidates), scanned_oids=tuple(scanned))


def batched(items: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class DetectionPool:
    """A process pool bound to one repository; ``scan`` streams results in completion order.

    A worker that dies (killed, out of memory) breaks the pool: it is restarted and the batches that were in
    flight are scanned again, then blob by blob; a blob that still kills a worker is reported as an error.
    """

    def __init__(self, repo_path: str, detectors: Sequence[Detector], *, jobs: int | None = None,
                 max_bytes: int = 0, max_pairs: int = 8, use_git: bool = True) -> None:
        self.jobs = jobs or os.cpu_count() or 1
        self._initargs = (repo_path, tuple(detectors), max_bytes, max_pairs, use_git, os.getpid())
        self.restarts = 0
        self.died_idle = False  # a worker died with no batch in flight and no batch left to give: nothing lost
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        # forkserver: workers never inherit the parent's threads (tqdm, asyncio) or open repository handles;
        # preloading this module makes each worker a fork of a process that has already imported it.
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        if threading.current_thread() is threading.main_thread():
            # Ctrl-C reaches the whole process group: the scan's main process handles it (and stops the pool);
            # a forkserver started ignoring SIGINT keeps ignoring it, as do the workers it forks, instead of
            # printing tracebacks mid-import. (A restart from another thread finds the forkserver running.)
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                forkserver.ensure_running()
            finally:
                signal.signal(signal.SIGINT, previous)
        return ProcessPoolExecutor(self.jobs, mp_context=ctx,
                                   initializer=_init, initargs=self._initargs)

    def scan(self, blobs: Iterable[bytes], batch_size: int = 256) -> Iterator[BlobScan]:
        """Submit batches of raw blob ids as enumeration yields them, keeping a few per worker in flight (bounded
        memory)."""
        inflight: dict[Future[BlobScan], tuple[list[bytes], int]] = {}

        def submit(batch: list[bytes], tries: int) -> None:
            try:
                inflight[self._pool.submit(scan_batch, batch)] = (batch, tries)
            # A worker died while idle: restart, the in-flight batches go again. (Submitting may also spawn a
            # replacement worker while the pool is being torn down, which fails on its closed queue: OSError.)
            except (BrokenProcessPool, OSError):
                for lost, lost_tries in self._restart(inflight) + [(batch, tries)]:
                    inflight[self._pool.submit(scan_batch, lost)] = (lost, lost_tries)

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

        for batch in batched(blobs, batch_size):
            submit(batch, 0)
            yield from drain(4 * self.jobs - 1)
        yield from drain(0)

    def _restart(self, inflight: dict[Future[BlobScan], tuple[list[bytes], int]]) -> list[tuple[list[bytes], int]]:
        """Replace a broken pool; every in-flight future of it fails too, so hand their batches back."""
        lost = list(inflight.values())
        inflight.clear()
        self.terminate()  # survivors of a broken pool would wait on its queue forever, and exit would join them
        self._pool = self._start()
        self.restarts += 1
        return lost

    def close(self) -> None:
        procs = list((getattr(self._pool, "_processes", None) or {}).values())
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.died_idle = any(p.exitcode not in (0, None) for p in procs)

    def terminate(self) -> None:
        procs = getattr(self._pool, "_processes", None) or {}
        for p in list(procs.values()):
            p.terminate()
        self._pool.shutdown(wait=False, cancel_futures=True)
