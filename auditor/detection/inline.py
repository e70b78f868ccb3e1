"""Detection in the calling thread: what a Dask task runs (its daemonic worker process may start no processes;
Dask supplies the parallelism, one task per core). Same results as the pool, batch for batch."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from auditor.detection.batch import BatchScanner
from auditor.detection.pool import batched
from auditor.detectors.spec import Detector
from auditor.models import BlobScan


class InlineScanner:
    """``DetectionPool``'s interface, without processes."""

    restarts = 0
    died_idle = False

    def __init__(self, repo_path: str, detectors: Sequence[Detector], *, max_bytes: int = 0, max_pairs: int = 8,
                 use_git: bool = True) -> None:
        self._scanner = BatchScanner(repo_path, detectors, max_bytes=max_bytes, max_pairs=max_pairs,
                                     use_git=use_git)

    def scan(self, blobs: Iterable[bytes], batch_size: int = 256) -> Iterator[BlobScan]:
        for batch in batched(blobs, batch_size):
            yield self._scanner.scan(batch)

    def close(self) -> None:
        self._scanner.close()

    terminate = close
