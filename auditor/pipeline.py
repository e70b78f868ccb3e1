"""The only module that knows the stage order:
REPO → history (pygit2) → detection pool → validation queue → attribution → store → report files.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hashlib
import itertools
import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pygit2

from auditor import sources
from auditor.attribution import Locator, introduced
from auditor.detectors import CompiledDetector, Detector, load_detectors
from auditor.changes import BlobFeed, Changes
from auditor.errors import OutputError
from auditor.history import Commits, list_commits
from auditor.objects import author
from auditor.repository import open_repository, partial_clone
from auditor.models import BlobScan, Candidate, Finding, Resolved, Validity, redact, resolve_unchecked, secret_sha256
from auditor.pool import DetectionPool
from auditor.progress import Stage
from auditor.store import RepoState, Store

if TYPE_CHECKING:
    from auditor.validity import Validator

_DONE = object()


def _listed(repo: pygit2.Repository, *known: frozenset[bytes]) -> tuple[Commits, dict[str, str]]:
    """The commits, and their rows for the store (hex id → ISO time, in key order: the store's inserts run ~35 %
    faster), made off the critical path."""
    commits = list_commits(repo, *known)
    return commits, dict(sorted((c.hex(), _iso(t)) for c, t in commits.time.items()))


def _in_thread(fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future:
    """Run ``fn`` in a daemon thread; the future also says how long it took (``.seconds``)."""
    fut: concurrent.futures.Future = concurrent.futures.Future()

    def run() -> None:
        t0 = time.perf_counter()
        try:
            result = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to whoever waits on the future
            fut.seconds = time.perf_counter() - t0  # type: ignore[attr-defined]
            fut.set_exception(e)
        else:
            fut.seconds = time.perf_counter() - t0  # type: ignore[attr-defined]
            fut.set_result(result)

    threading.Thread(target=run, name="auditor-commits", daemon=True).start()
    return fut


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanOptions:
    out: Path
    validate: bool = True
    twilio_api_url: str | None = None
    jobs: int | None = None
    show_secrets: bool = False
    progress: bool = True
    detectors_dir: Path | None = None
    max_blob_bytes: int = 64 * 1024 * 1024
    recheck: bool = False
    recheck_after: float = 24 * 3600.0  # seconds
    max_pairs_per_sid: int = 8
    validate_concurrency: int = 8
    validate_rate: float = 10.0
    validate_timeout: float = 10.0


@dataclass(slots=True)
class RepoStats:
    """What one repository's scan measured, for summary.json."""

    repo: str
    path: str = ""
    commits_scanned: int = 0
    shallow: bool = False
    partial_clone: bool = False  # cloned with --filter: what was never fetched is not scanned (in errors)
    refs_outside_commits: dict[str, str] = field(default_factory=dict)  # ref → "tree" / "blob" it points at
    also_named: list[str] = field(default_factory=list)  # other REPO arguments naming the same repository
    out_in_work_tree: bool = False  # --out lies in this repository's work tree: its files could get committed
    blobs_scanned: int = 0
    bytes_scanned: int = 0
    blobs_skipped: Counter[str] = field(default_factory=Counter)
    commits_new: int = 0  # commits attributed by this run (all of them unless an earlier scan did the rest)
    changes_read: int = 0  # file changes (commit against first parent) read
    errors: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class Outcome:
    findings: list[Finding]
    summary: dict[str, Any]
    alerts: list[Finding] = field(default_factory=list)  # what the exit code counts (SPEC §5)
    interrupted: bool = False


def ruleset_of(detectors: tuple[Detector, ...], opts: ScanOptions) -> str:
    """Blobs scanned under another detector set (or pairing cap) are scanned again."""
    text = repr((tuple((d.id, d.filename_banlist, d.content_whitelist, d.matchers, d.pairing) for d in detectors),
                 opts.max_pairs_per_sid))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _iso(ts: int) -> str:
    """A git time as ISO 8601 UTC; a commit object may say any number, so years outside 1–9999 are clamped."""
    ts = min(max(ts, -62135596800), 253402300799)
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def prepare_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".auditor-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise OutputError(f"{out}: cannot write the output directory ({e.strerror or e}). Pass --out a directory "
                          "you can write to.") from None


class Scan:
    """One run over one or more repositories, sharing a store, a validator and the detectors."""

    def __init__(self, opts: ScanOptions) -> None:
        self.opts = opts
        self.detectors = load_detectors(opts.detectors_dir)
        self.compiled = {d.id: CompiledDetector(d) for d in self.detectors}
        self.ruleset = ruleset_of(self.detectors, opts)
        self._state_key = f"{self.ruleset}:{opts.max_blob_bytes}"  # a larger limit reads skipped blobs
        prepare_out(opts.out)
        self.store = Store(opts.out / "audit.sqlite")
        self.findings: list[Finding] = []
        self.repos: list[RepoStats] = []
        self.tips: list[tuple[str, str, str, str]] = []  # (repo, secret_sha256, ref, path)
        self.validator: Validator | None = None

    # -- stage: detection, overlapped with validation ----------------------------------------------------
    async def _detect(self, stats: RepoStats, pool: DetectionPool, source: Changes,
                      wanted: Callable[[], tuple[list[bytes], Mapping[bytes, tuple[bytes, ...]]]],
                      skip: set[bytes], again: set[bytes],
                      resolutions: dict[tuple, asyncio.Future[Resolved]]
                      ) -> tuple[dict[bytes, list[Candidate]], BlobFeed]:
        """Scan ``again`` (matched blobs of an earlier scan), then every new blob the ``wanted`` commits hold."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        chosen: set[bytes] = set()
        banned: set[bytes] = set()
        previously: set[bytes] = set()
        compiled = list(self.compiled.values())

        def verdict(oid: bytes, name: bytes) -> str:
            if oid in again:
                return "known"
            if oid in skip:
                previously.add(oid)
                return "known"
            if any(d.allows_filename(name) for d in compiled):
                chosen.add(oid)
                return "scan"
            banned.add(oid)
            return "banned"

        feed = BlobFeed(verdict)
        stop = threading.Event()

        def post(item: object) -> None:
            if not stop.is_set():
                try:
                    loop.call_soon_threadsafe(queue.put_nowait, item)
                except RuntimeError:  # the loop closed: the run was interrupted
                    stop.set()

        def produce() -> None:
            try:
                blobs = itertools.chain(again, feed(source.records(wanted)))
                for result in pool.scan(blobs):
                    if stop.is_set():
                        return
                    post(result)
            except BaseException as e:  # noqa: BLE001 - handed to the event loop, re-raised there
                post(e)
            finally:
                post(_DONE)

        bar = Stage("detection", enabled=self.opts.progress, unit="B", unit_scale=True)
        thread = threading.Thread(target=produce, name="auditor-enumerate", daemon=True)
        thread.start()
        by_blob: dict[bytes, list[Candidate]] = defaultdict(list)
        pending_oids: list[bytes] = []
        pending_matched: set[bytes] = set()
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                result: BlobScan = item
                stats.blobs_scanned += result.blobs_scanned
                stats.bytes_scanned += result.bytes_scanned
                stats.blobs_skipped.update(result.skipped)
                stats.errors.extend(result.errors)
                matched = set()
                for c in result.candidates:
                    raw = bytes.fromhex(c.blob)
                    matched.add(raw)
                    by_blob[raw].append(c)
                    if c.key not in resolutions:
                        resolutions[c.key] = self._resolve(c)
                pending_oids.extend(result.scanned_oids)
                pending_matched |= matched
                if len(pending_oids) >= 20000:  # fewer, larger transactions; a crash rescans at most these
                    self.store.mark_scanned(self.ruleset, pending_oids, pending_matched)
                    pending_oids, pending_matched = [], set()
                bar.update(result.bytes_scanned, blobs=stats.blobs_scanned, matched=len(by_blob))
        except BaseException:
            stop.set()
            pool.terminate()
            raise
        finally:
            self.store.mark_scanned(self.ruleset, pending_oids, pending_matched)
        pool.close()
        if pool.restarts:
            stats.errors.append(f"a detection worker died {pool.restarts} time(s); the pool was restarted and "
                                "the batches in flight were scanned again")
        if pool.died_idle:
            stats.errors.append("a detection worker died after its last batch; every batch was scanned")
        stats.blobs_skipped["filename"] += len(banned - chosen)
        stats.blobs_skipped["already_scanned"] += len(previously)
        if feed.symlinks:
            stats.blobs_skipped["symlink"] += len(feed.symlinks)
        if feed.submodules:
            stats.blobs_skipped["submodule"] += len(feed.submodules)
        stats.errors.extend(source.errors)
        bar.done(f"{stats.blobs_scanned:,} blobs, {stats.bytes_scanned / 2**20:,.1f} MiB, "
                 f"{len(by_blob):,} with candidates")
        return by_blob, feed

    def _resolve(self, c: Candidate) -> asyncio.Future[Resolved]:
        if self.validator is None:
            fut: asyncio.Future[Resolved] = asyncio.get_running_loop().create_future()
            fut.set_result(resolve_unchecked(c))
            return fut
        return asyncio.ensure_future(self.validator.resolve(c))

    # -- one repository ------------------------------------------------------------------------------------
    async def scan_repo(self, arg: str, resolutions: dict[tuple, asyncio.Future[Resolved]]) -> None:
        t0 = time.perf_counter()
        repo = open_repository(sources.resolve(arg))
        same = next((r for r in self.repos if os.path.realpath(r.path) == os.path.realpath(repo.path)), None)
        if same is not None:  # named twice (or as both a path and a subdirectory): scanned and counted once
            same.also_named.append(sources.display(arg))
            return
        stats = RepoStats(repo=sources.display(arg), path=repo.path)  # never a URL's password in outputs
        stats.out_in_work_tree = bool(repo.workdir) and Path(self.opts.out).resolve().is_relative_to(
            Path(repo.workdir).resolve())
        self.repos.append(stats)
        state = None if repo.is_shallow else self.store.load_state(stats.repo, stats.path, self._state_key)
        stats.partial_clone, fetches = partial_clone(repo)
        source = Changes(repo, use_git=not fetches)
        if state is None:
            source.start()  # every commit's changes, computed by git while pygit2 lists the commits
        pool = DetectionPool(stats.path, self.detectors, jobs=self.opts.jobs, max_bytes=self.opts.max_blob_bytes,
                             max_pairs=self.opts.max_pairs_per_sid, use_git=not fetches)
        try:
            # a first scan lists the commits in a thread: git's changes need no list, and the workers start now
            listing = _in_thread(_listed, repo, *((state.tips, state.commits) if state else ()))
            new, again = None, set()
            if state is not None:  # read and attribute only the commits the last complete scan did not see
                new = [c for c in listing.result()[0].tree if c not in state.commits]
                # matched blobs are read again for their tokens (a rewritten history may have pruned some)
                again = {b for b in state.matched if pygit2.Oid(raw=b) in repo.odb}

            def wanted() -> tuple[list[bytes], dict[bytes, tuple[bytes, ...]]]:
                commits = listing.result()[0]
                return (list(commits.tree) if new is None else new), commits.parents

            skip = self.store.scanned_blobs(self.ruleset)
            by_blob, feed = await self._detect(stats, pool, source, wanted, skip, again, resolutions)
            commits, commit_rows = listing.result()
        except BaseException:
            pool.terminate()
            raise
        finally:
            source.close()
        stats.commits_scanned, stats.shallow = len(commits), commits.shallow
        stats.refs_outside_commits = commits.outside
        stats.errors.extend(commits.errors)
        stats.commits_new = len(commits) if new is None else len(new)
        stats.changes_read = feed.changes
        t2 = time.perf_counter()
        # listing the commits runs alongside detection (on a first scan): the two overlap, they do not add up
        stats.seconds["enumeration"] = listing.seconds  # type: ignore[attr-defined]
        stats.seconds["detection"] = t2 - t0
        val = Stage("validation", enabled=self.opts.progress and self.validator is not None, unit="secret")
        pending = {k: f for k, f in resolutions.items() if not f.done()}
        for fut in asyncio.as_completed(list(pending.values())):
            await fut
            val.update(1)
        if self.validator is not None:
            val.done(f"{len(pending):,} candidates resolved, {self.validator.requests:,} requests")
        t3 = time.perf_counter()
        stats.seconds["validation"] = t3 - t2
        self._attribute(repo, stats, feed, commits, by_blob, {k: f.result() for k, f in resolutions.items()},
                        state, new, commit_rows)
        stats.seconds["attribution"] = time.perf_counter() - t3
        stats.errors = list(dict.fromkeys(stats.errors))  # an unreadable object is met by several stages

    def _attribute(self, repo: pygit2.Repository, stats: RepoStats, feed: BlobFeed, commits: Commits,
                   by_blob: dict[bytes, list[Candidate]], resolved: dict[tuple, Resolved],
                   state: RepoState | None, new: list[bytes] | None, commit_rows: dict[str, str]) -> None:
        """Matched blobs → occurrences (SPEC §4) → findings with provenance; saved for this repo at once.

        With ``state`` only the ``new`` commits are attributed; the earlier commits' occurrences and removals
        come from the store (a commit's parents, hence what it introduces, never change).
        """
        secrets_of: dict[bytes, frozenset[tuple[str, str, str]]] = {}
        line_of: dict[tuple[bytes, tuple[str, str, str]], int] = {}
        check_of: dict[tuple[str, str, str], Resolved] = {}
        for blob, cands in by_blob.items():
            keys = set()
            for c in cands:
                r = resolved[c.key]
                key = (r.detector, r.client_id, r.client_secret)
                keys.add(key)
                check_of[key] = r
                line = next(p.line for p in c.pairs if p.client_secret == r.client_secret)
                line_of[(blob, key)] = min(line, line_of.get((blob, key), line))
            secrets_of[blob] = frozenset(keys)
        locator = Locator(repo, commits, feed.records, by_blob)
        authors: dict[bytes, tuple[str, str]] = {}
        rows: list[tuple] = []

        def add(commit: bytes, path: bytes, blob: bytes, key: tuple[str, str, str], line: int,
                author: tuple[str, str]) -> None:
            email, when = author
            r = check_of[key]
            f = Finding(detector=key[0], repo=stats.repo, commit=commit.hex(), path=path.decode("utf-8", "replace"),
                        line=line, client_id=key[1], client_secret=key[2], secret_sha256=r.secret_sha256,
                        validity=r.check.validity, scope=r.check.scope, account_status=r.check.account_status,
                        account_type=r.check.account_type, author_email=email, author_time=when, blob=blob.hex())
            self.findings.append(f)
            rows.append((f.detector, f.commit, f.path, f.line, f.blob, f.client_id, redact(f.client_secret),
                         f.secret_sha256, f.author_email, f.author_time))

        @functools.cache
        def scanned(path: bytes) -> bool:
            return any(d.allows_filename(path) for d in self.compiled.values())

        removals = []
        if state is not None:
            for row in self.store.occurrences(stats.repo):  # OCCURRENCE_COLUMNS
                detector, commit_hex, path, line, blob_hex, _, _, sha, email, when = row
                commit, blob = bytes.fromhex(commit_hex), bytes.fromhex(blob_hex)
                if commit not in commits:
                    continue  # no longer reachable from any ref
                key = next((k for k in secrets_of.get(blob, ()) if secret_sha256(k[1], k[2]) == sha), None)
                if key is None:
                    stats.errors.append(f"blob {blob_hex}: held a secret at {path} in {commit_hex} but could not "
                                        "be read again; that occurrence is left out (rescan into a new --out)")
                    continue
                add(commit, path.encode("utf-8", "surrogateescape"), blob, key, line, (email, when))
            removals = [r for r in self.store.removals(stats.repo) if bytes.fromhex(r[1]) in commits]
        for intro in locator.introductions(scanned, new):
            for key in introduced(intro, secrets_of):
                if not self.compiled[key[0]].allows_filename(intro.path):
                    continue
                if intro.commit not in authors:
                    email, when = author(repo, intro.commit)
                    authors[intro.commit] = (email, _iso(when))
                add(intro.commit, intro.path, intro.blob, key, line_of[(intro.blob, key)], authors[intro.commit])
        tips = []
        for tip, refs in commits.tips.items():
            for path, blob in locator.paths(tip).items():
                for key in secrets_of.get(blob, ()):
                    if self.compiled[key[0]].allows_filename(path):
                        tips.extend((secret_sha256(key[1], key[2]), ref, path.decode("utf-8", "replace"))
                                    for ref in refs)
        self.tips.extend((stats.repo, *t) for t in tips)
        removals += [(key[0], commit.hex(), path.decode("utf-8", "replace"), secret_sha256(key[1], key[2]),
                      _iso(commits.time[commit]))
                     for commit, path, key in locator.removals(secrets_of, new)
                     if self.compiled[key[0]].allows_filename(path)]
        stats.errors.extend(locator.errors)
        keep = None
        if not (stats.errors or commits.shallow):  # a walk with unread objects is never built upon
            keep = RepoState(path=stats.path, ruleset=self._state_key, matched=frozenset(by_blob),
                             tips=frozenset(commits.tips), commits=commits.known.union(commits.tree))
        self.store.save_repo(stats.repo, stats.path, commit_rows,
                             stats.shallow, rows, tips, removals, keep, add_commits=bool(commits.known))

    # -- the whole run -------------------------------------------------------------------------------------
    async def run(self, repos: list[str]) -> None:
        resolutions: dict[tuple, asyncio.Future[Resolved]] = {}
        if not self.opts.validate:
            for arg in repos:
                await self.scan_repo(arg, resolutions)
            return
        cache = {} if self.opts.recheck else self.store.fresh_checks(timedelta(seconds=self.opts.recheck_after))
        bases = {}
        if self.opts.twilio_api_url:
            bases = {d.id: self.opts.twilio_api_url for d in self.detectors if d.company.lower() == "twilio"}
        from auditor.validity import Validator  # aiohttp: loaded only when validating

        async with Validator(self.detectors, base_urls=bases, concurrency=self.opts.validate_concurrency,
                             rate=self.opts.validate_rate, timeout=self.opts.validate_timeout, cache=cache,
                             on_result=self.store.save_check) as validator:
            self.validator = validator
            for arg in repos:
                await self.scan_repo(arg, resolutions)


def scan(repos: list[str], opts: ScanOptions) -> Outcome:
    """Run the pipeline and write the output files; KeyboardInterrupt propagates after state is saved."""
    started = time.perf_counter()
    run = Scan(opts)
    interrupted = False
    try:
        asyncio.run(run.run(repos))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        run.store.close()
    from auditor import report  # pandas: loaded only once there are results to write

    try:
        summary = report.write_outputs(
            opts.out, run.findings, run.repos, run.tips, run.detectors, show_secrets=opts.show_secrets,
            validated=opts.validate, validation_requests=run.validator.requests if run.validator else 0,
            validation_unique=run.validator.unique if run.validator else 0,
            wall_seconds=time.perf_counter() - started, interrupted=interrupted)
    except OSError as e:
        raise OutputError(f"{opts.out}: cannot write the results ({e.strerror or e}: {e.filename}). Pass --out "
                          "a directory you can write to (the store keeps what was scanned: rerun).") from None
    if interrupted:
        raise KeyboardInterrupt
    strict = {d.id for d in run.detectors if d.only_valid_secrets_raise_alert}
    alerts = [f for f in run.findings
              if not opts.validate or f.detector not in strict or f.validity is Validity.VALID]
    return Outcome(findings=run.findings, summary=summary, alerts=alerts, interrupted=interrupted)


