"""One repository → a ``RepoScan``: the commit listing, each commit's changes, detection and where the matched
blobs sit, as plain picklable values (ids, paths, counts, candidates). No store, no network, no event loop: the
same function is called by the local pipeline (detection in a process pool) and by a Dask task (``inline``).

What needs every candidate resolved — which secret each blob holds, hence the occurrences — is
``attribution.attribute``'s job, wherever the resolutions are.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pygit2

from auditor.attribution import Provenance, locate
from auditor.detection.inline import InlineScanner
from auditor.detection.pool import DetectionPool
from auditor.detection.stage import ScanEvents, detect
from auditor.detectors.engine import DetectorSet
from auditor.detectors.spec import Detector
from auditor.git import mirror
from auditor.git.changes import Changes
from auditor.git.history import Commits, iso, list_commits
from auditor.git.repository import open_repository, partial_clone
from auditor.models import Candidate, RepoState, RepoStats


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


@dataclass(frozen=True, slots=True, kw_only=True)
class RepoScan:
    """What one repository's scan found, before validation."""

    stats: RepoStats
    candidates: dict[bytes, list[Candidate]]  # raw blob id → its candidates
    provenance: Provenance
    commit_rows: dict[str, str] = field(repr=False)  # hex id → ISO committer time, of the commits listed anew
    reachable: frozenset[bytes] = field(repr=False)  # every commit of the listing (earlier ones included)
    tips: frozenset[bytes] = frozenset()  # raw ids of the ref tips
    incremental: bool = False  # built on ``prior``: the store's commits stay, ``commit_rows`` are the new ones
    attributed_anew: bool = True  # every commit was attributed by this scan (no stored occurrence to carry over)


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


def _listed(repo: pygit2.Repository, *known: frozenset[bytes]) -> tuple[Commits, dict[str, str]]:
    """The commits, and their rows for the store (hex id → ISO time, in key order: the store's inserts run ~35 %
    faster), made off the critical path."""
    commits = list_commits(repo, *known)
    return commits, dict(sorted((c.hex(), iso(t)) for c, t in commits.time.items()))


def scan_repository(job: RepoJob, events: ScanEvents | None = None) -> RepoScan:
    """List, read, detect and locate one repository; ``events`` tell the caller what happens as it happens."""
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
    make = InlineScanner if job.inline else DetectionPool
    scanner = make(stats.path, job.detectors, **({} if job.inline else {"jobs": job.jobs}),
                   max_bytes=job.max_blob_bytes, max_pairs=job.max_pairs_per_sid, use_git=not fetches)
    try:
        # a first scan lists the commits in a thread: git's changes need no list, and the workers start now
        listing = _Background(_listed, repo, *((state.tips, state.commits) if state else ()))
        new: list[bytes] | None = None
        again: set[bytes] = set()
        if state is not None:  # read and attribute only the commits the last complete scan did not see
            new = [c for c in listing.result()[0].tree if c not in state.commits]
            # matched blobs are read again for their tokens (a rewritten history may have pruned some)
            again = {b for b in state.matched if pygit2.Oid(raw=b) in repo.odb}

        def wanted() -> tuple[list[bytes], dict[bytes, tuple[bytes, ...]]]:
            commits = listing.result()[0]
            return (list(commits.tree) if new is None else new), commits.parents

        detected = detect(stats, scanner, source, detectors, wanted, job.skip, again, events)
        commits, commit_rows = listing.result()
    except BaseException:
        scanner.terminate()
        raise
    finally:
        source.close()
    stats.commits_scanned, stats.shallow = len(commits), commits.shallow
    stats.refs_outside_commits = commits.outside
    stats.errors.extend(commits.errors)
    stats.commits_new = len(commits) if new is None else len(new)
    assert detected.feed is not None
    stats.changes_read = detected.feed.changes
    t1 = time.perf_counter()
    # listing the commits runs alongside detection (on a first scan): the two overlap, they do not add up
    stats.seconds["enumeration"] = listing.seconds
    stats.seconds["detection"] = t1 - t0
    provenance = locate(repo, commits, detected.feed.records, detected.by_blob, detectors, new)
    stats.errors.extend(provenance.errors)
    stats.seconds["attribution"] = time.perf_counter() - t1
    return RepoScan(stats=stats, candidates=dict(detected.by_blob), provenance=provenance, commit_rows=commit_rows,
                    reachable=commits.known.union(commits.tree), tips=frozenset(commits.tips),
                    incremental=bool(commits.known), attributed_anew=new is None)
