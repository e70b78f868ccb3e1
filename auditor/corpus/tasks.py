"""What a Dask worker runs: one repository's scan (or, for a big one, its plan, a chunk of its blobs, and its
location once every chunk is in), detection in the task's own thread (a Dask worker process is daemonic: it may
start no processes; Dask supplies the parallelism). Tasks are idempotent and return compact plain values; a
repository that cannot be scanned is a result with an ``error``, never an exception that would stop the others.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from auditor.errors import AuditorError
from auditor.models import BlobScan
from auditor.repository_scan import RepoJob, RepoScan, plan_chunks, scan_chunk, scan_repository


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskResult:
    """One repository's RepoScan, or why there is none."""

    name: str
    scan: RepoScan | None = None
    error: str | None = None


def _failed(job: RepoJob, e: Exception) -> TaskResult:
    text = str(e) if isinstance(e, AuditorError) else f"{type(e).__name__}: {e}"
    return TaskResult(name=job.name, error=text)


def scan_task(job: RepoJob) -> TaskResult:
    try:
        return TaskResult(name=job.name, scan=scan_repository(job))
    except Exception as e:  # noqa: BLE001 - a repository's failure is its result
        return _failed(job, e)


def plan_task(job: RepoJob, parts: int) -> list[tuple[bytes, ...]] | TaskResult:
    """A big repository's blobs in ``parts`` byte-balanced chunks (or why it cannot be planned)."""
    try:
        return plan_chunks(job, parts)
    except Exception as e:  # noqa: BLE001
        return _failed(job, e)


def chunk_task(job: RepoJob, plan: list[tuple[bytes, ...]] | TaskResult, index: int) -> BlobScan | None:
    if isinstance(plan, TaskResult):
        return None
    return scan_chunk(job, plan[index])


def attribute_task(job: RepoJob, plan: list[tuple[bytes, ...]] | TaskResult, *chunks: BlobScan | None) -> TaskResult:
    """The whole repository's RepoScan from its chunks' detection: listed and located once."""
    if isinstance(plan, TaskResult):
        return plan
    try:
        return TaskResult(name=job.name, scan=scan_repository(job, found=[c for c in chunks if c is not None]))
    except Exception as e:  # noqa: BLE001
        return _failed(job, e)


def probe() -> tuple[str, str | None]:
    """What a worker needs, said to the client before any task: auditor's version and git."""
    from auditor import __version__

    return __version__, shutil.which("git")
