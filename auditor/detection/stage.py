"""The detection stage of one repository: its changes → the blob feed → a scanner (pool or inline) → candidates by
blob, with the counters summary.json shows and checkpoints of what was scanned.

Runs in the calling thread; what the caller needs while it runs (candidates to validate, checkpoints to store,
progress) reaches it through ``ScanEvents``, so the stage itself holds no store, no event loop and no network.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from auditor.detectors.engine import DetectorSet
from auditor.git.changes import BlobFeed, Changes, Verdict
from auditor.git.read_order import by_path as path_windows
from auditor.models import BlobScan, Candidate, RepoStats

CHECKPOINT = 20000  # blobs per checkpoint: fewer, larger transactions; a crash rescans at most these


class Scanner(Protocol):
    restarts: int
    died_idle: bool

    def scan(self, blobs: Iterable[bytes]) -> Iterable[BlobScan]: ...
    def close(self) -> None: ...
    def terminate(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ScanEvents:
    """What a scan tells its caller while it runs; each is optional (a Dask task passes none)."""

    started: Callable[[RepoStats], None] | None = None  # the counters this scan fills in, as soon as it has them
    candidates: Callable[[Sequence[Candidate]], None] | None = None  # as soon as found: validation starts early
    checkpoint: Callable[[list[bytes], set[bytes]], None] | None = None  # (blobs scanned, those that matched)
    progress: Callable[[int, int, int], None] | None = None  # (bytes just scanned, blobs so far, matched so far)


@dataclass(slots=True)
class Detected:
    """The stage's result: candidates by raw blob id, and the feed (every commit's changes, for attribution)."""

    by_blob: dict[bytes, list[Candidate]] = field(default_factory=lambda: defaultdict(list))
    feed: BlobFeed | None = None


def detect(stats: RepoStats, scanner: Scanner, source: Changes, detectors: DetectorSet,
           wanted: Callable[[], tuple[Collection[bytes], Mapping[bytes, tuple[bytes, ...]]]],
           skip: set[bytes] | frozenset[bytes], again: set[bytes], events: ScanEvents, by_path: bool = False
           ) -> Detected:
    """Scan ``again`` (matched blobs of an earlier scan), then every new blob the ``wanted`` commits hold.

    ``by_path``: read the blobs in windows grouped by path (``read_order``: git reads them ~2.4× faster), the changes
    parsed in a thread meanwhile, instead of in the order met (what a rerun's few new blobs are read in)."""
    banned: set[bytes] = set()  # blobs judged under banned names only (a blob once chosen is never judged again)
    previously: set[bytes] = set()

    def verdict(oid: bytes, name: bytes) -> Verdict:
        if oid in again:
            return Verdict.KNOWN
        if oid in skip:
            previously.add(oid)
            return Verdict.KNOWN
        if detectors.scans(name):
            banned.discard(oid)
            return Verdict.SCAN
        banned.add(oid)
        return Verdict.BANNED

    feed = BlobFeed(verdict)
    out = Detected(feed=feed)
    pending_oids: list[bytes] = []
    pending_matched: set[bytes] = set()
    try:
        changes = source.batches(wanted)
        blobs = _by_path(feed.named(changes)) if by_path else feed(changes)
        for result in scanner.scan(itertools.chain(again, blobs)):
            stats.blobs_scanned += result.blobs_scanned
            stats.bytes_scanned += result.bytes_scanned
            stats.blobs_skipped.update(result.skipped)
            stats.matches_bounded.update(result.matches_bounded)
            stats.errors.extend(result.errors)
            for c in result.candidates:
                raw = bytes.fromhex(c.blob)
                out.by_blob[raw].append(c)
                pending_matched.add(raw)
            if result.candidates and events.candidates:
                events.candidates(result.candidates)
            pending_oids.extend(result.scanned_oids)
            if len(pending_oids) >= CHECKPOINT and events.checkpoint:
                events.checkpoint(pending_oids, pending_matched)
                pending_oids, pending_matched = [], set()
            if events.progress:
                events.progress(result.bytes_scanned, stats.blobs_scanned, len(out.by_blob))
    except BaseException:
        scanner.terminate()
        raise
    finally:
        if events.checkpoint:
            events.checkpoint(pending_oids, pending_matched)
    scanner.close()
    if scanner.restarts:
        stats.errors.append(f"a detection worker died {scanner.restarts} time(s); the pool was restarted and "
                            "the batches in flight were scanned again")
    if scanner.died_idle:
        stats.errors.append("a detection worker died after its last batch; every batch was scanned")
    stats.blobs_skipped["filename"] += len(banned)
    stats.blobs_skipped["already_scanned"] += len(previously)
    if feed.symlinks:
        stats.blobs_skipped["symlink"] += len(feed.symlinks)
    if feed.submodules:
        stats.blobs_skipped["submodule"] += len(feed.submodules)
    stats.errors.extend(source.errors)
    return out



def _by_path(named: Iterable[tuple[bytes, bytes]], depth: int = 2) -> Iterator[bytes]:
    """The blobs of ``named`` in windows grouped by path. The changes are parsed and the windows made in a thread,
    ``depth`` windows ahead: git's log and this process's parsing go on while the previous window is read (in the
    caller's thread, the pool's submissions wait for workers)."""
    windows: queue.Queue[tuple[list[bytes] | None, BaseException | None]] = queue.Queue(depth)
    stop = threading.Event()

    def put(item: tuple[list[bytes] | None, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                windows.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def until_stopped() -> Iterator[tuple[bytes, bytes]]:  # an interrupted scan stops parsing at once
        for item in named:
            if stop.is_set():
                return
            yield item

    def make() -> None:
        try:
            for window in path_windows(until_stopped()):
                if not put((window, None)):
                    return
            put((None, None))
        except BaseException as e:  # noqa: BLE001 - raised again in the caller's thread
            put((None, e))

    maker = threading.Thread(target=make, name="auditor-changes", daemon=True)
    maker.start()
    try:
        while True:
            window, error = windows.get()
            if error is not None:
                raise error
            if window is None:
                return
            yield from window
    finally:
        stop.set()
        maker.join()
