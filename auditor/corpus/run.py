"""The client of a corpus audit: repositories → Dask tasks (largest first; a big one in byte-balanced chunks) →
compact results → the validation queue (each secret checked once for the whole corpus) → attribution → the one
store, written by this thread alone → the result files, per repository and pooled.

Each result is stored and its future released at once (a result still held when its worker dies would be computed
again), so the client holds only results whose candidates are still being checked. A repository that cannot be
scanned is a row with its ``error``; it never stops the others. Ctrl-C stops the run; a rerun resumes: a
repository complete in the store is listed again but neither read nor attributed again (its stored state).
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from typing import Any

from auditor.corpus.cluster import connect
from auditor.corpus.listing import Entry
from auditor.corpus.tasks import TaskResult, attribute_task, chunk_task, plan_task, scan_task
from auditor.models import Outcome, RepoStats, ScanOptions
from auditor.pipeline import Run, finish
from auditor.progress import Stage
from auditor.repository_scan import RepoJob, RepoScan
from auditor.validation import ValidationQueue

SPLIT_BYTES = 1 << 30  # a repository whose packed objects exceed this is scanned in parts


@dataclass(frozen=True, slots=True, kw_only=True)
class CorpusOptions:
    scheduler: str | None = None
    scheduler_file: str | None = None
    split_bytes: int = SPLIT_BYTES  # 0: never split


def _stored_bytes(source: str) -> int:
    """What a local repository's objects take on disk (0 for a URL: not known before it is mirrored)."""
    if "://" in source:
        return 0
    git = os.path.join(source, ".git") if os.path.isdir(os.path.join(source, ".git")) else source
    total = 0
    for root, _, files in os.walk(os.path.join(git, "objects")):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def _key(kind: str, entry: Entry, part: int | None = None) -> str:
    """A task key that names no URL and no secret (the dashboard and the logs show keys)."""
    digest = hashlib.sha256(entry.source.encode()).hexdigest()[:16]
    return f"auditor-{kind}-{digest}" + (f"-{part}" if part is not None else "")


def _why(exc: BaseException | None) -> str:
    if type(exc).__name__ == "KilledWorker":
        return ("the Dask workers that ran it died each time (out of memory? lower --max-blob-bytes, or give the "
                "workers more memory)")
    return f"{type(exc).__name__}: {exc}"


class Corpus:
    """One corpus run on one Dask client."""

    def __init__(self, run: Run, client: Any, queue: ValidationQueue, options: CorpusOptions) -> None:
        self.run, self.client, self.queue, self.options = run, client, queue, options
        self.waiting: list[RepoScan] = []  # stored once their candidates are resolved

    def job(self, entry: Entry) -> RepoJob:
        run = self.run
        prior = run.store.load_state_of(entry.name, run.state_key)
        return RepoJob(source=entry.source, name=entry.name, detectors=run.detectors,
                       max_blob_bytes=run.opts.max_blob_bytes, max_pairs_per_sid=run.opts.max_pairs_per_sid,
                       inline=True, prior=prior, earlier=run.earlier(entry.name, prior))

    def submit(self, entry: Entry, size: int, workers: int) -> Any:
        """The future of one repository's TaskResult."""
        client, job = self.client, self.job(entry)
        split = self.options.split_bytes
        if not split or size <= split or job.prior is not None or workers < 2:
            return client.submit(scan_task, job, key=_key("scan", entry), priority=size, pure=False)
        parts = min(workers * 2, max(2, -(-size // split)))
        plan = client.submit(plan_task, job, parts, key=_key("plan", entry), priority=size, pure=False)
        chunks = [client.submit(chunk_task, job, plan, i, key=_key("chunk", entry, i), priority=size, pure=False)
                  for i in range(parts)]
        # a plan with fewer chunks (few blobs) leaves the last ones empty: chunk_task then scans nothing
        return client.submit(attribute_task, job, plan, *chunks, key=_key("attribute", entry), priority=size,
                             pure=False)

    def scan(self, entries: list[Entry]) -> None:
        from distributed import as_completed

        workers = len(self.client.scheduler_info().get("workers", {})) or 1
        sized = sorted(((_stored_bytes(e.source), e) for e in entries), key=lambda t: -t[0])
        futures = {self.submit(e, size, workers): e for size, e in sized}
        bar = Stage("repositories", enabled=self.run.opts.progress, unit="repo", total=len(entries))
        read = 0
        for fut in as_completed(list(futures), loop=self.client.loop):
            entry = futures.pop(fut)
            failed = fut.status == "error"
            result = TaskResult(name=entry.name, error=_why(fut.exception())) if failed else fut.result()
            fut.release()
            del fut
            self.take(entry, result)
            read += result.scan.stats.bytes_scanned if result.scan else 0
            bar.update(1, MiB=f"{read / 2**20:,.0f}")
            self.store_ready(block=False)
        self.store_ready(block=True)
        order = {e.name: i for i, e in enumerate(entries)}
        self.run.repos.sort(key=lambda r: order[r.repo])  # as the corpus lists them, whatever finished first
        failed = sum(1 for r in self.run.repos if r.error)
        bar.done(f"{len(entries):,} repositories ({failed:,} failed), {read / 2**20:,.1f} MiB read")

    def take(self, entry: Entry, result: TaskResult) -> None:
        if result.scan is None:
            self.run.repos.append(RepoStats(repo=entry.name, path=entry.source, also_named=list(entry.also_named),
                                            error=result.error))
            return
        stats = result.scan.stats
        stats.also_named.extend(entry.also_named)
        self.run.repos.append(stats)
        self.queue.submit(c for cands in result.scan.candidates.values() for c in cands)
        self.waiting.append(result.scan)

    def store_ready(self, *, block: bool) -> None:
        """Attribute and store every repository whose candidates are all resolved (all of them when ``block``)."""
        still = []
        for scanned in self.waiting:
            cands = [c for cands in scanned.candidates.values() for c in cands]
            if block or self.queue.ready(cands):
                t0 = time.perf_counter()
                self.run.keep(scanned, self.queue.resolve(cands, progress=False))
                scanned.stats.seconds["attribution"] += time.perf_counter() - t0
                scanned.stats.errors = list(dict.fromkeys(scanned.stats.errors))
            else:
                still.append(scanned)
        self.waiting = still
        self.run.save_checks(self.queue)


def scan_corpus(entries: list[Entry], opts: ScanOptions, options: CorpusOptions) -> Outcome:
    """Audit every repository of the corpus on Dask and write the result files; KeyboardInterrupt propagates
    after what was stored is written."""
    started = time.perf_counter()
    run = Run(opts)
    queue = run.queue()
    interrupted = False
    try:
        with (connect(scheduler=options.scheduler, scheduler_file=options.scheduler_file, workers=opts.jobs)
              as client, queue):
            Corpus(run, client, queue, options).scan(entries)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        run.save_checks(queue)
        run.store.close()
    return finish(run, queue, started, interrupted, pooled=True)
