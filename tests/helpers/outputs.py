"""The result files (findings.jsonl, secrets.jsonl, summary.json) computed the reporter's way, through its pandas
frames (``auditor.report.frames``, ``measures``): the reference ``auditor.outputs`` — plain Python, so that a scan
imports no pandas — is compared with byte for byte (tests/functional/test_startup.py)."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from auditor.models import Finding, RepoStats, Summary, redact
from auditor.outdir import OutDir, private_file, write_private
from auditor.outputs import _pooled, by_ref_kind, rates_of, reference_fields, regions_note
from auditor.report import frames as fr
from auditor.report.measures import counts, unique_secrets
from auditor.report.stats import METHOD


def summary_rates(frame: pd.DataFrame, commits: int, *, validated: bool) -> dict[str, Any]:
    """Counts the reporter's way; laid out as summary.json lays them out (``rates_of``, shared)."""
    return rates_of(counts(frame, validated), commits)


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


def _write_jsonl(path: Path, frame: Any) -> None:
    private_file(path)
    with path.open("w", encoding="utf-8") as fh:
        for row in frame.to_dict("records"):
            fh.write(json.dumps({k: _jsonable(v) for k, v in row.items()}, ensure_ascii=False) + "\n")


# -- the run's result files -----------------------------------------------------------------------------------
def region_fields(detector: Any, asked: Sequence[str] | None, frame: pd.DataFrame, validated: bool
                  ) -> dict[str, Any]:
    """The regions a detector's checks ask, and unique secrets per answering region and answer."""
    if asked is None:
        return {"regions": None, "regions_note": None, "unique_secrets_by_region": None}
    answered = frame[frame["region"].notna() & frame["validity"].isin(["valid", "invalid"])]
    counts = answered.groupby(["region", "validity"])["secret_sha256"].nunique()
    by_region: dict[str, dict[str, int]] = {}
    for (region, validity), n in counts.items():
        by_region.setdefault(str(region), {})[str(validity)] = int(n)
    return {"regions": list(asked), "regions_note": regions_note(detector, asked, validated),
            "unique_secrets_by_region": by_region if validated else None}


def write_results(out: OutDir, findings: list[Finding], repos: Sequence[RepoStats], tips: Sequence[tuple],
                   detectors: Sequence[Any], *, show_secrets: bool, validated: bool, validation_requests: int,
                   validation_unique: int, wall_seconds: float, interrupted: bool, pooled: bool = False,
                   regions: Mapping[str, Sequence[str]] | None = None) -> Summary:
    """What auditor.outputs writes, computed through the reporter's pandas frames."""
    regions = regions or {}
    frame = fr.findings_frame(findings)
    if not show_secrets:
        frame = frame.assign(client_secret=frame["client_secret"].map(redact, na_action="ignore"))
    frame = frame.sort_values(["repo", "author_time", "commit", "path", "line"], kind="stable")
    _write_jsonl(out.findings, frame[list(fr.FINDING_DTYPES)])
    names = [r.repo for r in repos]
    everything = fr.read_store(out.store) if out.store.is_file() else {}
    stored = fr.restrict(everything, names)
    earlier = sorted(set(everything["repos"]["repo"]) - set(names)) if everything else []
    scanned = stored.get("repos", fr.typed([], fr.REPO_DTYPES)).set_index("repo")["scanned_at"]
    repo_rows = fr.typed(((r.repo, r.path, r.commits_scanned, r.shallow, scanned.get(r.repo)) for r in repos),
                         fr.REPO_DTYPES)
    scan = fr.assemble(findings=frame, commits=stored.get("commits", fr.typed([], fr.COMMIT_DTYPES)),
                       repos=repo_rows, tips=fr.typed(tips, fr.TIP_DTYPES),
                       removals=stored.get("removals", fr.typed([], fr.REMOVAL_DTYPES)),
                       ends=stored.get("ends", fr.typed([], fr.END_DTYPES)),
                       detectors=fr.detectors_frame(detectors), validated=validated)
    ends = fr.exposures(scan.findings)
    _write_jsonl(out.secrets, scan.secrets.drop(columns="exposure")  # the frames' Timedelta: exposure_days in JSON
                 .assign(exposures=[ends.get(h, []) for h in scan.secrets["secret_sha256"]]))
    commits = sum(r.commits_scanned for r in repos)
    seconds: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    bounded: Counter[str] = Counter()
    for r in repos:
        seconds.update(r.seconds)
        skipped.update(r.blobs_skipped)
        bounded.update(r.matches_bounded)
    found_in = {str(name): group for name, group in frame.groupby("repo", sort=False)} if len(frame) else {}
    none_found = counts(frame.iloc[0:0], validated)
    per_repo = {r.repo: counts(found_in[r.repo], validated) if r.repo in found_in else none_found for r in repos}
    summary = Summary(
        commits_scanned=commits,
        blobs_scanned=sum(r.blobs_scanned for r in repos),
        bytes_scanned=sum(r.bytes_scanned for r in repos),
        blobs_skipped=dict(sorted(skipped.items())),
        matches_bounded=dict(sorted(bounded.items())),
        measures=summary_rates(frame, commits, validated=validated),
        confidence_interval_method=METHOD,
        validated=validated,
        validation_requests=validation_requests,
        validation_unique=validation_unique,
        detectors={d.id: {"name": d.name, **summary_rates(frame[frame["detector"] == d.id], commits,
                                                          validated=validated),
                          **reference_fields(d),
                          **region_fields(d, regions.get(d.id), frame[frame["detector"] == d.id], validated)}
                   for d in detectors},
        repos=tuple(r.summary(rates_of(per_repo[r.repo], r.commits_scanned)) for r in repos),
        seconds={k: round(v, 3) for k, v in seconds.items()} | {"total": round(wall_seconds, 3)},
        errors=tuple(e for r in repos for e in r.errors)[:1000],
        error_count=sum(len(r.errors) for r in repos),
        interrupted=interrupted,
        store_also_holds=tuple(earlier),
        secrets_failed_to_check=unique_secrets(frame[frame["validity"] == "failed_to_check"]),
        pooled=_pooled(repos, per_repo) if pooled else None,
        by_ref_kind=by_ref_kind(repos, Counter(scan.findings["reach"].astype(str).tolist())),
    )
    write_private(out.summary, (json.dumps(summary.as_json(), indent=2) + "\n").encode("utf-8"))
    return summary
