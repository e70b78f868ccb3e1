"""Batches of (blob id, file name) → BlobScan results, in worker processes.

Each worker opens its own pygit2.Repository and compiles the detectors once (pool initializer); only raw ids
and names cross the process boundary, and only candidates come back, so the parent never touches blob bytes.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

import pygit2

from auditor.detectors.engine import CompiledDetector, detect, is_binary
from auditor.detectors.spec import Detector
from auditor.models import BlobScan

_repo: pygit2.Repository | None = None
_detectors: list[CompiledDetector] = []
_max_bytes = 0
_max_pairs = 8
_skip_binary = True


def _init(repo_path: str, detectors: Sequence[Detector], max_bytes: int, max_pairs: int) -> None:
    global _repo, _detectors, _max_bytes, _max_pairs, _skip_binary
    # Ctrl-C goes to the parent, which stops the pool; workers must not each print a traceback.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _repo = pygit2.Repository(repo_path)
    _detectors = [CompiledDetector(d) for d in detectors]
    _max_bytes, _max_pairs = max_bytes, max_pairs
    _skip_binary = all(not d.check_binaries for d in _detectors)


def scan_batch(batch: Sequence[tuple[bytes, bytes]]) -> BlobScan:
    """Read and scan each blob of the batch; failures are counted, never raised."""
    assert _repo is not None, "scan_batch runs only in a pool worker"
    odb = _repo.odb
    skipped: Counter[str] = Counter()
    errors: list[str] = []
    candidates = []
    scanned: list[bytes] = []
    nbytes = 0
    for raw, _name in batch:
        oid = pygit2.Oid(raw=raw)
        try:
            _kind, size = odb.read_header(oid)
            if _max_bytes and size > _max_bytes:
                skipped["too_large"] += 1
                continue
            data = odb.read(oid)[1]
        except (KeyError, pygit2.GitError, ValueError, OSError) as e:
            errors.append(f"blob {raw.hex()}: {type(e).__name__}: {e}")
            continue
        nbytes += len(data)
        scanned.append(raw)
        if _skip_binary and is_binary(data):
            skipped["binary"] += 1
            continue
        candidates.extend(detect(_detectors, data, raw.hex(), _max_pairs))
    return BlobScan(blobs_scanned=len(scanned) - skipped["binary"], bytes_scanned=nbytes, skipped=dict(skipped),
                    errors=tuple(errors), candidates=tuple(candidates), scanned_oids=tuple(scanned))


def batched(items: Iterable[tuple[bytes, bytes]], size: int) -> Iterator[list[tuple[bytes, bytes]]]:
    batch: list[tuple[bytes, bytes]] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class WorkerDied(RuntimeError):
    """A detection worker process ended abruptly (killed, out of memory): the scan must not look complete."""


class DetectionPool:
    """A process pool bound to one repository; ``scan`` streams results in completion order."""

    def __init__(self, repo_path: str, detectors: Sequence[Detector], *, jobs: int | None = None,
                 max_bytes: int = 0, max_pairs: int = 8) -> None:
        self.jobs = jobs or os.cpu_count() or 1
        # forkserver: workers never inherit the parent's threads (tqdm, asyncio) or open repository handles.
        self._pool = ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("forkserver"),
                                         initializer=_init,
                                         initargs=(repo_path, tuple(detectors), max_bytes, max_pairs))

    def scan(self, blobs: Iterable[tuple[bytes, bytes]], batch_size: int = 256) -> Iterator[BlobScan]:
        """Submit batches as enumeration yields them, keeping a few per worker in flight (bounded memory)."""
        inflight: set[Future[BlobScan]] = set()
        try:
            for batch in batched(blobs, batch_size):
                inflight.add(self._pool.submit(scan_batch, batch))
                if len(inflight) >= 4 * self.jobs:
                    done, inflight = wait(inflight, return_when=FIRST_COMPLETED)
                    yield from (f.result() for f in done)
            while inflight:
                done, inflight = wait(inflight, return_when=FIRST_COMPLETED)
                yield from (f.result() for f in done)
        except BrokenProcessPool as e:
            raise WorkerDied("a detection worker died mid-scan; what was scanned is kept, rerun to resume") from e

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def terminate(self) -> None:
        for p in list(getattr(self._pool, "_processes", {}).values()):
            p.terminate()
        self._pool.shutdown(wait=False, cancel_futures=True)
