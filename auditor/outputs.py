"""The run's result files in ``--out`` (named by ``outdir.OutDir``): findings.jsonl, secrets.jsonl, summary.json —
in plain Python, so a scan imports no pandas (a third of a small scan's wall time). Only this module writes them;
the store writes audit.sqlite, ``report.render`` the report files.

The rules are the reporter's (``report.frames``, ``report.measures``), restated on lists of rows, and tested byte for
byte against them (tests: the reporter's frames written the same way):
- findings: sorted by (repo, author time, commit, path, line), the secret redacted unless --show-secrets;
- each occurrence's commit time is its commit's committer time from the store (the author time when the store has
  no such commit: an interrupted scan), and its end the one the scan decided (``exposure_ends``);
- secrets: one row per (secret_sha256, detector), in order of first appearance among the findings sorted by
  (author time, commit time, commit, path); "first"/"last" are the first/last non-null values, counts distinct
  non-null values; exposure ends at the last removal of the secret, or for a secret still at a ref tip at the
  latest scan of a repository holding that tip;
- measures: ``report.measures.MEASURES`` counted on the findings of each scope, rates and intervals from
  ``report.stats``; a corpus adds intervals that allow for clustering in repositories.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from auditor import sarif
from auditor.errors import OutputError, UsageError
from auditor.models import REACH, Finding, RepoStats, Summary, presence, redact
from auditor.outdir import OutDir, private_file, write_private
from auditor.report.stats import METHOD, per_million, rate_interval

FINDING_COLUMNS = ("detector", "repo", "commit", "path", "line", "client_id", "client_secret", "secret_sha256",
                   "validity", "scope", "account_status", "account_type", "subaccount", "region", "author_email",
                   "author_name", "author_time", "commit_time", "commit_message", "blob")
VALID = "valid"
Row = dict[str, Any]


def _time(text: str | None) -> datetime | None:
    """ISO 8601 text → an aware datetime in whole seconds (what ``datetime64[s, UTC]`` keeps); None stays None."""
    if text is None:
        return None
    return datetime.fromisoformat(text).replace(microsecond=0)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return _iso(value) if isinstance(value, datetime) else value


def _json(row: Row) -> str:
    return json.dumps(_plain(row), ensure_ascii=False)


def _write_jsonl(path: Path, rows: Iterable[Row]) -> None:
    private_file(path)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(_json(row) + "\n")


# -- measures (report.measures.MEASURES, on rows) ---------------------------------------------------------------
def _unique(rows: Sequence[Row]) -> int:
    return len({(r["detector"], r["secret_sha256"]) for r in rows})


def _counts(rows: Sequence[Row], validated: bool) -> dict[str, int | None]:
    valid = [r for r in rows if r["validity"] == VALID]
    found = {"occurrences": (len(rows), False),
             "valid_occurrences": (len(valid), True),
             "valid_live_occurrences": (sum(r["scope"] == "live" for r in valid), True),
             "valid_test_occurrences": (sum(r["scope"] == "test" for r in valid), True),
             "commits_with_occurrences": (len({(r["repo"], r["commit"]) for r in rows}), False),
             "unique_secrets": (_unique(rows), False),
             "valid_unique_secrets": (_unique(valid), True)}
    return {m: (c if validated or not needs else None) for m, (c, needs) in found.items()}


def summary_rates(rows: Sequence[Row], commits: int, *, validated: bool) -> dict[str, Any]:
    """summary.json's counts, rates and intervals for one scope (everything, a detector, a repository)."""
    return rates_of(_counts(rows, validated), commits)


def rates_of(found: dict[str, int | None], commits: int) -> dict[str, Any]:
    """Counts → summary.json's counts, rates per million commits and their exact intervals."""
    out: dict[str, Any] = dict(found)
    intervals: dict[str, Any] = {}
    for m, c in found.items():
        key = f"{m}_per_million_commits"
        out[key] = None if c is None else per_million(c, commits)
        intervals[key] = None if c is None or not commits else list(rate_interval(c, commits))
    return out | {"confidence_intervals": intervals}


# -- the published reference (data/reference_rates.csv) -----------------------------------------------------------
def reference_fields(detector: Any) -> dict[str, Any]:
    """A detector's primary published figure (``report.published``; the detector file's own when the table has
    none) and where it was read."""
    from auditor.report import published  # plain Python: no pandas

    ref = published.primary(detector.id, getattr(detector, "reference_occurrences_per_million_commits", None))
    return {"reference_occurrences_per_million_commits": None if ref is None else ref.figure,
            "reference": None if ref is None else {"source": ref.source, "version": ref.version or None,
                                                   "address": ref.address or None, "date_read": ref.date_read or None,
                                                   "population": ref.population}}


# -- regions (which hosts were asked, which answered) --------------------------------------------------------------
def regions_note(detector: Any, asked: Sequence[str], validated: bool) -> str | None:
    """What summary.json says when only the base's region was asked (SPEC §5: auth tokens are regional)."""
    if not validated or len(asked) != 1:
        return None
    return (f"only {asked[0]} was asked: a credential made in another region is refused there as a bad one is, so "
            f"it reads invalid; --{detector.company.lower()}-regions lists other regions to ask after a refusal")


def _by_region(rows: Sequence[Row]) -> dict[str, dict[str, int]]:
    """Unique secrets per region whose host answered, and per answer."""
    seen: dict[str, dict[str, set[str]]] = {}
    for r in rows:
        if r["region"] is not None and r["validity"] in (VALID, "invalid"):
            seen.setdefault(r["region"], {}).setdefault(r["validity"], set()).add(r["secret_sha256"])
    return {region: {v: len(s) for v, s in sorted(got.items())} for region, got in sorted(seen.items())}


def region_fields(detector: Any, asked: Sequence[str] | None, rows: Sequence[Row], validated: bool) -> dict[str, Any]:
    """A detector's summary entry: the regions its checks ask (None: it knows no regions), and what each answered."""
    if asked is None:
        return {"regions": None, "regions_note": None, "unique_secrets_by_region": None}
    return {"regions": list(asked), "regions_note": regions_note(detector, asked, validated),
            "unique_secrets_by_region": _by_region(rows) if validated else None}


# -- the store ----------------------------------------------------------------------------------------------------
class _Store:
    """The few rows of the store the result files need, read-only (``report.frames.read_store``'s errors)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db: sqlite3.Connection | None = None

    def __enter__(self) -> _Store:
        if self.path.is_file():
            self.db = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.db is not None:
            self.db.close()

    def has(self, table: str) -> bool:
        """A store of an older auditor lacks the newer tables."""
        return bool(self.rows("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", table))

    def rows(self, sql: str, *args: Any) -> list[tuple]:
        if self.db is None:
            return []
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.Error as e:
            if "no such table" in str(e):
                raise UsageError(f"{self.path}: not an auditor store ({e}). Pass the --out directory of a "
                                 "scan.") from None
            raise UsageError(f"{self.path}: cannot read the store ({e}); rerun the scan into a fresh --out "
                             "directory.") from None


# -- lifecycles (report.frames.assemble, _with_ends, secrets_frame, exposures, on rows) ----------------------------
def _first(values: Iterable[Any]) -> Any:
    return next((v for v in values if v is not None), None)


def _secrets(rows: list[Row], tips: Sequence[tuple], removals: list[tuple],
             scanned_at: dict[str, datetime | None]) -> list[Row]:
    tip_refs: dict[str, set[str]] = {}
    tip_scan: dict[str, datetime] = {}
    for repo, sha, ref, _ in tips:
        tip_refs.setdefault(sha, set()).add(ref)
        when = scanned_at.get(repo)
        if when is not None and (sha not in tip_scan or when > tip_scan[sha]):
            tip_scan[sha] = when
    last_removal: dict[str, datetime] = {}
    for *_, sha, when in removals:
        if sha not in last_removal or when > last_removal[sha]:
            last_removal[sha] = when
    ordered = sorted(rows, key=lambda r: (r["author_time"], r["commit_time"], r["commit"], r["path"]))
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in ordered:
        groups.setdefault((r["secret_sha256"], r["detector"]), []).append(r)
    out = []
    for (sha, detector), group in groups.items():
        def first(column: str, g: list[Row] = group) -> Any:
            return _first(r[column] for r in g)

        def last(column: str, g: list[Row] = group) -> Any:
            return _first(r[column] for r in reversed(g))

        def distinct(column: str, g: list[Row] = group) -> int:
            return len({r[column] for r in g if r[column] is not None})

        introduced = min((r["commit_time"] for r in group if r["commit_time"] is not None), default=None)
        refs = sorted(tip_refs.get(sha, ()))
        removed = None if refs else last_removal.get(sha)
        end = tip_scan.get(sha) if refs else removed
        out.append({"secret_sha256": sha, "detector": detector, "client_id": first("client_id"),
                    "client_secret": first("client_secret"), "validity": first("validity"), "scope": first("scope"),
                    "account_status": first("account_status"), "account_type": first("account_type"),
                    "subaccount": first("subaccount"), "region": first("region"),
                    "first_commit": first("commit"), "first_time": first("author_time"),
                    "last_commit": last("commit"), "last_time": last("author_time"), "introduced_time": introduced,
                    "occurrences": len(group), "commits": distinct("commit"), "repos": distinct("repo"),
                    "paths": distinct("path"), "still_at_tip": bool(refs), "tip_refs": refs,
                    "presence": presence(refs), "removed_time": removed, "exposure_ongoing": bool(refs),
                    "exposure_days": None if end is None or introduced is None
                    else (end - introduced).total_seconds() / 86400})
    return out


def _exposures(rows: list[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for r in sorted(rows, key=lambda r: (r["commit_time"], r["commit"], r["path"])):
        out.setdefault(r["secret_sha256"], []).append(
            {"repo": r["repo"], "path": r["path"], "introduced_commit": r["commit"],
             "introduced_time": r["commit_time"], "removed_commit": r["removed_commit"],
             "removed_time": r["removed_time"]})
    return out


# -- the files ------------------------------------------------------------------------------------------------------
def write_results(out: OutDir, findings: list[Finding], repos: Sequence[RepoStats], tips: Sequence[tuple],
                  detectors: Sequence[Any], *, show_secrets: bool, validated: bool, validation_requests: int,
                  validation_unique: int, wall_seconds: float, interrupted: bool, pooled: bool = False,
                  regions: Mapping[str, Sequence[str]] | None = None) -> Summary:
    """Write findings.jsonl, secrets.jsonl (with lifecycles) and summary.json; return the summary. ``pooled``: a
    corpus, whose summary also gives intervals that allow for clustering in repositories. ``regions``: detector id →
    the regions its checks ask, in order (for the detectors that know their provider's regions)."""
    try:
        return _write(out, findings, repos, tips, detectors, show_secrets=show_secrets, validated=validated,
                      validation_requests=validation_requests, validation_unique=validation_unique,
                      wall_seconds=wall_seconds, interrupted=interrupted, pooled=pooled, regions=regions or {})
    except OSError as e:
        raise OutputError(f"{out.root}: cannot write the results ({e.strerror or e}: {e.filename}). Pass --out "
                          "a directory you can write to (the store keeps what was scanned: rerun).") from None


def _write(out: OutDir, findings: list[Finding], repos: Sequence[RepoStats], tips: Sequence[tuple],
           detectors: Sequence[Any], *, show_secrets: bool, validated: bool, validation_requests: int,
           validation_unique: int, wall_seconds: float, interrupted: bool, pooled: bool,
           regions: Mapping[str, Sequence[str]]) -> Summary:
    rows = []
    for f in findings:
        row = asdict(f) | {"validity": f.validity.value}
        if not show_secrets:
            row["client_secret"] = redact(row["client_secret"])
        row["author_time"], row["commit_time"] = _time(row["author_time"]), _time(row["commit_time"])
        rows.append({c: row[c] for c in FINDING_COLUMNS})
    rows.sort(key=lambda r: (r["repo"], r["author_time"], r["commit"], r["path"], r["line"]))
    _write_jsonl(out.findings, rows)
    names = [r.repo for r in repos]
    with _Store(out.store) as store:
        everything = [repo for (repo,) in store.rows("SELECT repo FROM repos")]
        earlier = sorted(set(everything) - set(names)) if store.db is not None else []
        scanned_at = dict(store.rows("SELECT repo, scanned_at FROM repos"))
        scanned = {r.repo: _time(scanned_at.get(r.repo)) for r in repos}
        removals = [(repo, det, commit, path, sha, _time(when)) for name in dict.fromkeys(names)
                    for repo, det, commit, path, sha, when in store.rows(
                        "SELECT repo, detector, commit_id, path, secret_sha256, commit_time FROM removals "
                        "WHERE repo = ?", name)]
        ended = {(name, commit, path, sha): (removed, _time(when)) for name in dict.fromkeys(names)
                 for commit, path, sha, removed, when in store.rows(
                     "SELECT commit_id, path, secret_sha256, removed_commit, removed_time FROM exposure_ends "
                     "WHERE repo = ?", name)} if store.has("exposure_ends") else {}
        checked_at = dict(store.rows("SELECT secret_sha256, checked_at FROM checks"))
        reach_of = {(name, commit): kind for name in dict.fromkeys(names)
                    for commit, kind in store.rows("SELECT commit_id, reach FROM commit_reach WHERE repo = ?", name)
                    } if store.has("commit_reach") else {}
        times: dict[tuple[str, str], datetime | None] = {}
        for r in rows:
            key = (r["repo"], r["commit"])
            if key not in times:
                got = store.rows("SELECT commit_time FROM commits WHERE repo = ? AND commit_id = ?", *key)
                times[key] = _time(got[0][0]) if got else None
    lives = [dict(r) for r in rows]
    for r in lives:
        # the commit's own time; else the store's (a finding of a store before schema 4); else, with no commits
        # row either (an interrupted scan), the author time
        r["commit_time"] = r["commit_time"] or times[(r["repo"], r["commit"])] or r["author_time"]
    for r in lives:
        r["removed_commit"], r["removed_time"] = ended.get((r["repo"], r["commit"], r["path"], r["secret_sha256"]),
                                                           (None, None))
    ends = _exposures(lives)
    _write_jsonl(out.secrets, (s | {"exposures": ends.get(s["secret_sha256"], [])}
                               for s in _secrets(lives, tips, removals, scanned)))
    commits = sum(r.commits_scanned for r in repos)
    seconds: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    bounded: Counter[str] = Counter()
    for r in repos:
        seconds.update(r.seconds)
        skipped.update(r.blobs_skipped)
        bounded.update(r.matches_bounded)
    found_in: dict[str, list[Row]] = {}
    for r in rows:
        found_in.setdefault(r["repo"], []).append(r)
    per_repo = {r.repo: _counts(found_in.get(r.repo, []), validated) for r in repos}
    found_by = {d.id: [r for r in rows if r["detector"] == d.id] for d in detectors}
    summary = Summary(
        commits_scanned=commits,
        blobs_scanned=sum(r.blobs_scanned for r in repos),
        bytes_scanned=sum(r.bytes_scanned for r in repos),
        blobs_skipped=dict(sorted(skipped.items())),
        matches_bounded=dict(sorted(bounded.items())),
        measures=summary_rates(rows, commits, validated=validated),
        confidence_interval_method=METHOD,
        validated=validated,
        validation_requests=validation_requests,
        validation_unique=validation_unique,
        detectors={d.id: {"name": d.name, **summary_rates(found_by[d.id], commits, validated=validated),
                          **reference_fields(d),
                          **region_fields(d, regions.get(d.id), found_by[d.id], validated)}
                   for d in detectors},
        repos=tuple(r.summary(rates_of(per_repo[r.repo], r.commits_scanned)) for r in repos),
        seconds={k: round(v, 3) for k, v in seconds.items()} | {"total": round(wall_seconds, 3)},
        errors=tuple(e for r in repos for e in r.errors)[:1000],
        error_count=sum(len(r.errors) for r in repos),
        interrupted=interrupted,
        store_also_holds=tuple(earlier),
        secrets_failed_to_check=_unique([r for r in rows if r["validity"] == "failed_to_check"]),
        pooled=_pooled(repos, per_repo) if pooled else None,
        by_ref_kind=by_ref_kind(repos, Counter(reach_of.get((r["repo"], r["commit"]), REACH[0]) for r in rows)),
    )
    write_private(out.summary, (json.dumps(summary.as_json(), indent=2) + "\n").encode("utf-8"))
    tip_refs: dict[str, list[str]] = {}
    for _, sha, ref, _ in tips:
        tip_refs.setdefault(sha, []).append(ref)
    write_private(out.sarif, sarif.dumps(sarif.document(rows, tip_refs, [(d.id, d.name) for d in detectors],
                                                        checked_at)))
    return summary


def by_ref_kind(repos: Sequence[RepoStats], occurrences: Counter[str]) -> dict[str, Any]:
    """Commits and occurrences by the kind of ref that reaches the commit (REACH), with rates and intervals: what
    lets a researcher leave pull-request refs out of a denominator (SPEC §11). Empty when no repository says."""
    commits: Counter[str] = Counter()
    for r in repos:
        commits.update(r.commits_by_reach)
    if not commits:
        return {}
    return {kind: {"commits": commits[kind], **rates_of({"occurrences": occurrences[kind]}, commits[kind])}
            for kind in REACH}


def _pooled(repos: Sequence[RepoStats], per_repo: dict[str, dict[str, int | None]]) -> dict[str, Any]:
    """A corpus: how many repositories were scanned, which failed, and every rate's interval over repositories."""
    from auditor.report.stats import CLUSTER_METHOD, cluster_interval

    scanned = [r for r in repos if r.error is None]
    intervals: dict[str, Any] = {}
    for m in _counts([], True):
        got = [per_repo[r.repo][m] for r in scanned]
        intervals[f"{m}_per_million_commits"] = (
            None if not scanned or any(c is None for c in got)
            else list(cluster_interval([int(c or 0) for c in got], [r.commits_scanned for r in scanned])))
    return {"repositories": len(repos), "repositories_scanned": len(scanned),
            "repositories_failed": [{"repo": r.repo, "error": r.error} for r in repos if r.error is not None],
            "repositories_with_occurrences": sum(1 for r in scanned if per_repo[r.repo].get("occurrences")),
            "clustered_confidence_intervals": intervals, "clustered_confidence_interval_method": CLUSTER_METHOD}
