"""One repository → a ``RepoScan``: the commit listing, each commit's changes, detection and where the matched
blobs sit, as plain picklable values (ids, paths, counts, candidates). No store, no network, no event loop: the
same function is called by the local pipeline (detection in a process pool) and by a Dask task (``inline``).

What needs every candidate resolved — which secret each blob holds, hence the occurrences — is
``attribution.attribute``'s job, wherever the resolutions are.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pygit2

from auditor.attribution import Provenance, locate
from auditor.commit_rows import CommitRows
from auditor.detection.batch import BatchScanner
from auditor.detection.inline import InlineScanner
from auditor.detection.pool import DetectionPool
from auditor.detection.stage import ScanEvents, Scanner, detect
from auditor.detectors.engine import DetectorSet
from auditor.detectors.spec import Detector
from auditor.git import mirror, reach
from auditor.git.blobs import BlobReader
from auditor.git.changes import BlobFeed, Changes, Verdict
from auditor.git.history import Commits, list_commits
from auditor.git.repository import open_repository, partial_clone
from auditor.models import BlobScan, Candidate, RepoState, RepoStats


@dataclass(frozen=True, slots=True, kw_only=True)
class RepoJob:
    """Everything one repository's scan needs."""

    source: str  # a local repository, or a URL (mirrored into this machine's cache first)
    name: str  # the repository as every output names it (never a URL's password)
    detectors: tuple[Detector, ...]
    max_blob_bytes: int = 64 * 1024 * 1024
    max_pairs_per_sid: int = 8
    jobs: int | None = None  # detection processes (pool); ignored inline
    inline: bool = False  # detect in this thread: a Dask worker may start no processes
    prior: RepoState | None = None  # the last complete scan's state: only what is new is walked and attributed
    skip: frozenset[bytes] | set[bytes] = frozenset()  # blobs scanned before that matched nothing
    earlier: tuple[tuple[bytes, bytes, bytes], ...] = ()  # with ``prior``: (commit, path, blob) of its occurrences


@dataclass(frozen=True, slots=True, kw_only=True)
class RepoScan:
    """What one repository's scan found, before validation."""

    stats: RepoStats
    candidates: dict[bytes, list[Candidate]]  # raw blob id → its candidates
    provenance: Provenance
    commit_rows: Mapping[str, str] = field(repr=False)  # hex id → ISO committer time, of the commits listed anew
    reachable: frozenset[bytes] = field(repr=False)  # every commit of the listing (earlier ones included)
    tips: frozenset[bytes] = frozenset()  # raw ids of the ref tips
    incremental: bool = False  # built on ``prior``: the store's commits stay, ``commit_rows`` are the new ones
    attributed_anew: bool = True  # every commit was attributed by this scan (no stored occurrence to carry over)
    reach: dict[str, str] = field(default_factory=dict, repr=False)  # hex id → kind of ref, outside branches/tags


class _Background(threading.Thread):
    """A call in a daemon thread that also says how long it took."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        super().__init__(name="auditor-commits", daemon=True)
        self._fn, self._args = fn, args
        self._value: Any = None
        self._error: BaseException | None = None
        self.seconds = 0.0
        self.start()

    def run(self) -> None:
        t0 = time.perf_counter()
        try:
            self._value = self._fn(*self._args)
        except BaseException as e:  # noqa: BLE001 - handed to whoever waits on the result
            self._error = e
        finally:
            self.seconds = time.perf_counter() - t0

    def result(self) -> Any:
        self.join()
        if self._error is not None:
            raise self._error
        return self._value


def _listed(repo: pygit2.Repository, *known: frozenset[bytes]) -> tuple[Commits, CommitRows, dict[str, str] | None]:
    """The commits, their rows for the store (hex id → ISO time, in key order: the store's inserts run ~35 %
    faster) and, for a whole listing, the kind of ref that reaches each (SPEC §11), made off the critical path."""
    commits = list_commits(repo, *known)
    return commits, CommitRows(commits.time), None if commits.known else reach.listed(commits)


class _Found:
    """A scanner whose results were computed elsewhere (a big repository's chunks, on other workers): it lets the
    blob feed run to its end (the changes it keeps are what location needs), then hands them over."""

    restarts = 0
    died_idle = False

    def __init__(self, results: list[BlobScan]) -> None:
        self._results = results

    def scan(self, blobs: Iterable[bytes]) -> Iterator[BlobScan]:
        for _ in blobs:
            pass
        yield from self._results

    def close(self) -> None:
        pass

    terminate = close


def scan_repository(job: RepoJob, events: ScanEvents | None = None, found: list[BlobScan] | None = None
                    ) -> RepoScan:
    """List, read, detect and locate one repository; ``events`` tell the caller what happens as it happens.
    ``found``: detection was done already, in chunks (``scan_chunk``); the repository is listed and located."""
    t0 = time.perf_counter()
    events = events or ScanEvents()
    repo = open_repository(mirror.resolve(job.source))
    stats = RepoStats(repo=job.name, path=repo.path)
    if events.started:
        events.started(stats)
    state = job.prior if job.prior is not None and job.prior.path == repo.path and not repo.is_shallow else None
    stats.partial_clone, fetches = partial_clone(repo)
    detectors = DetectorSet(job.detectors)
    source = Changes(repo, use_git=not fetches)
    if state is None:
        source.start()  # every commit's changes, computed by git while pygit2 lists the commits
    scanner: Scanner
    if found is not None:
        scanner = _Found(found)
    elif job.inline:
        scanner = InlineScanner(stats.path, job.detectors, max_bytes=job.max_blob_bytes,
                                max_pairs=job.max_pairs_per_sid, use_git=not fetches)
    else:
        scanner = DetectionPool(stats.path, job.detectors, jobs=job.jobs, max_bytes=job.max_blob_bytes,
                                max_pairs=job.max_pairs_per_sid, use_git=not fetches)
    try:
        # pygit2 lists the commits in a thread (SPEC §2: the history is pygit2's; git's changes need no list, and
        # the workers start now); a rerun's listing hides the earlier tips
        listing = _Background(_listed, repo, *((state.tips, state.commits) if state else ()))
        # which kind of ref reaches a commit (SPEC §11): a rerun's listing holds only the new commits, git answers
        reaching = _Background(reach.with_git, repo.path) if state is not None else None
        new: list[bytes] | None = None
        again: set[bytes] = set()
        if state is not None:  # read and attribute only the commits the last complete scan did not see
            new = [c for c in listing.result()[0].tree if c not in state.commits]
            # matched blobs are read again for their tokens (a rewritten history may have pruned some)
            again = {b for b in state.matched if pygit2.Oid(raw=b) in repo.odb}

        def wanted() -> tuple[Collection[bytes], Mapping[bytes, tuple[bytes, ...]]]:
            commits = listing.result()[0]
            return (commits.tree if new is None else new), commits.parents

        # a first scan reads its blobs grouped by path (once the changes have named them all); a rerun's few as met
        detected = detect(stats, scanner, source, detectors, wanted, job.skip, again, events,
                          by_path=state is None and found is None)
        commits, commit_rows, reached = listing.result()
    except BaseException:
        scanner.terminate()
        raise
    finally:
        source.close()
    stats.commits_scanned, stats.shallow = len(commits), commits.shallow
    stats.refs_outside_commits = commits.outside
    stats.errors.extend(commits.errors)
    stats.commits_new = len(commits) if new is None else len(new)
    try:
        if reaching is not None:
            reached = reaching.result()
        stats.commits_by_reach = reach.counts(len(commits), reached or {})
    except OSError as e:
        reached = {}
        stats.errors.append(f"{repo.path}: commits by kind of ref not classified ({e})")
    assert detected.feed is not None
    stats.changes_read = detected.feed.changes
    t1 = time.perf_counter()
    # listing the commits runs alongside detection (on a first scan): the two overlap, they do not add up
    stats.seconds["enumeration"] = listing.seconds
    stats.seconds["detection"] = t1 - t0
    # what attribution reads of the changes: the records that touch a matched blob (read back from the log)
    recorded = commits.tree if new is None else frozenset(new)
    # git gave the listing itself, each commit once against its listed first parent: only what a matched id is in
    grafted = os.path.exists(os.path.join(repo.path, "info", "grafts"))
    exact = not (source.computed_again or commits.shallow or commits.errors or grafted) \
        and detected.feed.log.commits == len(recorded)
    records = detected.feed.log.kept(detected.by_blob, recorded, commits.parents, exact=exact)
    detected.feed.log.close()
    provenance = locate(repo, commits, records, detected.by_blob, detectors, new,
                        job.earlier if state is not None else ())
    stats.errors.extend(provenance.errors)
    stats.seconds["attribution"] = time.perf_counter() - t1
    return RepoScan(stats=stats, candidates=dict(detected.by_blob), provenance=provenance, commit_rows=commit_rows,
                    reachable=commits.known.union(commits.tree), tips=frozenset(commits.tips),
                    incremental=bool(commits.known), attributed_anew=new is None, reach=reached or {})


# -- a big repository in parts (a corpus on Dask) -----------------------------------------------------------------
def plan_chunks(job: RepoJob, parts: int) -> list[tuple[bytes, ...]]:
    """The blobs a scan of ``job`` would read, in ``parts`` chunks of about equal bytes. Blobs are ordered by the
    first path they are met at, so a file's versions (git's delta chains) stay together and git's delta-base cache
    still serves each chunk's reader."""
    repo = open_repository(mirror.resolve(job.source))
    detectors = DetectorSet(job.detectors)
    source = Changes(repo, use_git=not partial_clone(repo)[1])
    source.start()
    listing = _Background(list_commits, repo)

    def verdict(oid: bytes, name: bytes) -> Verdict:
        return Verdict.SCAN if detectors.scans(name) else Verdict.BANNED

    def wanted() -> tuple[Collection[bytes], Mapping[bytes, tuple[bytes, ...]]]:
        commits = listing.result()
        return commits.tree, commits.parents

    feed = BlobFeed(verdict)
    try:
        first_path = dict(feed.named(source.batches(wanted)))  # each blob with the path it was first chosen under
    finally:
        source.close()
        feed.log.close()
    listing.result()
    blobs = list(first_path)
    reader = BlobReader(repo, use_git=False)  # sizes from object headers: no inflation
    sizes = {raw: size or 0 for raw, size, _ in reader.sizes(blobs)}
    ordered = sorted(blobs, key=lambda b: (first_path.get(b, b""), b))
    total = sum(min(sizes[b], job.max_blob_bytes or sizes[b]) for b in ordered) or 1
    chunks: list[tuple[bytes, ...]] = []
    current: list[bytes] = []
    held = 0
    for b in ordered:
        current.append(b)
        held += min(sizes[b], job.max_blob_bytes or sizes[b])
        if held >= total * (len(chunks) + 1) / parts and len(chunks) < parts - 1:
            chunks.append(tuple(current))
            current = []
    chunks.append(tuple(current))
    return chunks


def scan_chunk(job: RepoJob, blobs: tuple[bytes, ...]) -> BlobScan:
    """Detection over one chunk of a big repository's blobs, in this thread, as one BlobScan."""
    repo = open_repository(mirror.resolve(job.source))
    fetches = partial_clone(repo)[1]
    scanner = BatchScanner(repo.path, job.detectors, max_bytes=job.max_blob_bytes, max_pairs=job.max_pairs_per_sid,
                           use_git=not fetches)
    skipped: Counter[str] = Counter()
    bounded: Counter[str] = Counter()
    errors: list[str] = []
    candidates: list[Candidate] = []
    scanned = nbytes = 0
    try:
        for start in range(0, len(blobs), 256):
            got = scanner.scan(blobs[start:start + 256])
            scanned += got.blobs_scanned
            nbytes += got.bytes_scanned
            skipped.update(got.skipped)
            bounded.update(got.matches_bounded)
            errors += got.errors
            candidates += got.candidates
    finally:
        scanner.close()
    return BlobScan(blobs_scanned=scanned, bytes_scanned=nbytes, skipped=dict(skipped), errors=tuple(errors),
                    candidates=tuple(candidates), matches_bounded=dict(bounded))
