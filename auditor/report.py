"""ScanFrames in; rates per million commits with exact 95% Poisson intervals, breakdowns, and the output files out.

What notebooks and the CLI call: ``load`` a scan directory, then ``rates``, ``per_repository``, ``by_year``,
``by_extension``, ``by_directory``, ``by_validity``, ``by_presence``, ``timeline``, ``top_paths``, ``lifecycle``;
``export`` writes every frame as CSV and Parquet; ``build`` (re)writes report.md and report.html (auditor.render).
``write_outputs`` is the pipeline's end: findings.jsonl, secrets.jsonl and summary.json.

Every rate is a count divided by the commits scanned (of the scope at hand) × 10⁶, with its exact Poisson interval
(auditor.stats.METHOD); no commit scanned → NA (null in JSON), never inf.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from auditor import frames as _frames
from auditor.detectors.spec import Detector
from auditor.frames import (FINDING_DTYPES, ScanFrames, assemble, detectors_frame, exposures, findings_frame, load,
                            read_store, restrict, typed)
from auditor.models import Finding, Validity, redact
from auditor.stats import METHOD, per_million, rate_interval, with_rates
from auditor.store import private_file

if TYPE_CHECKING:
    from auditor.pipeline import RepoStats
    from auditor.render import Report

__all__ = ["MEASURES", "METHOD", "ScanFrames", "build", "by_directory", "by_extension", "by_presence", "by_validity",
           "by_year", "dated", "export", "findings_frame", "headline", "lifecycle", "load", "per_million",
           "per_repository", "rates", "redact", "references", "tables", "timeline", "timeline_freq", "top_paths",
           "write_outputs"]

VALID = Validity.VALID.value
# Figures published after the one in a detector's file, shown beside it: (source, occurrences per million commits).
LATER_REFERENCES: dict[str, tuple[tuple[str, float], ...]] = {
    "twilio_master_credentials": (("GitGuardian, later publication", 8.33),),
}


def _valid(f: pd.DataFrame) -> pd.Series:
    return (f["validity"] == VALID).fillna(False)


def _with_secret(f: pd.DataFrame) -> pd.DataFrame:
    """``f`` with a ``secret`` column, one value per unique secret — (detector, client_id, client_secret), SPEC §4:
    two detectors matching one pair are two — for counting them, also by group."""
    return f.assign(secret=f["detector"].astype("string") + ":" + f["secret_sha256"].astype("string"))


def _secrets(f: pd.DataFrame) -> int:
    return int(_with_secret(f)["secret"].nunique())


# measure → (counts it from a findings frame, needs validation). Say which rate is which (SPEC §4).
MEASURES: dict[str, tuple[Callable[[pd.DataFrame], int], bool]] = {
    "occurrences": (len, False),
    "valid_occurrences": (lambda f: int(_valid(f).sum()), True),
    "valid_live_occurrences": (lambda f: int((_valid(f) & (f["scope"] == "live").fillna(False)).sum()), True),
    "valid_test_occurrences": (lambda f: int((_valid(f) & (f["scope"] == "test").fillna(False)).sum()), True),
    "commits_with_occurrences": (lambda f: len(f[["repo", "commit"]].drop_duplicates()), False),
    "unique_secrets": (_secrets, False),
    "valid_unique_secrets": (lambda f: _secrets(f[_valid(f)]), True),
}
RATE_COLUMNS = {"count": "Int64", "commits": "int64"}


def _counts(findings: pd.DataFrame, validated: bool) -> dict[str, int | None]:
    return {m: (count(findings) if validated or not needs else None) for m, (count, needs) in MEASURES.items()}


def _measure_rows(findings: pd.DataFrame, commits: int, validated: bool, **labels: Any) -> list[dict[str, Any]]:
    return [{**labels, "measure": m, "count": c, "commits": commits}
            for m, c in _counts(findings, validated).items()]


def _rate_frame(rows: list[dict[str, Any]], labels: dict[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=[*labels, "measure", "count", "commits"])
    return with_rates(frame.astype({**labels, "measure": "string", **RATE_COLUMNS}))


# -- the statistics ---------------------------------------------------------------------------------------------
def rates(f: ScanFrames) -> pd.DataFrame:
    """Per detector, pooled over repositories: every measure's count, rate per million commits and 95% interval."""
    rows = []
    for det in f.detectors["detector"]:
        rows += _measure_rows(f.findings[f.findings["detector"] == det], f.commits_scanned, f.validated, detector=det)
    refs = f.detectors.set_index("detector")["reference_occurrences_per_million_commits"]
    frame = _rate_frame(rows, {"detector": "string"})
    reference = frame["detector"].map(refs).where(frame["measure"] == "occurrences")
    return frame.assign(reference=reference.astype("Float64"))


def references(f: ScanFrames) -> pd.DataFrame:
    """Published occurrences per million commits to compare with: the detector file's, then later publications."""
    rows = []
    for det, value in zip(f.detectors["detector"], f.detectors["reference_occurrences_per_million_commits"],
                          strict=True):
        if not pd.isna(value):
            rows.append((det, "GitGuardian, in the detector file", value))
        rows += [(det, source, v) for source, v in LATER_REFERENCES.get(str(det), ())]
    return typed(rows, {"detector": "string", "source": "string", "value": "Float64"})


def headline(f: ScanFrames) -> pd.DataFrame:
    """Every measure pooled over detectors and repositories: the report's first table."""
    return _rate_frame(_measure_rows(f.findings, f.commits_scanned, f.validated), {})


def per_repository(f: ScanFrames) -> pd.DataFrame:
    """Every measure per repository (its own commits as denominator), then pooled as ``(all repositories)``."""
    rows = []
    for repo, commits in zip(f.repos["repo"], f.repos["commits_scanned"], strict=True):
        rows += _measure_rows(f.findings[f.findings["repo"] == repo], int(commits), f.validated, repo=repo)
    rows += _measure_rows(f.findings, f.commits_scanned, f.validated, repo="(all repositories)")
    return _rate_frame(rows, {"repo": "string"})


def _of(found: pd.DataFrame, detector: str | None) -> pd.DataFrame:
    return found if detector is None else found[found["detector"] == detector]


def _count_by(f: ScanFrames, found: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Occurrences, valid ones and unique secrets by ``keys``; rate of occurrences per million commits scanned."""
    grouped = (_with_secret(found).assign(valid=_valid(found))
               .groupby(keys, dropna=False, sort=False)
               .agg(occurrences=("commit", "size"), valid_occurrences=("valid", "sum"),
                    unique_secrets=("secret", "nunique"))
               .reset_index()
               .astype({"occurrences": "int64", "valid_occurrences": "Int64", "unique_secrets": "int64"}))
    if not f.validated:
        grouped = grouped.assign(valid_occurrences=pd.NA).astype({"valid_occurrences": "Int64"})
    grouped = grouped.assign(commits=f.commits_scanned).astype({"commits": "int64"})
    return (with_rates(grouped, count="occurrences")
            .sort_values(["occurrences", *keys], ascending=[False, *[True] * len(keys)], kind="stable")
            .reset_index(drop=True))


def by_extension(f: ScanFrames, detector: str | None = None) -> pd.DataFrame:
    """By file extension (text after the basename's last '.', lower case; ``(none)``)."""
    return _count_by(f, _of(f.findings, detector), ["extension"])


def by_directory(f: ScanFrames, detector: str | None = None) -> pd.DataFrame:
    """By top-level directory of the path (``(root)`` for files at the top)."""
    return _count_by(f, _of(f.findings, detector), ["top_directory"])


def by_validity(f: ScanFrames, detector: str | None = None) -> pd.DataFrame:
    """By validity and scope (live / test for valid secrets)."""
    return _count_by(f, _of(f.findings, detector), ["validity", "scope"])


def by_presence(f: ScanFrames, detector: str | None = None) -> pd.DataFrame:
    """By where each secret still is: at a branch tip, only at a tag tip, at another ref's tip, or only in history."""
    found = _of(f.findings, detector).merge(f.secrets[["secret_sha256", "presence"]], on="secret_sha256", how="left")
    order = {p: i for i, p in enumerate(_frames.PRESENCE)}
    return (_count_by(f, found, ["presence"])
            .sort_values("presence", key=lambda s: s.map(order), kind="stable").reset_index(drop=True))


def by_year(f: ScanFrames, detector: str | None = None) -> pd.DataFrame:
    """Per year of the introducing commit (committer time): occurrences per million commits *of that year*."""
    found = _with_secret(_of(f.findings, detector))
    commits = f.commits.groupby(f.commits["commit_time"].dt.year.rename("year")).size().rename("commits")
    occ = found.groupby(found["commit_time"].dt.year.rename("year")).agg(
        occurrences=("commit", "size"), valid_occurrences=("validity", lambda v: int((v == VALID).sum())),
        unique_secrets=("secret", "nunique"))
    frame = (pd.concat([commits, occ], axis=1).fillna(0).reset_index()
             .astype({"year": "int64", "commits": "int64", "occurrences": "int64", "valid_occurrences": "Int64",
                      "unique_secrets": "int64"}))
    if not f.validated:
        frame = frame.assign(valid_occurrences=pd.NA).astype({"valid_occurrences": "Int64"})
    return with_rates(frame.sort_values("year").reset_index(drop=True), count="occurrences")


def dated(f: ScanFrames) -> tuple[pd.Series, pd.Series]:
    """Which commits and findings a timeline places: committer times from 1970 to a day after the scan. A commit
    object may claim any time (skewed clocks, broken or hostile tools: years 1 and 9999 happen); the rest count
    in every rate, but a time axis stretched over millennia would show nothing."""
    end = f.repos["scanned_at"].max() if len(f.repos) else pd.NaT
    end = (pd.Timestamp.now(tz="UTC") if pd.isna(end) else end) + pd.Timedelta(days=1)
    start = pd.Timestamp("1970-01-01", tz="UTC")
    return (f.commits["commit_time"].between(start, end).fillna(False),
            f.findings["commit_time"].between(start, end).fillna(False))


def timeline(f: ScanFrames, freq: str = "M") -> pd.DataFrame:
    """Per calendar period (``M`` month, ``W`` week, ``D`` day) from the first to the last commit: commits made,
    occurrences (and valid ones) introduced, by committer time. ``period`` is the period's first day (UTC).
    Commits and findings ``dated`` outside 1970 … the scan are left out."""
    cols = {"period": "datetime64[s]", "commits": "int64", "occurrences": "int64", "valid_occurrences": "int64"}
    in_commits, in_findings = dated(f)
    commits_f, findings_f = f.commits[in_commits], f.findings[in_findings]
    times = pd.concat([commits_f["commit_time"], findings_f["commit_time"]]).dropna()
    if times.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in cols.items()})

    def start(s: pd.Series) -> pd.Series:
        return s.dt.tz_localize(None).dt.to_period(freq).dt.start_time.astype("datetime64[s]")

    span = pd.period_range(times.min().tz_localize(None), times.max().tz_localize(None), freq=freq)
    index = pd.Index(span.start_time.astype("datetime64[s]"), name="period")
    commits = commits_f.groupby(start(commits_f["commit_time"])).size()
    found = findings_f.assign(valid=_valid(findings_f))
    occ = found.groupby(start(found["commit_time"])).agg(occurrences=("commit", "size"),
                                                          valid_occurrences=("valid", "sum"))
    return (pd.DataFrame({"commits": commits.reindex(index, fill_value=0),
                          "occurrences": occ["occurrences"].reindex(index, fill_value=0),
                          "valid_occurrences": occ["valid_occurrences"].reindex(index, fill_value=0)})
            .reset_index().astype(cols))


def top_paths(f: ScanFrames, n: int = 20) -> pd.DataFrame:
    """The ``n`` (repository, path) pairs with the most occurrences; whether a secret still sits there at a tip."""
    at_tip = set(zip(f.tips["repo"], f.tips["path"], strict=True))
    grouped = (_with_secret(f.findings).groupby(["repo", "path"])
               .agg(occurrences=("commit", "size"), unique_secrets=("secret", "nunique"),
                    first_introduced=("commit_time", "min"), last_introduced=("commit_time", "max"))
               .reset_index())
    still = [(r, p) in at_tip for r, p in zip(grouped["repo"], grouped["path"], strict=True)]
    return (grouped.assign(still_at_tip=pd.Series(still, index=grouped.index, dtype="bool"))
            .astype({"occurrences": "int64", "unique_secrets": "int64"})
            .sort_values(["occurrences", "repo", "path"], ascending=[False, True, True], kind="stable")
            .head(n).reset_index(drop=True))


def lifecycle(f: ScanFrames, secret: str) -> pd.DataFrame:
    """One secret (its secret_sha256, a prefix of it, or its client_id): where each occurrence began and ended."""
    match = (f.findings["secret_sha256"].str.startswith(secret) | (f.findings["client_id"] == secret)).fillna(False)
    cols = ["secret_sha256", "client_id", "client_secret", "validity", "scope", "repo", "path", "commit",
            "commit_time", "removed_commit", "removed_time"]
    rows = f.findings.loc[match, cols].sort_values(["commit_time", "commit", "path"]).reset_index(drop=True)
    days = (rows["removed_time"] - rows["commit_time"]).dt.total_seconds() / 86400
    return rows.assign(exposure_days=days.astype("Float64"))


def tables(f: ScanFrames, *, top: int = 20) -> dict[str, pd.DataFrame]:
    """Every frame the report shows or exports, by name (secrets redacted: they come from the store)."""
    return {"findings": f.findings, "secrets": f.secrets, "commits": f.commits, "repos": f.repos, "tips": f.tips,
            "removals": f.removals, "detectors": f.detectors, "headline": headline(f), "rates": rates(f),
            "per_repository": per_repository(f), "by_year": by_year(f), "by_extension": by_extension(f),
            "by_directory": by_directory(f), "by_validity": by_validity(f), "by_presence": by_presence(f),
            "timeline": timeline(f, timeline_freq(f)), "top_paths": top_paths(f, top)}


def timeline_freq(f: ScanFrames) -> str:
    """Months, unless the history spans under about four of them: then weeks (or days under three weeks)."""
    times = f.commits["commit_time"][dated(f)[0]].dropna()
    days = (times.max() - times.min()).days if len(times) else 0
    return "M" if days >= 120 else "W" if days >= 21 else "D"


def export(named: dict[str, pd.DataFrame], directory: Path) -> list[Path]:
    """Each frame as ``NAME.csv`` and ``NAME.parquet`` in ``directory`` (0600, like every output).

    Parquet keeps the declared dtypes (lists stay lists); CSV joins list cells with ``;``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in named.items():
        flat = frame.assign(**{c: frame[c].map(lambda v: ";".join(v) if isinstance(v, list) else v)
                               for c in frame.columns if frame[c].dtype == object})
        csv, parquet = directory / f"{name}.csv", directory / f"{name}.parquet"
        for path in (csv, parquet):
            private_file(path)
        flat.to_csv(csv, index=False)
        frame.to_parquet(parquet, index=False)
        written += [csv, parquet]
    return written


def build(path: str | Path, *, top: int = 20) -> Report:
    """(Re)build report.md, report.html, plots/ and frames/ of a scan directory from its store."""
    from auditor.render import build_report  # matplotlib: only the report needs it

    return build_report(Path(path), top=top)


# -- the pipeline's output files ----------------------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat().replace("+00:00", "Z")
    if hasattr(value, "item"):
        return value.item()
    return value


def _write_jsonl(path: Path, frame: pd.DataFrame) -> None:
    private_file(path)
    with path.open("w", encoding="utf-8") as fh:
        for row in frame.to_dict("records"):
            fh.write(json.dumps({k: _jsonable(v) for k, v in row.items()}, ensure_ascii=False) + "\n")


def _rates(frame: pd.DataFrame, commits: int, *, validated: bool) -> dict[str, Any]:
    """summary.json's counts, rates and intervals for one scope (everything, a detector, a repository)."""
    counts = _counts(frame, validated)
    out: dict[str, Any] = dict(counts)
    intervals: dict[str, Any] = {}
    for m, c in counts.items():
        key = f"{m}_per_million_commits"
        out[key] = None if c is None else per_million(c, commits)
        intervals[key] = None if c is None or not commits else list(rate_interval(c, commits))
    return out | {"confidence_intervals": intervals}


def write_outputs(out: Path, findings: list[Finding], repos: Sequence[RepoStats], tips: Sequence[tuple],
                  detectors: Sequence[Detector], *, show_secrets: bool, validated: bool, validation_requests: int,
                  validation_unique: int, wall_seconds: float, interrupted: bool) -> dict[str, Any]:
    """Write findings.jsonl, secrets.jsonl (with lifecycles) and summary.json (0600); return the summary."""
    frame = findings_frame(findings)
    if not show_secrets:
        frame = frame.assign(client_secret=frame["client_secret"].map(redact, na_action="ignore"))
    frame = frame.sort_values(["repo", "author_time", "commit", "path", "line"], kind="stable")
    _write_jsonl(out / "findings.jsonl", frame[list(FINDING_DTYPES)])
    names = [r.repo for r in repos]
    store = out / "audit.sqlite"
    everything = read_store(store) if store.is_file() else {}
    stored = restrict(everything, names)
    earlier = sorted(set(everything["repos"]["repo"]) - set(names)) if everything else []
    scanned = stored.get("repos", typed([], _frames.REPO_DTYPES)).set_index("repo")["scanned_at"]
    repo_rows = typed(((r.repo, r.path, r.commits_scanned, r.shallow, scanned.get(r.repo)) for r in repos),
                      _frames.REPO_DTYPES)
    tip_rows = typed(tips, _frames.TIP_DTYPES)
    scan = assemble(findings=frame, commits=stored.get("commits", typed([], _frames.COMMIT_DTYPES)), repos=repo_rows,
                    tips=tip_rows, removals=stored.get("removals", typed([], _frames.REMOVAL_DTYPES)),
                    detectors=detectors_frame(detectors), validated=validated)
    ends = exposures(scan.findings)
    secrets = scan.secrets.assign(exposures=[ends.get(h, []) for h in scan.secrets["secret_sha256"]])
    _write_jsonl(out / "secrets.jsonl", secrets)
    commits = sum(r.commits_scanned for r in repos)
    seconds: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    for r in repos:
        seconds.update(r.seconds)
        skipped.update(r.blobs_skipped)
    summary: dict[str, Any] = {
        "commits_scanned": commits,
        "blobs_scanned": sum(r.blobs_scanned for r in repos),
        "bytes_scanned": sum(r.bytes_scanned for r in repos),
        "blobs_skipped": dict(sorted(skipped.items())),
        **_rates(frame, commits, validated=validated),
        "confidence_interval_method": METHOD,
        "validated": validated,
        "validation_requests": validation_requests,
        "validation_unique": validation_unique,
        "detectors": {
            d.id: {"name": d.name, **_rates(frame[frame["detector"] == d.id], commits, validated=validated),
                   "reference_occurrences_per_million_commits": d.reference_occurrences_per_million_commits}
            for d in detectors},
        "repos": [{"repo": r.repo, "commits_scanned": r.commits_scanned, "shallow": r.shallow,
                   "partial_clone": r.partial_clone, "refs_outside_commits": r.refs_outside_commits,
                   "also_named": r.also_named, "out_in_work_tree": r.out_in_work_tree,
                   "blobs_scanned": r.blobs_scanned, "bytes_scanned": r.bytes_scanned,
                   "commits_new": r.commits_new, "changes_read": r.changes_read,
                   **_rates(frame[frame["repo"] == r.repo], r.commits_scanned, validated=validated),
                   "errors": len(r.errors)} for r in repos],
        "shallow": any(r.shallow for r in repos),
        "seconds": {k: round(v, 3) for k, v in seconds.items()} | {"total": round(wall_seconds, 3)},
        "errors": [e for r in repos for e in r.errors][:1000],
        "error_count": sum(len(r.errors) for r in repos),
        "interrupted": interrupted,
        # repositories an earlier scan into the same --out left in the store: `auditor report` covers them too
        "store_also_holds": earlier,
        # unique secrets the provider could not be asked about (down, slow, garbage): neither valid nor invalid
        "secrets_failed_to_check": _secrets(frame[frame["validity"] == "failed_to_check"]),
    }
    private_file(out / "summary.json")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
