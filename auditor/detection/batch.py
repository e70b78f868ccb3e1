"""One batch of raw blob ids → a BlobScan: sizes, bytes (auditor.git.blobs), detectors (auditor.detectors.engine).

Failures are counted, never raised: a corrupt or oversized blob is one line in ``errors`` or one ``skipped`` count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pygit2

from auditor.detectors.engine import CompiledDetector, detect, is_binary
from auditor.detectors.spec import Detector
from auditor.git.blobs import BlobReader
from auditor.models import BlobScan


class BatchScanner:
    """Reads and scans batches of one repository's blobs; holds its reader (a ``git cat-file`` process)."""

    def __init__(self, repo_path: str, detectors: Sequence[Detector], *, max_bytes: int, max_pairs: int,
                 use_git: bool) -> None:
        self.reader = BlobReader(pygit2.Repository(repo_path), use_git=use_git)
        self.detectors = [CompiledDetector(d) for d in detectors]
        self.max_bytes, self.max_pairs = max_bytes, max_pairs
        self.skip_binary = all(not d.check_binaries for d in self.detectors)

    def close(self) -> None:
        self.reader.close()

    def scan(self, batch: Sequence[bytes]) -> BlobScan:
        skipped: Counter[str] = Counter()
        bounded: Counter[str] = Counter()  # detector → blobs where it hit engine.MAX_MATCHES
        errors: list[str] = []
        candidates = []
        scanned: list[bytes] = []
        wanted: list[tuple[bytes, int]] = []
        nbytes = 0
        for raw, size, error in self.reader.sizes(batch, self.max_bytes):
            if error is not None:
                errors.append(f"blob {raw.hex()}: {error}")
            elif self.max_bytes and size is not None and size > self.max_bytes:
                skipped["too_large"] += 1
            else:
                wanted.append((raw, size or 0))
        for raw, data, error in self.reader.read(wanted):
            if data is None:
                errors.append(f"blob {raw.hex()}: {error}")
                continue
            nbytes += len(data)
            scanned.append(raw)
            binary = is_binary(data) if self.skip_binary else None
            if binary:
                skipped["binary"] += 1
                continue
            hit: set[str] = set()
            candidates.extend(detect(self.detectors, data, raw.hex(), self.max_pairs, binary, bounded=hit))
            if hit:
                bounded.update(hit)
        return BlobScan(blobs_scanned=len(scanned) - skipped["binary"], bytes_scanned=nbytes, skipped=dict(skipped),
                        errors=tuple(errors), candidates=tuple(candidates), scanned_oids=tuple(scanned),
                        matches_bounded=dict(bounded))
