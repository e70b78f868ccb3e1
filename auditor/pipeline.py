"""The stage order of a local run, and nothing else:

    REPO → repository_scan (history, changes, detection, location) → validation → attribution → store → outputs

Each repository is one ``scan_repository`` call; its candidates go to the validation queue as detection finds them;
once they are resolved, ``attribute`` turns them into occurrences and the store keeps them. This thread is the
store's one writer (checkpoints, check results, each repository's results).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from auditor.attribution import attribute
from auditor.detection import boot, pool
from auditor.detection.stage import ScanEvents
from auditor.detectors import Detector, DetectorSet, load_detectors
from auditor.errors import UsageError
from auditor.git import mirror
from auditor.git.repository import open_repository
from auditor.models import Finding, Outcome, RepoState, RepoStats, Resolved, ScanOptions, Validity
from auditor.outdir import OutDir
from auditor.outputs import write_results
from auditor.progress import Stage
from auditor.repository_scan import RepoJob, RepoScan, scan_repository
from auditor.store import Store
from auditor.validation import ValidationQueue


def ruleset_of(detectors: tuple[Detector, ...], max_pairs_per_sid: int) -> str:
    """Blobs scanned under another detector set (or pairing cap) are scanned again."""
    text = repr((tuple((d.id, d.filename_banlist, d.content_whitelist, d.matchers, d.pairing) for d in detectors),
                 max_pairs_per_sid))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def base_urls(detectors: Sequence[Detector], api_urls: dict[str, str]) -> dict[str, str]:
    """Detector id → the API base its checks ask, where the user pointed that provider (by company) elsewhere."""
    return {d.id: api_urls[d.company.lower()] for d in detectors if d.company.lower() in api_urls}


def fallback_bases(detectors: Sequence[Detector], regions: dict[str, tuple[str, ...]],
                   region_urls: dict[str, dict[str, str]]) -> dict[str, tuple[tuple[str, str], ...]]:
    """Detector id → (region, API base) asked in turn after its base refused a credential, for the regions the user
    listed for that provider (by company); a region's base is the user's (``region_urls``) or the detector's own.
    A region nobody gives a base for, or a base given for a region not listed, is a usage error."""
    out: dict[str, tuple[tuple[str, str], ...]] = {}
    for company in sorted(set(regions) | set(region_urls)):
        listed, urls = regions.get(company, ()), region_urls.get(company, {})
        flag = f"--{company}-regions"
        if unlisted := sorted(set(urls) - set(listed)):
            raise UsageError(f"--{company}-region-url gives a base for {', '.join(unlisted)}, which {flag} does not "
                             f"list: add {','.join(unlisted)} to {flag} (only listed regions are asked)")
        checked = [d for d in detectors if d.company.lower() == company and d.check is not None]
        if not checked:
            raise UsageError(f"{flag}: no detector of {company} has a validity check")
        for d in checked:
            assert d.check is not None
            known = d.check.regional_bases
            if d.check.base_region in urls:
                raise UsageError(f"{d.check.base_region} is the base of {d.id}'s checks: point it elsewhere with "
                                 f"--{company}-api-url, not --{company}-region-url")
            asked = []
            for region in listed:
                if region == d.check.base_region:
                    continue  # always asked first
                url = urls.get(region) or known.get(region)
                if url is None:
                    raise UsageError(f"{flag}: {d.id} knows no API host for region {region!r} (it knows "
                                     f"{', '.join([*filter(None, [d.check.base_region]), *sorted(known)]) or 'none'}); "
                                     f"give one with --{company}-region-url {region}=URL")
                asked.append((region, url))
            out[d.id] = tuple(asked)
    return out


def regions_asked(detectors: Sequence[Detector], fallbacks: dict[str, tuple[tuple[str, str], ...]]
                  ) -> dict[str, tuple[str, ...]]:
    """Detector id → the regions a check asks, in order (the base's, then those asked after it refused a credential),
    for the detectors that know their provider's regions."""
    return {d.id: (d.check.base_region, *(region for region, _ in fallbacks.get(d.id, ())))
            for d in detectors if d.check is not None and d.check.base_region is not None}


class Run:
    """One run over one or more repositories, sharing a store, a validation queue and the detectors."""

    def __init__(self, opts: ScanOptions) -> None:
        self.opts = opts
        self.out = OutDir(opts.out)
        self.detectors = load_detectors(opts.detectors_dir)
        self.detector_set = DetectorSet(self.detectors)
        self.ruleset = ruleset_of(self.detectors, opts.max_pairs_per_sid)
        self.fallbacks = fallback_bases(self.detectors, opts.regions, opts.region_urls)  # before anything is written
        self.regions = regions_asked(self.detectors, self.fallbacks)
        self.state_key = f"{self.ruleset}:{opts.max_blob_bytes}"  # a larger limit reads skipped blobs
        self.out.prepare()
        self.store = Store(self.out.store)
        self.findings: list[Finding] = []
        self.repos: list[RepoStats] = []
        self.tips: list[tuple[str, str, str, str]] = []  # (repo, secret_sha256, ref, path)

    def queue(self) -> ValidationQueue:
        opts = self.opts
        cache = {} if opts.recheck or not opts.validate else self.store.fresh_checks(
            timedelta(seconds=opts.recheck_after))
        return ValidationQueue(self.detectors, validate=opts.validate, base_urls=base_urls(self.detectors,
                               opts.api_urls), fallbacks=self.fallbacks, concurrency=opts.validate_concurrency,
                               rate=opts.validate_rate, timeout=opts.validate_timeout, cache=cache,
                               progress=opts.progress)

    def save_checks(self, queue: ValidationQueue) -> None:
        for sha, detector, client_id, result in queue.drain_checks():
            self.store.save_check(sha, detector, client_id, result)

    def scan_repo(self, arg: str, queue: ValidationQueue) -> None:
        source = mirror.resolve(arg)
        repo = open_repository(source)
        name = mirror.display(arg)  # never a URL's password in outputs
        same = next((r for r in self.repos if os.path.realpath(r.path) == os.path.realpath(repo.path)), None)
        if same is not None:  # named twice (or as both a path and a subdirectory): scanned and counted once
            same.also_named.append(name)
            return
        prior = None if repo.is_shallow else self.store.load_state(name, repo.path, self.state_key)
        job = RepoJob(source=source, name=name, detectors=self.detectors, max_blob_bytes=self.opts.max_blob_bytes,
                      max_pairs_per_sid=self.opts.max_pairs_per_sid, jobs=self.opts.jobs, prior=prior,
                      skip=self.store.scanned_blobs(self.ruleset), earlier=self.earlier(name, prior))
        bar = Stage("detection", enabled=self.opts.progress, unit="B", unit_scale=True)
        out_in_work_tree = bool(repo.workdir) and Path(self.opts.out).resolve().is_relative_to(
            Path(repo.workdir).resolve())

        def started(stats: RepoStats) -> None:  # an interrupted scan still reports what it read
            stats.out_in_work_tree = out_in_work_tree
            self.repos.append(stats)

        events = ScanEvents(
            started=started,
            candidates=queue.submit,
            checkpoint=lambda oids, matched: self.store.mark_scanned(self.ruleset, oids, matched),
            progress=lambda n, blobs, matched: bar.update(n, blobs=blobs, matched=matched))
        scanned = scan_repository(job, events)
        stats = scanned.stats
        bar.done(f"{stats.blobs_scanned:,} blobs, {stats.bytes_scanned / 2**20:,.1f} MiB, "
                 f"{len(scanned.candidates):,} with candidates")
        t0 = time.perf_counter()
        resolved = queue.resolve(c for cands in scanned.candidates.values() for c in cands)
        self.save_checks(queue)
        t1 = time.perf_counter()
        stats.seconds["validation"] = t1 - t0
        self.keep(scanned, resolved)
        stats.seconds["attribution"] += time.perf_counter() - t1
        stats.errors = list(dict.fromkeys(stats.errors))  # an unreadable object is met by several stages

    def earlier(self, name: str, prior: RepoState | None) -> tuple[tuple[bytes, bytes, bytes], ...]:
        """(commit, path, blob) of the occurrences the last complete scan of ``name`` found: new removals may end
        them."""
        if prior is None:
            return ()
        return tuple((bytes.fromhex(o.commit), o.path.encode("utf-8", "surrogateescape"), bytes.fromhex(o.blob))
                     for o in self.store.occurrences(name))

    def keep(self, scanned: RepoScan, resolved: dict[tuple, Resolved]) -> None:
        """Attribute one repository's resolved candidates and store its results in one transaction."""
        stats = scanned.stats
        earlier = not scanned.attributed_anew
        found = attribute(stats.repo, scanned.candidates, resolved, scanned.provenance,
                          self.detector_set, reachable=scanned.reachable.__contains__,
                          stored=self.store.occurrences(stats.repo) if earlier else (),
                          stored_removals=self.store.removals(stats.repo) if earlier else (),
                          stored_ends=self.store.exposure_ends(stats.repo) if earlier else ())
        stats.errors.extend(found.errors)
        state = None
        if not (stats.errors or stats.shallow):  # a walk with unread objects is never built upon
            state = RepoState(path=stats.path, ruleset=self.state_key, matched=frozenset(scanned.candidates),
                              tips=scanned.tips, commits=scanned.reachable)
        self.store.save_repo(stats.repo, stats.path, scanned.commit_rows, stats.shallow, found.occurrences,
                             found.tips, found.removals, state, add_commits=scanned.incremental, ends=found.ends,
                             reach=scanned.reach)
        self.findings += found.findings
        self.tips += [(stats.repo, *t) for t in found.tips]


def scan(repos: list[str], opts: ScanOptions) -> Outcome:
    """Run the pipeline and write the output files; KeyboardInterrupt propagates after state is saved."""
    started = time.perf_counter()
    run = Run(opts)
    if boot.needs_workers(repos):  # before validation and progress start their threads: workers are forks of this
        pool.prefork(run.detectors, jobs=opts.jobs, max_bytes=opts.max_blob_bytes, max_pairs=opts.max_pairs_per_sid)
    queue = run.queue()
    interrupted = False
    try:
        with queue:
            for arg in repos:
                run.scan_repo(arg, queue)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        pool.release()
        run.save_checks(queue)
        run.store.close()
    return finish(run, queue, started, interrupted)


def finish(run: Run, queue: ValidationQueue, started: float, interrupted: bool, *, pooled: bool = False
           ) -> Outcome:
    """Write the run's result files and say what the exit code counts; re-raise an interruption once written."""
    opts = run.opts
    summary = write_results(run.out, run.findings, run.repos, run.tips, run.detectors,
                            show_secrets=opts.show_secrets, validated=opts.validate,
                            validation_requests=queue.requests, validation_unique=queue.unique,
                            wall_seconds=time.perf_counter() - started, interrupted=interrupted, pooled=pooled,
                            regions=run.regions)
    if interrupted:
        raise KeyboardInterrupt
    strict = {d.id for d in run.detectors if d.only_valid_secrets_raise_alert}
    alerts = [f for f in run.findings
              if not opts.validate or f.detector not in strict or f.validity is Validity.VALID]
    return Outcome(findings=run.findings, summary=summary, alerts=alerts, interrupted=interrupted)
